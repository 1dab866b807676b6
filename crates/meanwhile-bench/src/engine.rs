//! Benchmarks of the in-process engine against the raw machine.

use crate::raw;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{EventKind, TaskId, TaskSpec};
use meanwhile_runtime::{Runtime, RuntimeConfig};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

pub(crate) async fn open(dir: &std::path::Path, max_parallel: u32) -> Runtime {
    let mut cfg = RuntimeConfig::new(dir.join("home"));
    cfg.default_max_parallel = Some(max_parallel);
    cfg.default_cwd = Some(dir.to_path_buf());
    Runtime::start(cfg, std::future::pending())
        .await
        .expect("a runtime")
}

/// Waits until every id in `ids` has a `finished` event; returns when each was seen.
async fn all_finished(
    events: &mut tokio::sync::broadcast::Receiver<meanwhile_core::Event>,
    rt: &Runtime,
    ids: &[TaskId],
) -> Vec<(TaskId, Instant)> {
    let mut left: HashSet<TaskId> = ids.iter().copied().collect();
    let mut seen = Vec::with_capacity(ids.len());
    // Events dropped while this receiver lagged: the store's counters then say when
    // nothing is left to run (each figure has a runtime of its own).
    let mut lagged = false;
    while !left.is_empty() {
        if lagged && nothing_left(rt).await {
            let now = Instant::now();
            seen.extend(left.drain().map(|id| (id, now)));
            break;
        }
        let next = tokio::time::timeout(Duration::from_millis(20), events.recv()).await;
        match next {
            Ok(Ok(e)) if e.kind == EventKind::Finished => {
                if let Some(id) = e.task_id
                    && left.remove(&id)
                {
                    seen.push((id, Instant::now()));
                }
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(_)) => lagged = true,
        }
    }
    seen
}

async fn nothing_left(rt: &Runtime) -> bool {
    rt.store()
        .counts()
        .await
        .is_ok_and(|c| !c.iter().any(|(_, state, n)| *n > 0 && !state.is_terminal()))
}

/// Tasks per second of `n` tasks of `spec` in a new runtime, max_parallel 2, from the
/// first submit to the last end.
async fn shell_rate(n: usize, spec: TaskSpec) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = open(dir.path(), 2).await;
    let start = Instant::now();
    run_shells(&rt, n, spec).await;
    let took = start.elapsed();
    rt.shutdown().await;
    if std::env::var_os("MEANWHILE_BENCH_KEEP").is_some() {
        eprintln!("kept {}", dir.keep().display());
    }
    n as f64 / took.as_secs_f64()
}

/// Submits `n` tasks of `spec` one after another and waits until all have ended.
pub(crate) async fn run_shells(rt: &Runtime, n: usize, spec: TaskSpec) {
    let mut events = rt.subscribe();
    let submitter = {
        let rt = rt.clone();
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push(rt.submit(spec.clone()).await.expect("submit"));
            }
            ids
        })
    };
    let ids = submitter.await.expect("submitter");
    all_finished(&mut events, rt, &ids).await;
}

/// What confining costs a start: 1,000 `sh -c true` tasks sandboxed (Landlock), each
/// in a network namespace of its own, under a watched memory limit, and all three,
/// against the same tasks unconfined in the same run.
pub async fn sandbox_cost() -> Value {
    let n = crate::task_count(1000);
    let plain = shell_rate(n, TaskSpec::shell("true")).await;
    let with = |f: &dyn Fn(&mut TaskSpec)| {
        let mut spec = TaskSpec::shell("true");
        f(&mut spec);
        spec
    };
    let sandbox = shell_rate(n, with(&|s| s.sandbox = Some(true))).await;
    let no_network = shell_rate(n, with(&|s| s.no_network = Some(true))).await;
    let memory = shell_rate(
        n,
        with(&|s| s.memory = Some(meanwhile_core::ByteSize(1 << 30))),
    )
    .await;
    let all = with(&|s| {
        s.sandbox = Some(true);
        s.no_network = Some(true);
        s.memory = Some(meanwhile_core::ByteSize(1 << 30));
    });
    let confined = shell_rate(n, all).await;
    json!({
        "figure": "sandbox_cost",
        "tasks": n,
        "max_parallel": 2,
        "sandbox_tasks_per_s": round(sandbox),
        "no_network_tasks_per_s": round(no_network),
        "memory_tasks_per_s": round(memory),
        "tasks_per_s": round(confined),
        "baseline": "the same tasks unconfined, in the same run",
        "baseline_tasks_per_s": round(plain),
        "ratio": round3(confined / plain),
        "goal": "none set",
    })
}

