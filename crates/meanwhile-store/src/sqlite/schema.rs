//! The SQLite schema and its migrations, applied in order and recorded in a version table.

use crate::StoreError;
use rusqlite::Connection;

/// Each entry moves the schema one version up. Never edit a released entry: add one.
const MIGRATIONS: &[&str] = &[
    // Version 1: tasks, attempts, queues, counters, events, notifications.
    r#"
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        labels TEXT NOT NULL DEFAULT '[]',
        session TEXT,
        spec TEXT NOT NULL,
        idempotency_key TEXT,
        created_at INTEGER NOT NULL,
        run_after INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        attempt_base INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 1,
        exit_code INTEGER,
        signal INTEGER,
        reason TEXT,
        progress TEXT,
        result TEXT,
        node TEXT,
        lease_until INTEGER,
        stop_requested INTEGER NOT NULL DEFAULT 0
    );
    -- Partial: most tasks have no key, and an index entry per NULL would slow every
    -- insert into a large store.
    CREATE UNIQUE INDEX tasks_idempotency ON tasks(idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX tasks_pending ON tasks(queue, priority DESC, id) WHERE state = 'pending';
    CREATE INDEX tasks_pending_time ON tasks(run_after) WHERE state = 'pending' AND run_after IS NOT NULL;
    CREATE INDEX tasks_running ON tasks(queue, node) WHERE state = 'running';
    CREATE INDEX tasks_state ON tasks(state, id);
    CREATE INDEX tasks_queue ON tasks(queue, id);
    CREATE INDEX tasks_session ON tasks(session, id) WHERE session IS NOT NULL;
    CREATE INDEX tasks_name ON tasks(name, id);
    CREATE INDEX tasks_finished ON tasks(finished_at) WHERE finished_at IS NOT NULL;
    CREATE TABLE task_labels (
        label TEXT NOT NULL,
        task_id INTEGER NOT NULL,
        PRIMARY KEY (label, task_id)
    ) WITHOUT ROWID;
    CREATE TABLE deps (
        task_id INTEGER NOT NULL,
        dep_id INTEGER NOT NULL,
        PRIMARY KEY (task_id, dep_id)
    ) WITHOUT ROWID;
    CREATE INDEX deps_reverse ON deps(dep_id, task_id);
    CREATE TABLE attempts (
        task_id INTEGER NOT NULL,
        number INTEGER NOT NULL,
        node TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        outcome TEXT,
        exit_code INTEGER,
        signal INTEGER,
        reason TEXT,
        pid INTEGER,
        peak_rss_kb INTEGER,
        cpu_ms INTEGER,
        PRIMARY KEY (task_id, number)
    ) WITHOUT ROWID;
    CREATE TABLE queues (
        name TEXT PRIMARY KEY,
        max_parallel INTEGER NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO queues (name, max_parallel, paused) VALUES ('default', 4, 0);
    CREATE TABLE counts (
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (queue, state)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        task_id INTEGER,
        data TEXT NOT NULL
    );
    CREATE TABLE notifications (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        session TEXT NOT NULL,
        task_id INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX notifications_session ON notifications(session, seq);
    CREATE TABLE sessions (
        name TEXT PRIMARY KEY,
        cursor INTEGER NOT NULL DEFAULT 0
    );
    "#,
    // Version 2: concurrency keys and per-queue limits on them and on the rate of
    // starts. A queue's recent starts are kept only while it has a rate limit, one row
    // per claim time, and only for as long as they fall within the window.
    r#"
    ALTER TABLE tasks ADD COLUMN concurrency_key TEXT;
    ALTER TABLE queues ADD COLUMN per_key INTEGER;
    ALTER TABLE queues ADD COLUMN rate_count INTEGER;
    ALTER TABLE queues ADD COLUMN rate_window_ms INTEGER;
    CREATE TABLE queue_starts (
        queue TEXT NOT NULL,
        at INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (queue, at)
    ) WITHOUT ROWID;
    "#,
    // Version 3: schedules. `spec` is the schedule as added (JSON); `next_fire` is
    // NULL while paused, and is the compare-and-set guard of a firing.
    r#"
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        next_fire INTEGER,
        last_fire INTEGER,
        last_task INTEGER,
        fired INTEGER NOT NULL DEFAULT 0,
        missed INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    "#,
    // Version 4: readers of the event log that must not miss an event across restarts
    // (the runner of end hooks), each with the seq of the last event it is done with.
    r#"
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    );
    "#,
    // Version 5: alerts, at most one firing per cause (`kind`, `subject`), and the
    // queues' `alert_after` for the failures alert.
    r#"
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        state TEXT NOT NULL,
        message TEXT NOT NULL,
        task_id INTEGER,
        queue TEXT,
        fired_at INTEGER NOT NULL,
        resolved_at INTEGER
    );
    CREATE UNIQUE INDEX alerts_firing ON alerts(kind, subject) WHERE state = 'firing';
    ALTER TABLE queues ADD COLUMN alert_after INTEGER;
    "#,
    // Version 6: the audit trail, hash-chained (each record's `hash` covers the
    // previous record's and its own columns), the signed checkpoint retention leaves
    // where it pruned it, and the named API tokens, kept only as SHA-256 hashes.
    r#"
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        task_id INTEGER,
        summary TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_task ON audit(task_id, seq) WHERE task_id IS NOT NULL;
    CREATE TABLE audit_checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL,
        at INTEGER NOT NULL,
        mac TEXT NOT NULL
    );
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
    );
    "#,
    // Version 7: budgets. Each queue has at most one; its usage counts within the
    // current window (`window_end` NULL for a total one), `fired` is the alarms that
    // fired in it (a JSON array). What a task used is kept on its row, and a paused
    // queue says why (`user` or `budget`; a queue paused before this version was
    // paused by a user).
    r#"
    CREATE TABLE budgets (
        queue TEXT PRIMARY KEY,
        tokens INTEGER,
        cost_usd REAL,
        window_kind TEXT NOT NULL,
        alarms TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        window_end INTEGER,
        used_tokens INTEGER NOT NULL DEFAULT 0,
        used_cost_usd REAL NOT NULL DEFAULT 0,
        model_calls INTEGER NOT NULL DEFAULT 0,
        fired TEXT NOT NULL DEFAULT '[]',
        created_at INTEGER NOT NULL
    );
    ALTER TABLE tasks ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN model_calls INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN pause_reason TEXT;
    UPDATE queues SET pause_reason = 'user' WHERE paused <> 0;
    "#,
    // Version 8: the nodes sharing the store, each with its latest heartbeat; a node
    // that shut down cleanly has `stopped_at`.
    r#"
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        address TEXT,
        version TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL,
        stopped_at INTEGER
    );
    "#,
    // Version 9: the node a task is bound to (a closure's, which lives in the process
    // that submitted it); no other node claims it.
    r#"
    ALTER TABLE tasks ADD COLUMN owner TEXT;
    "#,
    // Version 10: what a running task is seen doing (waiting for input, the sockets
    // it listens on), as JSON; cleared when its attempt ends.
    r#"
    ALTER TABLE tasks ADD COLUMN live TEXT;
    "#,
    // Version 11: a person's acknowledgement of a firing alert (until when, by
    // whom), and when the sinks were last told it fires, for reminders.
    r#"
    ALTER TABLE alerts ADD COLUMN acked_at INTEGER;
    ALTER TABLE alerts ADD COLUMN acked_until INTEGER;
    ALTER TABLE alerts ADD COLUMN acked_by TEXT;
    ALTER TABLE alerts ADD COLUMN notified_at INTEGER;
    ALTER TABLE alerts ADD COLUMN notices INTEGER NOT NULL DEFAULT 1;
    UPDATE alerts SET notified_at = fired_at;
    "#,
    // Version 12: no query reads `tasks_running` (the running tasks of a queue, of a
    // key, of a node are found through `tasks_state` and `tasks_queue`), and each
    // claim and end wrote a page of it.
    r#"
    DROP INDEX IF EXISTS tasks_running;
    "#,
    // Version 13: the steps of attempts that can resume (an agent's model responses
    // and tool calls), so that the next daemon continues an attempt where it stopped.
    // A rowid table: a step can be large.
    r#"
    CREATE TABLE steps (
        task_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        n INTEGER NOT NULL,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE UNIQUE INDEX steps_key ON steps(task_id, attempt, n);
    "#,
    // Version 14: agent sessions that keep their conversation (`meanwhile agent
    // --session NAME`), step by step, so that `--resume` continues one after a closed
    // terminal or a reboot. Retention removes those idle past the tasks' age.
    r#"
    CREATE TABLE agent_sessions (
        name TEXT PRIMARY KEY,
        workspace TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        steps INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        holder TEXT NOT NULL
    );
    CREATE INDEX agent_sessions_updated ON agent_sessions(updated_at);
    CREATE TABLE agent_session_steps (
        session TEXT NOT NULL,
        n INTEGER NOT NULL,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE UNIQUE INDEX agent_session_steps_key ON agent_session_steps(session, n);
    "#,
    // Version 15: nothing here. In PostgreSQL it gives the shared logs their inboxes
    // and the counters their shards; one writer already orders SQLite's logs.
    "",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], one migration per transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [i as i64 + 1],
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use crate::prelude::*;
    use meanwhile_core::{TaskId, TaskSpec};

    /// A database written by a build that knew only version 1 opens, and its tasks and
    /// queues read back without concurrency keys or limits.
    #[tokio::test]
    async fn a_version_1_database_opens_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meanwhile.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version (version) VALUES (1);",
            )
            .unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            let spec = serde_json::to_string(&TaskSpec::shell("true")).unwrap();
            conn.execute(
                "INSERT INTO tasks (kind, name, state, queue, spec, created_at)
                 VALUES ('shell', 'true', 'pending', 'default', ?1, 1)",
                [spec],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let task = store.get(TaskId(1)).await.unwrap();
        assert_eq!(task.concurrency_key, None);
        assert_eq!((task.tokens, task.cost_usd, task.model_calls), (0, 0.0, 0));
        let queues = store.queues().await.unwrap();
        assert_eq!((queues[0].per_key, queues[0].rate), (None, None));
        assert_eq!(queues[0].pause_reason, None);
        assert!(store.budgets().await.unwrap().is_empty());
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(SCHEMA_VERSION, 15);
    }

    /// A queue paused before budgets existed was paused by a user: after the
    /// migration it says so, and no budget can resume it.
    #[tokio::test]
    async fn a_version_6_paused_queue_was_paused_by_a_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meanwhile.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                .unwrap();
            for (i, sql) in MIGRATIONS[..6].iter().enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [i as i64 + 1],
                )
                .unwrap();
            }
            conn.execute_batch(
                "INSERT INTO queues (name, max_parallel, paused) VALUES ('gpu', 1, 1)",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let queues = store.queues().await.unwrap();
        let gpu = queues.iter().find(|q| q.name == "gpu").unwrap();
        assert!(gpu.paused);
        assert_eq!(gpu.pause_reason, Some(meanwhile_core::PauseReason::User));
        let default = queues.iter().find(|q| q.name == "default").unwrap();
        assert_eq!((default.paused, default.pause_reason), (false, None));
    }
}
