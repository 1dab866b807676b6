//! Behaviour every store must show, checked against a real SQLite file and a real
//! PostgreSQL server.

use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{
    AttemptOutcome, RetryPolicy, TaskId, TaskKind, TaskSpec, TaskState, Timestamp,
};
use meanwhile_store::{
    AttemptEnd, ClaimRequest, ListFilter, NewTask, PruneRequest, Pruned, StopOutcome, Store,
    Submitted,
};
use std::time::Duration;

pub(crate) const NOW: Timestamp = Timestamp(1_000_000);

pub(crate) async fn submit(store: &dyn Store, spec: TaskSpec) -> TaskId {
    let r = store
        .submit(vec![NewTask::new(spec.validate().unwrap(), NOW)])
        .await
        .unwrap();
    r.into_iter().next().unwrap().unwrap().id()
}

pub(crate) fn claim_req(limit: u32) -> ClaimRequest {
    ClaimRequest {
        node: "n1".into(),
        now: NOW,
        lease_until: Timestamp(NOW.0 + 60_000),
        kinds: vec![TaskKind::Shell],
        limit,
        share_since: None,
    }
}

pub(crate) fn end(id: TaskId, attempt: u32, outcome: AttemptOutcome) -> AttemptEnd {
    AttemptEnd {
        id,
        attempt,
        outcome,
        ended_at: Timestamp(NOW.0 + 500),
        exit_code: match outcome {
            AttemptOutcome::Exited { code } => Some(code),
            _ => None,
        },
        signal: None,
        reason: None,
        peak_rss_kb: None,
        cpu_ms: None,
        pid: None,
        retry_at: Timestamp(NOW.0 + 1000),
        tail: "last line\n".into(),
        output_bytes: 10,
        result: None,
        node: None,
    }
}

both! {
    async fn ids_are_short_integers_and_idempotency_keys_dedupe(f: Fixture) {
        let a = submit(&*f.store, TaskSpec::shell("true")).await;
        assert_eq!(a, TaskId(1));
        let mut spec = TaskSpec::shell("echo once");
        spec.idempotency_key = Some("k1".into());
        let b = submit(&*f.store, spec.clone()).await;
        let again = f
            .store
            .submit(vec![NewTask::new(spec.validate().unwrap(), NOW)])
            .await
            .unwrap();
        assert_eq!(again[0].as_ref().unwrap(), &Submitted::Existing(b));
    }
}

both! {
    async fn unknown_dependency_names_the_field_and_keeps_the_rest_of_the_batch(f: Fixture) {
        let mut bad = TaskSpec::shell("true");
        bad.after = vec![TaskId(99)];
        let results = f
            .store
            .submit(vec![
                NewTask::new(bad.validate().unwrap(), NOW),
                NewTask::new(TaskSpec::shell("true").validate().unwrap(), NOW),
            ])
            .await
            .unwrap();
        let err = results[0].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("after: unknown task 99"), "{err}");
        let ok = results[1].as_ref().unwrap().id();
        assert_eq!(f.store.get(ok).await.unwrap().state, TaskState::Pending);
        let page = f.store.list(ListFilter::default()).await.unwrap();
        assert_eq!(page.tasks.len(), 1, "the invalid task left nothing behind");
    }
}

both! {
    async fn claim_honours_max_parallel_priority_and_pause(f: Fixture) {
        f.store
            .set_queue(
                "default",
                QueueUpdate {
                    max_parallel: Some(2),
                    ..QueueUpdate::default()
                },
            )
            .await
            .unwrap();
        let low = submit(&*f.store, TaskSpec::shell("low")).await;
        let mut hi = TaskSpec::shell("high");
        hi.priority = 10;
        let high = submit(&*f.store, hi).await;
        let mid = submit(&*f.store, TaskSpec::shell("mid")).await;
        let claimed = f.store.claim(claim_req(10)).await.unwrap().tasks;
        let ids: Vec<TaskId> = claimed.iter().map(|c| c.task.id).collect();
        assert_eq!(
            ids,
            vec![high, low],
            "priority first, then submission order"
        );
        assert!(
            f.store.claim(claim_req(10)).await.unwrap().tasks.is_empty(),
            "queue full"
        );
        f.store
            .finish_attempt(end(high, 1, AttemptOutcome::Exited { code: 0 }))
            .await
            .unwrap()
            .unwrap();
        f.store
            .set_queue(
                "default",
                QueueUpdate {
                    paused: Some(true),
                    ..QueueUpdate::default()
                },
            )
            .await
            .unwrap();
        assert!(
            f.store.claim(claim_req(10)).await.unwrap().tasks.is_empty(),
            "paused"
        );
        f.store
            .set_queue(
                "default",
                QueueUpdate {
                    paused: Some(false),
                    ..QueueUpdate::default()
                },
            )
            .await
            .unwrap();
        let claimed = f.store.claim(claim_req(10)).await.unwrap().tasks;
        assert_eq!(claimed[0].task.id, mid);
    }
}

both! {
    /// A claim answers with the task as it is stored, also for a retry of a task whose
    /// first attempt left an exit code, a reason and a stop flag behind.
    async fn a_claim_answers_with_the_stored_record(f: Fixture) {
        let mut spec = TaskSpec::shell("flaky");
        spec.retry = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let id = submit(&*f.store, spec).await;
        let first = f.store.claim(claim_req(1)).await.unwrap().tasks;
        assert_eq!(first[0].task, f.store.get(id).await.unwrap());
        f.store.request_stop(id, NOW, false).await.unwrap();
        let mut failed = end(id, 1, AttemptOutcome::Exited { code: 3 });
        failed.retry_at = NOW;
        failed.reason = Some("it broke".into());
        let fin = f.store.finish_attempt(failed).await.unwrap().unwrap();
        assert_eq!(fin.task, f.store.get(id).await.unwrap(), "a retry's record");
        let second = f.store.claim(claim_req(1)).await.unwrap().tasks;
        assert_eq!(second[0].attempt, 2);
        assert_eq!(second[0].task, f.store.get(id).await.unwrap());
        let mut done = end(id, 2, AttemptOutcome::Exited { code: 0 });
        done.result = Some("42".into());
        let fin = f.store.finish_attempt(done).await.unwrap().unwrap();
        assert_eq!(fin.task, f.store.get(id).await.unwrap(), "a final record");
        assert_eq!(fin.task.result.as_deref(), Some("42"));
    }
}

