//! The SQLite store: one writer thread that group-commits, and a pool of readers.
//!
//! Writes from every caller queue up for the writer thread, which runs all that are
//! waiting in one transaction (each in its own savepoint, so one failing write does not
//! undo the others), commits once, publishes the events, then answers the callers.
//! Durability therefore costs one commit per batch, not one per write.

mod audit;
mod ops;
#[cfg(feature = "plans")]
mod plans;
mod retention;
mod schema;

use meanwhile_core::http::LoopHealth;
pub use schema::SCHEMA_VERSION;

use crate::flow;
use crate::{
    AlertStore, AuditStore, BudgetStore, EventStore, LifecycleStore, NodeStore, QueueStore,
    ScheduleStore, SessionStore, TaskStore, TokenStore,
};
use crate::{
    AttemptEnd, Charged, Claim, ClaimRequest, CleanRequest, Finished, Fired, ListFilter, NewAlert,
    NewTask, Page, PruneRequest, Pruned, ScheduleFiring, Settled, StopOutcome, Store, StoreError,
    StoreFuture, Submitted, SubmittedAndClaimed, TakeOver,
};
use crate::{AuditKey, StoredToken};
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{Actor, AuditFilter, AuditPage, AuditVerdict, NodeBeat, NodeRow, TokenInfo};
use meanwhile_core::{
    Alert, AlertKind, Attempt, BudgetInfo, BudgetSpec, Event, Notification, Progress, QueueInfo,
    ScheduleInfo, ScheduleSpec, TaskId, TaskRecord, TaskState, Timestamp,
};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot, watch};

type Completer = Box<dyn FnOnce(Option<&str>) + Send>;
/// A queued write. It is handed the connection inside its savepoint, or the reason it
/// cannot run (the savepoint or the transaction could not be opened); either way it
/// says whether it changed the database, and gives back how to answer its caller once
/// the batch's commit is known.
type Job = Box<dyn FnOnce(Result<&Connection, &str>, &mut Vec<Event>) -> (bool, Completer) + Send>;

/// Most writes folded into one transaction.
const MAX_BATCH: usize = 512;
/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;