/// 2,000 `sh -c true` tasks, max_parallel 2, first submit to last end, against raw
/// posix_spawn with 2 in flight.
pub async fn throughput() -> Value {
    let n = crate::task_count(2000);
    let base_rate = raw::spawn_floor(n).await;
    let rate = shell_rate(n, TaskSpec::shell("true")).await;
    json!({
        "figure": "throughput",
        "tasks": n,
        "max_parallel": 2,
        "tasks_per_s": round(rate),
        "baseline": "raw posix_spawn of sh -c true, 2 in flight",
        "baseline_tasks_per_s": round(base_rate),
        "ratio": round3(rate / base_rate),
        "goal": ">= 0.6 (aim 0.7)",
    })
}

/// The seed-style manager (`data/seed_manager.py`: a Python thread per task,
/// `subprocess.run`, output in memory, nothing durable), run with the system
/// `python3` on the `throughput` work, next to meanwhile and the raw floor measured
/// in the same run. meanwhile must be ahead of it.
pub async fn seed_manager_throughput() -> Value {
    let n = crate::task_count(2000);
    let base_rate = raw::spawn_floor(n).await;
    let seed = tokio::task::spawn_blocking(move || raw::seed_manager(n, 2));
    let seed_rate = n as f64 / seed.await.expect("the seed manager").as_secs_f64();
    let rate = shell_rate(n, TaskSpec::shell("true")).await;
    json!({
        "figure": "seed_manager_throughput",
        "tasks": n,
        "max_parallel": 2,
        "tasks_per_s": round(seed_rate),
        "ratio": round3(seed_rate / base_rate),
        "baseline": "raw posix_spawn of sh -c true, 2 in flight",
        "baseline_tasks_per_s": round(base_rate),
        "meanwhile_tasks_per_s": round(rate),
        "meanwhile_ratio": round3(rate / base_rate),
        "meanwhile_over_seed": round3(rate / seed_rate),
        "goal": "meanwhile_over_seed > 1",
    })
}

async fn time_submits(rt: &Runtime, n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let mut spec = TaskSpec::shell("true");
        spec.queue = Some("held".into());
        rt.submit(spec).await.expect("submit");
    }
    start.elapsed()
}

/// Submitting 5,000 tasks into an empty store and into one holding 1,000,000
/// finished tasks.
pub async fn submit_scaling() -> Value {
    const N: usize = 5000;
    const BIG: u64 = 1_000_000;
    let empty_dir = tempfile::tempdir().expect("temp dir");
    let rt = open(empty_dir.path(), 2).await;
    rt.set_queue(
        "held",
        QueueUpdate {
            paused: Some(true),
            ..QueueUpdate::default()
        },
    )
    .await
    .expect("queue");
    // One warm-up round so both runs start with prepared statements and a warm cache.
    time_submits(&rt, 50).await;
    let empty = time_submits(&rt, N).await;
    rt.shutdown().await;

    let big_dir = tempfile::tempdir().expect("temp dir");
    let rt = open(big_dir.path(), 2).await;
    rt.set_queue(
        "held",
        QueueUpdate {
            paused: Some(true),
            ..QueueUpdate::default()
        },
    )
    .await
    .expect("queue");
    let seed_start = Instant::now();
    seed(rt.home(), BIG).await;
    let seeded_in = seed_start.elapsed();
    time_submits(&rt, 50).await;
    let big = time_submits(&rt, N).await;
    rt.shutdown().await;
    json!({
        "figure": "submit_scaling",
        "tasks": N,
        "empty_store_ms": round(empty.as_secs_f64() * 1000.0),
        "million_task_store_ms": round(big.as_secs_f64() * 1000.0),
        "submits_per_s_empty": round(N as f64 / empty.as_secs_f64()),
        "ratio": round3(big.as_secs_f64() / empty.as_secs_f64()),
        "baseline": "the same 5,000 submits into an empty store",
        "seeding_s": round(seeded_in.as_secs_f64()),
        "goal": "<= 1.2",
    })
}

async fn seed(home: &meanwhile_runtime::Home, n: u64) {
    // Seeding goes through a second connection to the same file: the runtime's store
    // keeps its writer thread; SQLite serialises the two writers.
    let store = meanwhile_store::SqliteStore::open(&home.database()).expect("store");
    store
        .seed_finished(n, meanwhile_runtime::now())
        .await
        .expect("seed");
    // The seed is one huge commit in the WAL: copy it into the database now, so the
    // timed submits are not measured against a one-off checkpoint of a million rows.
    let conn = rusqlite::Connection::open(home.database()).expect("database");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
}

