//! What only several nodes on one PostgreSQL database show: claims in parallel that
//! hold a queue's limits, one task per idempotency key however many submit it at
//! once, migrations run by nodes starting together, events that followers read in
//! order with no gap, and one audit chain written by many connections. Each
//! "node" is a store of its own, with connections of its own.

use crate::support::Fixture;
use crate::support::NOW;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{AttemptOutcome, EventKind, TaskKind, TaskSpec, TaskState, Timestamp};
use meanwhile_store::{AttemptEnd, AuditKey, ClaimRequest, ListFilter, NewTask, Store, StoreError};
use std::collections::HashSet;
use std::sync::Arc;

const NODES: usize = 6;

async fn nodes(f: &Fixture) -> Vec<Arc<dyn Store>> {
    let mut out = Vec::new();
    for _ in 0..NODES {
        out.push(Arc::from(f.open_another().await.unwrap()));
    }
    out
}

fn claim(node: usize, limit: u32) -> ClaimRequest {
    ClaimRequest {
        node: format!("node-{node}"),
        now: NOW,
        lease_until: Timestamp(NOW.0 + 60_000),
        kinds: vec![TaskKind::Shell],
        limit,
        share_since: None,
    }
}

fn end(id: meanwhile_core::TaskId, attempt: u32) -> AttemptEnd {
    AttemptEnd {
        id,
        attempt,
        outcome: AttemptOutcome::Exited { code: 0 },
        ended_at: Timestamp(NOW.0 + 1),
        exit_code: Some(0),
        signal: None,
        reason: None,
        peak_rss_kb: None,
        cpu_ms: None,
        pid: None,
        retry_at: NOW,
        tail: String::new(),
        output_bytes: 0,
        result: None,
        node: None,
    }
}

async fn submit_many(store: &dyn Store, n: usize, key: impl Fn(usize) -> Option<String>) {
    let tasks = (0..n)
        .map(|i| {
            let mut spec = TaskSpec::shell(format!("t{i}"));
            spec.concurrency_key = key(i);
            NewTask::new(spec.validate().unwrap(), NOW)
        })
        .collect();
    for r in store.submit(tasks).await.unwrap() {
        r.unwrap();
    }
}