/// A [`Store`] on one SQLite file in WAL mode.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Mutex<Vec<Connection>>,
    events: broadcast::Sender<Event>,
    /// Asks the checkpoint thread for a truncating checkpoint.
    checkpoints: Mutex<mpsc::SyncSender<Checkpoint>>,
    /// Why the writer thread ended, once it has.
    broken: watch::Receiver<Option<String>>,
    /// The WAL's state, and its checkpointer's health.
    wal: Arc<WalState>,
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    // The text filter's case folding (see `ops::tasks::list`).
    conn.create_scalar_function(
        "mw_fold",
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(ctx
                .get::<Option<String>>(0)?
                .map(|s| crate::decode::fold_case(&s)))
        },
    )?;
    // Room for every statement the store prepares: an evicted one is compiled again
    // on its next use, which costs more than running it.
    conn.set_prepared_statement_cache_capacity(256);
    // Without this, a statement whose bound value the planner compared with a
    // partial index's condition (`run_after <= ?` against `tasks_pending`) is
    // compiled again whenever that value changes: every claim. The store's queries
    // name their partial indexes' conditions with literals, so plans do not change.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    // NORMAL in WAL mode keeps every commit across a crash of the process; only a
    // power loss can take back the last commits before a checkpoint.
    conn.execute_batch(
        "PRAGMA busy_timeout = 10000;
         PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -8192;
         PRAGMA temp_store = MEMORY;",
    )?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                what: format!("creating {}", dir.display()),
                source,
            })?;
        }
        let mut conn = open_connection(path, false)?;
        // Before the WAL: a database's first write fixes its page size and whether
        // it can shrink.
        page_layout(&conn)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        schema::migrate(&mut conn)?;
        // Checkpoints copy the WAL back into the database and sync it; done by the
        // committing writer they would stall every caller of that batch, so a
        // thread of its own does them as the writer's WAL hook says it grows.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        // A WAL that was reset keeps at most this much of its file.
        conn.execute_batch(&format!("PRAGMA journal_size_limit = {WAL_TRUNCATE_AT}"))?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let page_size = page_size.max(512) as u64;
        let wal = Arc::new(WalState::new());
        let frames = wal.clone();
        // Called by SQLite after each commit with the frames now in the WAL.
        conn.wal_hook(Some(
            move |_: &mut rusqlite::hooks::Wal, pages: std::ffi::c_int| {
                frames.frames.store(pages.max(0) as u64, Ordering::Relaxed);
                Ok(())
            },
        ))?;
        if counting_statements() {
            conn.trace_v2(
                rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
                Some(|_: rusqlite::trace::TraceEvent<'_>| {
                    STATEMENTS.fetch_add(1, Ordering::Relaxed);
                }),
            )?;
        }
        let checkpointer = open_connection(path, false)?;
        let (ask_tx, ask_rx) = mpsc::sync_channel::<Checkpoint>(8);
        let (broken_tx, broken) = watch::channel(None);
        let idle = CHECKPOINT_IDLE;
        let wal2 = wal.clone();
        let wal_health = wal.clone();
        std::thread::Builder::new()
            .name("meanwhile-store-checkpoint".into())
            .spawn(move || checkpoints(checkpointer, ask_rx, wal2, idle))
            .map_err(|source| StoreError::Io {
                what: "starting the store's checkpoint thread".into(),
                source,
            })?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (events, _) = broadcast::channel(4096);
        let publisher = events.clone();
        let grown = ask_tx.clone();
        std::thread::Builder::new()
            .name("meanwhile-store-writer".into())
            .spawn(move || {
                // Whatever ends this thread (a panic included) leaves a store that
                // can no longer write: say so, so that the process can end loudly
                // rather than answer every write with an error for ever.
                let _guard = WriterGuard(broken_tx);
                writer_loop(conn, rx, publisher, grown, wal, page_size)
            })
            .map_err(|source| StoreError::Io {
                what: "starting the store's writer thread".into(),
                source,
            })?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(tx),
                readers: Mutex::new(Vec::new()),
                events,
                checkpoints: Mutex::new(ask_tx),
                broken,
                wal: wal_health,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in the writer's next batch; answers after the batch commits.
    ///
    /// The events `f` records are appended to the audit trail in the same savepoint,
    /// as made by the actor of the caller (see [`crate::acting`]), read here, in the
    /// caller's task: a change and its audit record commit together or not at all.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut Vec<Event>) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let actor = crate::current_actor();
        self.write_as(actor, f)
    }

    /// [`SqliteStore::write`] for `actor`.
    fn write_as<T: Send + 'static>(
        &self,
        actor: Actor,
        f: impl FnOnce(&Connection, &mut Vec<Event>) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        self.write_mixed(actor, move |conn, events, _| f(conn, events))
    }

    /// [`SqliteStore::write_as`], where `f` records the events of what it does for
    /// `actor` in the first list and those of what meanwhile does by itself in the
    /// same write in the second: each is audited as made by its own.
    fn write_mixed<T: Send + 'static>(
        &self,
        actor: Actor,
        f: impl FnOnce(&Connection, &mut Vec<Event>, &mut Vec<Event>) -> Result<T, StoreError>
        + Send
        + 'static,
    ) -> StoreFuture<'static, T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn, events| {
            let result = match conn {
                Ok(conn) => {
                    let mut own = Vec::new();
                    f(conn, events, &mut own).and_then(|v| {
                        audit::record_events(conn, &actor, events)?;
                        audit::record_events(conn, &Actor::Meanwhile, &own)?;
                        events.append(&mut own);
                        Ok(v)
                    })
                }
                Err(why) => Err(StoreError::CommitFailed(why.to_string())),
            };
            let ok = result.is_ok();
            let complete: Completer = Box::new(move |commit_error| {
                let _ = tx.send(match commit_error {
                    Some(e) => Err(StoreError::CommitFailed(e.to_string())),
                    None => result,
                });
            });
            (ok, complete)
        });
        let sent = self
            .inner
            .writer
            .lock()
            .map_err(|_| StoreError::Closed)
            .and_then(|w| w.send(job).map_err(|_| StoreError::Closed));
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    /// Runs `f` on a reader connection, off the async threads.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
                let conn = match pooled {
                    Some(c) => c,
                    None => open_connection(&inner.path, true)?,
                };
                let result = f(&conn);
                if let Ok(mut pool) = inner.readers.lock()
                    && pool.len() < MAX_IDLE_READERS
                {
                    pool.push(conn);
                }
                result
            })
            .await
            .map_err(|_| StoreError::Closed)?
        })
    }

    /// The store's list, filter and claim queries with sample parameters, for the
    /// test of the indexes they use (feature `plans`).
    #[cfg(feature = "plans")]
    #[doc(hidden)]
    pub fn planned_queries(&self) -> Vec<crate::plans::PlannedQuery> {
        plans::queries()
    }

    /// SQLite's plan of `sql` with `params` on a connection of this store, the detail
    /// of each step (`SEARCH tasks USING INDEX tasks_pending (queue=?)`).
    #[cfg(feature = "plans")]
    #[doc(hidden)]
    pub fn explain(
        &self,
        sql: &str,
        params: &[crate::plans::Param],
    ) -> StoreFuture<'static, Vec<String>> {
        let (sql, params) = (sql.to_string(), params.to_vec());
        self.read(move |conn| plans::explain(conn, &sql, &params))
    }

    /// Inserts `n` finished tasks at once, for benchmarks that need a large store.
    #[cfg(feature = "bench")]
    pub fn seed_finished(&self, n: u64, now: Timestamp) -> StoreFuture<'static, ()> {
        self.write(move |conn, _| ops::seed_finished(conn, n, now))
    }
}

/// Statements the writers of this process's SQLite stores ran (each trigger's body
/// counted as one more), while counted.
static STATEMENTS: AtomicU64 = AtomicU64::new(0);

/// Set by [`count_statements`].
static COUNT_STATEMENTS: AtomicBool = AtomicBool::new(false);

/// Whether the stores opened from now on count their writers' statements (see
/// [`statements_written`]); so does `MEANWHILE_COUNT_STATEMENTS` set in the
/// environment. Off by default: counting costs a call per statement.
pub fn count_statements(on: bool) {
    COUNT_STATEMENTS.store(on, Ordering::Relaxed);
}