both! {
    async fn run_after_and_dependencies_gate_claims_and_failures_cascade(f: Fixture) {
        let mut later = TaskSpec::shell("later");
        later.run_after = Some(Timestamp(NOW.0 + 5_000));
        let later = submit(&*f.store, later).await;
        let first = submit(&*f.store, TaskSpec::shell("first")).await;
        let mut dep = TaskSpec::shell("dependent");
        dep.after = vec![first];
        let dependent = submit(&*f.store, dep).await;
        let mut dep2 = TaskSpec::shell("second level");
        dep2.after = vec![dependent];
        dep2.session = Some("s".into());
        let second = submit(&*f.store, dep2).await;
        assert_eq!(
            f.store.next_wakeup(NOW).await.unwrap(),
            Some(Timestamp(NOW.0 + 5_000))
        );
        let claimed = f.store.claim(claim_req(10)).await.unwrap().tasks;
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].task.id, first);
        let done = f
            .store
            .finish_attempt(end(first, 1, AttemptOutcome::Exited { code: 2 }))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.task.state, TaskState::Failed);
        let cascaded: Vec<TaskId> = done.cascaded.iter().map(|t| t.id).collect();
        assert_eq!(cascaded, vec![dependent, second]);
        let d = f.store.get(dependent).await.unwrap();
        assert_eq!(d.state, TaskState::Failed);
        assert!(d.reason.unwrap().contains("dependency 2 ended failed"));
        let notes = f.store.drain_notifications("s", 10).await.unwrap();
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].text().contains("dependency 3 ended failed"),
            "{}",
            notes[0].text()
        );
        assert_eq!(f.store.get(later).await.unwrap().state, TaskState::Pending);
    }
}

both! {
    async fn retries_then_quarantine_and_manual_retry_gives_a_fresh_budget(f: Fixture) {
        let mut spec = TaskSpec::shell("flaky");
        spec.retry = RetryPolicy {
            max_attempts: 2,
            backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        };
        let id = submit(&*f.store, spec).await;
        f.store.claim(claim_req(1)).await.unwrap();
        let r = f
            .store
            .finish_attempt(end(id, 1, AttemptOutcome::Exited { code: 1 }))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.task.state, TaskState::Pending);
        assert_eq!(r.task.run_after, Some(Timestamp(NOW.0 + 1000)));
        let mut req = claim_req(1);
        req.now = Timestamp(NOW.0 + 1000);
        assert_eq!(
            f.store.claim(req.clone()).await.unwrap().tasks[0].attempt,
            2
        );
        let r = f
            .store
            .finish_attempt(end(id, 2, AttemptOutcome::TimedOut))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.task.state, TaskState::Quarantined);
        assert!(
            r.task
                .reason
                .unwrap()
                .contains("quarantined after 2 attempts")
        );
        // A stale end for an old attempt changes nothing.
        assert!(
            f.store
                .finish_attempt(end(id, 1, AttemptOutcome::Exited { code: 0 }))
                .await
                .unwrap()
                .is_none()
        );
        let t = f.store.retry(id, NOW).await.unwrap();
        assert_eq!(t.state, TaskState::Pending);
        assert_eq!(
            f.store.claim(req.clone()).await.unwrap().tasks[0].attempt,
            3
        );
        let r = f
            .store
            .finish_attempt(end(id, 3, AttemptOutcome::Exited { code: 1 }))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            r.task.state,
            TaskState::Pending,
            "fresh budget of 2 attempts"
        );
        assert_eq!(f.store.attempts(id).await.unwrap().len(), 3);
    }
}

both! {
    async fn stopping_a_pending_task_cancels_it_and_a_running_one_is_flagged(f: Fixture) {
        let a = submit(&*f.store, TaskSpec::shell("a")).await;
        f.store.claim(claim_req(1)).await.unwrap();
        let b = submit(&*f.store, TaskSpec::shell("b")).await;
        match f.store.request_stop(b, NOW, false).await.unwrap() {
            StopOutcome::Cancelled(fin) => assert_eq!(fin.task.state, TaskState::Cancelled),
            other => panic!("expected cancelled, got {other:?}"),
        }
        match f.store.request_stop(a, NOW, false).await.unwrap() {
            StopOutcome::Stopping(t) => assert!(t.stop_requested),
            other => panic!("expected stopping, got {other:?}"),
        }
        let err = f.store.request_stop(b, NOW, false).await.unwrap_err().to_string();
        assert_eq!(err, "task 2: a cancelled task cannot be cancelled");
        let err = f.store.get(TaskId(42)).await.unwrap_err().to_string();
        assert_eq!(err, "unknown task 42 (see 'meanwhile ls')");
    }
}

