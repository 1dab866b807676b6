//! A task's way through its states: claims, leases, ends, releases, stops, retries,
//! progress, and what failure cascades to dependents.

use super::*;
use crate::flow::{self, ClaimQueue, Val};
use crate::sql::Sql;
use crate::{AttemptEnd, Claim, ClaimRequest, Finished, StoreError};
use meanwhile_core::{Attempt, Event, EventKind, TaskId, TaskRecord, TaskState, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// The pending dependents of a task (for the plans checked by `plans`).
#[cfg(feature = "plans")]
pub(crate) const PENDING_DEPENDENTS: &str = crate::sql::ops::lifecycle::PENDING_DEPENDENTS.sqlite;

pub(crate) const RUNNING_PER_QUEUE: &str = crate::sql::ops::lifecycle::RUNNING_PER_QUEUE.sqlite;

/// The queues a claim may take from, with their limits.
pub(crate) const UNPAUSED_QUEUES: &str =
    "SELECT name, max_parallel, per_key, rate_count, rate_window_ms
     FROM queues WHERE paused = 0";

/// The condition a task of queue `?1` meets to be claimed at `?2` by `node`, which
/// runs `kinds`.
pub(crate) fn runnable(kinds: &[meanwhile_core::TaskKind], node: &str) -> String {
    let kinds: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.as_str())).collect();
    format!(
        "state = 'pending' AND queue = ?1
           AND (run_after IS NULL OR run_after <= ?2)
           AND kind IN ({})
           AND (owner IS NULL OR owner = {})
           AND NOT EXISTS (SELECT 1 FROM deps d JOIN tasks t ON t.id = d.dep_id
                           WHERE d.task_id = tasks.id AND t.state <> 'succeeded')",
        kinds.join(", "),
        crate::decode::sql_text(node)
    )
}

/// The first `?3` runnable tasks of a queue, in priority order.
pub(crate) fn pick_sql(runnable: &str) -> String {
    format!("SELECT id FROM tasks WHERE {runnable} ORDER BY priority DESC, id LIMIT ?3")
}

pub(crate) fn claim(
    conn: &Connection,
    events: &mut Vec<Event>,
    req: &ClaimRequest,
) -> Result<Claim> {
    flow::ready(flow::claim(&mut Lite { conn, events }, req))
}

/// What the shared flows (`crate::flow`) write with on SQLite: the writer thread's
/// connection, in its transaction, and the events of its batch.
pub(crate) struct Lite<'a> {
    pub conn: &'a Connection,
    pub events: &'a mut Vec<Event>,
}

/// The shared flows' view of the writer thread's transaction.
pub(crate) fn lite<'a>(conn: &'a Connection, events: &'a mut Vec<Event>) -> Lite<'a> {
    Lite { conn, events }
}

impl flow::Db for Lite<'_> {
    type Row<'r> = rusqlite::Row<'r>;

    async fn query<T>(
        &mut self,
        sql: &Sql,
        params: &[Val<'_>],
        read: for<'r> fn(&rusqlite::Row<'r>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql.sqlite)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(read(r)?);
        }
        Ok(out)
    }

    async fn notify(&mut self, session: &str, task: TaskId, body: String) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO notifications (session, task_id, body) VALUES (?1, ?2, ?3)",
        )?;
        stmt.execute(params![session, task.0, body])?;
        Ok(())
    }
    async fn exec(&mut self, sql: &Sql, params: &[Val<'_>]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(sql.sqlite)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    async fn load_task(&mut self, id: TaskId) -> Result<TaskRecord> {
        load_task(self.conn, id)
    }

    /// One writer at a time: reading is locking.
    async fn lock_task(&mut self, id: TaskId) -> Result<TaskRecord> {
        load_task(self.conn, id)
    }

    async fn running_hold(
        &mut self,
        id: TaskId,
        attempt: u32,
    ) -> Result<Option<(Option<String>, Option<i64>)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT node, lease_until FROM tasks WHERE id = ?1 AND state = 'running'
               AND attempts = ?2",
        )?;
        let hold = stmt.query_row(params![id.0, attempt], |r| Ok((r.get(0)?, r.get(1)?)));
        Ok(hold.optional()?)
    }

    async fn ensure_queue(&mut self, name: &str) -> Result<()> {
        ensure_queue(self.conn, name)
    }

    async fn load_task_and_budget(&mut self, id: TaskId) -> Result<(TaskRecord, i64, i64)> {
        load_task_and_budget(self.conn, id)
    }

    async fn count_move(&mut self, queue: &str, from: TaskState, to: TaskState) -> Result<()> {
        count_move(self.conn, queue, from, to)
    }

    async fn emit(
        &mut self,
        at: Timestamp,
        kind: EventKind,
        task: Option<TaskId>,
        data: serde_json::Value,
    ) -> Result<()> {
        emit(self.conn, self.events, at, kind, task, data)
    }

    async fn next_wakeup(&mut self, now: Timestamp) -> Result<Option<Timestamp>> {
        next_wakeup(self.conn, now)
    }
}

