//! The conformance suite of `QueueStore`: per-key and rate limits, and removing a
//! queue; each test runs on both stores.

use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{AttemptOutcome, RetryPolicy, TaskId, TaskSpec, Timestamp};
use meanwhile_store::ClaimRequest;

use crate::support::{NOW, claim_req, claimed_ids, end, submit};

fn limits(per_key: Option<Option<u32>>, rate: Option<Option<&str>>) -> QueueUpdate {
    QueueUpdate {
        per_key,
        rate: rate.map(|r| r.map(|r| r.parse().unwrap())),
        ..QueueUpdate::default()
    }
}

fn claim_at(now: Timestamp, limit: u32) -> ClaimRequest {
    ClaimRequest {
        now,
        lease_until: Timestamp(now.0 + 60_000),
        ..claim_req(limit)
    }
}

fn keyed(command: &str, key: Option<&str>) -> TaskSpec {
    let mut spec = TaskSpec::shell(command);
    spec.concurrency_key = key.map(str::to_string);
    spec
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
