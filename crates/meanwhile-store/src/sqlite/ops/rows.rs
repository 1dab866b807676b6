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
    Ok(TaskColumns::read(r).and_then(TaskColumns::decode))
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

pub(super) fn attempt_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Attempt>> {
    Ok(AttemptColumns::read(r).map(AttemptColumns::decode))
}

pub(super) const ATTEMPT_COLS: &str = crate::sql::ops::rows::ATTEMPT_COLS.sqlite;

#[cfg(test)]
mod tests {
    #[test]
    fn the_column_count_is_that_of_the_list() {
        assert_eq!(super::TASK_COLS.split(',').count(), super::TASK_COL_COUNT);
    }
}
