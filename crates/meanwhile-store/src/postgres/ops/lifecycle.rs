//! A task's way through its states: claims, leases, ends, releases, stops, retries,
//! progress, and what failure cascades to dependents.
//!
//! A claim locks the rows of the queues it may claim from (`FOR UPDATE`, in name
//! order) before it counts what runs in them: two nodes claiming in one queue take
//! turns, and the second counts the first's claims, so `max_parallel`, `per_key` and
//! the rate hold across a fleet. The tasks themselves are taken with
//! `FOR UPDATE SKIP LOCKED`, passing over any a concurrent write holds.

use super::*;
use crate::flow::{self, ClaimQueue, Val};
use crate::policy;
use crate::postgres::Client;
use crate::sql::Sql;
use crate::{AttemptEnd, Claim, ClaimRequest, Finished};
use meanwhile_core::{Attempt, EventKind, TaskId, TaskRecord, TaskState, Timestamp};
use std::collections::HashMap;
use tokio_postgres::types::ToSql;

/// The pending dependents of a task (for the plans checked by `plans`).
#[cfg(feature = "plans")]
pub(crate) const PENDING_DEPENDENTS: &str = crate::sql::ops::lifecycle::PENDING_DEPENDENTS.postgres;

/// The queues a claim may take from, with their limits, locked in name order.
pub(crate) const UNPAUSED_QUEUES: &str =
    "SELECT name, max_parallel, per_key, rate_count, rate_window_ms
     FROM queues WHERE NOT paused ORDER BY name FOR UPDATE";
pub(crate) const RUNNING_PER_QUEUE: &str = crate::sql::ops::lifecycle::RUNNING_PER_QUEUE.postgres;
/// The other nodes that share the queues: not `$1`, beating since `$2`.
pub(crate) const SHARING_NODES: &str = "SELECT COUNT(*) FROM nodes
     WHERE name <> $1 AND stopped_at IS NULL AND heartbeat_at >= $2";
/// What node `$1` runs in each queue.
pub(crate) const RUNNING_OF_NODE_PER_QUEUE: &str =
    "SELECT queue, COUNT(*) FROM tasks WHERE state = 'running' AND node = $1
     GROUP BY queue";

/// The condition a task of queue `$1` meets to be claimed at `$2` by `node`, with the
/// kinds it runs in `$3`. The node's name is written into the text (the same for
/// every claim of this node, so the statement is prepared once) rather than given
/// as one more parameter to each of the statements that use this condition.
pub(crate) fn runnable(node: &str) -> String {
    format!(
        "state = 'pending' AND queue = $1
           AND (run_after IS NULL OR run_after <= $2)
           AND kind = ANY($3::TEXT[])
           AND (owner IS NULL OR owner = {})
           AND NOT EXISTS (SELECT 1 FROM deps d JOIN tasks t ON t.id = d.dep_id
                           WHERE d.task_id = tasks.id AND t.state <> 'succeeded')",
        crate::decode::sql_text(node)
    )
}

/// The first `$4` runnable tasks of a queue in priority order, locked.
pub(crate) fn pick_sql(runnable: &str) -> String {
    format!(
        "SELECT id FROM tasks WHERE {runnable}
         ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED"
    )
}

pub(crate) async fn claim(tx: &mut Tx, req: &ClaimRequest) -> Result<Claim> {
    flow::claim(tx, req).await
}

/// Parameters as PostgreSQL's driver takes them.
fn pg_values<'a>(params: &[Val<'a>]) -> Vec<Box<dyn ToSql + Sync + Send + 'a>> {
    params
        .iter()
        .map(|v| -> Box<dyn ToSql + Sync + Send + 'a> {
            match *v {
                Val::Int(i) => Box::new(i),
                Val::Text(t) => Box::new(t),
            }
        })
        .collect()
}

impl flow::Db for Tx {
    type Row<'r> = tokio_postgres::Row;

