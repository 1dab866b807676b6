//! The conformance suite of `LifecycleStore`: claims, ends, retries and quarantine,
//! stops, releases, leases taken over, what a running task is seen doing, steps; each
//! test runs on both stores.

use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{
    AttemptOutcome, RetryPolicy, TaskId, TaskKind, TaskSpec, TaskState, Timestamp,
};
use meanwhile_store::{ClaimRequest, ListFilter, NewTask, StopOutcome};
use std::time::Duration;

use crate::support::{NOW, claim_req, claimed_ids, end, submit};

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
