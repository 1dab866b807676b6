//! Reading tasks and attempts out of rows, and what every module shares.

pub(super) use super::super::{Params, Tx, col};
use crate::StoreError;
pub(super) use crate::decode::corrupt;
use crate::decode::{AttemptColumns, TaskColumns};
use crate::postgres::Client;
use meanwhile_core::{Attempt, TaskId, TaskRecord, Timestamp};
use tokio_postgres::Row;

pub(super) type Result<T> = std::result::Result<T, StoreError>;

pub(super) const TASK_COLS: &str = crate::sql::ops::rows::TASK_COLS.postgres;
/// How many columns `TASK_COLS` names: a query's further columns start there.
const TASK_COL_COUNT: usize = 25;

pub(super) fn task_from_row(r: &Row) -> Result<TaskRecord> {
    TaskColumns::read(r)?.decode()
}

/// Tasks out of rows.
pub(super) fn tasks_from_rows(rows: &[Row]) -> Result<Vec<TaskRecord>> {
    rows.iter().map(task_from_row).collect()
}

/// A task with its retry budget (`attempt_base`, `max_attempts`), in one read: what
/// recording an end needs. The row stays locked until the write commits, so two
/// nodes recording ends of one task take turns.
pub(crate) async fn load_task_and_budget(tx: &Tx, id: TaskId) -> Result<(TaskRecord, i64, i64)> {
    let row = tx
        .client()
        .query_opt(
            &format!(
                "SELECT {TASK_COLS}, attempt_base, max_attempts FROM tasks WHERE id = $1 FOR UPDATE"
            ),
            &[&id.0],
        )
        .await?
        .ok_or(StoreError::UnknownTask(id))?;
    Ok((
        task_from_row(&row)?,
        col(&row, TASK_COL_COUNT)?,
        col(&row, TASK_COL_COUNT + 1)?,
    ))
}

pub(crate) async fn load_task(c: &Client, id: TaskId) -> Result<TaskRecord> {
    let row = c
        .query_opt(
            &format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1"),
            &[&id.0],
        )
        .await?
        .ok_or(StoreError::UnknownTask(id))?;
    task_from_row(&row)
}

/// A task, its row locked until the write commits: what a change of its state reads.
pub(crate) async fn lock_task(tx: &Tx, id: TaskId) -> Result<TaskRecord> {
    let row = tx
        .client()
        .query_opt(
            &format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1 FOR UPDATE"),
            &[&id.0],
        )
        .await?
        .ok_or(StoreError::UnknownTask(id))?;
    task_from_row(&row)
}

/// The database's time, for writes whose callers do not pass one (removal, queue
/// changes): one clock for every node.
pub(crate) async fn db_now(c: &Client) -> Result<Timestamp> {
    let row = c
        .query_one(
            "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
            &[],
        )
        .await?;
    Ok(Timestamp(col(&row, 0)?))
}

pub(super) fn attempt_from_row(r: &Row) -> Result<Attempt> {
    Ok(AttemptColumns::read(r)?.decode())
}

pub(super) const ATTEMPT_COLS: &str = crate::sql::ops::rows::ATTEMPT_COLS.postgres;

/// Runs a statement; how many rows it changed.
pub(super) async fn exec(tx: &Tx, sql: &str, params: Params<'_>) -> Result<u64> {
    Ok(tx.client().execute(sql, params).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_column_count_is_that_of_the_list() {
        assert_eq!(super::TASK_COLS.split(',').count(), super::TASK_COL_COUNT);
    }
}