both! {
    async fn notifications_drain_once_in_order_across_reopen(f: Fixture) {
        let mut f = f;
        {
            let store = &*f.store;
            for i in 0..3 {
                let mut s = TaskSpec::shell(format!("t{i}"));
                s.session = Some("agent-1".into());
                submit(store, s).await;
            }
            let claimed = store.claim(claim_req(10)).await.unwrap().tasks;
            for c in &claimed {
                store
                    .finish_attempt(end(c.task.id, 1, AttemptOutcome::Exited { code: 0 }))
                    .await
                    .unwrap();
            }
            let first = store.drain_notifications("agent-1", 2).await.unwrap();
            let ids: Vec<i64> = first.iter().map(|n| n.task_id.0).collect();
            assert_eq!(ids, vec![1, 2]);
            assert_eq!(
                store.peek_notifications("agent-1", 10).await.unwrap().len(),
                1
            );
        }
        f.reopen().await;
        let store = &*f.store;
        let rest = store.drain_notifications("agent-1", 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].task_id, TaskId(3));
        assert!(
            store
                .drain_notifications("agent-1", 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .drain_notifications("other", 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

both! {
    async fn list_filters_and_pages_newest_first(f: Fixture) {
        for i in 0..25 {
            let mut s = TaskSpec::shell(format!("job {i}"));
            if i % 5 == 0 {
                s.labels = vec!["fifth".into()];
            }
            submit(&*f.store, s).await;
        }
        let mut filter = ListFilter {
            limit: Some(10),
            ..ListFilter::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = f.store.list(filter.clone()).await.unwrap();
            seen.extend(page.tasks.iter().map(|t| t.id.0));
            match page.next {
                Some(n) => filter.before = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());
        let labelled = f
            .store
            .list(ListFilter {
                label: Some("fifth".into()),
                ..ListFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(labelled.tasks.len(), 5);
        // Text matches a part of the name, ignoring case; % and _ are themselves.
        submit(&*f.store, TaskSpec::shell("echo 100%_done")).await;
        async fn names(store: &dyn Store, text: &str) -> Vec<String> {
            let page = store
                .list(ListFilter {
                    text: Some(text.to_string()),
                    ..ListFilter::default()
                })
                .await
                .unwrap();
            page.tasks.into_iter().map(|t| t.name).collect()
        }
        assert_eq!(names(&*f.store, "JOB 2").await, ["job 24", "job 23", "job 22", "job 21", "job 20", "job 2"]);
        assert_eq!(names(&*f.store, "%_d").await, ["echo 100%_done"]);
        assert_eq!(names(&*f.store, "0_d").await, Vec::<String>::new());
        assert_eq!(names(&*f.store, "b\\").await, Vec::<String>::new());
        // Unicode case is folded too, on both sides.
        let mut spec = TaskSpec::shell("true");
        spec.name = Some("déployer l'Été".into());
        submit(&*f.store, spec).await;
        assert_eq!(names(&*f.store, "DÉPLOYER").await, ["déployer l'Été"]);
        assert_eq!(names(&*f.store, "l'été").await, ["déployer l'Été"]);
        let counts = f.store.counts().await.unwrap();
        assert_eq!(
            counts,
            vec![("default".to_string(), TaskState::Pending, 27)]
        );
    }
}

both! {
    async fn events_are_durable_and_published_after_commit(f: Fixture) {
        let mut rx = f.store.subscribe();
        let id = submit(&*f.store, TaskSpec::shell("x")).await;
        let e = rx.recv().await.unwrap();
        assert_eq!(e.task_id, Some(id));
        let stored = f.store.events_after(0, 100).await.unwrap();
        assert_eq!(stored, vec![e]);
    }
}

both! {
    async fn removing_a_running_task_is_refused(f: Fixture) {
        let id = submit(&*f.store, TaskSpec::shell("x")).await;
        f.store.claim(claim_req(1)).await.unwrap();
        let err = f.store.remove(vec![id]).await.unwrap_err().to_string();
        assert!(err.contains("stop it before removing it"), "{err}");
        f.store
            .finish_attempt(end(id, 1, AttemptOutcome::Exited { code: 0 }))
            .await
            .unwrap();
        assert_eq!(f.store.remove(vec![id]).await.unwrap(), vec![id]);
        assert!(f.store.get(id).await.is_err());
        assert!(f.store.counts().await.unwrap().is_empty());
    }
}

both! {
    async fn a_claim_that_never_started_is_released_without_counting(f: Fixture) {
        let id = submit(&*f.store, TaskSpec::shell("x")).await;
        assert_eq!(
            f.store.claim(claim_req(1)).await.unwrap().tasks[0].attempt,
            1
        );
        assert!(
            f.store.release(id, 2, NOW).await.unwrap().is_none(),
            "not that attempt"
        );
        let t = f.store.release(id, 1, NOW).await.unwrap().unwrap();
        assert_eq!((t.state, t.attempts), (TaskState::Pending, 0));
        assert!(f.store.attempts(id).await.unwrap().is_empty());
        assert_eq!(
            f.store.claim(claim_req(1)).await.unwrap().tasks[0].attempt,
            1
        );
        assert_eq!(
            f.store.counts().await.unwrap(),
            vec![("default".to_string(), TaskState::Running, 1)]
        );
    }
}

async fn prune_all(store: &dyn Store, mut req: PruneRequest) -> Pruned {
    let mut total = Pruned::default();
    loop {
        let p = store.prune(req).await.unwrap();
        total.events += p.events;
        total.notifications += p.notifications;
        total.sessions += p.sessions;
        match p.next {
            Some(n) => req.from_seq = n,
            None => return total,
        }
    }
}

async fn run_to_end(store: &dyn Store, session: &str) -> TaskId {
    let mut s = TaskSpec::shell("echo hi");
    s.session = Some(session.into());
    let id = submit(store, s).await;
    let claimed = store.claim(claim_req(1)).await.unwrap().tasks;
    assert_eq!(claimed[0].task.id, id);
    store
        .finish_attempt(end(id, 1, AttemptOutcome::Exited { code: 0 }))
        .await
        .unwrap();
    id
}

both! {
    async fn retention_prunes_what_removed_tasks_left_and_old_events(f: Fixture) {
        let s = &*f.store;
        let a = run_to_end(s, "s1").await;
        let b = run_to_end(s, "s1").await;
        let c = run_to_end(s, "s2").await;
        assert_eq!(s.drain_notifications("s1", 10).await.unwrap().len(), 2);
        assert_eq!(s.remove(vec![a, b]).await.unwrap(), vec![a, b]);

        // Nothing by age or count: only what the removed tasks left goes.
        let p = prune_all(s, PruneRequest::default()).await;
        assert_eq!(p.notifications, 2, "{p:?}");
        assert_eq!(
            p.sessions, 1,
            "the drained session s1 has nothing left: {p:?}"
        );
        let events = s.events_after(0, 1000).await.unwrap();
        assert!(
            events.iter().all(|e| e.task_id.is_none_or(|t| t == c)),
            "events of removed tasks remain: {events:?}"
        );
        assert!(events.iter().any(|e| e.task_id == Some(c)));
        // The undrained session keeps its notice; the pruned one hears new ends.
        let pending = s.peek_notifications("s2", 10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].task_id, c);
        let d = run_to_end(s, "s1").await;
        let heard = s.drain_notifications("s1", 10).await.unwrap();
        assert_eq!(heard.iter().map(|n| n.task_id).collect::<Vec<_>>(), vec![d]);

        // By count: only the newest event stays.
        let newest = s.events_after(0, 1000).await.unwrap().last().unwrap().seq;
        prune_all(
            s,
            PruneRequest {
                events_keep_last: Some(1),
                ..PruneRequest::default()
            },
        )
        .await;
        let left = s.events_after(0, 1000).await.unwrap();
        assert_eq!(left.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![newest]);

        // By age: none is newer than the far future.
        let p = prune_all(
            s,
            PruneRequest {
                events_before: Some(Timestamp(i64::MAX)),
                ..PruneRequest::default()
            },
        )
        .await;
        assert_eq!(p.events, 1);
        assert!(s.events_after(0, 1000).await.unwrap().is_empty());
        // New events keep counting up from where the log was.
        run_to_end(s, "s3").await;
        assert!(s.events_after(0, 1000).await.unwrap()[0].seq > newest);
    }
}

fn keyed(command: &str, key: Option<&str>) -> TaskSpec {
    let mut spec = TaskSpec::shell(command);
    spec.concurrency_key = key.map(str::to_string);
    spec
}

fn claim_at(now: Timestamp, limit: u32) -> ClaimRequest {
    ClaimRequest {
        now,
        lease_until: Timestamp(now.0 + 60_000),
        ..claim_req(limit)
    }
}

async fn claimed_ids(store: &dyn Store, req: ClaimRequest) -> (Vec<TaskId>, Option<Timestamp>) {
    let c = store.claim(req).await.unwrap();
    (c.tasks.iter().map(|c| c.task.id).collect(), c.next_wakeup)
}

fn limits(per_key: Option<Option<u32>>, rate: Option<Option<&str>>) -> QueueUpdate {
    QueueUpdate {
        per_key,
        rate: rate.map(|r| r.map(|r| r.parse().unwrap())),
        ..QueueUpdate::default()
    }
}

both! {
    async fn per_key_runs_one_task_per_key_and_an_end_frees_the_next(f: Fixture) {
        let q = f
            .store
            .set_queue("default", limits(Some(Some(1)), None))
            .await
            .unwrap();
        assert_eq!(q.per_key, Some(1));
        let a1 = submit(&*f.store, keyed("a1", Some("customer-a"))).await;
        let a2 = submit(&*f.store, keyed("a2", Some("customer-a"))).await;
        let b1 = submit(&*f.store, keyed("b1", Some("customer-b"))).await;
        let b2 = submit(&*f.store, keyed("b2", Some("customer-b"))).await;
        let (ids, _) = claimed_ids(&*f.store, claim_req(10)).await;
        assert_eq!(ids, vec![a1, b1], "one per key, passing over a2 for b1");
        let record = f.store.get(a1).await.unwrap();
        assert_eq!(record.concurrency_key.as_deref(), Some("customer-a"));
        assert_eq!(record.spec.concurrency_key.as_deref(), Some("customer-a"));
        assert!(
            claimed_ids(&*f.store, claim_req(10)).await.0.is_empty(),
            "both keys are at their limit"
        );
        // The end and the claim of the slot it frees, in one write, as the dispatcher does.
        let settled = f
            .store
            .settle_and_claim(
                vec![end(a1, 1, AttemptOutcome::Exited { code: 0 })],
                Some(claim_req(10)),
            )
            .await
            .unwrap();
        let ids: Vec<TaskId> = settled
            .claim
            .unwrap()
            .unwrap()
            .tasks
            .iter()
            .map(|c| c.task.id)
            .collect();
        assert_eq!(
            ids,
            vec![a2],
            "a1's end lets a2 start, b2 still waits for b1"
        );
        f.store
            .finish_attempt(end(b1, 1, AttemptOutcome::Exited { code: 1 }))
            .await
            .unwrap();
        assert_eq!(claimed_ids(&*f.store, claim_req(10)).await.0, vec![b2]);
    }
}

both! {
    async fn tasks_without_a_key_are_bound_only_by_max_parallel(f: Fixture) {
        let change = QueueUpdate {
            max_parallel: Some(3),
            per_key: Some(Some(1)),
            ..QueueUpdate::default()
        };
        f.store.set_queue("default", change).await.unwrap();
        let k1 = submit(&*f.store, keyed("k1", Some("k"))).await;
        let _k2 = submit(&*f.store, keyed("k2", Some("k"))).await;
        let n1 = submit(&*f.store, keyed("n1", None)).await;
        let n2 = submit(&*f.store, keyed("n2", None)).await;
        let _n3 = submit(&*f.store, keyed("n3", None)).await;
        let (ids, _) = claimed_ids(&*f.store, claim_req(10)).await;
        assert_eq!(
            ids,
            vec![k1, n1, n2],
            "max_parallel 3 is the only bound on n*"
        );
        // The limit is per queue: the same key elsewhere is counted apart.
        let mut other = keyed("elsewhere", Some("k"));
        other.queue = Some("other".into());
        let elsewhere = submit(&*f.store, other).await;
        assert_eq!(
            claimed_ids(&*f.store, claim_req(10)).await.0,
            vec![elsewhere]
        );
    }
}

both! {
    async fn a_rate_limit_allows_n_starts_in_any_window_and_says_when_the_next_may_start(f: Fixture) {
        let change = QueueUpdate {
            max_parallel: Some(100),
            ..limits(None, Some(Some("2/10s")))
        };
        let q = f.store.set_queue("default", change).await.unwrap();
        assert_eq!(q.rate.map(|r| r.to_string()).as_deref(), Some("2/10s"));
        let mut ids = Vec::new();
        for i in 0..6 {
            ids.push(submit(&*f.store, TaskSpec::shell(format!("t{i}"))).await);
        }
        let t0 = NOW;
        let at = |ms: i64| Timestamp(t0.0 + ms);
        // One start at 0 s and one at 4 s fill the window.
        assert_eq!(
            claimed_ids(&*f.store, claim_at(at(0), 1)).await.0,
            vec![ids[0]]
        );
        let (got, wake) = claimed_ids(&*f.store, claim_at(at(4_000), 10)).await;
        assert_eq!(got, vec![ids[1]]);
        assert_eq!(
            wake,
            Some(at(10_000)),
            "the start at 0 s leaves the window at 10 s"
        );
        let (got, wake) = claimed_ids(&*f.store, claim_at(at(9_999), 10)).await;
        assert!(
            got.is_empty(),
            "the third start waits for the window: {got:?}"
        );
        assert_eq!(wake, Some(at(10_000)));
        let (got, wake) = claimed_ids(&*f.store, claim_at(at(10_000), 10)).await;
        assert_eq!(
            got,
            vec![ids[2]],
            "one start left the window, one may come in"
        );
        assert_eq!(
            wake,
            Some(at(14_000)),
            "the start at 4 s is the next to leave"
        );
        let (got, wake) = claimed_ids(&*f.store, claim_at(at(20_000), 10)).await;
        assert_eq!(
            got,
            vec![ids[3], ids[4]],
            "a whole window later, two at once"
        );
        assert_eq!(wake, Some(at(30_000)));
        let (got, wake) = claimed_ids(&*f.store, claim_at(at(30_000), 10)).await;
        assert_eq!(got, vec![ids[5]]);
        assert_eq!(wake, None, "nothing is held back, so nothing to wake for");
    }
}

both! {
    async fn every_attempt_counts_against_the_rate(f: Fixture) {
        f.store
            .set_queue("default", limits(None, Some(Some("1/m"))))
            .await
            .unwrap();
        let mut spec = TaskSpec::shell("flaky");
        spec.retry = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let id = submit(&*f.store, spec).await;
        assert_eq!(claimed_ids(&*f.store, claim_req(1)).await.0, vec![id]);
        let mut failed = end(id, 1, AttemptOutcome::Exited { code: 1 });
        failed.retry_at = Timestamp(NOW.0 + 1_000);
        f.store.finish_attempt(failed).await.unwrap().unwrap();
        let (got, wake) = claimed_ids(&*f.store, claim_at(Timestamp(NOW.0 + 1_000), 1)).await;
        assert!(got.is_empty(), "the retry is a start too");
        assert_eq!(wake, Some(Timestamp(NOW.0 + 60_000)));
        let (got, _) = claimed_ids(&*f.store, claim_at(Timestamp(NOW.0 + 60_000), 1)).await;
        assert_eq!(got, vec![id]);
        assert_eq!(f.store.get(id).await.unwrap().attempts, 2);
    }
}

both! {
    async fn per_key_and_rate_limits_together(f: Fixture) {
        f.store
            .set_queue("default", limits(Some(Some(1)), Some(Some("2/s"))))
            .await
            .unwrap();
        let a1 = submit(&*f.store, keyed("a1", Some("a"))).await;
        let _a2 = submit(&*f.store, keyed("a2", Some("a"))).await;
        let b1 = submit(&*f.store, keyed("b1", Some("b"))).await;
        let c1 = submit(&*f.store, keyed("c1", Some("c"))).await;
        let (got, wake) = claimed_ids(&*f.store, claim_req(10)).await;
        assert_eq!(got, vec![a1, b1], "two starts a second, one per key");
        assert_eq!(
            wake,
            Some(Timestamp(NOW.0 + 1_000)),
            "c1 is held back by the rate"
        );
        let (got, wake) = claimed_ids(&*f.store, claim_at(Timestamp(NOW.0 + 1_000), 10)).await;
        assert_eq!(got, vec![c1], "a2 still waits for a1");
        assert_eq!(wake, None);
    }
}

both! {
    async fn limits_are_cleared_with_none_and_left_alone_when_not_named(f: Fixture) {
        f.store
            .set_queue("llm", limits(Some(Some(2)), Some(Some("60/m"))))
            .await
            .unwrap();
        let change = QueueUpdate {
            max_parallel: Some(7),
            ..QueueUpdate::default()
        };
        let q = f.store.set_queue("llm", change).await.unwrap();
        assert_eq!(q.max_parallel, 7);
        assert_eq!(q.per_key, Some(2), "not named, so kept");
        assert_eq!(q.rate.map(|r| r.to_string()).as_deref(), Some("60/m"));
        let q = f
            .store
            .set_queue("llm", limits(Some(None), None))
            .await
            .unwrap();
        assert_eq!((q.per_key, q.rate.is_some()), (None, true));
        let q = f
            .store
            .set_queue("llm", limits(None, Some(None)))
            .await
            .unwrap();
        assert_eq!((q.per_key, q.rate), (None, None));
        let listed = f.store.queues().await.unwrap();
        let llm = listed.iter().find(|q| q.name == "llm").unwrap();
        assert_eq!((llm.max_parallel, llm.per_key, llm.rate), (7, None, None));
        // With both limits gone, same-key tasks run side by side and nothing is counted.
        let mut ids = Vec::new();
        for i in 0..3 {
            let mut spec = keyed(&format!("t{i}"), Some("same"));
            spec.queue = Some("llm".into());
            ids.push(submit(&*f.store, spec).await);
        }
        let (got, wake) = claimed_ids(&*f.store, claim_req(10)).await;
        assert_eq!((got, wake), (ids, None));
    }
}

both! {
    async fn bad_limits_name_the_field_and_change_nothing(f: Fixture) {
        f.store
            .set_queue("q", limits(Some(Some(3)), None))
            .await
            .unwrap();
        let e = f
            .store
            .set_queue("q", limits(Some(Some(0)), Some(Some("5/s"))))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                meanwhile_store::StoreError::Invalid {
                    field: "per_key",
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().starts_with("per_key: must be at least 1"),
            "{e}"
        );
        let q = f.store.queues().await.unwrap();
        let q = q.iter().find(|q| q.name == "q").unwrap();
        assert_eq!((q.per_key, q.rate), (Some(3), None), "nothing changed");
        let mut spec = keyed("x", Some("not a key"));
        let e = spec.clone().validate().unwrap_err();
        assert_eq!(e.field, "concurrency_key");
        spec.concurrency_key = Some("k".repeat(201));
        assert_eq!(spec.validate().unwrap_err().field, "concurrency_key");
        let e = "60 a minute"
            .parse::<meanwhile_core::RateLimit>()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("rate must be N/s, N/m, N/h, N/d or N/<duration>"),
            "{e}"
        );
    }
}

both! {
    /// A queue without a rate limit records no starts (its claims stay as cheap as
    /// before), so a rate set later counts from then on.
    async fn a_rate_counts_the_starts_after_it_is_set(f: Fixture) {
        for i in 0..3 {
            submit(&*f.store, TaskSpec::shell(format!("t{i}"))).await;
        }
        assert_eq!(claimed_ids(&*f.store, claim_req(1)).await.0.len(), 1);
        f.store
            .set_queue("default", limits(None, Some(Some("1/h"))))
            .await
            .unwrap();
        let (got, wake) = claimed_ids(&*f.store, claim_req(10)).await;
        assert_eq!(got.len(), 1, "the earlier start is not counted");
        assert_eq!(wake, Some(Timestamp(NOW.0 + 3_600_000)));
    }
}

both! {
    /// Heartbeats keep one row per node, with the tasks it runs; a clean stop is
    /// recorded, a new beat clears it, and removing a node twice names it.
    async fn nodes_beat_stop_and_are_removed(f: Fixture) {
        let beat = |name: &str, now: i64| meanwhile_core::NodeBeat {
            name: name.into(),
            address: Some("127.0.0.1:7070".into()),
            version: "0.1.0".into(),
            started_at: NOW,
            now: Timestamp(now),
        };
        f.store.beat(beat("n1", NOW.0)).await.unwrap();
        f.store.beat(beat("n2", NOW.0)).await.unwrap();
        f.store.beat(beat("n1", NOW.0 + 5)).await.unwrap();
        submit(&*f.store, TaskSpec::shell("x")).await;
        f.store.claim(claim_req(1)).await.unwrap();
        let nodes = f.store.nodes().await.unwrap();
        let seen: Vec<(&str, i64, u64)> = nodes
            .iter()
            .map(|n| (n.beat.name.as_str(), n.beat.now.0, n.running))
            .collect();
        assert_eq!(seen, [("n1", NOW.0 + 5, 1), ("n2", NOW.0, 0)]);
        f.store.node_stopped("n2", Timestamp(NOW.0 + 9)).await.unwrap();
        let n2 = f.store.nodes().await.unwrap().remove(1);
        assert_eq!(n2.stopped_at, Some(Timestamp(NOW.0 + 9)));
        f.store.beat(beat("n2", NOW.0 + 10)).await.unwrap();
        assert_eq!(f.store.nodes().await.unwrap()[1].stopped_at, None);
        f.store.remove_node("n2").await.unwrap();
        let e = f.store.remove_node("n2").await.unwrap_err();
        assert!(matches!(&e, meanwhile_store::StoreError::UnknownNode(n) if n == "n2"), "{e}");
        assert_eq!(f.store.nodes().await.unwrap().len(), 1);
    }
}

both! {
    async fn a_task_bound_to_a_node_is_claimed_by_that_node_only(f: Fixture) {
        let mut bound = NewTask::new(TaskSpec::shell("mine").validate().unwrap(), NOW);
        bound.owner = Some("n2".into());
        let free = NewTask::new(TaskSpec::shell("anyone's").validate().unwrap(), NOW);
        let ids: Vec<TaskId> = f
            .store
            .submit(vec![bound, free])
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.unwrap().id())
            .collect();
        let (got, _) = claimed_ids(&*f.store, claim_req(10)).await;
        assert_eq!(got, vec![ids[1]], "n1 takes only the unbound task");
        let other = ClaimRequest {
            node: "n2".into(),
            ..claim_req(10)
        };
        let (got, _) = claimed_ids(&*f.store, other).await;
        assert_eq!(got, vec![ids[0]]);
    }
}

both! {
    async fn what_a_running_task_is_seen_doing_is_recorded_once_per_change(f: Fixture) {
        use meanwhile_core::{EventKind, Listener, LiveState, NoticeKind};
        use meanwhile_store::LiveUpdate;
        let mut spec = TaskSpec::shell("ask");
        spec.session = Some("s".into());
        let id = submit(&*f.store, spec).await;
        f.store.claim(claim_req(1)).await.unwrap();
        let update = |live: LiveState, attempt: u32| LiveUpdate {
            id,
            attempt,
            live,
            tail: "about to ask\nProceed? [y/N]".into(),
            output_bytes: 40,
            now: Timestamp(NOW.0 + 100),
        };
        let waiting = LiveState {
            waiting_since: Some(Timestamp(NOW.0 + 100)),
            prompt: Some("Proceed? [y/N]".into()),
            listening: Vec::new(),
        };
        let before = f.store.events_after(0, 1000).await.unwrap().len();
        f.store.set_live(update(waiting.clone(), 1)).await.unwrap();
        // The same again changes nothing; another attempt's is stale.
        f.store.set_live(update(waiting.clone(), 1)).await.unwrap();
        f.store.set_live(update(LiveState::default(), 2)).await.unwrap();
        let t = f.store.get(id).await.unwrap();
        assert!(t.waiting_for_input);
        assert_eq!(t.prompt.as_deref(), Some("Proceed? [y/N]"));
        let listening = LiveState {
            listening: vec![Listener::tcp([127, 0, 0, 1].into(), 5173)],
            ..waiting.clone()
        };
        f.store.set_live(update(listening, 1)).await.unwrap();
        let events = f.store.events_after(0, 1000).await.unwrap();
        let kinds: Vec<EventKind> = events[before..].iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::WaitingForInput, EventKind::Listening]);
        let notes = f.store.drain_notifications("s", 10).await.unwrap();
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].kind, NoticeKind::WaitingForInput);
        assert_eq!(notes[0].tail, "about to ask\nProceed? [y/N]");
        assert_eq!(notes[1].kind, NoticeKind::Listening);
        assert_eq!(
            notes[1].headline(),
            "task 1 (ask) is listening on http://127.0.0.1:5173"
        );
        // The attempt's end clears it.
        f.store
            .finish_attempt(end(id, 1, AttemptOutcome::Exited { code: 0 }))
            .await
            .unwrap();
        let t = f.store.get(id).await.unwrap();
        assert!(!t.waiting_for_input && t.listening.is_empty() && t.prompt.is_none());
    }
}

