//! Schedules: adding, listing, pausing and removing them, and recording a firing
//! together with the task it submits.

use super::*;
use crate::decode::ScheduleColumns;
use crate::postgres::Client;
use crate::{Fired, ScheduleFiring, StoreError, Submitted};
use meanwhile_core::{EventKind, ScheduleInfo, ScheduleSpec, TaskId, Timestamp};
use serde_json::json;
use tokio_postgres::Row;

const COLS: &str = crate::sql::ops::schedules::COLS.postgres;

fn from_row(r: &Row) -> Result<ScheduleInfo> {
    ScheduleColumns::read(r)?.decode()
}

fn unknown(name: &str) -> StoreError {
    StoreError::UnknownSchedule(name.to_string())
}

/// Every schedule with the state of its latest task, by name.
pub(crate) fn schedules_sql() -> String {
    format!(
        "SELECT {COLS} FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task
         ORDER BY s.name"
    )
}

pub(crate) async fn schedules(c: &Client) -> Result<Vec<ScheduleInfo>> {
    let rows = c.query(&schedules_sql(), &[]).await?;
    rows.iter().map(from_row).collect()
}

pub(crate) async fn schedule(c: &Client, name: &str) -> Result<ScheduleInfo> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLS} FROM schedules s LEFT JOIN tasks t ON t.id = s.last_task
                 WHERE s.name = $1"
            ),
            &[&name],
        )
        .await?
        .ok_or_else(|| unknown(name))?;
    from_row(&row)
}

async fn event(tx: &mut Tx, task: Option<TaskId>, data: serde_json::Value) -> Result<()> {
    let now = db_now(tx.client()).await?;
    tx.emit(now, EventKind::Schedule, task, data);
    Ok(())
}

pub(crate) async fn add_schedule(
    tx: &mut Tx,
    spec: &ScheduleSpec,
    next_fire: Option<Timestamp>,
    now: Timestamp,
) -> Result<ScheduleInfo> {
    // The record of a spec, which keeps its secrets.
    let text = meanwhile_core::expose_secrets(|| serde_json::to_string(spec))
        .map_err(|e| corrupt("schedule", e))?;
    let added = exec(
        tx,
        "INSERT INTO schedules (name, spec, next_fire, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING",
        &[&spec.name, &text, &next_fire.map(|t| t.0), &now.0],
    )
    .await?;
    if added == 0 {
        return Err(StoreError::Conflict {
            field: "name",
            message: format!(
                "a schedule named {:?} exists; remove it first ('meanwhile schedule rm {}') or choose another name",
                spec.name, spec.name
            ),
        });
    }
    event(tx, None, json!({"schedule": spec.name, "action": "added"})).await?;
    schedule(tx.client(), &spec.name).await
}

pub(crate) async fn remove_schedule(tx: &mut Tx, name: &str) -> Result<()> {
    let n = exec(tx, "DELETE FROM schedules WHERE name = $1", &[&name]).await?;
    if n == 0 {
        return Err(unknown(name));
    }
    event(tx, None, json!({"schedule": name, "action": "removed"})).await
}

pub(crate) async fn pause_schedule(
    tx: &mut Tx,
    name: &str,
    paused: bool,
    next_fire: Option<Timestamp>,
) -> Result<ScheduleInfo> {
    exec(
        tx,
        "SELECT 1 FROM schedules WHERE name = $1 FOR UPDATE",
        &[&name],
    )
    .await?;
    let before = schedule(tx.client(), name).await?;
    if before.paused == paused {
        // Already so: nothing changes, not even the next time of a running one.
        return Ok(before);
    }
    exec(
        tx,
        "UPDATE schedules SET paused = $2, next_fire = $3 WHERE name = $1",
        &[&name, &paused, &next_fire.filter(|_| !paused).map(|t| t.0)],
    )
    .await?;
    let action = if paused { "paused" } else { "resumed" };
    event(tx, None, json!({"schedule": name, "action": action})).await?;
    schedule(tx.client(), name).await
}

pub(crate) async fn fire_schedule(tx: &mut Tx, f: &ScheduleFiring) -> Result<Option<Fired>> {
    match f.due {
        // The guard: only the look that saw this due time moves the schedule on, so
        // a time fires once however many nodes look (the second waits for the
        // first's row lock, then finds `next_fire` moved).
        Some(due) => {
            let moved = exec(
                tx,
                "UPDATE schedules SET next_fire = $3, missed = missed + $4
                 WHERE name = $1 AND next_fire = $2 AND NOT paused",
                &[
                    &f.name,
                    &due.0,
                    &f.next.map(|t| t.0),
                    &(f.missed.min(i64::MAX as u64) as i64),
                ],
            )
            .await?;
            if moved == 0 {
                return Ok(None);
            }
        }
        None => {
            schedule(tx.client(), &f.name).await?;
        }
    }
    let submitted = match &f.task {
        Some(task) => {
            let s = insert_task(tx, task).await?;
            exec(
                tx,
                "UPDATE schedules SET last_fire = $2, last_task = $3, fired = fired + $4
                 WHERE name = $1",
                &[
                    &f.name,
                    &f.fire.map(|t| t.0),
                    &s.id().0,
                    &i64::from(matches!(s, Submitted::Created(_))),
                ],
            )
            .await?;
            Some(s)
        }
        None => None,
    };
    if let Some(s) = submitted {
        event(
            tx,
            Some(s.id()),
            json!({
                "schedule": f.name,
                "action": "fired",
                "fire_time": f.fire.map(|t| t.0),
                "late": f.late,
                "by_hand": f.due.is_none(),
            }),
        )
        .await?;
    }
    if f.missed > 0 {
        event(
            tx,
            None,
            json!({"schedule": f.name, "action": "missed", "missed": f.missed}),
        )
        .await?;
    }
    Ok(Some(Fired {
        schedule: schedule(tx.client(), &f.name).await?,
        task: submitted,
    }))
}
