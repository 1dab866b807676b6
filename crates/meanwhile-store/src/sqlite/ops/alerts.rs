//! Alerts: firing one once per cause, resolving it once, listing them.

use super::*;
use crate::NewAlert;
use crate::decode::AlertColumns;
use meanwhile_core::{Alert, AlertChange, AlertKind, Event, EventKind, TaskId, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};

const COLS: &str = crate::sql::ops::alerts::COLS.sqlite;

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<Alert>> {
    Ok(AlertColumns::read(r).and_then(AlertColumns::decode))
}

fn announce(
    conn: &Connection,
    events: &mut Vec<Event>,
    a: &Alert,
    change: AlertChange,
    now: Timestamp,
) -> Result<()> {
    emit(
        conn,
        events,
        now,
        EventKind::Alert,
        a.task,
        crate::alert_event(a, change),
    )
}

fn by_id(conn: &Connection, id: i64) -> Result<Alert> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM alerts WHERE id = ?1"))?
        .query_row([id], from_row)?
}

pub(crate) fn fire_alert(
    conn: &Connection,
    events: &mut Vec<Event>,
    a: &NewAlert,
    now: Timestamp,
) -> Result<Option<Alert>> {
    let added = conn
        .prepare_cached(
            "INSERT INTO alerts (kind, subject, state, message, task_id, queue, fired_at,
                                 notified_at)
             VALUES (?1, ?2, 'firing', ?3, ?4, ?5, ?6, ?6)
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
    let alert = by_id(conn, conn.last_insert_rowid())?;
    announce(conn, events, &alert, AlertChange::Fired, now)?;
    Ok(Some(alert))
}

/// Resolves the firing alert of kind `?1` for subject `?2`.
pub(crate) const RESOLVE: &str =
    "UPDATE alerts SET state = 'resolved', resolved_at = ?3, message = ?4
     WHERE kind = ?1 AND subject = ?2 AND state = 'firing' RETURNING id";

pub(crate) fn resolve_alert(
    conn: &Connection,
    events: &mut Vec<Event>,
    kind: AlertKind,
    subject: &str,
    message: &str,
    now: Timestamp,
) -> Result<Option<Alert>> {
    let id: Option<i64> = conn
        .prepare_cached(RESOLVE)?
        .query_row(params![kind.as_str(), subject, now.0, message], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let alert = by_id(conn, id)?;
    announce(conn, events, &alert, AlertChange::Resolved, now)?;
    Ok(Some(alert))
}

pub(crate) fn ack_alert(
    conn: &Connection,
    events: &mut Vec<Event>,
    id: i64,
    until: Option<Timestamp>,
    by: &str,
    now: Timestamp,
) -> Result<Alert> {
    let acked = conn
        .prepare_cached(
            "UPDATE alerts SET acked_at = ?2, acked_until = ?3, acked_by = ?4
             WHERE id = ?1 AND state = 'firing'",
        )?
        .execute(params![id, now.0, until.map(|u| u.0), by])?;
    if acked == 0 {
        let found = conn
            .prepare_cached(&format!("SELECT {COLS} FROM alerts WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()?
            .transpose()?;
        return Err(crate::not_ackable(id, found));
    }
    let alert = by_id(conn, id)?;
    announce(conn, events, &alert, AlertChange::Acked, now)?;
    Ok(alert)
}

/// The firing alerts to remind the sinks of at `?1`, `?2` after they were last told.
pub(crate) const REPEAT: &str = "UPDATE alerts SET notified_at = ?1, notices = notices + 1,
                       acked_at = NULL, acked_until = NULL, acked_by = NULL
     WHERE state = 'firing'
       AND ((acked_until IS NOT NULL AND acked_until <= ?1)
         OR (acked_at IS NULL AND ?2 IS NOT NULL
             AND COALESCE(notified_at, fired_at) + ?2 <= ?1))
     RETURNING id";

pub(crate) fn repeat_alerts(
    conn: &Connection,
    events: &mut Vec<Event>,
    every: Option<std::time::Duration>,
    now: Timestamp,
) -> Result<Vec<Alert>> {
    let every = every.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
    let mut ids: Vec<i64> = conn
        .prepare_cached(REPEAT)?
        .query_map(params![now.0, every], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.sort_unstable();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let alert = by_id(conn, id)?;
        announce(conn, events, &alert, AlertChange::Repeated, now)?;
        out.push(alert);
    }
    Ok(out)
}

/// The newest `?1` alerts: all of them, or the firing ones.
pub(crate) fn alerts_sql(all: bool) -> String {
    if all {
        format!("SELECT {COLS} FROM alerts ORDER BY id DESC LIMIT ?1")
    } else {
        format!("SELECT {COLS} FROM alerts WHERE state = 'firing' ORDER BY id DESC LIMIT ?1")
    }
}

pub(crate) fn alerts(conn: &Connection, all: bool, limit: u32) -> Result<Vec<Alert>> {
    let mut stmt = conn.prepare_cached(&alerts_sql(all))?;
    let rows = stmt.query_map([limit.clamp(1, 10_000)], from_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

pub(crate) const LAST_ENDS: &str = crate::sql::ops::alerts::LAST_ENDS.sqlite;

/// The states of the last `n` tasks of `queue` that ended, newest first.
pub(crate) fn last_ends(
    conn: &Connection,
    queue: &str,
    n: u32,
) -> Result<Vec<(TaskId, meanwhile_core::TaskState)>> {
    let mut stmt = conn.prepare_cached(LAST_ENDS)?;
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