both! {
    async fn a_spec_keeps_its_secrets_and_shows_none(f: Fixture) {
        let mut spec = TaskSpec::shell("deploy");
        spec.secrets
            .insert("TOKEN".into(), meanwhile_core::Secret::new("hunter2-s3cr3t"));
        let id = submit(&*f.store, spec).await;
        let t = f.store.get(id).await.unwrap();
        // The store gives the value back, to run the task with it...
        assert_eq!(t.spec.secrets["TOKEN"].expose(), "hunter2-s3cr3t");
        // ...and the record serializes without it.
        let shown = serde_json::to_string(&t).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"TOKEN\":\"***\""), "{shown}");
        let listed = f.store.list(ListFilter::default()).await.unwrap();
        assert_eq!(listed.tasks[0].spec.secrets["TOKEN"].expose(), "hunter2-s3cr3t");
    }
}

both! {
    async fn a_queue_is_removed_only_when_nothing_waits_or_runs_in_it(f: Fixture) {
        let s = &*f.store;
        let mut spec = TaskSpec::shell("true");
        spec.queue = Some("gpu".into());
        let id = submit(s, spec).await;
        let busy = s.remove_queue("gpu").await.unwrap_err();
        assert!(busy.to_string().contains("has 1 pending and 0 running"), "{busy}");
        let e = s.remove_queue("default").await.unwrap_err();
        assert!(e.to_string().contains("cannot be removed"), "{e}");
        s.request_stop(id, NOW, false).await.unwrap();
        s.remove_queue("gpu").await.unwrap();
        let names: Vec<String> = s.queues().await.unwrap().into_iter().map(|q| q.name).collect();
        assert_eq!(names, ["default"]);
        let e = s.remove_queue("gpu").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown queue \"gpu\"; the queues are default (create one with 'meanwhile queue set gpu')"
        );
        // A retried task of the removed queue makes it again, and can run there.
        s.retry(id, NOW).await.unwrap();
        let q = s.queues().await.unwrap();
        assert!(q.iter().any(|q| q.name == "gpu" && q.pending == 1), "{q:?}");
        assert_eq!(s.claim(claim_req(10)).await.unwrap().tasks.len(), 1);
    }
}