fn counting_statements() -> bool {
    COUNT_STATEMENTS.load(Ordering::Relaxed)
        || std::env::var_os("MEANWHILE_COUNT_STATEMENTS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Statements the writers of this process's SQLite stores that count them ran (each
/// trigger's body one more), when counting is on; `None` otherwise.
pub fn statements_written() -> Option<u64> {
    counting_statements().then(|| STATEMENTS.load(Ordering::Relaxed))
}

/// The WAL is checkpointed without blocking the writer each time it grows by this
/// much (copied into the database; the file stays as large as it was).
const WAL_CHECKPOINT_STEP: u64 = 4 << 20;
/// A WAL holding this much is checkpointed and truncated, the writer held back for
/// the moment it takes; a reset WAL keeps no more of its file than this either
/// (`journal_size_limit`). A passive checkpoint alone cannot empty a WAL that is
/// written to all the time, and a WAL is only reused from its start once it was
/// emptied, so without this the file grows for as long as tasks are submitted.
const WAL_TRUNCATE_AT: u64 = 16 << 20;
/// With no commit for this long, the writer is idle and the WAL is truncated.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(2);

/// What the writer's WAL hook and commits tell the checkpoint thread.
struct WalState {
    /// Frames in the WAL after the latest commit.
    frames: AtomicU64,
    /// Commits since the store opened.
    commits: AtomicU64,
    /// What the checkpoint thread did wrong, for health checks.
    health: crate::health::LoopMeter,
    /// Held by whoever checkpoints: SQLite answers a second checkpointer busy at
    /// once, without waiting, so the writer's truncation would lose to a passive
    /// checkpoint in progress every time it met one, and the WAL would grow.
    checkpointing: Mutex<()>,
}

/// The name under which the checkpoint thread's failures are reported.
const CHECKPOINTER: &str = "checkpointer";

impl WalState {
    fn new() -> WalState {
        WalState {
            frames: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            checkpointing: Mutex::new(()),
            health: crate::health::LoopMeter::new(CHECKPOINTER),
        }
    }
}

/// A request to the checkpoint thread.
enum Checkpoint {
    /// The WAL grew by a step.
    Grown,
    /// Checkpoint everything and truncate the WAL, then answer.
    Truncate(oneshot::Sender<Result<(), StoreError>>),
}

/// Ends the store's writes when the writer thread ends, however it ends.
struct WriterGuard(watch::Sender<Option<String>>);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        let why = if std::thread::panicking() {
            "the store's writer thread panicked"
        } else {
            "the store's writer thread ended"
        };
        // At a clean close nobody is left to hear it, which is fine.
        let _ = self.0.send(Some(why.to_string()));
    }
}

/// The page size of the store's database, SQLite's smallest. Every commit writes each
/// page it changed to the WAL whole, and a task's commit changes a page of about a
/// dozen tables and indexes, mostly to add one small row: for the same rows, SQLite's
/// default of 4 KiB wrote about five times the WAL of these pages, and 1 KiB pages 1.5
/// times (`write_cost`). A row longer than 477 bytes keeps its tail in an overflow page.
pub const PAGE_SIZE: i64 = 512;

/// Gives the database [`PAGE_SIZE`] and makes it give freed pages back to the file
/// system over time (`incremental_vacuum` in the retention pass). A new database
/// takes both as it is made. One made without them is rebuilt once with `VACUUM`,
/// the only way SQLite changes either later; its page size only out of WAL mode,
/// which takes no other connection holding the file. A rebuild that cannot be done
/// (another process has the file open, or the disk has no room for the copy) is
/// logged, and the database is used as it is: it works the same, only with more
/// WAL per commit or without shrinking.
fn page_layout(conn: &Connection) -> Result<(), StoreError> {
    let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
    if pragma("page_size")? == PAGE_SIZE && pragma("auto_vacuum")? == 2 {
        return Ok(());
    }
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA auto_vacuum = INCREMENTAL;"
    ))?;
    // A new database takes them as they are; one already written needs the rebuild.
    if pragma("page_size")? == PAGE_SIZE && pragma("auto_vacuum")? == 2 {
        return Ok(());
    }
    let rebuild = || -> rusqlite::Result<()> {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            // Copies the WAL back first; it fails while anyone else has the file.
            let left: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
            if left.eq_ignore_ascii_case("wal") {
                tracing::warn!(
                    "another process has the database open, so its pages keep their size of {} bytes",
                    pragma("page_size")?
                );
                if pragma("auto_vacuum")? == 2 {
                    return Ok(());
                }
            }
        }
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))?;
        tracing::info!(
            "rebuilding the database once with pages of {PAGE_SIZE} bytes that it can give back (VACUUM)"
        );
        // The copy VACUUM builds goes to a temporary file, not to memory (the
        // connection's temp_store), so a large home does not take its size in RAM.
        conn.execute_batch("PRAGMA temp_store = FILE")?;
        let vacuumed = conn.execute_batch("VACUUM");
        conn.execute_batch("PRAGMA temp_store = MEMORY")?;
        vacuumed
    };
    if let Err(e) = rebuild() {
        tracing::warn!(
            "the database could not be rebuilt ({e}); it is used as it is, with pages of {} bytes{}",
            pragma("page_size")?,
            if pragma("auto_vacuum")? == 2 {
                ""
            } else {
                " and without giving freed pages back"
            }
        );
    }
    // A rebuild in WAL mode went through the WAL: give that space back at once.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Runs a checkpoint in `mode`; answers (busy, frames in the WAL, frames copied).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(bool, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get::<_, i64>(0)? != 0, r.get(1)?, r.get(2)?))
    })
}

