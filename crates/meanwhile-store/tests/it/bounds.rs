//! The SQLite store's files stay bounded however long it runs: the WAL is
//! checkpointed and truncated as it grows and at a clean stop, and the space that
//! retention frees goes back to the file system.

use crate::support::{NOW, claim_req, end, submit};
use meanwhile_core::{AttemptOutcome, TaskSpec, Timestamp};
use meanwhile_store::prelude::*;
use meanwhile_store::{CleanRequest, PruneRequest, SqliteStore, Store};
use std::path::{Path, PathBuf};

/// The bound: the WAL never exceeds this in steady state.
const WAL_BOUND: u64 = 64 << 20;

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Runs one task through the store as a runtime would: a submit, a claim and an end,
/// each its own commit.
async fn one_task(store: &dyn Store, padding: &str) {
    let id = submit(store, TaskSpec::shell(format!("echo {padding}"))).await;
    let claim = store.claim(claim_req(1)).await.unwrap();
    assert_eq!(claim.tasks.len(), 1, "task {id} was claimed");
    let attempt = claim.tasks[0].attempt;
    store
        .finish_attempt(end(id, attempt, AttemptOutcome::Exited { code: 0 }))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_steady_writes_and_is_empty_after_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meanwhile.db");
    let store = SqliteStore::open(&db).unwrap();
    let wal = wal_path(&db);
    let padding = "x".repeat(2000);
    // How much the WAL grew in all, summed over the samples, and its largest size.
    let (mut appended, mut largest, mut last, mut shrank) = (0u64, 0u64, 0u64, 0u32);
    let mut tasks = 0;
    // Until far more has gone through the WAL than the bound lets it hold.
    while appended < 3 * WAL_BOUND {
        for _ in 0..50 {
            one_task(&store, &padding).await;
        }
        tasks += 50;
        let now = size(&wal);
        if now >= last {
            appended += now - last;
        } else {
            shrank += 1;
        }
        largest = largest.max(now);
        last = now;
        assert!(
            largest <= WAL_BOUND,
            "the WAL reached {largest} bytes after {tasks} tasks"
        );
    }
    assert!(shrank > 0, "the WAL was never truncated in {tasks} tasks");
    store.checkpoint().await.unwrap();
    assert_eq!(size(&wal), 0, "a clean stop leaves an empty WAL");
    // Still usable afterwards.
    one_task(&store, "after").await;
}

#[tokio::test]
async fn a_home_made_without_incremental_vacuum_migrates_on_its_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meanwhile.db");
    {
        let store = SqliteStore::open(&db).unwrap();
        submit(&store, TaskSpec::shell("echo kept")).await;
        store.checkpoint().await.unwrap();
    }
    // As every home made before the store set it.
    let raw = rusqlite::Connection::open(&db).unwrap();
    raw.execute_batch("PRAGMA auto_vacuum = NONE; VACUUM;")
        .unwrap();
    let mode: i64 = raw
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 0);
    drop(raw);
    let store = SqliteStore::open(&db).unwrap();
    let raw = rusqlite::Connection::open(&db).unwrap();
    let mode: i64 = raw
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "auto_vacuum is INCREMENTAL after the first start");
    let task = store.get(meanwhile_core::TaskId(1)).await.unwrap();
    assert_eq!(task.name, "echo kept", "the rebuild kept the tasks");
}

