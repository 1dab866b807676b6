//! `meanwhile backup` while the daemon runs tasks, the copy restored into a home of
//! its own; `meanwhile check` on a sound home, on an audit record edited in the
//! file, and on a damaged page; and `backup` on PostgreSQL.

use crate::support::*;
use serde_json::Value;

#[test]
fn a_backup_taken_while_tasks_run_restores_into_a_home_that_lists_them() {
    let mut home = Home::new();
    home.serve(&[]);
    let ids: Vec<String> = (0..20)
        .map(|i| {
            home.ok(&["run", "--", &format!("echo {i}; sleep 0.{}", i % 5)])
                .trim()
                .to_string()
        })
        .collect();
    let file = home.dir.path().join("backup.db");
    let o = home.ok(&["backup", file.to_str().unwrap()]);
    assert!(o.contains("backed up"), "{o}");
    // Never over an existing file.
    let again = home.run(&["backup", file.to_str().unwrap()]);
    assert_eq!(code(&again), 1);
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    for id in &ids {
        wait_end(&home, id);
    }

    let copy = Home::new();
    std::fs::create_dir_all(&copy.home).unwrap();
    std::fs::copy(&file, copy.home.join("meanwhile.db")).unwrap();
    let listed = copy.json(&["ls", "--json", "--limit", "1000"]);
    let mut restored: Vec<String> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].to_string())
        .collect();
    restored.sort_by_key(|id| id.parse::<u64>().unwrap());
    assert_eq!(restored, ids, "every task submitted before the backup");
    let o = copy.run(&["check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn check_names_an_edited_audit_record_and_a_damaged_page() {
    let mut home = Home::new();
    home.serve(&[]);
    home.ok(&["run", "--wait", "--", "true"]);
    home.ok(&["queue", "set", "gpu", "-j", "1"]);
    let o = home.run(&["check"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("database intact"), "{out}");
    assert!(out.contains("audit trail intact"), "{out}");

    // One audit record changed in the file, with no daemon running.
    home.ok(&["daemon", "stop"]);
    sql(
        &home,
        "UPDATE audit SET summary = 'max_parallel 64' WHERE seq = 2",
    );
    let o = home.run(&["check", "--json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["database"]["problems"], serde_json::json!([]));
    assert_eq!(v["audit"]["first_bad_seq"], 2, "{v:#}");
    let o = home.run(&["check"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("audit trail broken at record 2"),
        "{}",
        stderr(&o)
    );

    // A page of an index overwritten, as a bad disk would.
    home.ok(&["daemon", "stop"]);
    let db = home.home.join("meanwhile.db");
    let (page_size, root): (i64, i64) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        (
            conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap(),
            conn.query_row(
                "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit' ORDER BY rootpage LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap(),
        )
    };
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        // The page's cells, its header left whole.
        f.seek(SeekFrom::Start(
            ((root - 1) * page_size + page_size / 2) as u64,
        ))
        .unwrap();
        f.write_all(&vec![0xA5; (page_size / 2) as usize]).unwrap();
    }
    let o = home.run(&["check"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("database damaged"), "{err}");
    assert!(err.contains(&root.to_string()), "the damaged page: {err}");
}

#[test]
fn backup_on_postgresql_says_to_use_pg_dump() {
    let home = Home::new();
    let mut c = home.cmd(&["backup", "out.db"]);
    c.env("MEANWHILE_DATABASE_URL", "postgres://db.example/meanwhile");
    let o = c.output().unwrap();
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("pg_dump"), "{}", stderr(&o));
    assert!(!home.dir.path().join("out.db").exists());
}

#[test]
fn backup_and_check_refuse_a_remote_daemon() {
    let home = Home::new();
    for args in [&["backup", "out.db"][..], &["check"]] {
        let mut c = home.cmd(args);
        c.env("MEANWHILE_URL", "http://127.0.0.1:1");
        let o = c.output().unwrap();
        assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("MEANWHILE_URL"), "{}", stderr(&o));
    }
}