both! {
    async fn an_end_records_a_pid_not_recorded_while_the_attempt_ran_and_keeps_one_that_was(f: Fixture) {
        let short = submit(&*f.store, TaskSpec::shell("short")).await;
        let long = submit(&*f.store, TaskSpec::shell("long")).await;
        let claim = f.store.claim(claim_req(2)).await.unwrap();
        assert_eq!(claim.tasks.len(), 2);
        // The long one's pid was written while it ran; the short one's was not.
        f.store.set_pid(long, 1, 4242).await.unwrap();
        for (id, pid) in [(short, Some(777)), (long, None)] {
            let mut e = end(id, 1, AttemptOutcome::Exited { code: 0 });
            e.pid = pid;
            f.store.finish_attempt(e).await.unwrap();
        }
        assert_eq!(f.store.attempts(short).await.unwrap()[0].pid, Some(777));
        assert_eq!(f.store.attempts(long).await.unwrap()[0].pid, Some(4242));
    }
}

both! {
    async fn a_submit_claims_in_its_own_write(f: Fixture) {
        let change = QueueUpdate {
            max_parallel: Some(1),
            ..QueueUpdate::default()
        };
        f.store.set_queue("default", change).await.unwrap();
        let new = |cmd: &str| NewTask::new(TaskSpec::shell(cmd).validate().unwrap(), NOW);
        let done = f
            .store
            .submit_and_claim(vec![new("a"), new("b")], Some(claim_req(2)))
            .await
            .unwrap();
        let ids: Vec<TaskId> = done
            .submitted
            .into_iter()
            .map(|r| r.unwrap().id())
            .collect();
        let claim = done.claim.unwrap().unwrap();
        let claimed: Vec<TaskId> = claim.tasks.iter().map(|c| c.task.id).collect();
        assert_eq!(claimed, vec![ids[0]], "the queue's one slot, oldest first");
        assert_eq!(claim.tasks[0].attempt, 1);
        assert_eq!(f.store.get(ids[0]).await.unwrap().state, TaskState::Running);
        assert_eq!(f.store.get(ids[1]).await.unwrap().state, TaskState::Pending);

        // Without a claim it is a plain submit.
        let done = f
            .store
            .submit_and_claim(vec![new("c")], None)
            .await
            .unwrap();
        assert!(done.claim.is_none());
        let c = done.submitted[0].as_ref().unwrap().id();
        assert_eq!(f.store.get(c).await.unwrap().state, TaskState::Pending);

        // A claim of kinds the task is not leaves it pending, and the others too.
        let mut other = claim_req(5);
        other.kinds = vec![TaskKind::Agent];
        let done = f
            .store
            .submit_and_claim(vec![new("d")], Some(other))
            .await
            .unwrap();
        assert!(done.claim.unwrap().unwrap().tasks.is_empty());
        let d = done.submitted[0].as_ref().unwrap().id();
        assert_eq!(f.store.get(d).await.unwrap().state, TaskState::Pending);
        let counts: Vec<TaskId> = f
            .store
            .list(ListFilter::default())
            .await
            .unwrap()
            .tasks
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(counts.len(), 4);
    }
}