fn pragma(db: &std::path::Path, name: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

/// A connection to the database at `db` once no other has it open (a dropped store's
/// threads let go of it soon after), shown by taking it out of WAL mode.
async fn alone_with(db: &std::path::Path) -> rusqlite::Connection {
    let raw = rusqlite::Connection::open(db).unwrap();
    for _ in 0..1000 {
        if let Ok(mode) = raw.query_row("PRAGMA journal_mode = DELETE", [], |r| {
            r.get::<_, String>(0)
        }) && mode == "delete"
        {
            return raw;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the database at {} stayed open elsewhere", db.display());
}

/// Makes the store's database at `db` hold one task, then gives it SQLite's default
/// page of 4 KiB, as every home made before the store chose its page size.
async fn a_home_with_4_kib_pages(db: &std::path::Path) {
    {
        let store = SqliteStore::open(db).unwrap();
        submit(&store, TaskSpec::shell("echo kept")).await;
        store.checkpoint().await.unwrap();
    }
    let raw = alone_with(db).await;
    raw.execute_batch("PRAGMA page_size = 4096; VACUUM; PRAGMA journal_mode = WAL;")
        .unwrap();
    drop(raw);
    assert_eq!(pragma(db, "page_size"), 4096);
}

#[tokio::test]
async fn a_home_with_4_kib_pages_is_rebuilt_with_the_store_s_page_size_on_its_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meanwhile.db");
    a_home_with_4_kib_pages(&db).await;
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(pragma(&db, "page_size"), meanwhile_store::PAGE_SIZE);
    assert_eq!(pragma(&db, "auto_vacuum"), 2);
    let mode: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal", "back in WAL mode after the rebuild");
    let task = store.get(meanwhile_core::TaskId(1)).await.unwrap();
    assert_eq!(task.name, "echo kept", "the rebuild kept the tasks");
    one_task(&store, "after").await;
}

#[tokio::test]
async fn a_home_another_process_holds_open_starts_with_the_pages_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meanwhile.db");
    a_home_with_4_kib_pages(&db).await;
    // Another process in the middle of a read: the file cannot leave WAL mode.
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN").unwrap();
    let _: i64 = other
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .unwrap();
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(pragma(&db, "page_size"), 4096, "kept while held open");
    let task = store.get(meanwhile_core::TaskId(1)).await.unwrap();
    assert_eq!(task.name, "echo kept");
    one_task(&store, "after").await;
    other.execute_batch("COMMIT").unwrap();
    drop(other);
    drop(store);
    drop(alone_with(&db).await);
    // The next start, with the file to itself, rebuilds it.
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(pragma(&db, "page_size"), meanwhile_store::PAGE_SIZE);
    assert_eq!(
        store.get(meanwhile_core::TaskId(1)).await.unwrap().name,
        "echo kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn space_freed_by_retention_goes_back_to_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meanwhile.db");
    let store = SqliteStore::open(&db).unwrap();
    let padding = "y".repeat(4000);
    for _ in 0..1500 {
        one_task(&store, &padding).await;
    }
    store.checkpoint().await.unwrap();
    let full = size(&db);
    let removed = store
        .clean(CleanRequest {
            finished_before: Some(Timestamp(NOW.0 + 10_000)),
            keep_last: None,
        })
        .await
        .unwrap();
    assert!(!removed.is_empty());
    // Retention runs until nothing is left to remove, then sweeps what the removed
    // tasks left and gives back the free pages, a bounded number per pass.
    let mut passes = 0;
    loop {
        let more = store
            .clean(CleanRequest {
                finished_before: Some(Timestamp(NOW.0 + 10_000)),
                keep_last: None,
            })
            .await
            .unwrap();
        let mut req = PruneRequest::default();
        while let Some(next) = store.prune(req).await.unwrap().next {
            req.from_seq = next;
        }
        passes += 1;
        store.checkpoint().await.unwrap();
        if more.is_empty() && (size(&db) < full / 2 || passes >= 20) {
            break;
        }
    }
    let after = size(&db);
    // The audit trail stays (its own retention prunes it): the tasks' part goes.
    assert!(
        after < full / 2,
        "the file shrank from {full} to {after} bytes after the tasks were removed"
    );
    // The space is reused: the same work again grows the file back to about where it was.
    for _ in 0..1500 {
        one_task(&store, &padding).await;
    }
    store.checkpoint().await.unwrap();
    assert!(size(&db) <= full + full / 4);
}

#[tokio::test]
async fn a_store_counts_its_writers_statements_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    // Off by default: nothing is counted, and nothing is said.
    assert_eq!(meanwhile_store::statements_written(), None);
    let quiet = SqliteStore::open(&dir.path().join("quiet.db")).unwrap();
    one_task(&quiet, "a").await;
    meanwhile_store::count_statements(true);
    assert_eq!(meanwhile_store::statements_written(), Some(0));
    // A store opened before counting was asked for runs no counter.
    one_task(&quiet, "b").await;
    assert_eq!(meanwhile_store::statements_written(), Some(0));
    let counted = SqliteStore::open(&dir.path().join("counted.db")).unwrap();
    let opened = meanwhile_store::statements_written().unwrap();
    one_task(&counted, "c").await;
    let one = meanwhile_store::statements_written().unwrap() - opened;
    // A submit, a claim and an end: each a transaction of several statements.
    assert!(one >= 6, "{one} statements for a task");
    one_task(&counted, "d").await;
    let second = meanwhile_store::statements_written().unwrap() - opened - one;
    // The same work again: as many, or one fewer (a first write sets up a row).
    assert!(
        second <= one && second + 1 >= one,
        "{one} statements, then {second}"
    );
    meanwhile_store::count_statements(false);
    assert_eq!(meanwhile_store::statements_written(), None);
}