/// Nodes claim and finish tasks in parallel until the queue is empty; after every
/// claim, the queue's running tasks (and those of each key) are counted in the
/// database and must stay within the limits.
async fn drain_in_parallel(f: &Fixture, max_parallel: u32, per_key: Option<u32>, total: usize) {
    let nodes = nodes(f).await;
    let mut handles = Vec::new();
    for (i, node) in nodes.into_iter().enumerate() {
        handles.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut idle = 0;
            // A node stops once it has found nothing to claim several times in a
            // row with nothing of its own running.
            while idle < 50 {
                let claimed = node.claim(claim(i, 3)).await.unwrap().tasks;
                let running = node.counts().await.unwrap();
                let now_running: u64 = running
                    .iter()
                    .filter(|(_, s, _)| *s == TaskState::Running)
                    .map(|(_, _, n)| n)
                    .sum();
                assert!(
                    now_running <= u64::from(max_parallel),
                    "{now_running} running with max_parallel {max_parallel}"
                );
                if let Some(per_key) = per_key {
                    let mut by_key = std::collections::HashMap::<String, u32>::new();
                    for (t, _) in node.running(None, Some(Timestamp(i64::MAX))).await.unwrap() {
                        if let Some(k) = t.concurrency_key {
                            *by_key.entry(k).or_default() += 1;
                        }
                    }
                    assert!(
                        by_key.values().all(|n| *n <= per_key),
                        "a key runs more than {per_key}: {by_key:?}"
                    );
                }
                if claimed.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                for c in claimed {
                    seen.push(c.task.id);
                    node.finish_attempt(end(c.task.id, c.attempt))
                        .await
                        .unwrap()
                        .unwrap();
                }
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "a task was claimed twice");
    let counts = f.store.counts().await.unwrap();
    assert_eq!(
        counts,
        vec![("default".to_string(), TaskState::Succeeded, total as u64)],
        "every task ran once"
    );
}

fn limit(max_parallel: u32, per_key: Option<u32>) -> QueueUpdate {
    QueueUpdate {
        max_parallel: Some(max_parallel),
        per_key: per_key.map(Some),
        ..QueueUpdate::default()
    }
}

/// However many callers a store has at once, it opens at most 16 connections, and
/// one more that listens for events: the callers beyond wait for a free one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_opens_at_most_sixteen_connections_however_many_call_it() {
    let f = Fixture::postgres().await;
    let before = f.pg_connections().await;
    let store: Arc<dyn Store> = Arc::from(f.open_another().await.unwrap());
    submit_many(&*store, 10, |_| None).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let store = store.clone();
        calls.spawn(async move {
            store
                .list(ListFilter::default())
                .await
                .map(|p| p.tasks.len())
        });
    }
    while let Some(listed) = calls.join_next().await {
        assert_eq!(listed.unwrap().unwrap(), 10);
    }
    let opened = f.pg_connections().await - before;
    // Its pool's 16 and its follower's one, and at most one more of the fixture's
    // own store, whose follower reads what the new store's writes announce.
    assert!((2..=18).contains(&opened), "{opened} connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_claims_never_exceed_max_parallel() {
    let f = Fixture::postgres().await;
    f.store.set_queue("default", limit(2, None)).await.unwrap();
    submit_many(&*f.store, 60, |_| None).await;
    drain_in_parallel(&f, 2, None, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_claims_hold_the_per_key_limit() {
    let f = Fixture::postgres().await;
    f.store
        .set_queue("default", limit(5, Some(1)))
        .await
        .unwrap();
    submit_many(&*f.store, 40, |i| Some(format!("k{}", i % 3))).await;
    drain_in_parallel(&f, 5, Some(1), 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_of_one_key_create_one_task() {
    let f = Fixture::postgres().await;
    let nodes = nodes(&f).await;
    let mut handles = Vec::new();
    for node in nodes {
        handles.push(tokio::spawn(async move {
            let mut spec = TaskSpec::shell("once");
            spec.idempotency_key = Some("the-key".into());
            let r = node
                .submit(vec![NewTask::new(spec.validate().unwrap(), NOW)])
                .await
                .unwrap();
            r.into_iter().next().unwrap().unwrap()
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    let ids: HashSet<_> = results.iter().map(|s| s.id()).collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    let created = results
        .iter()
        .filter(|s| matches!(s, meanwhile_store::Submitted::Created(_)))
        .count();
    assert_eq!(created, 1, "{results:?}");
    let page = f.store.list(Default::default()).await.unwrap();
    assert_eq!(page.tasks.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_migrate_once() {
    // A database nobody has migrated yet, then many nodes opening it at once.
    let db = meanwhile_testpg::TestDb::new().await;
    let mut handles = Vec::new();
    for _ in 0..NODES {
        let url = db.url();
        handles.push(tokio::spawn(async move {
            meanwhile_store::PgStore::connect(&url).await.map(|_| ())
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    db.execute("DO $$ BEGIN IF (SELECT COUNT(*) FROM schema_version) <> (SELECT MAX(version) FROM schema_version) THEN RAISE EXCEPTION 'a version was applied twice'; END IF; END $$").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_and_audit_stay_one_ordered_log_under_concurrent_writes() {
    let f = Fixture::postgres().await;
    let nodes = nodes(&f).await;
    // A follower reads the log while the nodes write: it must see every seq, in
    // order, with no gap, whatever moment it reads at.
    let reader = f.open_another().await.unwrap();
    let writers: Vec<_> = nodes
        .into_iter()
        .map(|node| {
            tokio::spawn(async move {
                for _ in 0..10 {
                    submit_many(&*node, 2, |_| None).await;
                }
            })
        })
        .collect();
    let mut next = 1;
    let total = NODES as i64 * 10 * 2;
    while next <= total {
        for e in reader.events_after(next - 1, 1000).await.unwrap() {
            assert_eq!(e.seq, next, "the follower skipped or reordered an event");
            next += 1;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let v = f.store.verify_audit(AuditKey::new(*b"key")).await.unwrap();
    assert!(v.intact, "{v:?}");
    assert_eq!(v.records, total as u64);
    // Each write answered once its entries were numbered: nothing stays in line.
    let db = f.pg_client().await;
    for inbox in ["events_inbox", "notices_inbox", "audit_inbox"] {
        let sql = format!("SELECT count(*) FROM {inbox}");
        let left: i64 = db.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(left, 0, "{inbox} keeps rows the writes left");
    }
}

/// A write that has taken its place in the logs' line but not yet committed holds
/// back the numbering of every write after it, whichever node made it, and its
/// events come first; one that rolls back from there leaves no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_line_holds_back_later_ones_and_keeps_its_place() {
    // The sequencing lock's key ("mw-order").
    const LOCK: i64 = 0x6d77_2d6f_7264_6572;
    let f = Fixture::postgres().await;
    let early = f.pg_client().await;
    let watcher = f.pg_client().await;
    for commit in [true, false] {
        let node: Arc<dyn Store> = Arc::from(f.open_another().await.unwrap());
        let before = f.store.events_after(0, 10_000).await.unwrap();
        let before = before.last().map_or(0, |e| e.seq);
        early.batch_execute("BEGIN").await.unwrap();
        early
            .query_one(
                "SELECT pg_advisory_xact_lock_shared($1)::TEXT, nextval('log_order')",
                &[&LOCK],
            )
            .await
            .unwrap();
        early
            .batch_execute(
                "INSERT INTO events_inbox (ord, at, kind, task_id, data)
                 VALUES (currval('log_order'), 1, 'queue', NULL, '{\"name\":\"early\"}')",
            )
            .await
            .unwrap();
        let later = tokio::spawn(async move { submit_many(&*node, 1, |_| None).await });
        // The later write has committed and waits to be numbered (or, were it not
        // held back, is done).
        while !later.is_finished()
            && watcher
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 0
        {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(
            f.store.events_after(before, 100).await.unwrap().is_empty(),
            "a later write was numbered while an earlier one in line was open"
        );
        early
            .batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
            .await
            .unwrap();
        later.await.unwrap();
        let events = f.store.events_after(before, 100).await.unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let expected: Vec<i64> = (before + 1..=before + events.len() as i64).collect();
        assert_eq!(seqs, expected, "the log has a gap");
        let first = &events[0];
        if commit {
            assert_eq!(first.data["name"], "early", "{events:?}");
            assert!(events[1..].iter().any(|e| e.kind == EventKind::Submitted));
        } else {
            assert!(
                events.iter().all(|e| e.data["name"] != "early"),
                "{events:?}"
            );
            assert!(events.iter().any(|e| e.kind == EventKind::Submitted));
        }
    }
}

/// The events that wait in the inbox to be numbered.
async fn events_waiting(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM events_inbox", &[])
        .await
        .unwrap()
        .get(0)
}

/// A backlog larger than one stamp's batch per inbox (left, say, by a node that died
/// between its commits and its stamps) is numbered whole before a write that waits
/// on a stamp returns, so that write's events are in the log when it answers.
#[tokio::test]
async fn a_backlog_larger_than_a_batch_is_numbered_before_the_write_returns() {
    const LOCK: i64 = 0x6d77_2d6f_7264_6572;
    // Three batches and some: more than the follower's own stamps (one at its start,
    // one on each 2 s poll) could move beside the write's one batch.
    const BACKLOG: i64 = 30_050;
    let f = Fixture::postgres().await;
    let before = f.store.events_after(0, 10_000).await.unwrap();
    let before = before.last().map_or(0, |e| e.seq);
    let dead = f.pg_client().await;
    dead.batch_execute("BEGIN").await.unwrap();
    dead.query_one(
        "SELECT pg_advisory_xact_lock_shared($1)::TEXT, nextval('log_order')",
        &[&LOCK],
    )
    .await
    .unwrap();
    dead.execute(
        "INSERT INTO events_inbox (ord, at, kind, task_id, data)
         SELECT currval('log_order'), 1, 'queue', NULL, '{\"name\":\"backlog\"}'
         FROM generate_series(1::BIGINT, $1)",
        &[&BACKLOG],
    )
    .await
    .unwrap();
    dead.batch_execute("COMMIT").await.unwrap();
    submit_many(&*f.store, 1, |_| None).await;
    let waiting = events_waiting(&dead).await;
    assert_eq!(waiting, 0, "the whole backlog was numbered");
    let mut events = Vec::new();
    let mut from = before;
    loop {
        let page = f.store.events_after(from, 5_000).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.seq;
        events.extend(page);
    }
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (before + 1..=before + events.len() as i64).collect();
    assert!(seqs == expected, "the log has a gap");
    let backlog = events
        .iter()
        .take_while(|e| e.data["name"] == "backlog")
        .count();
    assert_eq!(backlog as i64, BACKLOG, "the backlog first, in its place");
    assert!(
        events[backlog..]
            .iter()
            .any(|e| e.kind == EventKind::Submitted),
        "the write's own event follows"
    );
}

/// A stamp that fails leaves the write committed and its entries waiting in the
/// inboxes; the failure is counted as the loop `sequencer`, and the next stamp
/// numbers what waited, in order, and ends the streak.
#[tokio::test]
async fn a_failed_stamp_is_counted_and_the_next_one_numbers_what_waited() {
    let f = Fixture::postgres().await;
    let admin = f.pg_client().await;
    assert!(
        f.store.background().is_empty(),
        "nothing to report at first"
    );
    let before = f.store.events_after(0, 10_000).await.unwrap();
    let before = before.last().map_or(0, |e| e.seq);
    admin
        .batch_execute(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$
                 BEGIN RAISE EXCEPTION 'no new events for now'; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse BEFORE INSERT ON events
                 FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .await
        .unwrap();
    for _ in 0..3 {
        submit_many(&*f.store, 1, |_| None).await;
    }
    let waiting = events_waiting(&admin).await;
    assert!(
        waiting >= 3,
        "the writes' events wait in the inbox: {waiting}"
    );
    let health = f.store.background();
    let sequencer = health.iter().find(|h| h.name == "sequencer").unwrap();
    assert!(sequencer.errors >= 3, "{sequencer:?}");
    assert!(sequencer.failing, "{sequencer:?}");
    assert!(
        sequencer
            .last_error
            .as_deref()
            .unwrap()
            .contains("no new events for now"),
        "{sequencer:?}"
    );
    admin
        .batch_execute("DROP TRIGGER refuse ON events")
        .await
        .unwrap();
    submit_many(&*f.store, 1, |_| None).await;
    let health = f.store.background();
    let sequencer = health.iter().find(|h| h.name == "sequencer").unwrap();
    assert_eq!(sequencer.consecutive_failures, 0, "{sequencer:?}");
    assert!(!sequencer.failing);
    let events = f.store.events_after(before, 100).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (before + 1..=before + events.len() as i64).collect();
    assert_eq!(seqs, expected, "the log has a gap");
    let submitted = events
        .iter()
        .filter(|e| e.kind == EventKind::Submitted)
        .count();
    assert_eq!(submitted, 4, "{events:?}");
}

#[tokio::test]
async fn a_newer_schema_is_refused_naming_both_versions_sqlite() {
    refuses_a_newer_schema(Fixture::sqlite().await).await;
}

#[tokio::test]
async fn a_newer_schema_is_refused_naming_both_versions_postgres() {
    refuses_a_newer_schema(Fixture::postgres().await).await;
}

async fn refuses_a_newer_schema(f: Fixture) {
    f.edit("INSERT INTO schema_version (version) VALUES (99)")
        .await;
    let Err(e) = f.open_another().await else {
        panic!("a database of version 99 opened")
    };
    assert!(matches!(e, StoreError::TooNew { found: 99, .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("schema version 99")
            && text.contains(&format!("meanwhile's {}", meanwhile_store::SCHEMA_VERSION)),
        "{text}"
    );
}

/// Nodes charging one budget at once: every charge counts (the budget row is
/// locked for each), each alarm fires once for the whole fleet, and the queue is
/// paused once, by the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_charges_add_up_and_fire_each_alarm_once() {
    use meanwhile_core::{AlertKind, BudgetSpec, PauseReason};
    let f = Fixture::postgres().await;
    let mut spec = TaskSpec::shell("true");
    spec.queue = Some("llm".into());
    let mut ids = Vec::new();
    for r in f
        .store
        .submit(
            (0..NODES)
                .map(|_| NewTask::new(spec.clone().validate().unwrap(), NOW))
                .collect(),
        )
        .await
        .unwrap()
    {
        ids.push(r.unwrap().id());
    }
    let budget = BudgetSpec {
        tokens: Some(10_000),
        ..BudgetSpec::default()
    };
    f.store.set_budget("llm", budget, NOW).await.unwrap();

    // Each node charges 25 calls of 100 tokens to its own task: 15,000 in all.
    const CALLS: usize = 25;
    let mut handles = Vec::new();
    for (node, id) in nodes(&f).await.into_iter().zip(ids.clone()) {
        handles.push(tokio::spawn(async move {
            for _ in 0..CALLS {
                node.charge_usage(id, 100, 0.001, 1, NOW).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let b = f.store.budget("llm").await.unwrap();
    assert_eq!(b.used_tokens, (NODES * CALLS * 100) as u64);
    assert_eq!(b.model_calls, (NODES * CALLS) as u64);
    assert!((b.used_cost_usd - NODES as f64 * CALLS as f64 * 0.001).abs() < 1e-9);
    for id in ids {
        let t = f.store.get(id).await.unwrap();
        assert_eq!(
            (t.tokens, t.model_calls),
            ((CALLS * 100) as u64, CALLS as u32)
        );
    }
    let alerts: Vec<_> = f
        .store
        .alerts(true, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == AlertKind::Budget)
        .collect();
    assert_eq!(alerts.len(), 3, "one alert per alarm: {alerts:?}");
    let q = f
        .store
        .queues()
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.name == "llm")
        .unwrap();
    assert!(q.paused);
    assert_eq!(q.pause_reason, Some(PauseReason::Budget));
}

#[tokio::test]
async fn each_alive_node_takes_at_most_its_share_of_a_queue() {
    let f = Fixture::postgres().await;
    f.store.set_queue("default", limit(5, None)).await.unwrap();
    submit_many(&*f.store, 12, |_| None).await;
    let beat = |name: &str, at: i64| meanwhile_core::NodeBeat {
        name: name.into(),
        address: None,
        version: "test".into(),
        started_at: Timestamp(at),
        now: Timestamp(at),
    };
    f.store.beat(beat("node-0", NOW.0)).await.unwrap();
    f.store.beat(beat("node-1", NOW.0)).await.unwrap();
    // A node silent since before `share_since` does not count.
    f.store.beat(beat("node-9", NOW.0 - 60_000)).await.unwrap();
    let shared = |node| ClaimRequest {
        share_since: Some(Timestamp(NOW.0 - 30_000)),
        ..claim(node, 100)
    };
    // Two alive nodes share 5 slots: 3 each at most (rounded up), 5 in all.
    let first = f.store.claim(shared(0)).await.unwrap().tasks;
    assert_eq!(first.len(), 3);
    assert!(f.store.claim(shared(0)).await.unwrap().tasks.is_empty());
    let second = f.store.claim(shared(1)).await.unwrap().tasks;
    assert_eq!(second.len(), 2);
    // Without sharing, the node would take every free slot.
    f.store
        .finish_attempt(end(first[0].task.id, first[0].attempt))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.store.claim(claim(1, 100)).await.unwrap().tasks.len(), 1);
}