fn step(
    id: TaskId,
    attempt: u32,
    kind: &str,
    usage: Option<(u64, f64)>,
) -> meanwhile_store::NewStep {
    meanwhile_store::NewStep {
        id,
        attempt,
        kind: kind.into(),
        data: format!(r#"{{"kind":"{kind}"}}"#),
        usage,
        now: NOW,
        node: None,
    }
}

both! {
    async fn steps_are_recorded_by_the_running_attempt_only_and_charged_once(f: Fixture) {
        let mut spec = TaskSpec::shell("agent-ish");
        spec.retry = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let id = submit(&*f.store, spec).await;
        // Not running yet: refused, naming the field.
        let e = f.store.record_step(step(id, 1, "user", None)).await.unwrap_err();
        assert!(e.to_string().starts_with("attempt: task 1 is pending"), "{e}");
        let c = f.store.claim(claim_req(1)).await.unwrap().tasks;
        assert_eq!(c[0].attempt, 1);
        assert_eq!(f.store.record_step(step(id, 1, "user", None)).await.unwrap(), 1);
        assert_eq!(
            f.store.record_step(step(id, 1, "model", Some((15, 0.5)))).await.unwrap(),
            2
        );
        // The usage came with its step, once.
        let t = f.store.get(id).await.unwrap();
        assert_eq!((t.model_calls, t.tokens, t.cost_usd), (1, 15, 0.5));
        // Another attempt's number, a bad kind, too much data: refused, nothing kept.
        let e = f.store.record_step(step(id, 2, "user", None)).await.unwrap_err();
        assert!(e.to_string().contains("attempt 2 records no more steps"), "{e}");
        let e = f.store.record_step(step(id, 1, "Tool Start", None)).await.unwrap_err();
        assert!(e.to_string().starts_with("kind: "), "{e}");
        let mut big = step(id, 1, "model", Some((1, 0.0)));
        big.data = format!("\"{}\"", "x".repeat(meanwhile_core::MAX_STEP_BYTES));
        let e = f.store.record_step(big).await.unwrap_err();
        assert!(e.to_string().starts_with("data: a step of"), "{e}");
        assert_eq!(f.store.get(id).await.unwrap().model_calls, 1);
        let steps = f.store.steps(id, Some(1)).await.unwrap();
        let kinds: Vec<(u32, u32, &str)> =
            steps.iter().map(|s| (s.attempt, s.n, s.kind.as_str())).collect();
        assert_eq!(kinds, [(1, 1, "user"), (1, 2, "model")]);
        assert_eq!(steps[1].data["kind"], "model");

        // A retry's attempt starts a record of its own; the first one's stays.
        f.store
            .finish_attempt(end(id, 1, AttemptOutcome::Exited { code: 1 }))
            .await
            .unwrap();
        let e = f.store.record_step(step(id, 1, "user", None)).await.unwrap_err();
        assert!(e.to_string().contains("attempt 1 records no more steps"), "{e}");
        let mut later = claim_req(1);
        later.now = Timestamp(NOW.0 + 2000);
        later.lease_until = Timestamp(later.now.0 + 60_000);
        assert_eq!(f.store.claim(later).await.unwrap().tasks[0].attempt, 2);
        assert!(f.store.steps(id, Some(2)).await.unwrap().is_empty());
        assert_eq!(f.store.record_step(step(id, 2, "user", None)).await.unwrap(), 1);
        assert_eq!(f.store.steps(id, None).await.unwrap().len(), 3);

        // Removing the task removes its steps.
        f.store
            .finish_attempt(end(id, 2, AttemptOutcome::Exited { code: 0 }))
            .await
            .unwrap();
        f.store.remove(vec![id]).await.unwrap();
        assert!(f.store.steps(id, None).await.unwrap().is_empty());
    }
}

fn open_session(
    name: &str,
    fresh: bool,
    holder: &str,
    at: i64,
) -> meanwhile_store::OpenAgentSession {
    meanwhile_store::OpenAgentSession {
        name: name.into(),
        fresh,
        workspace: "/work/shop".into(),
        holder: holder.into(),
        now: Timestamp(at),
    }
}

fn session_step(
    name: &str,
    holder: &str,
    after: u32,
    kind: &str,
    text: &str,
) -> meanwhile_store::NewAgentSessionStep {
    meanwhile_store::NewAgentSessionStep {
        name: name.into(),
        holder: holder.into(),
        after,
        kind: kind.into(),
        data: serde_json::json!({ "text": text }).to_string(),
        now: Timestamp(NOW.0 + 10),
    }
}

both! {
    /// A session holds at most MAX_SESSION_STEPS steps: the last one is taken, the
    /// next refused with what to do, and nothing of the session is lost.
    async fn an_agent_session_holds_at_most_max_session_steps(f: Fixture) {
        use meanwhile_core::MAX_SESSION_STEPS;
        let s = &*f.store;
        s.open_agent_session(open_session("long", true, "a", NOW.0)).await.unwrap();
        assert_eq!(s.record_session_step(session_step("long", "a", 0, "user", "hi")).await.unwrap(), 1);
        // As if all but one of its steps had been recorded.
        f.edit(&format!(
            "UPDATE agent_sessions SET steps = {} WHERE name = 'long'",
            MAX_SESSION_STEPS - 1
        ))
        .await;
        let last = s
            .record_session_step(session_step("long", "a", MAX_SESSION_STEPS - 1, "model", "ok"))
            .await
            .unwrap();
        assert_eq!(last, MAX_SESSION_STEPS);
        let e = s
            .record_session_step(session_step("long", "a", MAX_SESSION_STEPS, "user", "more"))
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "session: agent session \"long\" holds the most steps a session may, {MAX_SESSION_STEPS}: begin a new conversation"
            )),
            "{e}"
        );
        assert_eq!(s.agent_session("long").await.unwrap().steps, MAX_SESSION_STEPS);
        let steps = s.agent_session_steps("long").await.unwrap();
        let numbers: Vec<u32> = steps.iter().map(|s| s.n).collect();
        assert_eq!(numbers, [1, MAX_SESSION_STEPS]);
        // A new conversation under the same name begins again from nothing.
        let fresh = s.open_agent_session(open_session("long", true, "b", NOW.0 + 1)).await.unwrap();
        assert_eq!(fresh.steps, 0);
        assert_eq!(s.record_session_step(session_step("long", "b", 0, "user", "again")).await.unwrap(), 1);
    }
}

