//! `write_cost`: what a task costs the SQLite store in writes, for three paths (a
//! no-op closure at 64 in flight, a shell task through the runtime, a shell task
//! through the daemon one request at a time): statements its writer ran, and WAL
//! pages and bytes, per task; next to bare SQLite writing the same rows per job.
//!
//! The WAL is measured by pinning it: a read transaction begun while it was empty
//! keeps every checkpoint from copying its frames back and every writer from
//! starting it over, so it only grows, and what it grew by is what was written.

use crate::daemon::Daemon;
use crate::raw;
use meanwhile_core::{TaskId, TaskSpec, WaitMode};
use meanwhile_runtime::Runtime;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A WAL frame's header, before each page.
const FRAME_HEADER: u64 = 24;
/// The WAL file's own header.
const WAL_HEADER: u64 = 32;
/// The WAL size at which the store truncates it, waiting for readers: a pinned WAL
/// that grows past it holds the writer back (the figure stays right, only slower).
const STORE_TRUNCATES_AT: u64 = 16 << 20;

/// A pinned WAL; dropping it lets the store checkpoint again.
struct WalMeter {
    reader: rusqlite::Connection,
    wal: PathBuf,
    at_start: u64,
    page_size: u64,
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

impl WalMeter {
    /// Pins the WAL of the database at `db` once the store has emptied it (after
    /// 2 s without a commit). Panics when it was never empty within a minute.
    async fn pin(db: &Path) -> WalMeter {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let reader = rusqlite::Connection::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .expect("a reader of the store");
        let page_size: i64 = reader
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("page size");
        let page_size = page_size.max(512) as u64;
        let waiting = Instant::now();
        loop {
            reader.execute_batch("BEGIN").expect("begin");
            let _: i64 = reader
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .expect("a read");
            if size(&wal) == 0 {
                return WalMeter {
                    reader,
                    wal,
                    at_start: 0,
                    page_size,
                };
            }
            reader.execute_batch("COMMIT").expect("end of read");
            assert!(
                waiting.elapsed() < Duration::from_secs(60),
                "the store's WAL ({}) was never emptied",
                wal.display()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// WAL bytes, pages and commits written since the pin. A commit is a frame
    /// whose header records the database's size after it.
    fn written(&self) -> Written {
        let wal = std::fs::read(&self.wal).unwrap_or_default();
        let now = wal.len() as u64;
        let bytes = now.saturating_sub(self.at_start.max(WAL_HEADER));
        if now > STORE_TRUNCATES_AT {
            eprintln!(
                "write_cost: the pinned WAL grew to {now} bytes, past the store's truncation point; the figure holds, the run was slower"
            );
        }
        let frame = (self.page_size + FRAME_HEADER) as usize;
        let frames: Vec<&[u8]> = wal
            .get(WAL_HEADER as usize..)
            .unwrap_or_default()
            .chunks_exact(frame)
            .collect();
        let commits = frames.iter().filter(|f| f[4..8] != [0, 0, 0, 0]).count() as u64;
        let page_numbers = frames
            .iter()
            .map(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]))
            .collect();
        Written {
            bytes,
            pages: bytes / (self.page_size + FRAME_HEADER),
            commits,
            page_numbers,
        }
    }

    /// Lets the store checkpoint again; then which table or index each page written
    /// belongs to now, and how many of the written pages it took.
    fn release(self, written: &Written) -> Vec<(String, u64)> {
        let _ = self.reader.execute_batch("COMMIT");
        let mut owner = std::collections::HashMap::new();
        if let Ok(mut stmt) = self.reader.prepare("SELECT pageno, name FROM dbstat") {
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)));
            for (page, name) in rows.into_iter().flatten().flatten() {
                owner.insert(page as u32, name);
            }
        }
        let mut by: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for p in &written.page_numbers {
            let name = owner.get(p).cloned().unwrap_or_else(|| "(free)".into());
            *by.entry(name).or_default() += 1;
        }
        let mut by: Vec<(String, u64)> = by.into_iter().collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        by
    }
}

/// What a pinned WAL took.
struct Written {
    bytes: u64,
    pages: u64,
    commits: u64,
    /// The page each frame wrote.
    page_numbers: Vec<u32>,
}

/// One path's figures, per task.
struct Cost {
    statements: Option<u64>,
    wal: Written,
    /// Pages written by table or index, most first.
    by_object: Vec<(String, u64)>,
    tasks: usize,
}