/// One task printing 1 GiB, against `head -c 1073741824 /dev/zero > FILE`.
pub async fn big_output() -> Value {
    const BYTES: u64 = 1 << 30;
    const ROUNDS: usize = 5;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("baseline.out");
    let cmd = format!("head -c {BYTES} /dev/zero > {}", file.display());
    // Writing a gigabyte is at the mercy of the kernel's writeback, which differs
    // from one run to the next: baseline and meanwhile alternate, five rounds each,
    // and the medians are compared.
    let baseline = || {
        settle();
        let start = Instant::now();
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", &cmd])
            .status()
            .expect("baseline");
        let took = start.elapsed();
        assert!(status.success());
        let _ = std::fs::remove_file(&file);
        took
    };

    let rt = open(dir.path(), 2).await;
    // Warm up: the first task pays for opening the watcher and the database pages.
    let warm = rt
        .submit(TaskSpec::shell("echo warm"))
        .await
        .expect("submit");
    rt.wait(&[warm], meanwhile_core::WaitMode::All, None)
        .await
        .expect("wait");
    let rss_before = raw::peak_rss_kb();
    let mut base_runs = Vec::with_capacity(ROUNDS);
    let mut runs = Vec::with_capacity(ROUNDS);
    let mut states = Vec::with_capacity(ROUNDS);
    let mut log_bytes = 0;
    for _ in 0..ROUNDS {
        base_runs.push(baseline());
        settle();
        let mut events = rt.subscribe();
        let start = Instant::now();
        let id = rt
            .submit(TaskSpec::shell(format!("head -c {BYTES} /dev/zero")))
            .await
            .expect("submit");
        all_finished(&mut events, &rt, &[id]).await;
        runs.push(start.elapsed());
        states.push(rt.get(id).await.expect("task").state);
        log_bytes = std::fs::metadata(rt.home().log(id))
            .map(|m| m.len())
            .unwrap_or(0);
        rt.remove(vec![id]).await.expect("remove");
    }
    let rss_after = raw::peak_rss_kb();
    rt.shutdown().await;
    base_runs.sort();
    runs.sort();
    let (base, took) = (base_runs[ROUNDS / 2], runs[ROUNDS / 2]);
    let mib_s = |d: Duration| BYTES as f64 / (1 << 20) as f64 / d.as_secs_f64();
    json!({
        "figure": "big_output",
        "bytes": BYTES,
        "rounds": ROUNDS,
        "states": states,
        "log_bytes": log_bytes,
        "mib_per_s": round(mib_s(took)),
        "baseline": "sh -c 'head -c 1073741824 /dev/zero > FILE', alternating with meanwhile's runs after a sync; medians of 5",
        "baseline_mib_per_s": round(mib_s(base)),
        "ratio": round3(base.as_secs_f64() / took.as_secs_f64()),
        "goal_ratio": ">= 0.95",
        "peak_rss_growth_kib": rss_after.saturating_sub(rss_before),
        "goal_rss_growth": "<= 4096 KiB",
    })
}

/// Flushes dirty pages, so each timed write starts with the same writeback state
/// instead of paying for the previous run's gigabyte.
fn settle() {
    rustix::fs::sync();
}

/// From a task's exit (as its supervisor recorded it) to its notification being
/// drainable, over 1,000 tasks.
pub async fn notify_latency() -> Value {
    const N: usize = 1000;
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = open(dir.path(), 2).await;
    let mut events = rt.subscribe();
    // Submit while measuring, so that every notice is seen as it becomes drainable.
    let submitter = {
        let rt = rt.clone();
        tokio::spawn(async move {
            for _ in 0..N {
                let mut spec = TaskSpec::shell("true");
                spec.session = Some("bench".into());
                rt.submit(spec).await.expect("submit");
            }
        })
    };
    let mut latencies_us = Vec::with_capacity(N);
    let mut journal = meanwhile_runtime::status::Journal::new(&rt.home().journal());
    // Ids are assigned 1..=N in an empty store.
    let mut left: HashSet<TaskId> = (1..=N as i64).map(TaskId).collect();
    while !left.is_empty() {
        let e = match events.recv().await {
            Ok(e) => e,
            Err(_) => continue,
        };
        if e.kind != EventKind::Finished {
            continue;
        }
        let seen_us = now_us();
        let Some(id) = e.task_id.filter(|id| left.remove(id)) else {
            continue;
        };
        journal.refresh().expect("journal");
        if let Some(st) = journal.exit(id, 1) {
            latencies_us.push((seen_us - st.ended_at_us).max(0) as f64);
            if std::env::var_os("MEANWHILE_BENCH_DEBUG").is_some()
                && seen_us - st.ended_at_us > 5000
            {
                eprintln!("slow notice: task {id} {} us", seen_us - st.ended_at_us);
            }
        }
    }
    submitter.await.expect("submitter");
    let drained = rt
        .drain_notifications("bench", 1000)
        .await
        .expect("drain")
        .len();
    rt.shutdown().await;
    latencies_us.sort_by(|a, b| a.total_cmp(b));
    let pct =
        |p: f64| latencies_us[((latencies_us.len() as f64 - 1.0) * p).round() as usize] / 1000.0;
    json!({
        "figure": "notify_latency",
        "tasks": N,
        "measured": latencies_us.len(),
        "drained": drained,
        "p50_ms": round3(pct(0.5)),
        "p99_ms": round3(pct(0.99)),
        "baseline": "the task's exit time as its supervisor recorded it",
        "goal": "p99 <= 5 ms",
    })
}

