//! The step record of attempts that can resume (see `meanwhile_core::Step`).

use super::*;
use crate::{NewStep, StoreError};
use meanwhile_core::{Event, Step, TaskId};
use rusqlite::{Connection, OptionalExtension, params};

/// Appends a step to the task's running attempt, which must be held by the step's
/// node when it names one, and charges its usage in the same write when given: a
/// resumed attempt then neither charges a recorded call again nor misses one.
pub(crate) fn record_step(conn: &Connection, events: &mut Vec<Event>, s: &NewStep) -> Result<u32> {
    let id = s.id;
    crate::decode::check_step(&s.kind, &s.data)?;
    let running: Option<(String, u32, Option<String>)> = conn
        .prepare_cached("SELECT state, attempts, node FROM tasks WHERE id = ?1")?
        .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (state, current, holder) = running.ok_or(StoreError::UnknownTask(id))?;
    crate::decode::check_step_attempt(s, &state, current, holder.as_deref())?;
    let n: u32 = conn
        .prepare_cached(
            "INSERT INTO steps (task_id, attempt, n, at, kind, data)
             SELECT ?1, ?2, COALESCE(MAX(n), 0) + 1, ?3, ?4, ?5
               FROM steps WHERE task_id = ?1 AND attempt = ?2
             RETURNING n",
        )?
        .query_row(params![id.0, s.attempt, s.now.0, s.kind, s.data], |r| {
            r.get(0)
        })?;
    if let Some((tokens, cost_usd)) = s.usage {
        charge_usage(conn, events, id, tokens, cost_usd, 1, s.now)?;
    }
    Ok(n)
}

/// The steps of task `?1`, of attempt `?2` or of all.
pub(crate) const STEPS: &str = "SELECT attempt, n, at, kind, data FROM steps
  WHERE task_id = ?1 AND (?2 IS NULL OR attempt = ?2)
  ORDER BY attempt, n";

/// The steps of task `id`: of one attempt, or of all.
pub(crate) fn steps(conn: &Connection, id: TaskId, attempt: Option<u32>) -> Result<Vec<Step>> {
    let mut stmt = conn.prepare_cached(STEPS)?;
    let rows = stmt.query_map(params![id.0, attempt], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    rows.map(|r| {
        let (attempt, n, at, kind, data) = r?;
        crate::decode::step(attempt, n, at, kind, &data)
    })
    .collect()
}
