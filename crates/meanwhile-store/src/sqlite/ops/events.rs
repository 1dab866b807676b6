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

pub(crate) fn events_after(conn: &Connection, seq: i64, limit: u32) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, kind, task_id, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
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