fn now_us() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_micros() as i64
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Submits `n` closure tasks that return at once, 256 per batch; tasks/s from the
/// first submit to the last end.
async fn closure_rate(rt: &Runtime, n: usize) -> f64 {
    let start = Instant::now();
    run_closures(rt, n).await;
    n as f64 / start.elapsed().as_secs_f64()
}

/// Submits `n` no-op closures in batches of 256 and waits until all have ended.
pub(crate) async fn run_closures(rt: &Runtime, n: usize) {
    let mut events = rt.subscribe();
    let submitter = {
        let rt = rt.clone();
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(n);
            let mut left = n;
            while left > 0 {
                let k = left.min(256);
                let batch: Vec<_> = (0..k)
                    .map(|_| {
                        (
                            TaskSpec::default(),
                            |_ctx: meanwhile_runtime::TaskContext| async { Ok::<(), String>(()) },
                        )
                    })
                    .collect();
                for r in rt.submit_fn_batch(batch).await.expect("submit") {
                    ids.push(r.expect("a valid closure task"));
                }
                left -= k;
            }
            ids
        })
    };
    let ids = submitter.await.expect("submitter");
    all_finished(&mut events, rt, &ids).await;
}

fn parallels() -> Vec<u32> {
    match std::env::var("MEANWHILE_BENCH_PARALLEL") {
        Ok(v) => v.split(',').filter_map(|p| p.trim().parse().ok()).collect(),
        Err(_) => vec![64, 2],
    }
}

/// 20,000 no-op async closures, submitted in batches and run to their ends at
/// `max_parallel` 64 and 2, against bare SQLite doing the same writes (insert, claim,
/// finish, an event each) in transactions of 256.
pub async fn closure_throughput() -> Value {
    let n = crate::task_count(20_000);
    let floor_dir = tempfile::tempdir().expect("temp dir");
    let fd = floor_dir.path().to_path_buf();
    let floor = tokio::task::spawn_blocking(move || raw::sqlite_queue_floor(&fd, n, 256))
        .await
        .expect("floor");
    let floor_rate = n as f64 / floor.as_secs_f64();
    let mut figures = serde_json::Map::new();
    for parallel in parallels() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rt = open(dir.path(), parallel).await;
        let rate = closure_rate(&rt, n).await;
        figures.insert(
            format!("max_parallel_{parallel}_tasks_per_s"),
            json!(round(rate)),
        );
        figures.insert(
            format!("max_parallel_{parallel}_ratio"),
            json!(round3(rate / floor_rate)),
        );
        rt.shutdown().await;
    }
    let mut out = json!({
        "figure": "closure_throughput",
        "tasks": n,
        "baseline": "bare SQLite, same pragmas: insert, claim, finish and an event each, 256 jobs a transaction",
        "baseline_tasks_per_s": round(floor_rate),
        "goal": ">= 0.3 x baseline at max_parallel 64; >= 10,000/s at max_parallel 2",
    });
    if let Value::Object(o) = &mut out {
        o.extend(figures);
    }
    out
}

/// The closure_throughput work on a PostgreSQL database (a throwaway server on this
/// machine, over its Unix socket), next to the same runtime on SQLite in this run.
pub async fn closure_throughput_postgres() -> Value {
    let n = crate::task_count(20_000);
    let mut out = json!({
        "figure": "closure_throughput_postgres",
        "tasks": n,
        "baseline": "the same runtime on SQLite",
        "goal": "none set: what a shared database costs against an embedded one",
    });
    for parallel in parallels() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rt = open(dir.path(), parallel).await;
        let sqlite = closure_rate(&rt, n).await;
        rt.shutdown().await;
        let db = meanwhile_testpg::TestDb::new().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = RuntimeConfig::new(dir.path().join("home"));
        cfg.default_max_parallel = Some(parallel);
        cfg.default_cwd = Some(dir.path().to_path_buf());
        cfg.database_url = Some(db.url());
        let rt = Runtime::start(cfg, std::future::pending())
            .await
            .expect("a runtime on PostgreSQL");
        let pg = closure_rate(&rt, n).await;
        rt.shutdown().await;
        if let Value::Object(o) = &mut out {
            o.insert(
                format!("max_parallel_{parallel}_tasks_per_s"),
                json!(round(pg)),
            );
            o.insert(
                format!("max_parallel_{parallel}_sqlite_tasks_per_s"),
                json!(round(sqlite)),
            );
            o.insert(
                format!("max_parallel_{parallel}_ratio"),
                json!(round3(pg / sqlite)),
            );
        }
    }
    out
}
