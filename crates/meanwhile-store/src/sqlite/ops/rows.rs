//! Reading tasks and attempts out of rows, and what every module shares.

use crate::StoreError;
use crate::decode::{AttemptColumns, TaskColumns};
use meanwhile_core::{Attempt, TaskId, TaskRecord, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row};

pub(super) type Result<T> = std::result::Result<T, StoreError>;

pub(super) const TASK_COLS: &str = crate::sql::ops::rows::TASK_COLS.sqlite;
/// How many columns `TASK_COLS` names: a query's further columns start there.
const TASK_COL_COUNT: usize = 25;

pub(super) use crate::decode::corrupt;

pub(super) fn task_from_row(
    r: &Row<'_>,
) -> rusqlite::Result<std::result::Result<TaskRecord, StoreError>> {
    Ok(TaskColumns {
        id: r.get(0)?,
        kind: r.get(1)?,
        name: r.get(2)?,
        state: r.get(3)?,
        queue: r.get(4)?,
        priority: r.get(5)?,
        labels: r.get(6)?,
        session: r.get(7)?,
        spec: r.get(8)?,
        created_at: r.get(9)?,
        run_after: r.get(10)?,
        started_at: r.get(11)?,
        finished_at: r.get(12)?,
        attempts: r.get(13)?,
        exit_code: r.get(14)?,
        signal: r.get(15)?,
        reason: r.get(16)?,
        progress: r.get(17)?,
        result: r.get(18)?,
        node: r.get(19)?,
        stop_requested: r.get::<_, i64>(20)? != 0,
        tokens: r.get(21)?,
        cost_usd: r.get(22)?,
        model_calls: r.get(23)?,
        live: r.get(24)?,
    }
    .decode())
}

/// A task with its retry budget (`attempt_base`, `max_attempts`), in one read: what
/// recording an end needs.
pub(crate) fn load_task_and_budget(
    conn: &Connection,
    id: TaskId,
) -> Result<(TaskRecord, i64, i64)> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TASK_COLS}, attempt_base, max_attempts FROM tasks WHERE id = ?1"
    ))?;
    let row = stmt
        .query_row([id.0], |r| {
            Ok((
                task_from_row(r)?,
                r.get::<_, i64>(TASK_COL_COUNT)?,
                r.get::<_, i64>(TASK_COL_COUNT + 1)?,
            ))
        })
        .optional()?
        .ok_or(StoreError::UnknownTask(id))?;
    Ok((row.0?, row.1, row.2))
}

pub(crate) fn load_task(conn: &Connection, id: TaskId) -> Result<TaskRecord> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {TASK_COLS} FROM tasks WHERE id = ?1"))?;
    stmt.query_row([id.0], task_from_row)
        .optional()?
        .ok_or(StoreError::UnknownTask(id))?
}

/// The time, for writes whose callers do not pass one (removal, queue changes).
pub(crate) fn db_now(conn: &Connection) -> Result<Timestamp> {
    Ok(Timestamp(conn.query_row(
        "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        [],
        |r| r.get(0),
    )?))
}

pub(super) fn attempt_from_row(r: &Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(AttemptColumns {
        number: r.get(0)?,
        node: r.get(1)?,
        started_at: r.get(2)?,
        ended_at: r.get(3)?,
        outcome: r.get(4)?,
        exit_code: r.get(5)?,
        signal: r.get(6)?,
        reason: r.get(7)?,
        pid: r.get(8)?,
        peak_rss_kb: r.get(9)?,
        cpu_ms: r.get(10)?,
    }
    .decode())
}

pub(super) const ATTEMPT_COLS: &str = crate::sql::ops::rows::ATTEMPT_COLS.sqlite;

#[cfg(test)]
mod tests {
    #[test]
    fn the_column_count_is_that_of_the_list() {
        assert_eq!(super::TASK_COLS.split(',').count(), super::TASK_COL_COUNT);
    }
}