/// Checkpoints and truncates the WAL, waiting (as long as the busy timeout) for the
/// writer and the readers of older snapshots.
fn truncate(conn: &Connection, wal: &WalState) -> Result<(), StoreError> {
    let _alone = wal.checkpointing.lock().unwrap_or_else(|e| e.into_inner());
    let (busy, log, _) = checkpoint(conn, "TRUNCATE")?;
    if busy {
        return Err(StoreError::CommitFailed(format!(
            "the WAL could not be truncated: {log} frames were still in use"
        )));
    }
    Ok(())
}

/// The checkpoint thread: runs [`checkpoint_loop`] until the store closes, again
/// after a pause when it panicked (counted as a restart).
fn checkpoints(
    conn: Connection,
    asks: mpsc::Receiver<Checkpoint>,
    wal: Arc<WalState>,
    idle: Duration,
) {
    let mut pause = Duration::from_millis(100);
    loop {
        let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            checkpoint_loop(&conn, &asks, &wal, idle)
        }));
        match round {
            Ok(()) => return,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                wal.health.record(Err(format!("panicked: {text}")), true);
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn checkpoint_loop(
    conn: &Connection,
    asks: &mpsc::Receiver<Checkpoint>,
    wal: &WalState,
    idle: Duration,
) {
    // The commit count at the latest truncation, and at the latest look.
    let mut truncated_at = 0;
    let mut seen = 0;
    let truncate_logged = |conn: &Connection, truncated_at: &mut u64| {
        let commits = wal.commits.load(Ordering::Relaxed);
        let r = crate::fault::point("store.checkpoint").and_then(|()| truncate(conn, wal));
        if r.is_ok() {
            *truncated_at = commits;
        }
        wal.health.record(
            r.map_err(|e| format!("checkpointing the database failed: {e}")),
            false,
        );
    };
    loop {
        match asks.recv_timeout(idle) {
            Ok(Checkpoint::Grown) => {
                // PASSIVE never blocks the writer; what it cannot copy now it copies
                // next time, or the writer's truncation does.
                let r = crate::fault::point("store.checkpoint").and_then(|()| {
                    let _alone = wal.checkpointing.lock().unwrap_or_else(|e| e.into_inner());
                    checkpoint(conn, "PASSIVE").map_err(StoreError::from)
                });
                wal.health.record(
                    r.map(|_| ())
                        .map_err(|e| format!("checkpointing the database failed: {e}")),
                    false,
                );
            }
            Ok(Checkpoint::Truncate(answer)) => {
                let commits = wal.commits.load(Ordering::Relaxed);
                let r = truncate(conn, wal);
                if r.is_ok() {
                    truncated_at = commits;
                }
                // The caller may have given up waiting.
                let _ = answer.send(r);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let commits = wal.commits.load(Ordering::Relaxed);
                if commits != truncated_at && commits == seen {
                    truncate_logged(conn, &mut truncated_at);
                }
                seen = commits;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The store is closing: leave an empty WAL behind.
                if wal.commits.load(Ordering::Relaxed) != truncated_at {
                    truncate_logged(conn, &mut truncated_at);
                }
                return;
            }
        }
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    events: broadcast::Sender<Event>,
    grown: mpsc::SyncSender<Checkpoint>,
    wal: Arc<WalState>,
    page_size: u64,
) {
    let step = (WAL_CHECKPOINT_STEP / page_size).max(1);
    // The WAL's frames when the checkpoint thread was last told it grew.
    let mut told = 0u64;
    // The WAL's frames at which the writer truncates next: pushed a step further
    // after a truncation that found the WAL in use, so that it is not tried again
    // after every commit, and its warning is said once for each streak.
    let truncate_at = (WAL_TRUNCATE_AT / page_size).max(1);
    let mut next_truncate = truncate_at;
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut completers = Vec::with_capacity(batch.len());
        // A test's fault here fails this batch (or panics the thread).
        let begun = crate::fault::point("store.writer")
            .map_err(|e| e.to_string())
            .and_then(|()| run(&conn, "BEGIN IMMEDIATE").map_err(|e| e.to_string()));
        if let Err(e) = begun {
            // Nothing runs: each caller hears why, and decides whether to try again.
            let why = format!("could not begin a write transaction: {e}");
            tracing::error!("{why}");
            for job in batch {
                let (_, complete) = job(Err(&why), &mut Vec::new());
                complete(Some(&why));
            }
            continue;
        }
        let mut committed_events = Vec::new();
        // The first error that leaves the transaction in doubt (a savepoint that
        // could not be released or rolled back): the whole batch is rolled back.
        let mut broken: Option<String> = None;
        for job in batch {
            if let Some(why) = &broken {
                let (_, complete) = job(Err(why), &mut Vec::new());
                completers.push(complete);
                continue;
            }
            if let Err(e) = run(&conn, "SAVEPOINT job") {
                let why = format!("could not open a savepoint: {e}");
                tracing::error!("{why}");
                let (_, complete) = job(Err(&why), &mut Vec::new());
                completers.push(complete);
                broken = Some(why);
                continue;
            }
            let mut job_events = Vec::new();
            let (ok, complete) = job(Ok(&conn), &mut job_events);
            completers.push(complete);
            let closed = if ok {
                run(&conn, "RELEASE job").map(|()| committed_events.append(&mut job_events))
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            };
            if let Err(e) = closed {
                let why = format!("could not close a savepoint: {e}");
                tracing::error!("{why}");
                broken = Some(why);
            }
        }
        let outcome = match broken {
            Some(why) => Err(why),
            None => run(&conn, "COMMIT").map_err(|e| e.to_string()),
        };
        match outcome {
            Ok(()) => {
                wal.commits.fetch_add(1, Ordering::Relaxed);
                let frames = wal.frames.load(Ordering::Relaxed);
                if frames < told {
                    // The WAL was reset and is being written from its start again.
                    told = 0;
                }
                if frames < truncate_at {
                    // Truncated, by this thread or the checkpoint thread.
                    next_truncate = truncate_at;
                }
                if frames >= next_truncate {
                    // Done here, between two batches: a checkpoint thread that waits
                    // for the write lock loses it to a busy writer every time, and
                    // the WAL would go on growing. The passive checkpoints before
                    // copied most of it already, so this is mostly the truncation.
                    match truncate(&conn, &wal) {
                        Ok(()) => {
                            told = 0;
                            next_truncate = truncate_at;
                            if std::mem::take(&mut failing) {
                                tracing::info!("the WAL was truncated again");
                            }
                        }
                        Err(e) => {
                            // A checkpoint running on the other connection, or a
                            // reader of an old snapshot: try again a step later.
                            next_truncate = frames + step;
                            if !std::mem::replace(&mut failing, true) {
                                tracing::warn!(
                                    "checkpointing the database failed, trying again as the WAL grows: {e}"
                                );
                            }
                        }
                    }
                } else if frames >= told + step {
                    told = frames;
                    // A checkpoint already asked for covers this one too.
                    let _ = grown.try_send(Checkpoint::Grown);
                }
                for e in committed_events {
                    // Nobody listening is not an error: the events are in the store.
                    let _ = events.send(e);
                }
                for complete in completers {
                    complete(None);
                }
            }
            Err(why) => {
                tracing::error!(
                    "a write batch of {} was rolled back: {why}",
                    completers.len()
                );
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    // Without a transaction open there is nothing left to undo.
                    tracing::error!("rolling back failed: {e}");
                }
                for complete in completers {
                    complete(Some(&why));
                }
            }
        }
    }
}