impl Cost {
    fn insert(&self, out: &mut serde_json::Map<String, Value>, path: &str) {
        let per = |v: u64| (v as f64 / self.tasks as f64 * 100.0).round() / 100.0;
        out.insert(format!("{path}_tasks"), json!(self.tasks));
        let by: serde_json::Map<String, Value> = self
            .by_object
            .iter()
            .map(|(name, n)| (name.clone(), json!(per(*n))))
            .collect();
        out.insert(
            format!("{path}_wal_pages_per_task_by_object"),
            Value::Object(by),
        );
        out.insert(
            format!("{path}_statements_per_task"),
            self.statements.map_or(Value::Null, |s| json!(per(s))),
        );
        out.insert(
            format!("{path}_commits_per_task"),
            json!(per(self.wal.commits)),
        );
        out.insert(
            format!("{path}_wal_pages_per_task"),
            json!(per(self.wal.pages)),
        );
        out.insert(
            format!("{path}_wal_bytes_per_task"),
            json!(per(self.wal.bytes)),
        );
    }
}

/// Statements counted so far in this process.
fn statements() -> u64 {
    meanwhile_store::statements_written().unwrap_or(0)
}

/// Runs `work` on a runtime with `max_parallel`, its WAL pinned and its statements
/// counted.
async fn runtime_cost<F, Fut>(n: usize, max_parallel: u32, work: F) -> Cost
where
    F: FnOnce(Runtime) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = crate::engine::open(dir.path(), max_parallel).await;
    let meter = WalMeter::pin(&rt.home().database()).await;
    let before = statements();
    work(rt.clone()).await;
    let statements = statements() - before;
    let wal = meter.written();
    let by_object = meter.release(&wal);
    rt.shutdown().await;
    Cost {
        statements: Some(statements),
        wal,
        by_object,
        tasks: n,
    }
}

/// A shell task through the daemon, one request at a time: each submitted and
/// waited for before the next.
async fn daemon_cost(n: usize) -> Cost {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    let d = Daemon::start_with(&home, &[], &[("MEANWHILE_COUNT_STATEMENTS", "1")]).await;
    d.max_parallel(2).await;
    let counted = || async {
        let text = d.client.metrics().await.expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix("meanwhile_store_statements_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let meter = WalMeter::pin(&home.join("meanwhile.db")).await;
    let before = counted().await;
    for _ in 0..n {
        let id: TaskId = d
            .client
            .submit(&TaskSpec::shell("true"))
            .await
            .expect("submit");
        let w = d
            .client
            .wait(&[id], WaitMode::All, Some(Duration::from_secs(600)))
            .await
            .expect("wait");
        assert!(!w.timed_out);
    }
    let after = counted().await;
    let wal = meter.written();
    let by_object = meter.release(&wal);
    d.stop();
    Cost {
        statements: before.zip(after).map(|(b, a)| a - b),
        wal,
        by_object,
        tasks: n,
    }
}

/// The `write_cost` figure.
pub async fn write_cost() -> Value {
    let closures = crate::task_count(2000);
    let shells = crate::task_count(100).min(closures);
    meanwhile_store::count_statements(true);
    let closure = runtime_cost(closures, 64, |rt| async move {
        crate::engine::run_closures(&rt, closures).await;
    })
    .await;
    let runtime_shell = runtime_cost(shells, 2, |rt| async move {
        crate::engine::run_shells(&rt, shells, TaskSpec::shell("true")).await;
    })
    .await;
    meanwhile_store::count_statements(false);
    let daemon = daemon_cost(shells).await;

    // Bare SQLite writing a job's rows (insert, claim, finish, an event each):
    // 256 jobs a transaction, and one job a transaction (three commits a job).
    let floor = |batch: usize, n: usize| {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_, bytes) = raw::sqlite_queue_floor_with(dir.path(), n, batch, false);
        (bytes as f64 / n as f64).round()
    };
    let floor_batched = tokio::task::spawn_blocking(move || floor(256, closures))
        .await
        .expect("floor");
    let floor_single = tokio::task::spawn_blocking(move || floor(1, shells))
        .await
        .expect("floor");

    let mut out = serde_json::Map::new();
    out.insert("figure".into(), json!("write_cost"));
    out.insert(
        "baseline".into(),
        json!("bare SQLite with the store's pragmas, per job: an insert, a claim and a finish with an event each (6 statements); in transactions of 256 jobs, and of one job (3 commits a job)"),
    );
    out.insert(
        "baseline_wal_bytes_per_job_batched".into(),
        json!(floor_batched),
    );
    out.insert(
        "baseline_wal_bytes_per_job_single".into(),
        json!(floor_single),
    );
    closure.insert(&mut out, "closure");
    runtime_shell.insert(&mut out, "runtime_shell");
    daemon.insert(&mut out, "daemon");
    out.insert(
        "goal".into(),
        json!("closure_wal_bytes_per_task <= 2048; daemon_wal_bytes_per_task <= 16384"),
    );
    Value::Object(out)
}