    async fn query<T>(
        &mut self,
        sql: &Sql,
        params: &[Val<'_>],
        read: fn(&tokio_postgres::Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let values = pg_values(params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v as _).collect();
        let rows = self.client().query(sql.postgres, &refs).await?;
        rows.iter().map(read).collect()
    }

    async fn exec(&mut self, sql: &Sql, params: &[Val<'_>]) -> Result<u64> {
        let values = pg_values(params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| &**v as _).collect();
        exec(self, sql.postgres, &refs).await
    }

    async fn notify(&mut self, session: &str, task: TaskId, body: String) -> Result<()> {
        Tx::notify(self, session, task, body);
        Ok(())
    }

    async fn load_task(&mut self, id: TaskId) -> Result<TaskRecord> {
        load_task(self.client(), id).await
    }

    async fn lock_task(&mut self, id: TaskId) -> Result<TaskRecord> {
        lock_task(self, id).await
    }

    async fn running_hold(
        &mut self,
        id: TaskId,
        attempt: u32,
    ) -> Result<Option<(Option<String>, Option<i64>)>> {
        let row = self
            .client()
            .query_opt(
                "SELECT node, lease_until FROM tasks WHERE id = $1 AND state = 'running'
                   AND attempts = $2
                 FOR UPDATE SKIP LOCKED",
                &[&id.0, &i64::from(attempt)],
            )
            .await?;
        row.map(|r| Ok((col(&r, 0)?, col(&r, 1)?))).transpose()
    }

    async fn ensure_queue(&mut self, name: &str) -> Result<()> {
        ensure_queue(self, name).await
    }

    async fn load_task_and_budget(&mut self, id: TaskId) -> Result<(TaskRecord, i64, i64)> {
        load_task_and_budget(self, id).await
    }

    async fn count_move(&mut self, queue: &str, from: TaskState, to: TaskState) -> Result<()> {
        Tx::count_move(self, queue, from, to);
        Ok(())
    }

    async fn emit(
        &mut self,
        at: Timestamp,
        kind: EventKind,
        task: Option<TaskId>,
        data: serde_json::Value,
    ) -> Result<()> {
        Tx::emit(self, at, kind, task, data);
        Ok(())
    }

    async fn next_wakeup(&mut self, now: Timestamp) -> Result<Option<Timestamp>> {
        next_wakeup(self.client(), now).await
    }
}

impl flow::Claims for Tx {
    async fn unpaused_queues(&mut self) -> Result<Vec<ClaimQueue>> {
        let rows = self.client().query(UNPAUSED_QUEUES, &[]).await?;
        rows.iter().map(ClaimQueue::read).collect()
    }

    async fn running_per_queue(&mut self) -> Result<HashMap<String, i64>> {
        let rows = self.client().query(RUNNING_PER_QUEUE, &[]).await?;
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))).collect()
    }

    async fn share(&mut self, req: &ClaimRequest) -> Result<Option<(i64, HashMap<String, i64>)>> {
        let Some(since) = req.share_since else {
            return Ok(None);
        };
        let c = self.client();
        let others: i64 = col(
            &c.query_one(SHARING_NODES, &[&req.node, &since.0]).await?,
            0,
        )?;
        let mine = c.query(RUNNING_OF_NODE_PER_QUEUE, &[&req.node]).await?;
        let mine = mine.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?)));
        Ok(Some((others + 1, mine.collect::<Result<_>>()?)))
    }

    async fn rate_used(&mut self, queue: &str, now: Timestamp, window_ms: i64) -> Result<i64> {
        rate_used(self, queue, now, window_ms).await
    }

    async fn pick(
        &mut self,
        queue: &ClaimQueue,
        req: &ClaimRequest,
        want: i64,
    ) -> Result<Vec<i64>> {
        let kinds: Vec<String> = req.kinds.iter().map(|k| k.as_str().to_string()).collect();
        let runnable = runnable(&req.node);
        let (name, now) = (queue.name.as_str(), req.now);
        match queue.per_key {
            None => {
                let sql = pick_sql(&runnable);
                let rows = self
                    .client()
                    .query(&sql, &[&name, &now.0, &kinds, &want])
                    .await?;
                rows.iter().map(|r| col(r, 0)).collect()
            }
            Some(per_key) => pick_by_key(self, &runnable, name, now, &kinds, per_key, want).await,
        }
    }

    async fn record_starts(&mut self, queue: &str, now: Timestamp, n: i64) -> Result<()> {
        record_starts(self, queue, now, n).await
    }

    async fn rate_reopens(
        &mut self,
        queue: &str,
        window_ms: i64,
        excess: i64,
    ) -> Result<Option<Timestamp>> {
        rate_reopens(self, queue, window_ms, excess).await
    }
}

/// What runs in queue `$1` per concurrency key.
pub(crate) const RUNNING_PER_KEY: &str = "SELECT concurrency_key, COUNT(*) FROM tasks
     WHERE state = 'running' AND queue = $1 AND concurrency_key IS NOT NULL
     GROUP BY concurrency_key";

/// The runnable tasks of a queue with their keys in priority order, locked.
pub(crate) fn pick_by_key_sql(runnable: &str) -> String {
    format!(
        "SELECT id, concurrency_key FROM tasks WHERE {runnable}
         ORDER BY priority DESC, id FOR UPDATE SKIP LOCKED"
    )
}

/// Up to `want` runnable tasks of a queue with a `per_key` limit, in priority order,
/// passing over those whose key is full (see [`policy::pick_by_key`]). The rows it
/// takes are locked (`SKIP LOCKED`, so rows another write holds are passed over).
async fn pick_by_key(
    tx: &Tx,
    runnable: &str,
    queue: &str,
    now: Timestamp,
    kinds: &Vec<String>,
    per_key: i64,
    want: i64,
) -> Result<Vec<i64>> {
    let keys: HashMap<String, i64> = tx
        .client()
        .query(RUNNING_PER_KEY, &[&queue])
        .await?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect::<Result<_>>()?;
    let rows = tx
        .client()
        .query(&pick_by_key_sql(runnable), &[&queue, &now.0, kinds])
        .await?;
    policy::pick_by_key(
        keys,
        rows.iter().map(|r| Ok((col(r, 0)?, col(r, 1)?))),
        per_key,
        want,
    )
}