/// Runs one part of a write in a savepoint of its own: a part that fails leaves no
/// trace (nor events) and does not undo the others. The outer error means the
/// savepoint itself failed, which puts the whole write in doubt.
fn in_savepoint<T>(
    conn: &Connection,
    events: &mut Vec<Event>,
    f: impl FnOnce(&mut Vec<Event>) -> Result<T, StoreError>,
) -> Result<Result<T, StoreError>, StoreError> {
    run(conn, "SAVEPOINT part")?;
    let mut part_events = Vec::new();
    let r = f(&mut part_events);
    if r.is_ok() {
        run(conn, "RELEASE part")?;
        events.append(&mut part_events);
    } else {
        conn.execute_batch("ROLLBACK TO part; RELEASE part")?;
    }
    Ok(r)
}

/// Runs a statement without results through the statement cache: the writer runs
/// the same transaction and savepoint statements for every job, and compiling them
/// each time costs more than running them.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs `f` on each item as a part of the write: a part that fails leaves no trace and
/// does not undo the others, as with [`in_savepoint`] for each. All parts first run
/// under one savepoint, since SQLite copies a page into the savepoint journal the
/// first time each savepoint changes it (a savepoint per part copied the same table
/// and index pages once per part); only when a part fails are they run again, each in
/// a savepoint of its own.
fn each_part<I, T>(
    conn: &Connection,
    events: &mut Vec<Event>,
    items: &[I],
    mut f: impl FnMut(&mut Vec<Event>, &I) -> Result<T, StoreError>,
) -> Result<Vec<Result<T, StoreError>>, StoreError> {
    run(conn, "SAVEPOINT parts")?;
    let mut part_events = Vec::new();
    let mut done = Vec::with_capacity(items.len());
    for item in items {
        match f(&mut part_events, item) {
            Ok(v) => done.push(Ok(v)),
            Err(_) => break,
        }
    }
    if done.len() == items.len() {
        run(conn, "RELEASE parts")?;
        events.append(&mut part_events);
        return Ok(done);
    }
    run(conn, "ROLLBACK TO parts")?;
    run(conn, "RELEASE parts")?;
    items
        .iter()
        .map(|item| in_savepoint(conn, events, |ev| f(ev, item)))
        .collect()
}

fn owned(s: &str) -> String {
    s.to_string()
}

impl Store for SqliteStore {
    fn seal_clear_secrets(&self, seal: crate::secrets::Seal) -> StoreFuture<'_, u64> {
        self.write(move |conn, _| ops::seal_clear_secrets(conn, &seal))
    }

    fn prune(&self, req: PruneRequest) -> StoreFuture<'_, Pruned> {
        self.write(move |conn, _| retention::prune(conn, &req))
    }

    fn checkpoint(&self) -> StoreFuture<'_, ()> {
        let (tx, rx) = oneshot::channel();
        let sent = self
            .inner
            .checkpoints
            .lock()
            .map_err(|_| StoreError::Closed)
            .and_then(|c| {
                c.send(Checkpoint::Truncate(tx))
                    .map_err(|_| StoreError::Closed)
            });
        Box::pin(async move {
            sent?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn background(&self) -> Vec<LoopHealth> {
        self.inner.wal.health.report().into_iter().collect()
    }

    fn broken(&self) -> StoreFuture<'static, String> {
        let mut broken = self.inner.broken.clone();
        Box::pin(async move {
            match broken.wait_for(Option::is_some).await {
                Ok(why) => Ok(why.clone().unwrap_or_default()),
                // The sender went with the writer thread: it ended.
                Err(_) => Ok("the store's writer thread ended".to_string()),
            }
        })
    }
}

