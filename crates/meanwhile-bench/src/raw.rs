//! Baselines: what the machine does without meanwhile.

use std::ffi::CString;
use std::time::{Duration, Instant};

/// Runs `sh -c true` `n` times with `parallel` in flight through raw `posix_spawn`
/// and `waitpid`; returns the elapsed time.
pub fn posix_spawn_rate(n: usize, parallel: usize) -> Duration {
    let sh = CString::new("/bin/sh").unwrap();
    let args: Vec<CString> = ["sh", "-c", "true"]
        .iter()
        .map(|s| CString::new(*s).unwrap())
        .collect();
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    let env: Vec<CString> = std::env::vars()
        .map(|(k, v)| CString::new(format!("{k}={v}")).unwrap())
        .collect();
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr() as *mut _).collect();
    envp.push(std::ptr::null_mut());
    let start = Instant::now();
    let mut started = 0;
    let mut running = 0;
    let mut done = 0;
    while done < n {
        while running < parallel && started < n {
            let mut pid = 0;
            // SAFETY: valid NUL-terminated argv and envp arrays.
            let rc = unsafe {
                libc::posix_spawn(
                    &mut pid,
                    sh.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                )
            };
            assert_eq!(rc, 0, "posix_spawn failed");
            started += 1;
            running += 1;
        }
        // Any child of ours; an interrupted wait goes round again.
        if let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::empty()) {
            running -= 1;
            done += 1;
        }
    }
    start.elapsed()
}

/// The floor of the shell-task figures: `sh -c true` through raw `posix_spawn`, 2 in
/// flight, `n` times; in tasks per second.
pub async fn spawn_floor(n: usize) -> f64 {
    let took = tokio::task::spawn_blocking(move || posix_spawn_rate(n, 2))
        .await
        .expect("the posix_spawn baseline");
    n as f64 / took.as_secs_f64()
}

/// The seed-style manager's program, run by [`seed_manager`].
const SEED_MANAGER: &str = include_str!("../data/seed_manager.py");

/// Runs the seed-style manager with the system `python3` on `n` tasks of `true`,
/// `parallel` in flight; returns the time it measured from its first submit to its
/// last notification (the interpreter's start left out).
pub fn seed_manager(n: usize, parallel: usize) -> Duration {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(SEED_MANAGER)
        .arg(n.to_string())
        .arg(parallel.to_string())
        .output()
        .unwrap_or_else(|e| panic!("running python3 (the seed manager needs it): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the seed manager failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the seed manager printed {text:?}, not its seconds"));
    Duration::from_secs_f64(secs)
}

/// Peak resident set size of this process so far, in KiB.
pub fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The floor under a durable queue on SQLite: `n` jobs inserted, claimed and finished
/// with an event each, in transactions of `batch` jobs, with the store's pragmas (its
/// page size, WAL, synchronous NORMAL) on a file in `dir` (`floor.db`). Returns the
/// elapsed time.
pub fn sqlite_queue_floor(dir: &std::path::Path, n: usize, batch: usize) -> Duration {
    sqlite_queue_floor_with(dir, n, batch, true).0
}

/// [`sqlite_queue_floor`], with the WAL never checkpointed when `checkpoints` is
/// false; then also the WAL bytes the jobs wrote (its growth from their start).
pub fn sqlite_queue_floor_with(
    dir: &std::path::Path,
    n: usize,
    batch: usize,
    checkpoints: bool,
) -> (Duration, u64) {
    use rusqlite::params;
    let conn = rusqlite::Connection::open(dir.join("floor.db")).expect("floor database");
    conn.execute_batch(&format!(
        "PRAGMA page_size = {}",
        meanwhile_store::PAGE_SIZE
    ))
    .expect("page size");
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .expect("WAL");
    if !checkpoints {
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .expect("no checkpoints");
    }
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -8192;
         PRAGMA temp_store = MEMORY;
         CREATE TABLE jobs (
             id INTEGER PRIMARY KEY, state TEXT NOT NULL, queue TEXT NOT NULL,
             priority INTEGER NOT NULL, spec TEXT NOT NULL, created_at INTEGER NOT NULL,
             started_at INTEGER, finished_at INTEGER, exit_code INTEGER);
         CREATE INDEX jobs_pending ON jobs(queue, priority DESC, id) WHERE state = 'pending';
         CREATE TABLE events (
             seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, kind TEXT NOT NULL,
             task_id INTEGER, data TEXT NOT NULL);",
    )
    .expect("floor schema");
    let event = |conn: &rusqlite::Connection, kind: &str, id: i64| {
        conn.prepare_cached(
            "INSERT INTO events (at, kind, task_id, data) VALUES (?1, ?2, ?3, '{}')",
        )
        .expect("prepare")
        .execute(params![0, kind, id])
        .expect("event");
    };
    let wal = dir.join("floor.db-wal");
    let wal_size = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    let wal_at_start = wal_size();
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let k = batch.min(n - done);
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        for _ in 0..k {
            conn.prepare_cached(
                "INSERT INTO jobs (state, queue, priority, spec, created_at)
                 VALUES ('pending', 'default', 0, '{\"command\":\"true\"}', 0)",
            )
            .expect("prepare")
            .execute([])
            .expect("insert");
            event(&conn, "submitted", conn.last_insert_rowid());
        }
        conn.execute_batch("COMMIT").expect("commit");
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        let claimed: Vec<i64> = conn
            .prepare_cached(
                "UPDATE jobs SET state = 'running', started_at = 1 WHERE id IN
                    (SELECT id FROM jobs WHERE state = 'pending' AND queue = 'default'
                     ORDER BY priority DESC, id LIMIT ?1)
                 RETURNING id",
            )
            .expect("prepare")
            .query_map([k as i64], |r| r.get(0))
            .expect("claim")
            .collect::<Result<_, _>>()
            .expect("claimed");
        for id in &claimed {
            event(&conn, "started", *id);
        }
        conn.execute_batch("COMMIT").expect("commit");
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        for id in &claimed {
            conn.prepare_cached(
                "UPDATE jobs SET state = 'succeeded', finished_at = 2, exit_code = 0 WHERE id = ?1",
            )
            .expect("prepare")
            .execute([id])
            .expect("finish");
            event(&conn, "finished", *id);
        }
        conn.execute_batch("COMMIT").expect("commit");
        done += k;
    }
    (start.elapsed(), wal_size().saturating_sub(wal_at_start))
}
