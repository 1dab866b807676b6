//! The conformance suite of `TaskStore` (and the retention of `Store::prune`): submits,
//! idempotency keys, listing, secrets kept sealed, removal; each test runs on both
//! stores.

use meanwhile_core::{AttemptOutcome, TaskId, TaskSpec, TaskState, Timestamp};
use meanwhile_store::{ListFilter, NewTask, PruneRequest, Pruned, Store, Submitted};

use crate::support::{NOW, claim_req, end, submit};

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