impl TaskStore for SqliteStore {
    fn submit(&self, tasks: Vec<NewTask>) -> StoreFuture<'_, Vec<Result<Submitted, StoreError>>> {
        self.write(move |conn, ev| {
            each_part(conn, ev, &tasks, |ev, t| ops::insert_task(conn, ev, t))
        })
    }

    fn get(&self, id: TaskId) -> StoreFuture<'_, TaskRecord> {
        self.read(move |conn| ops::load_task(conn, id))
    }

    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Page> {
        self.read(move |conn| ops::list(conn, &filter))
    }

    fn remove(&self, ids: Vec<TaskId>) -> StoreFuture<'_, Vec<TaskId>> {
        self.write(move |conn, ev| ops::remove(conn, ev, &ids))
    }

    fn clean(&self, req: CleanRequest) -> StoreFuture<'_, Vec<TaskId>> {
        self.write(move |conn, ev| {
            let ids = ops::clean_candidates(conn, &req)?;
            ops::remove(conn, ev, &ids)
        })
    }

    fn counts(&self) -> StoreFuture<'_, Vec<(String, TaskState, u64)>> {
        self.read(ops::counts)
    }
}

impl LifecycleStore for SqliteStore {
    fn submit_and_claim(
        &self,
        tasks: Vec<NewTask>,
        claim: Option<ClaimRequest>,
    ) -> StoreFuture<'_, SubmittedAndClaimed> {
        // The claim is meanwhile's doing, whoever submitted.
        self.write_mixed(crate::current_actor(), move |conn, ev, own| {
            let submitted = each_part(conn, ev, &tasks, |ev, t| ops::insert_task(conn, ev, t))?;
            let claim = match &claim {
                Some(req) => Some(in_savepoint(conn, own, |ev| ops::claim(conn, ev, req))?),
                None => None,
            };
            Ok(SubmittedAndClaimed { submitted, claim })
        })
    }

    fn attempts(&self, id: TaskId) -> StoreFuture<'_, Vec<Attempt>> {
        self.read(move |conn| ops::attempts(conn, id))
    }

    fn claim(&self, req: ClaimRequest) -> StoreFuture<'_, Claim> {
        self.write(move |conn, ev| ops::claim(conn, ev, &req))
    }

    fn record_step(&self, s: crate::NewStep) -> StoreFuture<'_, u32> {
        self.write(move |conn, ev| ops::record_step(conn, ev, &s))
    }

    fn steps(
        &self,
        id: TaskId,
        attempt: Option<u32>,
    ) -> StoreFuture<'_, Vec<meanwhile_core::Step>> {
        self.read(move |conn| ops::steps(conn, id, attempt))
    }

    fn set_pid(&self, id: TaskId, attempt: u32, pid: i32) -> StoreFuture<'_, ()> {
        self.write(move |conn, ev| {
            flow::ready(flow::set_pid(&mut ops::lite(conn, ev), id, attempt, pid))
        })
    }

    fn renew(&self, node: &str, lease_until: Timestamp) -> StoreFuture<'_, Vec<TaskId>> {
        let node = owned(node);
        self.write(move |conn, _| ops::renew(conn, &node, lease_until))
    }

    fn rescue(&self, end: AttemptEnd, now: Timestamp) -> StoreFuture<'_, Option<Finished>> {
        self.write(move |conn, ev| flow::ready(flow::rescue(&mut ops::lite(conn, ev), &end, now)))
    }

    fn take_over(&self, to: TakeOver) -> StoreFuture<'_, Option<TaskRecord>> {
        self.write(move |conn, ev| flow::ready(flow::take_over(&mut ops::lite(conn, ev), &to)))
    }

    fn finish_attempt(&self, end: AttemptEnd) -> StoreFuture<'_, Option<Finished>> {
        self.write(move |conn, ev| ops::finish_attempt(conn, ev, &end))
    }

    fn settle_and_claim(
        &self,
        ends: Vec<AttemptEnd>,
        claim: Option<ClaimRequest>,
    ) -> StoreFuture<'_, Settled> {
        self.write(move |conn, ev| {
            let finished = each_part(conn, ev, &ends, |ev, end| {
                ops::finish_attempt(conn, ev, end)
            })?;
            let claim = match &claim {
                Some(req) => Some(in_savepoint(conn, ev, |ev| ops::claim(conn, ev, req))?),
                None => None,
            };
            Ok(Settled { finished, claim })
        })
    }

    fn release(
        &self,
        id: TaskId,
        attempt: u32,
        now: Timestamp,
    ) -> StoreFuture<'_, Option<TaskRecord>> {
        self.write(move |conn, ev| {
            flow::ready(flow::release(&mut ops::lite(conn, ev), id, attempt, now))
        })
    }

    fn request_stop(
        &self,
        id: TaskId,
        now: Timestamp,
        force: bool,
    ) -> StoreFuture<'_, StopOutcome> {
        self.write(move |conn, ev| {
            flow::ready(flow::request_stop(&mut ops::lite(conn, ev), id, now, force))
        })
    }

    fn retry(&self, id: TaskId, now: Timestamp) -> StoreFuture<'_, TaskRecord> {
        self.write(move |conn, ev| flow::ready(flow::retry(&mut ops::lite(conn, ev), id, now)))
    }

    fn set_progress(&self, id: TaskId, progress: Progress) -> StoreFuture<'_, ()> {
        self.write(move |conn, ev| {
            flow::ready(flow::set_progress(&mut ops::lite(conn, ev), id, &progress))
        })
    }

    fn set_live(&self, update: crate::LiveUpdate) -> StoreFuture<'_, ()> {
        self.write(move |conn, ev| flow::ready(flow::set_live(&mut ops::lite(conn, ev), &update)))
    }

    fn running(
        &self,
        node: Option<&str>,
        expired_before: Option<Timestamp>,
    ) -> StoreFuture<'_, Vec<(TaskRecord, Attempt)>> {
        let node = node.map(owned);
        self.read(move |conn| ops::running(conn, node.as_deref(), expired_before))
    }

    fn next_wakeup(&self, now: Timestamp) -> StoreFuture<'_, Option<Timestamp>> {
        self.read(move |conn| ops::next_wakeup(conn, now))
    }

    fn last_ends(&self, queue: &str, n: u32) -> StoreFuture<'_, Vec<(TaskId, TaskState)>> {
        let queue = owned(queue);
        self.read(move |conn| ops::last_ends(conn, &queue, n))
    }
}