impl flow::Claims for Lite<'_> {
    async fn unpaused_queues(&mut self) -> Result<Vec<ClaimQueue>> {
        let mut stmt = self.conn.prepare_cached(UNPAUSED_QUEUES)?;
        let rows = stmt.query_map([], |r| Ok(ClaimQueue::read(r)))?;
        rows.map(|r| r?).collect()
    }

    async fn running_per_queue(&mut self) -> Result<HashMap<String, i64>> {
        let mut stmt = self.conn.prepare_cached(RUNNING_PER_QUEUE)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One machine's queues are its own.
    async fn share(&mut self, _: &ClaimRequest) -> Result<Option<(i64, HashMap<String, i64>)>> {
        Ok(None)
    }

    async fn rate_used(&mut self, queue: &str, now: Timestamp, window_ms: i64) -> Result<i64> {
        rate_used(self.conn, queue, now, window_ms)
    }

    async fn pick(
        &mut self,
        queue: &ClaimQueue,
        req: &ClaimRequest,
        want: i64,
    ) -> Result<Vec<i64>> {
        let runnable = runnable(&req.kinds, &req.node);
        let (name, now) = (queue.name.as_str(), req.now);
        match queue.per_key {
            None => {
                let mut stmt = self.conn.prepare_cached(&pick_sql(&runnable))?;
                let rows = stmt.query_map(params![name, now.0, want], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
            Some(per_key) => pick_by_key(self.conn, &runnable, name, now, per_key, want),
        }
    }

    async fn record_starts(&mut self, queue: &str, now: Timestamp, n: i64) -> Result<()> {
        record_starts(self.conn, queue, now, n)
    }

    async fn rate_reopens(
        &mut self,
        queue: &str,
        window_ms: i64,
        excess: i64,
    ) -> Result<Option<Timestamp>> {
        rate_reopens(self.conn, queue, window_ms, excess)
    }
}

/// What runs in queue `?1` per concurrency key.
pub(crate) const RUNNING_PER_KEY: &str = "SELECT concurrency_key, COUNT(*) FROM tasks
     INDEXED BY tasks_state
     WHERE state = 'running' AND queue = ?1 AND concurrency_key IS NOT NULL
     GROUP BY concurrency_key";

/// The runnable tasks of a queue with their keys, in priority order.
pub(crate) fn pick_by_key_sql(runnable: &str) -> String {
    format!("SELECT id, concurrency_key FROM tasks WHERE {runnable} ORDER BY priority DESC, id")
}

/// Up to `want` runnable tasks of a queue with a `per_key` limit, in priority order,
/// passing over those whose key already has `per_key` tasks running or picked. The
/// walk stops at the `want`-th task it takes, so it reads past only the tasks whose
/// keys are full. (The same choice in one SQL statement, for a store with window
/// functions: number the runnable tasks per key in priority order and keep those
/// whose number plus the key's running count is at most `per_key`.)
fn pick_by_key(
    conn: &Connection,
    runnable: &str,
    queue: &str,
    now: Timestamp,
    per_key: i64,
    want: i64,
) -> Result<Vec<i64>> {
    let keys: HashMap<String, i64> = {
        // Through `tasks_state`: no more rows than are running (the queue's whole
        // history would come through `tasks_queue`, which SQLite would choose).
        let mut stmt = conn.prepare_cached(RUNNING_PER_KEY)?;
        stmt.query_map([queue], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut stmt = conn.prepare_cached(&pick_by_key_sql(runnable))?;
    let rows = stmt.query_map(params![queue, now.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    crate::policy::pick_by_key(
        keys,
        rows.map(|r| r.map_err(StoreError::from)),
        per_key,
        want,
    )
}

pub(crate) const FORGET_STARTS: &str = crate::sql::ops::lifecycle::FORGET_STARTS.sqlite;
/// The starts a queue counts.
pub(crate) const STARTS_COUNTED: &str =
    "SELECT COALESCE(SUM(n), 0) FROM queue_starts WHERE queue = ?1";
pub(crate) const STARTS: &str = crate::sql::ops::lifecycle::STARTS.sqlite;

/// Starts of a rate-limited queue within the window that ends at `now`, after
/// forgetting those before it.
fn rate_used(conn: &Connection, queue: &str, now: Timestamp, window_ms: i64) -> Result<i64> {
    conn.prepare_cached(FORGET_STARTS)?
        .execute(params![queue, now.0.saturating_sub(window_ms)])?;
    Ok(conn
        .prepare_cached(STARTS_COUNTED)?
        .query_row([queue], |r| r.get(0))?)
}

/// Counts `n` starts of a rate-limited queue at `now`.
fn record_starts(conn: &Connection, queue: &str, now: Timestamp, n: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO queue_starts (queue, at, n) VALUES (?1, ?2, ?3)
         ON CONFLICT (queue, at) DO UPDATE SET n = n + excluded.n",
    )?
    .execute(params![queue, now.0, n])?;
    Ok(())
}

/// When a rate-limited queue may start another task: once the oldest starts of its
/// window, `excess` of them, have left it (a start at `at` counts until `at + window`).
fn rate_reopens(
    conn: &Connection,
    queue: &str,
    window_ms: i64,
    excess: i64,
) -> Result<Option<Timestamp>> {
    let mut stmt = conn.prepare_cached(STARTS)?;
    let starts: Vec<(i64, i64)> = stmt
        .query_map([queue], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(crate::policy::rate_reopens(starts, window_ms, excess))
}

/// Extends the lease of what node `?1` runs.
pub(crate) const RENEW: &str =
    "UPDATE tasks SET lease_until = ?2 WHERE state = 'running' AND node = ?1 RETURNING id";

pub(crate) fn renew(conn: &Connection, node: &str, lease_until: Timestamp) -> Result<Vec<TaskId>> {
    let mut stmt = conn.prepare_cached(RENEW)?;
    let ids = stmt
        .query_map(params![node, lease_until.0], |r| r.get(0).map(TaskId))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Records the end of an attempt, if it is still the task's running one and held by
/// the node that ran it (see [`AttemptEnd::node`]).
pub(crate) fn finish_attempt(
    conn: &Connection,
    events: &mut Vec<Event>,
    end: &AttemptEnd,
) -> Result<Option<Finished>> {
    let holder = end.node.as_deref();
    flow::ready(flow::end_attempt(&mut Lite { conn, events }, end, holder))
}

/// The running tasks of node `?1`, or whose lease ended before `?2`.
pub(crate) fn running_sql() -> String {
    format!(
        "SELECT {TASK_COLS} FROM tasks WHERE state = 'running'
           AND ((?1 IS NOT NULL AND node = ?1) OR (?2 IS NOT NULL AND lease_until < ?2))
         ORDER BY id"
    )
}

pub(crate) fn running(
    conn: &Connection,
    node: Option<&str>,
    expired_before: Option<Timestamp>,
) -> Result<Vec<(TaskRecord, Attempt)>> {
    let mut stmt = conn.prepare_cached(&running_sql())?;
    let tasks: Vec<TaskRecord> = stmt
        .query_map(params![node, expired_before.map(|t| t.0)], task_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ATTEMPT_COLS} FROM attempts WHERE task_id = ?1 AND number = ?2"
        ))?;
        if let Some(a) = stmt
            .query_row(params![t.id.0, t.attempts], attempt_from_row)
            .optional()?
        {
            out.push((t, a?));
        }
    }
    Ok(out)
}

/// The earliest run-after time after `?1` of a pending task. The index is named,
/// because the planner would rather walk every pending task through `tasks_state`:
/// a scan per claim, quadratic over a long queue.
pub(crate) const NEXT_WAKEUP: &str =
    "SELECT MIN(run_after) FROM tasks INDEXED BY tasks_pending_time
     WHERE state = 'pending' AND run_after IS NOT NULL AND run_after > ?1";

pub(crate) fn next_wakeup(conn: &Connection, now: Timestamp) -> Result<Option<Timestamp>> {
    let mut stmt = conn.prepare_cached(NEXT_WAKEUP)?;
    Ok(stmt
        .query_row([now.0], |r| r.get::<_, Option<i64>>(0))?
        .map(Timestamp))
}
