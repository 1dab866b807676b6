//! Queues: their limits and pause flags, and the per-state counters kept in step with
//! every change.

use super::*;
use crate::StoreError;
use crate::decode::QueueColumns;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{Event, EventKind, PauseReason, QueueInfo, TaskState};
use rusqlite::{Connection, params};
use std::collections::HashMap;

pub(super) fn bump(conn: &Connection, queue: &str, state: TaskState, delta: i64) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO counts (queue, state, n) VALUES (?1, ?2, ?3)
         ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n",
    )?;
    stmt.execute(params![queue, state.as_str(), delta])?;
    Ok(())
}

/// Moves the state counters of one task from `from` to `to`.
pub(super) fn count_move(
    conn: &Connection,
    queue: &str,
    from: TaskState,
    to: TaskState,
) -> Result<()> {
    if from != to {
        // Both counters in one statement: this runs at every claim and every end.
        let mut stmt = conn.prepare_cached(
            "INSERT INTO counts (queue, state, n) VALUES (?1, ?2, -1), (?1, ?3, 1)
             ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n",
        )?;
        stmt.execute(params![queue, from.as_str(), to.as_str()])?;
    }
    Ok(())
}

pub(super) fn ensure_queue(conn: &Connection, queue: &str) -> Result<()> {
    // A queue first named by a task starts with the default queue's limit.
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO queues (name, max_parallel, paused)
         SELECT ?1, max_parallel, 0 FROM queues WHERE name = 'default'",
    )?;
    stmt.execute([queue])?;
    Ok(())
}

/// The counters that are not 0.
pub(crate) const COUNTS: &str = "SELECT queue, state, n FROM counts WHERE n <> 0";

pub(super) fn queue_counts(conn: &Connection) -> Result<HashMap<(String, String), i64>> {
    let mut stmt = conn.prepare_cached(COUNTS)?;
    Ok(stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) const QUEUES: &str = crate::sql::ops::queues::QUEUES.sqlite;

pub(crate) fn queues(conn: &Connection) -> Result<Vec<QueueInfo>> {
    let counts = queue_counts(conn)?;
    let mut stmt = conn.prepare_cached(QUEUES)?;
    let rows = stmt.query_map([], |r| Ok(QueueColumns::read(r)))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??.decode(&counts)?);
    }
    Ok(out)
}

pub(crate) fn set_queue(
    conn: &Connection,
    events: &mut Vec<Event>,
    name: &str,
    change: &QueueUpdate,
) -> Result<QueueInfo> {
    crate::decode::check_queue_update(change)?;
    ensure_queue(conn, name)?;
    if change.paused == Some(false) {
        // A queue whose budget is spent stays paused: its budget says when it resumes.
        super::check_resumable(conn, events, name)?;
    }
    // A limit field left out keeps its value; one given as none clears it. A pause
    // asked for is the user's, whatever paused the queue before.
    let rate = change.rate.flatten();
    conn.prepare_cached(
        "UPDATE queues SET max_parallel = COALESCE(?2, max_parallel),
            paused = COALESCE(?3, paused),
            pause_reason = CASE WHEN ?3 IS NULL THEN pause_reason
                WHEN ?3 THEN 'user' ELSE NULL END,
            per_key = CASE WHEN ?4 THEN ?5 ELSE per_key END,
            rate_count = CASE WHEN ?6 THEN ?7 ELSE rate_count END,
            rate_window_ms = CASE WHEN ?6 THEN ?8 ELSE rate_window_ms END,
            alert_after = CASE WHEN ?9 THEN ?10 ELSE alert_after END
         WHERE name = ?1",
    )?
    .execute(params![
        name,
        change.max_parallel,
        change.paused.map(i64::from),
        change.per_key.is_some(),
        change.per_key.flatten(),
        change.rate.is_some(),
        rate.map(|r| r.count()),
        rate.map(|r| r.window_ms()),
        change.alert_after.is_some(),
        change.alert_after.flatten(),
    ])?;
    if change.rate == Some(None) {
        // Starts are counted only while a limit asks for them.
        conn.prepare_cached("DELETE FROM queue_starts WHERE queue = ?1")?
            .execute([name])?;
    }
    announce(conn, events, name)
}

fn queue_exists(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM queues WHERE name = ?1")?
        .exists([name])?)
}

/// The error for a queue `name` that does not exist, naming those that do.
fn unknown_queue(conn: &Connection, name: &str) -> Result<StoreError> {
    Ok(StoreError::UnknownQueue {
        name: name.to_string(),
        known: queues(conn)?.into_iter().map(|q| q.name).collect(),
    })
}

pub(crate) fn remove_queue(conn: &Connection, events: &mut Vec<Event>, name: &str) -> Result<()> {
    if !queue_exists(conn, name)? {
        return Err(unknown_queue(conn, name)?);
    }
    let (pending, running): (i64, i64) = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(CASE WHEN state = 'pending' THEN n END), 0),
                COALESCE(SUM(CASE WHEN state = 'running' THEN n END), 0)
             FROM counts WHERE queue = ?1",
        )?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let budget = conn
        .prepare_cached("SELECT 1 FROM budgets WHERE queue = ?1")?
        .exists([name])?;
    if let Some(refusal) = crate::decode::queue_removal_refusal(name, pending, running, budget) {
        return Err(refusal);
    }
    conn.prepare_cached("DELETE FROM queues WHERE name = ?1")?
        .execute([name])?;
    conn.prepare_cached("DELETE FROM queue_starts WHERE queue = ?1")?
        .execute([name])?;
    queue_event(
        conn,
        events,
        serde_json::json!({"name": name, "removed": true}),
    )
}

/// A `queue` event with `data`: the queue as it is now, or its removal.
fn queue_event(conn: &Connection, events: &mut Vec<Event>, data: serde_json::Value) -> Result<()> {
    let now = db_now(conn)?;
    emit(conn, events, now, EventKind::Queue, None, data)
}

/// Pauses a queue for `reason`, or resumes it (`None`), with its `queue` event.
pub(super) fn set_pause(
    conn: &Connection,
    events: &mut Vec<Event>,
    name: &str,
    reason: Option<PauseReason>,
) -> Result<QueueInfo> {
    ensure_queue(conn, name)?;
    conn.prepare_cached("UPDATE queues SET paused = ?2, pause_reason = ?3 WHERE name = ?1")?
        .execute(params![
            name,
            i64::from(reason.is_some()),
            reason.map(PauseReason::as_str)
        ])?;
    announce(conn, events, name)
}

/// One queue.
pub(super) fn queue(conn: &Connection, name: &str) -> Result<QueueInfo> {
    queues(conn)?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or_else(|| corrupt("queue", name))
}

/// The `queue` event of a change: the queue as it is now.
fn announce(conn: &Connection, events: &mut Vec<Event>, name: &str) -> Result<QueueInfo> {
    let info = queues(conn)?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or_else(|| corrupt("queue", name))?;
    queue_event(
        conn,
        events,
        serde_json::to_value(&info).unwrap_or_default(),
    )?;
    Ok(info)
}

pub(crate) fn counts(conn: &Connection) -> Result<Vec<(String, TaskState, u64)>> {
    crate::decode::counts(queue_counts(conn)?)
}