impl QueueStore for SqliteStore {
    fn queues(&self) -> StoreFuture<'_, Vec<QueueInfo>> {
        self.read(ops::queues)
    }

    fn set_queue(&self, name: &str, change: QueueUpdate) -> StoreFuture<'_, QueueInfo> {
        let name = owned(name);
        self.write(move |conn, ev| ops::set_queue(conn, ev, &name, &change))
    }

    fn remove_queue(&self, name: &str) -> StoreFuture<'_, ()> {
        let name = owned(name);
        self.write(move |conn, ev| ops::remove_queue(conn, ev, &name))
    }
}

impl SessionStore for SqliteStore {
    fn open_agent_session(
        &self,
        open: crate::OpenAgentSession,
    ) -> StoreFuture<'_, meanwhile_core::AgentSession> {
        self.write(move |conn, _| ops::open_agent_session(conn, &open))
    }

    fn record_session_step(&self, step: crate::NewAgentSessionStep) -> StoreFuture<'_, u32> {
        self.write(move |conn, _| ops::record_session_step(conn, &step))
    }

    fn agent_session_steps(&self, name: &str) -> StoreFuture<'_, Vec<meanwhile_core::Step>> {
        let name = owned(name);
        self.read(move |conn| ops::agent_session_steps(conn, &name))
    }

    fn agent_session(&self, name: &str) -> StoreFuture<'_, meanwhile_core::AgentSession> {
        let name = owned(name);
        self.read(move |conn| ops::agent_session(conn, &name))
    }

    fn agent_sessions(&self, limit: u32) -> StoreFuture<'_, Vec<meanwhile_core::AgentSession>> {
        self.read(move |conn| ops::agent_sessions(conn, limit))
    }

    fn forget_agent_session(&self, name: &str) -> StoreFuture<'_, bool> {
        let name = owned(name);
        self.write(move |conn, _| ops::forget_agent_session(conn, &name))
    }

    fn drain_notifications(&self, session: &str, limit: u32) -> StoreFuture<'_, Vec<Notification>> {
        let session = owned(session);
        self.write(move |conn, _| ops::drain_notifications(conn, &session, limit))
    }

    fn peek_notifications(&self, session: &str, limit: u32) -> StoreFuture<'_, Vec<Notification>> {
        let session = owned(session);
        self.read(move |conn| ops::peek_notifications(conn, &session, limit))
    }

    fn notifications_pending(&self) -> StoreFuture<'_, Vec<(String, u64)>> {
        self.read(ops::notifications_pending)
    }
}

impl EventStore for SqliteStore {
    fn events_after(&self, seq: i64, limit: u32) -> StoreFuture<'_, Vec<Event>> {
        self.read(move |conn| ops::events_after(conn, seq, limit))
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    fn reader_cursor(&self, name: &str) -> StoreFuture<'_, i64> {
        let name = owned(name);
        self.write(move |conn, _| ops::reader_cursor(conn, &name))
    }

    fn set_reader_cursor(&self, name: &str, seq: i64) -> StoreFuture<'_, ()> {
        let name = owned(name);
        self.write(move |conn, _| ops::set_reader_cursor(conn, &name, seq))
    }
}

impl AlertStore for SqliteStore {
    fn fire_alert(&self, alert: NewAlert, now: Timestamp) -> StoreFuture<'_, Option<Alert>> {
        self.write(move |conn, ev| {
            flow::ready(flow::fire_alert(&mut ops::lite(conn, ev), &alert, now))
        })
    }

    fn resolve_alert(
        &self,
        kind: AlertKind,
        subject: &str,
        message: &str,
        now: Timestamp,
    ) -> StoreFuture<'_, Option<Alert>> {
        let (subject, message) = (owned(subject), owned(message));
        self.write(move |conn, ev| {
            let db = &mut ops::lite(conn, ev);
            flow::ready(flow::resolve_alert(db, kind, &subject, &message, now))
        })
    }

    fn ack_alert(
        &self,
        id: i64,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreFuture<'_, Alert> {
        let by = crate::current_actor().who();
        self.write(move |conn, ev| {
            flow::ready(flow::ack_alert(
                &mut ops::lite(conn, ev),
                id,
                until,
                &by,
                now,
            ))
        })
    }

    fn repeat_alerts(
        &self,
        every: Option<Duration>,
        now: Timestamp,
    ) -> StoreFuture<'_, Vec<Alert>> {
        self.write(move |conn, ev| {
            flow::ready(flow::repeat_alerts(&mut ops::lite(conn, ev), every, now))
        })
    }

    fn alerts(&self, all: bool, limit: u32) -> StoreFuture<'_, Vec<Alert>> {
        self.read(move |conn| ops::alerts(conn, all, limit))
    }
}

