//! Alerts: firing one once per cause, resolving it once, listing them.

use super::*;
use crate::NewAlert;
use crate::decode::AlertColumns;
use meanwhile_core::{Alert, AlertKind, Event, EventKind, TaskId, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

const COLS: &str = "id, kind, state, message, task_id, queue, fired_at, resolved_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<Alert>> {
    Ok(AlertColumns {
        id: r.get(0)?,
        kind: r.get(1)?,
        state: r.get(2)?,
        message: r.get(3)?,
        task_id: r.get(4)?,
        queue: r.get(5)?,
        fired_at: r.get(6)?,
        resolved_at: r.get(7)?,
    }
    .decode())
}

fn announce(conn: &Connection, events: &mut Vec<Event>, a: &Alert) -> Result<()> {
    emit(
        conn,
        events,
        a.at,
        EventKind::Alert,
        a.task,
        serde_json::to_value(a).unwrap_or_default(),
    )
}

pub(crate) fn fire_alert(
    conn: &Connection,
    events: &mut Vec<Event>,
    a: &NewAlert,
    now: Timestamp,
) -> Result<Option<Alert>> {
    let added = conn
        .prepare_cached(
            "INSERT INTO alerts (kind, subject, state, message, task_id, queue, fired_at)
             VALUES (?1, ?2, 'firing', ?3, ?4, ?5, ?6)
             ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING",
        )?
        .execute(params![
            a.kind.as_str(),
            a.subject,
            a.message,
            a.task.map(|t| t.0),
            a.queue,
            now.0
        ])?;
    if added == 0 {
        return Ok(None);
    }
    let id = conn.last_insert_rowid();
    let alert = conn
        .prepare_cached(&format!("SELECT {COLS} FROM alerts WHERE id = ?1"))?
        .query_row([id], from_row)??;
    announce(conn, events, &alert)?;
    Ok(Some(alert))
}

pub(crate) fn resolve_alert(
    conn: &Connection,
    events: &mut Vec<Event>,
    kind: AlertKind,
    subject: &str,
    message: &str,
    now: Timestamp,
) -> Result<Option<Alert>> {
    let id: Option<i64> = conn
        .prepare_cached(
            "UPDATE alerts SET state = 'resolved', resolved_at = ?3, message = ?4
             WHERE kind = ?1 AND subject = ?2 AND state = 'firing' RETURNING id",
        )?
        .query_row(params![kind.as_str(), subject, now.0, message], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let alert = conn
        .prepare_cached(&format!("SELECT {COLS} FROM alerts WHERE id = ?1"))?
        .query_row([id], from_row)??;
    announce(conn, events, &alert)?;
    Ok(Some(alert))
}

pub(crate) fn alerts(conn: &Connection, all: bool, limit: u32) -> Result<Vec<Alert>> {
    let sql = if all {
        format!("SELECT {COLS} FROM alerts ORDER BY id DESC LIMIT ?1")
    } else {
        format!("SELECT {COLS} FROM alerts WHERE state = 'firing' ORDER BY id DESC LIMIT ?1")
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([limit.clamp(1, 10_000)], from_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

/// The states of the last `n` tasks of `queue` that ended, newest first.
pub(crate) fn last_ends(
    conn: &Connection,
    queue: &str,
    n: u32,
) -> Result<Vec<(TaskId, meanwhile_core::TaskState)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, state FROM tasks
         WHERE queue = ?1 AND finished_at IS NOT NULL
           AND state IN ('succeeded', 'failed', 'timed_out', 'quarantined', 'lost')
         ORDER BY finished_at DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![queue, n], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, state) = row?;
        out.push((TaskId(id), crate::decode::state(&state)?));
    }
    Ok(out)
}
