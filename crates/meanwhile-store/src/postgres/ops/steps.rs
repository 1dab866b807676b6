//! The step record of attempts that can resume, as in SQLite.

use super::*;
use crate::postgres::Client;
use crate::{NewStep, StoreError};
use meanwhile_core::{Step, TaskId};

/// Appends a step to the task's running attempt (its row locked, so that no stop or
/// takeover ends or moves the attempt meanwhile), which must be held by the step's
/// node when it names one, charging its usage in the same write.
pub(crate) async fn record_step(tx: &mut Tx, s: &NewStep) -> Result<u32> {
    let id = s.id;
    crate::decode::check_step(&s.kind, &s.data)?;
    let row = tx
        .client()
        .query_opt(
            "SELECT state, attempts, node FROM tasks WHERE id = $1 FOR UPDATE",
            &[&id.0],
        )
        .await?
        .ok_or(StoreError::UnknownTask(id))?;
    let state: String = col(&row, 0)?;
    let current: i64 = col(&row, 1)?;
    let holder: Option<String> = col(&row, 2)?;
    crate::decode::check_step_attempt(s, &state, current as u32, holder.as_deref())?;
    let row = tx
        .client()
        .query_one(
            "INSERT INTO steps (task_id, attempt, n, at, kind, data)
             SELECT $1, $2, COALESCE(MAX(n), 0) + 1, $3, $4, $5
               FROM steps WHERE task_id = $1 AND attempt = $2
             RETURNING n",
            &[&id.0, &i64::from(s.attempt), &s.now.0, &s.kind, &s.data],
        )
        .await?;
    let n: i64 = col(&row, 0)?;
    if let Some((tokens, cost_usd)) = s.usage {
        charge_usage(tx, id, tokens, cost_usd, 1, s.now).await?;
    }
    Ok(n as u32)
}

/// The steps of task `$1`, of attempt `$2` or of all.
pub(crate) const STEPS: &str = "SELECT attempt, n, at, kind, data FROM steps
  WHERE task_id = $1 AND ($2::BIGINT IS NULL OR attempt = $2)
  ORDER BY attempt, n";

/// The steps of task `id`: of one attempt, or of all.
pub(crate) async fn steps(c: &Client, id: TaskId, attempt: Option<u32>) -> Result<Vec<Step>> {
    let rows = c.query(STEPS, &[&id.0, &attempt.map(i64::from)]).await?;
    rows.iter()
        .map(|r| {
            let (attempt, n): (i64, i64) = (col(r, 0)?, col(r, 1)?);
            let data: String = col(r, 4)?;
            crate::decode::step(attempt as u32, n as u32, col(r, 2)?, col(r, 3)?, &data)
        })
        .collect()
}
