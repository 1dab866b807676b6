//! The PostgreSQL schema and its migrations: the same versions as SQLite's, with the
//! same meaning, each applied in its own transaction and recorded in a version
//! table. Nodes that start at once take turns through an advisory lock.
//!
//! Times are integer milliseconds (BIGINT) as in SQLite, so both stores answer
//! alike. Where SQLite relies on its single writer, this schema adds what a shared
//! database needs: the inboxes writes append to and `log_order`, their place in
//! line; `log_head`, the counters of the event log and the audit chain, which the
//! sequencer moves on; and counters split into shards (see `sequencer.rs`).

use super::col;
use crate::StoreError;
use crate::postgres::Client;

/// The advisory lock key that serializes migrations ("meanwhil" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d65_616e_7768_696c;

/// Each entry moves the schema one version up. Never edit a released entry: add one.
const MIGRATIONS: &[&str] = &[
    // Version 1: tasks, attempts, queues, counters, events, notifications.
    r#"
    CREATE TABLE tasks (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        queue TEXT NOT NULL,
        priority BIGINT NOT NULL DEFAULT 0,
        labels TEXT NOT NULL DEFAULT '[]',
        session TEXT,
        spec TEXT NOT NULL,
        idempotency_key TEXT,
        created_at BIGINT NOT NULL,
        run_after BIGINT,
        started_at BIGINT,
        finished_at BIGINT,
        attempts BIGINT NOT NULL DEFAULT 0,
        attempt_base BIGINT NOT NULL DEFAULT 0,
        max_attempts BIGINT NOT NULL DEFAULT 1,
        exit_code BIGINT,
        signal BIGINT,
        reason TEXT,
        progress TEXT,
        result TEXT,
        node TEXT,
        lease_until BIGINT,
        stop_requested BOOLEAN NOT NULL DEFAULT false
    );
    CREATE UNIQUE INDEX tasks_idempotency ON tasks(idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX tasks_pending ON tasks(queue, priority DESC, id) WHERE state = 'pending';
    CREATE INDEX tasks_pending_time ON tasks(run_after) WHERE state = 'pending' AND run_after IS NOT NULL;
    CREATE INDEX tasks_running ON tasks(queue, node) WHERE state = 'running';
    CREATE INDEX tasks_lease ON tasks(lease_until) WHERE state = 'running';
    CREATE INDEX tasks_state ON tasks(state, id);
    CREATE INDEX tasks_queue ON tasks(queue, id);
    CREATE INDEX tasks_session ON tasks(session, id) WHERE session IS NOT NULL;
    CREATE INDEX tasks_name ON tasks(name, id);
    CREATE INDEX tasks_finished ON tasks(finished_at) WHERE finished_at IS NOT NULL;
    CREATE TABLE task_labels (
        label TEXT NOT NULL,
        task_id BIGINT NOT NULL,
        PRIMARY KEY (label, task_id)
    );
    CREATE TABLE deps (
        task_id BIGINT NOT NULL,
        dep_id BIGINT NOT NULL,
        PRIMARY KEY (task_id, dep_id)
    );
    CREATE INDEX deps_reverse ON deps(dep_id, task_id);
    CREATE TABLE attempts (
        task_id BIGINT NOT NULL,
        number BIGINT NOT NULL,
        node TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT,
        outcome TEXT,
        exit_code BIGINT,
        signal BIGINT,
        reason TEXT,
        pid BIGINT,
        peak_rss_kb BIGINT,
        cpu_ms BIGINT,
        PRIMARY KEY (task_id, number)
    );
    CREATE TABLE queues (
        name TEXT PRIMARY KEY,
        max_parallel BIGINT NOT NULL,
        paused BOOLEAN NOT NULL DEFAULT false
    );
    INSERT INTO queues (name, max_parallel, paused) VALUES ('default', 4, false);
    CREATE TABLE counts (
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (queue, state)
    );
    CREATE TABLE events (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        task_id BIGINT,
        data TEXT NOT NULL
    );
    CREATE TABLE notifications (
        seq BIGSERIAL PRIMARY KEY,
        session TEXT NOT NULL,
        task_id BIGINT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX notifications_session ON notifications(session, seq);
    CREATE TABLE sessions (
        name TEXT PRIMARY KEY,
        cursor BIGINT NOT NULL DEFAULT 0
    );
    -- The head of the event log: the last seq given. Its row lock is held by every
    -- transaction that appends, from its first append to its commit.
    CREATE TABLE log_head (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        events_seq BIGINT NOT NULL
    );
    INSERT INTO log_head (id, events_seq) VALUES (1, 0);
    "#,
    // Version 2: concurrency keys and per-queue limits on them and on the rate of
    // starts. A queue's recent starts are kept only while it has a rate limit, one row
    // per claim time, and only for as long as they fall within the window.
    r#"
    ALTER TABLE tasks ADD COLUMN concurrency_key TEXT;
    ALTER TABLE queues ADD COLUMN per_key BIGINT;
    ALTER TABLE queues ADD COLUMN rate_count BIGINT;
    ALTER TABLE queues ADD COLUMN rate_window_ms BIGINT;
    CREATE TABLE queue_starts (
        queue TEXT NOT NULL,
        at BIGINT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (queue, at)
    );
    "#,
    // Version 3: schedules. `spec` is the schedule as added (JSON); `next_fire` is
    // NULL while paused, and is the compare-and-set guard of a firing.
    r#"
    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        paused BOOLEAN NOT NULL DEFAULT false,
        next_fire BIGINT,
        last_fire BIGINT,
        last_task BIGINT,
        fired BIGINT NOT NULL DEFAULT 0,
        missed BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL
    );
    "#,
    // Version 4: readers of the event log that must not miss an event across restarts
    // (the runner of end hooks), each with the seq of the last event it is done with.
    r#"
    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        seq BIGINT NOT NULL
    );
    "#,
    // Version 5: alerts, at most one firing per cause (`kind`, `subject`), and the
    // queues' `alert_after` for the failures alert.
    r#"
    CREATE TABLE alerts (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        state TEXT NOT NULL,
        message TEXT NOT NULL,
        task_id BIGINT,
        queue TEXT,
        fired_at BIGINT NOT NULL,
        resolved_at BIGINT
    );
    CREATE UNIQUE INDEX alerts_firing ON alerts(kind, subject) WHERE state = 'firing';
    ALTER TABLE queues ADD COLUMN alert_after BIGINT;
    "#,
    // Version 6: the audit trail, hash-chained (each record's `hash` covers the
    // previous record's and its own columns), the signed checkpoint retention leaves
    // where it pruned it, and the named API tokens, kept only as SHA-256 hashes.
    // `log_head.audit_seq` is the highest record number ever given (SQLite's
    // `sqlite_sequence`), so a removed tail shows.
    r#"
    CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        task_id BIGINT,
        summary TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_task ON audit(task_id, seq) WHERE task_id IS NOT NULL;
    CREATE TABLE audit_checkpoint (
        id BIGINT PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        at BIGINT NOT NULL,
        mac TEXT NOT NULL
    );
    CREATE TABLE tokens (
        name TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        created_at BIGINT NOT NULL
    );
    ALTER TABLE log_head ADD COLUMN audit_seq BIGINT NOT NULL DEFAULT 0;
    "#,
    // Version 7: budgets. Each queue has at most one; its usage counts within the
    // current window (`window_end` NULL for a total one), `fired` is the alarms that
    // fired in it (a JSON array). What a task used is kept on its row, and a paused
    // queue says why (`user` or `budget`; a queue paused before this version was
    // paused by a user).
    r#"
    CREATE TABLE budgets (
        queue TEXT PRIMARY KEY,
        tokens BIGINT,
        cost_usd DOUBLE PRECISION,
        window_kind TEXT NOT NULL,
        alarms TEXT NOT NULL,
        window_start BIGINT NOT NULL,
        window_end BIGINT,
        used_tokens BIGINT NOT NULL DEFAULT 0,
        used_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        model_calls BIGINT NOT NULL DEFAULT 0,
        fired TEXT NOT NULL DEFAULT '[]',
        created_at BIGINT NOT NULL
    );
    ALTER TABLE tasks ADD COLUMN tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN model_calls BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE queues ADD COLUMN pause_reason TEXT;
    UPDATE queues SET pause_reason = 'user' WHERE paused;
    "#,
    // Version 8: the nodes sharing the store, each with its latest heartbeat; a node
    // that shut down cleanly has `stopped_at`.
    r#"
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        address TEXT,
        version TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL,
        stopped_at BIGINT
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
    ALTER TABLE alerts ADD COLUMN acked_at BIGINT;
    ALTER TABLE alerts ADD COLUMN acked_until BIGINT;
    ALTER TABLE alerts ADD COLUMN acked_by TEXT;
    ALTER TABLE alerts ADD COLUMN notified_at BIGINT;
    ALTER TABLE alerts ADD COLUMN notices BIGINT NOT NULL DEFAULT 1;
    UPDATE alerts SET notified_at = fired_at;
    "#,
    // Version 12: `tasks_lease` held the same rows as `tasks_running` (the running
    // tasks), and no query searches by `lease_until`: each claim and end wrote a
    // page of both.
    r#"
    DROP INDEX IF EXISTS tasks_lease;
    "#,
    // Version 13: the steps of attempts that can resume, as in SQLite.
    r#"
    CREATE TABLE steps (
        task_id BIGINT NOT NULL,
        attempt BIGINT NOT NULL,
        n BIGINT NOT NULL,
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (task_id, attempt, n)
    );
    "#,
    // Version 14: agent sessions that keep their conversation, as in SQLite.
    r#"
    CREATE TABLE agent_sessions (
        name TEXT PRIMARY KEY,
        workspace TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        steps BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        holder TEXT NOT NULL
    );
    CREATE INDEX agent_sessions_updated ON agent_sessions(updated_at);
    CREATE TABLE agent_session_steps (
        session TEXT NOT NULL,
        n BIGINT NOT NULL,
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (session, n)
    );
    "#,
    // Version 15: writes no longer take `log_head`'s lock. What a write appends to
    // the ordered logs goes into an inbox, under the place in line (`ord`) it took
    // from `log_order` just before its commit; the sequencer moves committed rows
    // into `events`, `notifications` and `audit` in that order (see
    // `sequencer.rs`). The per-state counters are split into shards, one chosen per
    // connection, so two writes counting the same state no longer wait on one row.
    r#"
    CREATE SEQUENCE log_order;
    CREATE TABLE events_inbox (
        id BIGSERIAL PRIMARY KEY,
        ord BIGINT NOT NULL,
        at BIGINT NOT NULL,
        kind TEXT NOT NULL,
        task_id BIGINT,
        data TEXT NOT NULL
    );
    CREATE TABLE notices_inbox (
        id BIGSERIAL PRIMARY KEY,
        ord BIGINT NOT NULL,
        session TEXT NOT NULL,
        task_id BIGINT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE TABLE audit_inbox (
        id BIGSERIAL PRIMARY KEY,
        ord BIGINT NOT NULL,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        task_id BIGINT,
        summary TEXT NOT NULL
    );
    ALTER TABLE counts ADD COLUMN shard INT NOT NULL DEFAULT 0;
    ALTER TABLE counts DROP CONSTRAINT counts_pkey;
    ALTER TABLE counts ADD PRIMARY KEY (queue, state, shard);
    "#,
];

/// The schema version this build writes; the same as SQLite's.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
const _: () = assert!(SCHEMA_VERSION == crate::SCHEMA_VERSION);

/// Brings the database up to [`SCHEMA_VERSION`], one migration per transaction,
/// holding the migration lock so that nodes starting together take turns (the
/// second finds the work done). A database of a newer version is refused.
pub(crate) async fn migrate(client: &Client) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let r = migrate_locked(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    r?;
    unlocked?;
    Ok(())
}

async fn migrate_locked(client: &Client) -> Result<(), StoreError> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await?;
    let row = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await?;
    let current: i64 = col(&row, 0)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        client
            .batch_execute(&format!(
                "BEGIN; {sql}; INSERT INTO schema_version (version) VALUES ({version}); COMMIT;"
            ))
            .await
            .map_err(StoreError::Postgres)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    /// A queue paused before budgets existed was paused by a user: after the
    /// migration it says so, as on SQLite.
    #[tokio::test]
    async fn a_version_6_paused_queue_was_paused_by_a_user() {
        let db = meanwhile_testpg::TestDb::new().await;
        db.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
            .await;
        for (i, sql) in MIGRATIONS[..6].iter().enumerate() {
            db.execute(&format!(
                "BEGIN; {sql}; INSERT INTO schema_version (version) VALUES ({}); COMMIT;",
                i + 1
            ))
            .await;
        }
        db.execute("INSERT INTO queues (name, max_parallel, paused) VALUES ('gpu', 1, true)")
            .await;
        let store = crate::PgStore::connect_with(db.config()).await.unwrap();
        let queues = store.queues().await.unwrap();
        let gpu = queues.iter().find(|q| q.name == "gpu").unwrap();
        assert!(gpu.paused);
        assert_eq!(gpu.pause_reason, Some(meanwhile_core::PauseReason::User));
        let default = queues.iter().find(|q| q.name == "default").unwrap();
        assert_eq!((default.paused, default.pause_reason), (false, None));
    }
}