both! {
    async fn an_agent_session_has_one_holder_and_steps_without_gaps(f: Fixture) {
        let s = &*f.store;
        let e = s.record_session_step(session_step("shop", "a", 0, "user", "hi")).await.unwrap_err();
        assert!(matches!(e, meanwhile_store::StoreError::UnknownSession(ref n) if n == "shop"), "{e}");
        let opened = s.open_agent_session(open_session("shop", true, "a", NOW.0)).await.unwrap();
        assert_eq!((opened.steps, opened.holder.as_str(), opened.title.as_str()), (0, "a", ""));
        assert_eq!(s.record_session_step(session_step("shop", "a", 0, "user", "fix the build\nplease")).await.unwrap(), 1);
        assert_eq!(s.record_session_step(session_step("shop", "a", 1, "model", "ok")).await.unwrap(), 2);
        // A count that is not the session's, another holder, a bad kind: refused.
        let e = s.record_session_step(session_step("shop", "a", 1, "model", "again")).await.unwrap_err();
        assert!(e.to_string().starts_with("after: agent session \"shop\" has 2 steps, not 1"), "{e}");
        let e = s.record_session_step(session_step("shop", "b", 2, "model", "x")).await.unwrap_err();
        assert!(e.to_string().starts_with("holder: "), "{e}");
        let e = s.record_session_step(session_step("shop", "a", 2, "Model", "x")).await.unwrap_err();
        assert!(e.to_string().starts_with("kind: "), "{e}");
        // Opened again to continue it: the new holder goes on, the old one is refused.
        let again = s.open_agent_session(open_session("shop", false, "b", NOW.0 + 20)).await.unwrap();
        assert_eq!((again.steps, again.title.as_str()), (2, "fix the build"));
        assert_eq!(again.created_at, Timestamp(NOW.0));
        let e = s.record_session_step(session_step("shop", "a", 2, "model", "x")).await.unwrap_err();
        assert!(e.to_string().contains("was opened again elsewhere"), "{e}");
        assert_eq!(s.record_session_step(session_step("shop", "b", 2, "tool_start", "x")).await.unwrap(), 3);
        let steps = s.agent_session_steps("shop").await.unwrap();
        let kinds: Vec<(u32, u32, &str)> =
            steps.iter().map(|s| (s.attempt, s.n, s.kind.as_str())).collect();
        assert_eq!(kinds, [(0, 1, "user"), (0, 2, "model"), (0, 3, "tool_start")]);
        assert_eq!(steps[0].data["text"], "fix the build\nplease");
        // A second session; the list has the last active first.
        s.open_agent_session(open_session("lab", false, "c", NOW.0 + 30)).await.unwrap();
        let names: Vec<String> = s.agent_sessions(10).await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["lab", "shop"]);
        assert_eq!(s.agent_session("shop").await.unwrap().steps, 3);
        // A fresh open replaces the conversation.
        let fresh = s.open_agent_session(open_session("shop", true, "d", NOW.0 + 40)).await.unwrap();
        assert_eq!((fresh.steps, fresh.title.as_str(), fresh.created_at), (0, "", Timestamp(NOW.0 + 40)));
        assert!(s.agent_session_steps("shop").await.unwrap().is_empty());
        let mut first = session_step("shop", "d", 0, "user", "new");
        first.now = Timestamp(NOW.0 + 50);
        assert_eq!(s.record_session_step(first).await.unwrap(), 1);
        // Retention forgets the idle ones; forgetting by hand says whether it had one.
        let p = s
            .prune(PruneRequest {
                agent_sessions_before: Some(Timestamp(NOW.0 + 35)),
                ..PruneRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(p.agent_sessions, 1);
        let names: Vec<String> = s.agent_sessions(10).await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["shop"]);
        assert!(s.forget_agent_session("shop").await.unwrap());
        assert!(!s.forget_agent_session("shop").await.unwrap());
        assert!(matches!(s.agent_session_steps("shop").await, Err(meanwhile_store::StoreError::UnknownSession(_))));
        assert!(matches!(s.agent_session("shop").await, Err(meanwhile_store::StoreError::UnknownSession(_))));
    }
}