impl ScheduleStore for SqliteStore {
    fn add_schedule(
        &self,
        spec: ScheduleSpec,
        next_fire: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreFuture<'_, ScheduleInfo> {
        self.write(move |conn, ev| ops::add_schedule(conn, ev, &spec, next_fire, now))
    }

    fn schedules(&self) -> StoreFuture<'_, Vec<ScheduleInfo>> {
        self.read(ops::schedules)
    }

    fn schedule(&self, name: &str) -> StoreFuture<'_, ScheduleInfo> {
        let name = owned(name);
        self.read(move |conn| ops::schedule(conn, &name))
    }

    fn remove_schedule(&self, name: &str) -> StoreFuture<'_, ()> {
        let name = owned(name);
        self.write(move |conn, ev| ops::remove_schedule(conn, ev, &name))
    }

    fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
        next_fire: Option<Timestamp>,
    ) -> StoreFuture<'_, ScheduleInfo> {
        let name = owned(name);
        self.write(move |conn, ev| ops::pause_schedule(conn, ev, &name, paused, next_fire))
    }

    fn fire_schedule(&self, firing: ScheduleFiring) -> StoreFuture<'_, Option<Fired>> {
        self.write(move |conn, ev| ops::fire_schedule(conn, ev, &firing))
    }
}

impl BudgetStore for SqliteStore {
    fn set_budget(
        &self,
        queue: &str,
        spec: BudgetSpec,
        now: Timestamp,
    ) -> StoreFuture<'_, BudgetInfo> {
        let queue = owned(queue);
        self.write(move |conn, ev| ops::set_budget(conn, ev, &queue, &spec, now))
    }

    fn budgets(&self) -> StoreFuture<'_, Vec<BudgetInfo>> {
        self.read(ops::budgets)
    }

    fn budget(&self, queue: &str) -> StoreFuture<'_, BudgetInfo> {
        let queue = owned(queue);
        self.read(move |conn| ops::budget(conn, &queue))
    }

    fn remove_budget(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, ()> {
        let queue = owned(queue);
        self.write(move |conn, ev| ops::remove_budget(conn, ev, &queue, now))
    }

    fn charge_usage(
        &self,
        task: TaskId,
        tokens: u64,
        cost_usd: f64,
        calls: u32,
        now: Timestamp,
    ) -> StoreFuture<'_, Charged> {
        self.write(move |conn, ev| ops::charge_usage(conn, ev, task, tokens, cost_usd, calls, now))
    }

    fn budget_gate(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, Option<BudgetInfo>> {
        let queue = owned(queue);
        self.read(move |conn| ops::budget_gate(conn, &queue, now))
    }

    fn roll_budget(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, Option<BudgetInfo>> {
        let queue = owned(queue);
        self.write(move |conn, ev| ops::roll_budget(conn, ev, &queue, now))
    }
}

impl AuditStore for SqliteStore {
    fn audit(&self, filter: AuditFilter) -> StoreFuture<'_, AuditPage> {
        self.read(move |conn| audit::list(conn, &filter))
    }

    fn verify_audit(&self, key: AuditKey) -> StoreFuture<'_, AuditVerdict> {
        self.read(move |conn| {
            // One snapshot for the checkpoint, the records and the highest number,
            // so that appends meanwhile do not look like a broken chain.
            let tx = conn.unchecked_transaction()?;
            let verdict = audit::verify(&tx, &key)?;
            tx.finish()?;
            Ok(verdict)
        })
    }

    fn prune_audit(&self, before: Timestamp, key: AuditKey) -> StoreFuture<'_, u64> {
        self.write(move |conn, _| audit::prune(conn, before, &key))
    }
}

impl TokenStore for SqliteStore {
    fn tokens(&self) -> StoreFuture<'_, Vec<StoredToken>> {
        self.read(audit::tokens)
    }

    fn add_token(&self, name: &str, hash: &str, now: Timestamp) -> StoreFuture<'_, TokenInfo> {
        let (name, hash) = (owned(name), owned(hash));
        let actor = crate::current_actor();
        self.write_as(actor.clone(), move |conn, _| {
            audit::add_token(conn, &actor, &name, &hash, now)
        })
    }

    fn remove_token(&self, name: &str) -> StoreFuture<'_, ()> {
        let name = owned(name);
        let actor = crate::current_actor();
        self.write_as(actor.clone(), move |conn, _| {
            audit::remove_token(conn, &actor, &name)
        })
    }
}

impl NodeStore for SqliteStore {
    fn beat(&self, beat: NodeBeat) -> StoreFuture<'_, ()> {
        self.write(move |conn, _| ops::beat(conn, &beat))
    }

    fn node_stopped(&self, name: &str, now: Timestamp) -> StoreFuture<'_, ()> {
        let name = owned(name);
        self.write(move |conn, _| ops::node_stopped(conn, &name, now))
    }

    fn nodes(&self) -> StoreFuture<'_, Vec<NodeRow>> {
        self.read(ops::nodes)
    }

    fn remove_node(&self, name: &str) -> StoreFuture<'_, ()> {
        let name = owned(name);
        self.write(move |conn, _| ops::remove_node(conn, &name))
    }
}
