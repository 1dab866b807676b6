//! Reading tasks and attempts out of rows, and what every module shares.

use crate::StoreError;
use meanwhile_core::{Attempt, TaskId, TaskKind, TaskRecord, TaskSpec, TaskState, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row};

pub(super) type Result<T> = std::result::Result<T, StoreError>;

pub(super) const TASK_COLS: &str = "id, kind, name, state, queue, priority, labels, session, spec, \
    created_at, run_after, started_at, finished_at, attempts, exit_code, signal, reason, \
    progress, result, node, stop_requested, tokens, cost_usd, model_calls";

pub(super) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

pub(super) fn task_from_row(
    r: &Row<'_>,
) -> rusqlite::Result<std::result::Result<TaskRecord, StoreError>> {
    let kind: String = r.get(1)?;
    let state: String = r.get(3)?;
    let labels: String = r.get(6)?;
    let spec: String = r.get(8)?;
    let progress: Option<String> = r.get(17)?;
    let id = TaskId(r.get(0)?);
    let build = || -> Result<TaskRecord> {
        let mut task = TaskRecord {
            id,
            kind: TaskKind::parse(&kind).ok_or_else(|| corrupt("task kind", &kind))?,
            name: r.get(2)?,
            state: TaskState::parse(&state).ok_or_else(|| corrupt("task state", &state))?,
            queue: r.get(4)?,
            priority: r.get(5)?,
            labels: serde_json::from_str(&labels).map_err(|e| corrupt("labels", e))?,
            session: r.get(7)?,
            concurrency_key: None,
            spec: serde_json::from_str::<TaskSpec>(&spec).map_err(|e| corrupt("spec", e))?,
            created_at: Timestamp(r.get(9)?),
            run_after: r.get::<_, Option<i64>>(10)?.map(Timestamp),
            started_at: r.get::<_, Option<i64>>(11)?.map(Timestamp),
            finished_at: r.get::<_, Option<i64>>(12)?.map(Timestamp),
            attempts: r.get::<_, i64>(13)? as u32,
            exit_code: r.get(14)?,
            signal: r.get(15)?,
            reason: r.get(16)?,
            progress: match progress {
                Some(p) => Some(serde_json::from_str(&p).map_err(|e| corrupt("progress", e))?),
                None => None,
            },
            result: r.get(18)?,
            node: r.get(19)?,
            stop_requested: r.get::<_, i64>(20)? != 0,
            tokens: r.get::<_, i64>(21)?.max(0) as u64,
            cost_usd: r.get(22)?,
            model_calls: r.get::<_, i64>(23)?.clamp(0, u32::MAX.into()) as u32,
        };
        // The column is the spec's key, kept apart for the claim to group by.
        task.concurrency_key = task.spec.concurrency_key.clone();
        Ok(task)
    };
    Ok(build())
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
                r.get::<_, i64>(24)?,
                r.get::<_, i64>(25)?,
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
    Ok(Attempt {
        number: r.get::<_, i64>(0)? as u32,
        node: r.get(1)?,
        started_at: Timestamp(r.get(2)?),
        ended_at: r.get::<_, Option<i64>>(3)?.map(Timestamp),
        outcome: r.get(4)?,
        exit_code: r.get(5)?,
        signal: r.get(6)?,
        reason: r.get(7)?,
        pid: r.get(8)?,
        peak_rss_kb: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
        cpu_ms: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
    })
}

pub(super) const ATTEMPT_COLS: &str = "number, node, started_at, ended_at, outcome, exit_code, signal, reason, pid, peak_rss_kb, cpu_ms";
