//! The SQLite file seen from outside the store: a consistent copy of it taken while a
//! daemon writes to it (`meanwhile backup`), and SQLite's own check of its pages and
//! indexes (`meanwhile check`). Both open the file read-only, on a connection of
//! their own, so they need no running store and never block its writer: in WAL mode a
//! reader's snapshot stays whole while commits go on.

use crate::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// Problems `integrity_check` names at most; one damaged page can yield thousands.
const MAX_PROBLEMS: u32 = 100;

fn open_read_only(db: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A checkpoint of the daemon's may hold the WAL's lock for a moment.
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// Writes a copy of the database `db` to the new file `dest`: one snapshot, whatever
/// is committed meanwhile (`VACUUM INTO` reads it in one transaction), compacted, and
/// synced to disk before this returns. `dest` must not exist.
pub fn copy(db: &Path, dest: &Path) -> Result<(), StoreError> {
    if dest.exists() {
        return Err(StoreError::Io {
            what: format!("writing {}", dest.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "it exists already; name a new file",
            ),
        });
    }
    let conn = open_read_only(db)?;
    let target = dest.to_str().ok_or_else(|| StoreError::Io {
        what: format!("writing {}", dest.display()),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path is not UTF-8, which SQLite needs",
        ),
    })?;
    if let Err(e) = conn.execute("VACUUM INTO ?1", [target]) {
        // A copy cut short is no backup; what a failed VACUUM left, if anything,
        // would only be mistaken for one.
        if dest.exists()
            && let Err(rm) = std::fs::remove_file(dest)
        {
            tracing::warn!("removing the unfinished copy {}: {rm}", dest.display());
        }
        return Err(e.into());
    }
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|source| StoreError::Io {
            what: format!("syncing {}", dest.display()),
            source,
        })
}

/// What `PRAGMA integrity_check` finds wrong in the database `db` (its first 100
/// problems); empty when the file is sound. A page too damaged for the check to
/// go on is a problem found, named by SQLite's error, not a failure to check.
pub fn integrity_problems(db: &Path) -> Result<Vec<String>, StoreError> {
    let conn = open_read_only(db)?;
    let mut problems = Vec::new();
    match integrity_check(&conn, &mut problems) {
        Ok(()) => Ok(problems),
        Err(rusqlite::Error::SqliteFailure(e, message))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            problems.push(format!(
                "the check stopped: {}",
                message.unwrap_or_else(|| e.to_string())
            ));
            Ok(problems)
        }
        Err(e) => Err(e.into()),
    }
}

fn integrity_check(conn: &Connection, problems: &mut Vec<String>) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(&format!("PRAGMA integrity_check({MAX_PROBLEMS})"))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let line: String = row.get(0)?;
        if line != "ok" {
            problems.push(line);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &Path) -> std::path::PathBuf {
        let db = dir.join("meanwhile.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             CREATE INDEX t_v ON t (v);",
        )
        .unwrap();
        for i in 0..2000 {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i}")])
                .unwrap();
        }
        db
    }

    #[test]
    fn a_copy_taken_beside_a_writer_is_whole_and_sound() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        // A writer with an open transaction: the copy has what was committed.
        let writer = Connection::open(&db).unwrap();
        writer
            .execute_batch("BEGIN; INSERT INTO t (v) VALUES ('uncommitted');")
            .unwrap();
        let dest = dir.path().join("copy.db");
        copy(&db, &dest).unwrap();
        writer.execute_batch("COMMIT").unwrap();
        assert!(integrity_problems(&dest).unwrap().is_empty());
        let n: i64 = Connection::open(&dest)
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2000);
        // Never over an existing file.
        assert!(copy(&db, &dest).is_err());
        assert!(dest.exists(), "the earlier copy is left alone");
    }

    #[test]
    fn a_damaged_page_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        assert_eq!(integrity_problems(&db).unwrap(), Vec::<String>::new());
        let (page_size, root): (i64, i64) = {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
            (
                conn.query_row("PRAGMA page_size", [], |r| r.get(0))
                    .unwrap(),
                conn.query_row(
                    "SELECT rootpage FROM sqlite_master WHERE name = 't_v'",
                    [],
                    |r| r.get(0),
                )
                .unwrap(),
            )
        };
        // The page's cells, its header left whole.
        damage(
            &db,
            ((root - 1) * page_size + page_size / 2) as u64,
            (page_size / 2) as u64,
        );
        let problems = integrity_problems(&db).unwrap();
        assert!(!problems.is_empty());
        assert!(problems.len() <= MAX_PROBLEMS as usize, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains(&root.to_string())),
            "the page is named: {problems:?}"
        );
    }

    /// Overwrites `len` bytes at `at` with garbage, as a bad disk would.
    fn damage(db: &Path, at: u64, len: u64) {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&vec![0xA5; len as usize]).unwrap();
    }
}
