//! Benchmarks of a fleet: `meanwhile serve` nodes on one PostgreSQL database (a
//! throwaway server the benchmark starts, see `meanwhile-testpg`), each figure next
//! to one node on SQLite measured in the same run. The nodes share this machine's
//! cores, so more nodes add no CPU: the figures show what the shared database costs,
//! and that work spreads over the nodes.

use crate::daemon::{Daemon, percentile, round, round3};
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{EventKind, TaskId, TaskSpec, WaitMode};
use meanwhile_testpg::TestDb;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A fleet of `n` nodes on `db` (homes in `dir`), or one node on SQLite.
async fn nodes(dir: &std::path::Path, db: Option<&TestDb>, n: usize) -> Vec<Daemon> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let home = dir.join(format!("node-{i}"));
        let name = format!("n{i}");
        let url = db.map(TestDb::url);
        let mut env: Vec<(&str, &str)> = Vec::new();
        if let Some(u) = &url {
            env.push(("MEANWHILE_DATABASE_URL", u));
        }
        out.push(
            Daemon::start_with(&home, &["--node", &name, "--listen", "127.0.0.1:0"], &env).await,
        );
    }
    out
}

async fn set_parallel(d: &Daemon, n: u32) {
    d.client
        .set_queue(
            "default",
            QueueUpdate {
                max_parallel: Some(n),
                ..QueueUpdate::default()
            },
        )
        .await
        .expect("queue");
}

/// Runs `n` `sh -c true` tasks, submitted in batches spread over the nodes; tasks/s
/// from the first submit to the last end.
async fn run_true(nodes: &[Daemon], n: usize) -> f64 {
    let start = Instant::now();
    let mut ids: Vec<TaskId> = Vec::with_capacity(n);
    let mut left = n;
    let mut i = 0;
    while left > 0 {
        let k = left.min(500);
        let specs = (0..k).map(|_| TaskSpec::shell("true")).collect();
        for r in nodes[i % nodes.len()]
            .client
            .submit_batch(specs)
            .await
            .expect("submit")
        {
            ids.push(r.expect("a valid task"));
        }
        left -= k;
        i += 1;
    }
    let w = nodes[0]
        .client
        .wait(&ids, WaitMode::All, Some(Duration::from_secs(3600)))
        .await
        .expect("wait");
    assert!(!w.timed_out);
    n as f64 / start.elapsed().as_secs_f64()
}

/// The throughput work (`sh -c true` tasks, 2 running per node) on 1, 2 and 3 nodes
/// sharing one PostgreSQL database, against one node on SQLite.
pub async fn fleet_throughput() -> Value {
    let n = crate::task_count(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let single = nodes(&dir.path().join("sqlite"), None, 1).await;
    set_parallel(&single[0], 2).await;
    let base = run_true(&single, n).await;
    single.into_iter().for_each(Daemon::stop);
    let mut out = json!({
        "figure": "fleet_throughput",
        "tasks": n,
        "max_parallel": "2 per node",
        "baseline": "one node on SQLite, 2 in flight",
        "baseline_tasks_per_s": round(base),
        "goal": "no task lost or run twice; the nodes share one machine's 2 cores",
    });
    for count in 1..=3 {
        let db = TestDb::new().await;
        let fleet = nodes(&dir.path().join(format!("pg{count}")), Some(&db), count).await;
        set_parallel(&fleet[0], 2 * count as u32).await;
        let rate = run_true(&fleet, n).await;
        fleet.into_iter().for_each(Daemon::stop);
        if let Value::Object(o) = &mut out {
            o.insert(format!("nodes_{count}_tasks_per_s"), json!(round(rate)));
            o.insert(format!("nodes_{count}_ratio"), json!(round3(rate / base)));
        }
    }
    out
}

/// Milliseconds from a submit's answer to the `started` event of its task, heard on
/// the event stream of the node that took the submit, for tasks submitted one at a
/// time to idle nodes.
async fn claim_times(nodes: &[Daemon], n: usize) -> Vec<f64> {
    let mut events = nodes[0].client.events(None).await.expect("event stream");
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let asked = Instant::now();
        let id = nodes[0]
            .client
            .submit(&TaskSpec::shell("true"))
            .await
            .expect("submit");
        let mut started = None;
        let mut finished = false;
        while started.is_none() || !finished {
            let e = events
                .next()
                .await
                .expect("the event stream ended")
                .expect("an event");
            if e.task_id != Some(id) {
                continue;
            }
            match e.kind {
                EventKind::Started => started = Some(asked.elapsed()),
                EventKind::Finished => finished = true,
                _ => {}
            }
        }
        ms.push(started.unwrap_or_default().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    ms
}

/// Submit to running on a fleet of three nodes (the task may be claimed by any,
/// woken by LISTEN/NOTIFY), against one node on SQLite.
pub async fn claim_latency() -> Value {
    let n = crate::task_count(300).min(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let single = nodes(&dir.path().join("sqlite"), None, 1).await;
    let base = claim_times(&single, n).await;
    single.into_iter().for_each(Daemon::stop);
    let db = TestDb::new().await;
    let fleet = nodes(&dir.path().join("pg"), Some(&db), 3).await;
    set_parallel(&fleet[0], 6).await;
    let times = claim_times(&fleet, n).await;
    fleet.into_iter().for_each(Daemon::stop);
    json!({
        "figure": "claim_latency",
        "tasks": n,
        "nodes": 3,
        "p50_ms": round3(percentile(&times, 0.5)),
        "p99_ms": round3(percentile(&times, 0.99)),
        "baseline": "one node on SQLite",
        "baseline_p50_ms": round3(percentile(&base, 0.5)),
        "baseline_p99_ms": round3(percentile(&base, 0.99)),
        "measured": "from sending the submit to its task's started event on the submitting node's event stream",
        "goal": "p99 <= 50 ms",
    })
}
