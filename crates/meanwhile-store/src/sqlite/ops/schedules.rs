//! Schedules: adding, listing, pausing and removing them, and recording a firing
//! together with the task it submits.

use super::*;
use crate::decode::ScheduleColumns;
use crate::{Fired, ScheduleFiring, StoreError, Submitted};
use meanwhile_core::{Event, EventKind, ScheduleInfo, ScheduleSpec, TaskId, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;

const COLS: &str = crate::sql::ops::schedules::COLS.sqlite;

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<ScheduleInfo>> {
    Ok(ScheduleColumns::read(r).and_then(ScheduleColumns::decode))
}

fn unknown(name: &str) -> StoreError {
    StoreError::UnknownSchedule(name.to_string())
}

/// Every schedule with the state of its latest task, by name.
pub(crate) fn schedules_sql() -> String {
    format!(
        "SELECT {COLS} FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task ORDER BY s.name"
    )
}

pub(crate) fn schedules(conn: &Connection) -> Result<Vec<ScheduleInfo>> {
    let mut stmt = conn.prepare_cached(&schedules_sql())?;
    let rows = stmt.query_map([], from_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

pub(crate) fn schedule(conn: &Connection, name: &str) -> Result<ScheduleInfo> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS} FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task WHERE s.name = ?1"
    ))?;
    stmt.query_row([name], from_row)
        .optional()?
        .ok_or_else(|| unknown(name))?
}

fn event(
    conn: &Connection,
    events: &mut Vec<Event>,
    task: Option<TaskId>,
    data: serde_json::Value,
) -> Result<()> {
    let now = db_now(conn)?;
    emit(conn, events, now, EventKind::Schedule, task, data)
}

pub(crate) fn add_schedule(
    conn: &Connection,
    events: &mut Vec<Event>,
    spec: &ScheduleSpec,
    next_fire: Option<Timestamp>,
    now: Timestamp,
) -> Result<ScheduleInfo> {
    // The record of a spec, which keeps its secrets.
    let text = meanwhile_core::expose_secrets(|| serde_json::to_string(spec))
        .map_err(|e| corrupt("schedule", e))?;
    let added = conn
        .prepare_cached(
            "INSERT INTO schedules (name, spec, next_fire, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![spec.name, text, next_fire.map(|t| t.0), now.0])?;
    if added == 0 {
        return Err(StoreError::Conflict {
            field: "name",
            message: format!(
                "a schedule named {:?} exists; remove it first ('meanwhile schedule rm {}') or choose another name",
                spec.name, spec.name
            ),
        });
    }
    event(
        conn,
        events,
        None,
        json!({"schedule": spec.name, "action": "added"}),
    )?;
    schedule(conn, &spec.name)
}

pub(crate) fn remove_schedule(
    conn: &Connection,
    events: &mut Vec<Event>,
    name: &str,
) -> Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM schedules WHERE name = ?1")?
        .execute([name])?;
    if n == 0 {
        return Err(unknown(name));
    }
    event(
        conn,
        events,
        None,
        json!({"schedule": name, "action": "removed"}),
    )
}

pub(crate) fn pause_schedule(
    conn: &Connection,
    events: &mut Vec<Event>,
    name: &str,
    paused: bool,
    next_fire: Option<Timestamp>,
) -> Result<ScheduleInfo> {
    let before = schedule(conn, name)?;
    if before.paused == paused {
        // Already so: nothing changes, not even the next time of a running one.
        return Ok(before);
    }
    conn.prepare_cached("UPDATE schedules SET paused = ?2, next_fire = ?3 WHERE name = ?1")?
        .execute(params![
            name,
            i64::from(paused),
            next_fire.filter(|_| !paused).map(|t| t.0)
        ])?;
    let action = if paused { "paused" } else { "resumed" };
    event(
        conn,
        events,
        None,
        json!({"schedule": name, "action": action}),
    )?;
    schedule(conn, name)
}

pub(crate) fn fire_schedule(
    conn: &Connection,
    events: &mut Vec<Event>,
    f: &ScheduleFiring,
) -> Result<Option<Fired>> {
    match f.due {
        // The guard: only the look that saw this due time moves the schedule on, so
        // a time fires once however many runtimes look.
        Some(due) => {
            let moved = conn
                .prepare_cached(
                    "UPDATE schedules SET next_fire = ?3, missed = missed + ?4
                     WHERE name = ?1 AND next_fire = ?2 AND paused = 0",
                )?
                .execute(params![
                    f.name,
                    due.0,
                    f.next.map(|t| t.0),
                    f.missed.min(i64::MAX as u64) as i64
                ])?;
            if moved == 0 {
                return Ok(None);
            }
        }
        None => {
            schedule(conn, &f.name)?;
        }
    }
    let submitted = match &f.task {
        Some(task) => {
            let s = insert_task(conn, events, task)?;
            conn.prepare_cached(
                "UPDATE schedules SET last_fire = ?2, last_task = ?3, fired = fired + ?4
                 WHERE name = ?1",
            )?
            .execute(params![
                f.name,
                f.fire.map(|t| t.0),
                s.id().0,
                i64::from(matches!(s, Submitted::Created(_)))
            ])?;
            Some(s)
        }
        None => None,
    };
    if let Some(s) = submitted {
        event(
            conn,
            events,
            Some(s.id()),
            json!({
                "schedule": f.name,
                "action": "fired",
                "fire_time": f.fire.map(|t| t.0),
                "late": f.late,
                "by_hand": f.due.is_none(),
            }),
        )?;
    }
    if f.missed > 0 {
        event(
            conn,
            events,
            None,
            json!({"schedule": f.name, "action": "missed", "missed": f.missed}),
        )?;
    }
    Ok(Some(Fired {
        schedule: schedule(conn, &f.name)?,
        task: submitted,
    }))
}