both! {
    async fn an_expired_attempt_is_taken_over_as_the_same_attempt_only_while_expired(f: Fixture) {
        let id = submit(&*f.store, TaskSpec::shell("agent-ish")).await;
        let lease_end = NOW.0 + 60_000;
        let c = f.store.claim(claim_req(1)).await.unwrap().tasks;
        assert_eq!((c[0].attempt, c[0].task.node.as_deref()), (1, Some("n1")));
        assert_eq!(f.store.record_step(step(id, 1, "user", None)).await.unwrap(), 1);
        let to = |attempt: u32, node: &str, now: i64| meanwhile_store::TakeOver {
            id,
            attempt,
            node: node.into(),
            now: Timestamp(now),
            lease_until: Timestamp(now + 60_000),
        };

        // Not before the lease ended, nor for another attempt.
        assert!(f.store.take_over(to(1, "n2", lease_end)).await.unwrap().is_none());
        assert!(f.store.take_over(to(2, "n2", lease_end + 1)).await.unwrap().is_none());
        let t = f.store.get(id).await.unwrap();
        assert_eq!(t.node.as_deref(), Some("n1"));

        // Once it has: the same attempt, on n2, with n2's lease and its first start.
        let seq = f.store.events_after(0, 1000).await.unwrap().last().unwrap().seq;
        let t = f
            .store
            .take_over(to(1, "n2", lease_end + 1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.state, t.attempts, t.node.as_deref(), t.started_at),
            (TaskState::Running, 1, Some("n2"), Some(NOW))
        );
        let atts = f.store.attempts(id).await.unwrap();
        assert_eq!(atts.len(), 1);
        assert_eq!((atts[0].node.as_str(), atts[0].started_at), ("n2", NOW));
        let events = f.store.events_after(seq, 1000).await.unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, meanwhile_core::EventKind::Started);
        assert_eq!(
            events[0].data,
            serde_json::json!({"attempt": 1, "node": "n2", "taken_over_from": "n1"})
        );
        let audit = f.store.audit(meanwhile_core::AuditFilter::default()).await.unwrap();
        assert!(
            audit.records.iter().any(|r| r.summary == "attempt 1 taken over by n2 from n1"),
            "{:?}",
            audit.records
        );

        // n2 holds it now, on a lease of its own: nobody takes it before that ends,
        // n2's renewals extend it, n1's do not.
        let n2_lease_end = lease_end + 1 + 60_000;
        assert!(f.store.take_over(to(1, "n3", n2_lease_end)).await.unwrap().is_none());
        assert!(f.store.renew("n1", Timestamp(lease_end + 2)).await.unwrap().is_empty());
        assert_eq!(f.store.renew("n2", Timestamp(lease_end + 90_000)).await.unwrap(), [id]);
        assert!(f.store.take_over(to(1, "n3", lease_end + 2)).await.unwrap().is_none());

        // n1, back, can neither add a step to the attempt nor end it: n2 runs it.
        let from = |node: &str| Some(node.to_string());
        let mut late = step(id, 1, "model", Some((15, 0.5)));
        late.node = from("n1");
        let e = f.store.record_step(late).await.unwrap_err();
        assert!(
            e.to_string().contains("node \"n2\" took attempt 1 of task 1 over"),
            "{e}"
        );
        let mut lost = end(id, 1, AttemptOutcome::Lost);
        lost.node = from("n1");
        assert!(f.store.finish_attempt(lost).await.unwrap().is_none());
        let t = f.store.get(id).await.unwrap();
        assert_eq!((t.state, t.model_calls), (TaskState::Running, 0));

        // The attempt goes on where it was on n2: its steps, and its end.
        let mut next = step(id, 1, "model", None);
        next.node = from("n2");
        assert_eq!(f.store.record_step(next).await.unwrap(), 2);
        let mut done = end(id, 1, AttemptOutcome::Exited { code: 0 });
        done.node = from("n2");
        let fin = f.store.finish_attempt(done).await.unwrap().unwrap();
        assert_eq!((fin.task.state, fin.task.attempts), (TaskState::Succeeded, 1));
        // Ended: nothing to take over.
        assert!(f.store.take_over(to(1, "n3", lease_end + 200_000)).await.unwrap().is_none());
    }
}