pub(crate) const FORGET_STARTS: &str = crate::sql::ops::lifecycle::FORGET_STARTS.postgres;
/// The starts a queue counts.
pub(crate) const STARTS_COUNTED: &str =
    "SELECT COALESCE(SUM(n), 0)::BIGINT FROM queue_starts WHERE queue = $1";
pub(crate) const STARTS: &str = crate::sql::ops::lifecycle::STARTS.postgres;

/// Starts of a rate-limited queue within the window that ends at `now`, after
/// forgetting those before it.
async fn rate_used(tx: &Tx, queue: &str, now: Timestamp, window_ms: i64) -> Result<i64> {
    exec(
        tx,
        FORGET_STARTS,
        &[&queue, &now.0.saturating_sub(window_ms)],
    )
    .await?;
    let row = tx.client().query_one(STARTS_COUNTED, &[&queue]).await?;
    col(&row, 0)
}

/// Counts `n` starts of a rate-limited queue at `now`.
async fn record_starts(tx: &Tx, queue: &str, now: Timestamp, n: i64) -> Result<()> {
    exec(
        tx,
        "INSERT INTO queue_starts (queue, at, n) VALUES ($1, $2, $3)
         ON CONFLICT (queue, at) DO UPDATE SET n = queue_starts.n + excluded.n",
        &[&queue, &now.0, &n],
    )
    .await?;
    Ok(())
}

/// When a rate-limited queue may start another task (see [`policy::rate_reopens`]).
async fn rate_reopens(
    tx: &Tx,
    queue: &str,
    window_ms: i64,
    excess: i64,
) -> Result<Option<Timestamp>> {
    let starts: Vec<(i64, i64)> = tx
        .client()
        .query(STARTS, &[&queue])
        .await?
        .iter()
        .map(|r| Ok((col(r, 0)?, col(r, 1)?)))
        .collect::<Result<_>>()?;
    Ok(policy::rate_reopens(starts, window_ms, excess))
}

/// Extends the lease of what node `$1` runs. A row another write holds is being
/// changed (its attempt ending, or taken over): it is skipped rather than waited
/// for, so a renewal never waits on, nor deadlocks with, the writes of the tasks it
/// renews. The caller asks about what it did not get back.
pub(crate) const RENEW: &str = "UPDATE tasks SET lease_until = $2 WHERE id IN (
        SELECT id FROM tasks WHERE state = 'running' AND node = $1
        FOR UPDATE SKIP LOCKED)
     RETURNING id";

pub(crate) async fn renew(tx: &mut Tx, node: &str, lease_until: Timestamp) -> Result<Vec<TaskId>> {
    let rows = tx.client().query(RENEW, &[&node, &lease_until.0]).await?;
    rows.iter().map(|r| col(r, 0).map(TaskId)).collect()
}

/// Records the end of an attempt, if it is still the task's running one and held by
/// the node that ran it (see [`AttemptEnd::node`]).
pub(crate) async fn finish_attempt(tx: &mut Tx, end: &AttemptEnd) -> Result<Option<Finished>> {
    flow::end_attempt(tx, end, end.node.as_deref()).await
}

/// The running tasks of node `$1`, or whose lease ended before `$2`.
pub(crate) fn running_sql() -> String {
    format!(
        "SELECT {TASK_COLS} FROM tasks WHERE state = 'running'
           AND (($1::TEXT IS NOT NULL AND node = $1::TEXT)
                OR ($2::BIGINT IS NOT NULL AND lease_until < $2::BIGINT))
         ORDER BY id"
    )
}

pub(crate) async fn running(
    c: &Client,
    node: Option<&str>,
    expired_before: Option<Timestamp>,
) -> Result<Vec<(TaskRecord, Attempt)>> {
    let rows = c
        .query(&running_sql(), &[&node, &expired_before.map(|t| t.0)])
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for t in tasks_from_rows(&rows)? {
        let row = c
            .query_opt(
                &format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE task_id = $1 AND number = $2"),
                &[&t.id.0, &i64::from(t.attempts)],
            )
            .await?;
        if let Some(row) = row {
            let a = attempt_from_row(&row)?;
            out.push((t, a));
        }
    }
    Ok(out)
}

/// The earliest run-after time after `$1` of a pending task.
pub(crate) const NEXT_WAKEUP: &str = "SELECT MIN(run_after) FROM tasks
     WHERE state = 'pending' AND run_after IS NOT NULL AND run_after > $1";

pub(crate) async fn next_wakeup(c: &Client, now: Timestamp) -> Result<Option<Timestamp>> {
    let row = c.query_one(NEXT_WAKEUP, &[&now.0]).await?;
    Ok(col::<Option<i64>>(&row, 0)?.map(Timestamp))
}
