//! The event log: appending an event in the writing transaction, and reading it back.

use super::*;
use meanwhile_core::{Event, EventKind, TaskId, Timestamp};
use rusqlite::{Connection, params};

pub(super) fn emit(
    conn: &Connection,
    events: &mut Vec<Event>,
    at: Timestamp,
    kind: EventKind,
    task_id: Option<TaskId>,
    data: serde_json::Value,
) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO events (at, kind, task_id, data) VALUES (?1, ?2, ?3, ?4)")?;
    stmt.execute(params![
        at.0,
        kind.as_str(),
        task_id.map(|t| t.0),
        data.to_string()
    ])?;
    events.push(Event {
        seq: conn.last_insert_rowid(),
        at,
        kind,
        task_id,
        data,
    });
    Ok(())
}

pub(crate) const EVENTS_AFTER: &str = crate::sql::ops::events::EVENTS_AFTER.sqlite;

pub(crate) fn events_after(conn: &Connection, seq: i64, limit: u32) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(EVENTS_AFTER)?;
    let rows = stmt.query_map(params![seq, limit.clamp(1, 10_000)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at, kind, task_id, data) = row?;
        out.push(Event {
            seq,
            at: Timestamp(at),
            kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?,
            task_id: task_id.map(TaskId),
            data: serde_json::from_str(&data).map_err(|e| corrupt("event data", e))?,
        });
    }
    Ok(out)
}

/// Where the reader `name` of the event log is: the seq of the last event it is done
/// with. The first time, the log's end (a new reader does not replay history).
pub(crate) fn reader_cursor(conn: &Connection, name: &str) -> Result<i64> {
    conn.prepare_cached(
        // `WHERE true`: SQLite reads `ON` after a bare `FROM events` as a join's.
        "INSERT INTO cursors (name, seq) SELECT ?1, COALESCE(MAX(seq), 0) FROM events WHERE true
         ON CONFLICT (name) DO NOTHING",
    )?
    .execute([name])?;
    Ok(conn
        .prepare_cached("SELECT seq FROM cursors WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

/// Moves the reader `name` on to `seq`.
pub(crate) fn set_reader_cursor(conn: &Connection, name: &str, seq: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO cursors (name, seq) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
    )?
    .execute(params![name, seq])?;
    Ok(())
}
