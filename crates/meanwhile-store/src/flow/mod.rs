//! The steps of a write that both stores take alike, written once: each flow here is
//! an `async fn` over [`Db`], which each store implements on what it writes with
//! (SQLite: the writer thread's connection and the batch's events; PostgreSQL: the
//! write's `Tx`). A flow runs its statements through [`Db::exec`] with SQL text from
//! `crate::sql` and the store's own helpers for what differs (how an event or a count
//! is recorded, how a task is read and locked). On SQLite nothing a flow awaits ever
//! waits, so the writer thread runs a flow to its end in one poll ([`ready`]).
//!
//! What a write decides from what it read stays in `policy`; what is SQL of one
//! dialect only stays in that store's `ops`.

mod alerts;
mod lifecycle;

pub(crate) use alerts::*;
pub(crate) use lifecycle::*;

use crate::StoreError;
use crate::cells::Cells;
use crate::sql::Sql;
use meanwhile_core::{EventKind, TaskId, TaskRecord, TaskState, Timestamp};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

type Result<T> = std::result::Result<T, StoreError>;

/// A statement parameter, as both drivers take it: PostgreSQL's columns are `BIGINT`
/// and `TEXT` where SQLite's are `INTEGER` and `TEXT`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}

impl From<u32> for Val<'_> {
    fn from(v: u32) -> Self {
        Val::Int(Some(i64::from(v)))
    }
}

impl From<i32> for Val<'_> {
    fn from(v: i32) -> Self {
        Val::Int(Some(i64::from(v)))
    }
}

impl From<Option<i64>> for Val<'_> {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}

impl From<Option<i32>> for Val<'_> {
    fn from(v: Option<i32>) -> Self {
        Val::Int(v.map(i64::from))
    }
}

impl From<Option<u64>> for Val<'_> {
    /// Saturates at `i64::MAX`, beyond any count or size a task reaches.
    fn from(v: Option<u64>) -> Self {
        Val::Int(v.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
    }
}

impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Text(Some(v))
    }
}

impl<'a> From<&'a Option<String>> for Val<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Val::Text(v.as_deref())
    }
}

impl<'a> From<Option<&'a str>> for Val<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Val::Text(v)
    }
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match *self {
            Val::Int(Some(v)) => ToSqlOutput::Owned(Value::Integer(v)),
            Val::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Val::Int(None) | Val::Text(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// What a flow writes with: one write's transaction in either store.
pub(crate) trait Db {
    /// A row of a query's answer.
    type Row<'r>: Cells;
    /// Runs a query; answers its rows, each read by `read`.
    #[allow(clippy::type_complexity)]
    async fn query<T>(
        &mut self,
        sql: &Sql,
        params: &[Val<'_>],
        read: for<'r> fn(&Self::Row<'r>) -> Result<T>,
    ) -> Result<Vec<T>>;
    /// Runs one statement; answers how many rows it changed.
    async fn exec(&mut self, sql: &Sql, params: &[Val<'_>]) -> Result<u64>;
    /// A task, as this write sees it (PostgreSQL: the row is locked by the caller).
    async fn load_task(&mut self, id: TaskId) -> Result<TaskRecord>;
    /// A task, its row locked until the write commits: what a change of its state
    /// reads.
    async fn lock_task(&mut self, id: TaskId) -> Result<TaskRecord>;
    /// The node and lease of task `id` while it runs attempt `attempt`, its row
    /// locked; `None` when it runs another, or none, or (PostgreSQL) another write
    /// holds the row, which is then being renewed or ended.
    async fn running_hold(
        &mut self,
        id: TaskId,
        attempt: u32,
    ) -> Result<Option<(Option<String>, Option<i64>)>>;
    /// Makes queue `name` again if it was removed.
    async fn ensure_queue(&mut self, name: &str) -> Result<()>;
    /// A task, its row locked, with its attempt base and its retry policy's
    /// `max_attempts`: what an end reads.
    async fn load_task_and_budget(&mut self, id: TaskId) -> Result<(TaskRecord, i64, i64)>;
    /// Moves one task's count in `queue` from state `from` to `to`.
    async fn count_move(&mut self, queue: &str, from: TaskState, to: TaskState) -> Result<()>;
    /// Appends an event in this write.
    async fn emit(
        &mut self,
        at: Timestamp,
        kind: EventKind,
        task: Option<TaskId>,
        data: serde_json::Value,
    ) -> Result<()>;
    /// Leaves `body` for `session`, a notice about `task` (PostgreSQL: numbered
    /// with the write's events after the commit).
    async fn notify(&mut self, session: &str, task: TaskId, body: String) -> Result<()>;
    /// The earliest future run-after time of a pending task.
    async fn next_wakeup(&mut self, now: Timestamp) -> Result<Option<Timestamp>>;
}

/// Runs a flow whose every step is done when it is asked (SQLite's), in one poll.
pub(crate) fn ready<T>(flow: impl Future<Output = Result<T>>) -> Result<T> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(flow).poll(&mut cx) {
        Poll::Ready(out) => out,
        // Only a step that waits on something could leave it pending, and none of
        // SQLite's does.
        Poll::Pending => Err(StoreError::CommitFailed(
            "a write's step waited in the writer thread".into(),
        )),
    }
}
