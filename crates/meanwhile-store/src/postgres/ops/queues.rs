//! Queues: their limits and pause flags, and the per-state counters (changed at the
//! commit, see [`Tx::bump`]).

use super::*;
use crate::StoreError;
use crate::decode::QueueColumns;
use crate::postgres::Client;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{EventKind, PauseReason, QueueInfo, TaskState};
use std::collections::HashMap;

pub(super) async fn ensure_queue(tx: &Tx, queue: &str) -> Result<()> {
    // A queue first named by a task starts with the default queue's limit.
    exec(
        tx,
        "INSERT INTO queues (name, max_parallel, paused)
         SELECT $1, max_parallel, false FROM queues WHERE name = 'default'
         ON CONFLICT (name) DO NOTHING",
        &[&queue],
    )
    .await?;
    Ok(())
}

/// The counters that are not 0, their shards summed.
pub(crate) const COUNTS: &str = "SELECT queue, state, SUM(n)::BIGINT FROM counts
     GROUP BY queue, state HAVING SUM(n) <> 0";

async fn queue_counts(c: &Client) -> Result<HashMap<(String, String), i64>> {
    let rows = c.query(COUNTS, &[]).await?;
    rows.iter()
        .map(|r| Ok(((col(r, 0)?, col(r, 1)?), col(r, 2)?)))
        .collect()
}

pub(crate) const QUEUES: &str = crate::sql::ops::queues::QUEUES.postgres;

pub(crate) async fn queues(c: &Client) -> Result<Vec<QueueInfo>> {
    let counts = queue_counts(c).await?;
    let rows = c.query(QUEUES, &[]).await?;
    rows.iter()
        .map(|r| QueueColumns::read(r)?.decode(&counts))
        .collect()
}

pub(crate) async fn set_queue(tx: &mut Tx, name: &str, change: &QueueUpdate) -> Result<QueueInfo> {
    crate::decode::check_queue_update(change)?;
    ensure_queue(tx, name).await?;
    if change.paused == Some(false) {
        // A queue whose budget is spent stays paused: its budget says when it resumes.
        super::check_resumable(tx, name).await?;
    }
    // A limit field left out keeps its value; one given as none clears it. A pause
    // asked for is the user's, whatever paused the queue before.
    let rate = change.rate.flatten();
    exec(
        tx,
        "UPDATE queues SET max_parallel = COALESCE($2, max_parallel),
            paused = COALESCE($3, paused),
            pause_reason = CASE WHEN $3::BOOLEAN IS NULL THEN pause_reason
                WHEN $3::BOOLEAN THEN 'user' ELSE NULL END,
            per_key = CASE WHEN $4 THEN $5 ELSE per_key END,
            rate_count = CASE WHEN $6 THEN $7 ELSE rate_count END,
            rate_window_ms = CASE WHEN $6 THEN $8 ELSE rate_window_ms END,
            alert_after = CASE WHEN $9 THEN $10 ELSE alert_after END
         WHERE name = $1",
        &[
            &name,
            &change.max_parallel.map(i64::from),
            &change.paused,
            &change.per_key.is_some(),
            &change.per_key.flatten().map(i64::from),
            &change.rate.is_some(),
            &rate.map(|r| i64::from(r.count())),
            &rate.map(|r| r.window_ms()),
            &change.alert_after.is_some(),
            &change.alert_after.flatten().map(i64::from),
        ],
    )
    .await?;
    if change.rate == Some(None) {
        // Starts are counted only while a limit asks for them.
        exec(tx, "DELETE FROM queue_starts WHERE queue = $1", &[&name]).await?;
    }
    announce(tx, name).await
}

/// The error for a queue `name` that does not exist, naming those that do.
async fn unknown_queue(c: &Client, name: &str) -> Result<StoreError> {
    Ok(StoreError::UnknownQueue {
        name: name.to_string(),
        known: queues(c).await?.into_iter().map(|q| q.name).collect(),
    })
}

pub(crate) async fn remove_queue(tx: &mut Tx, name: &str) -> Result<()> {
    // The row stays locked to the commit: a task submitted to the queue meanwhile
    // waits, then makes the queue again.
    if tx
        .client()
        .query_opt("SELECT 1 FROM queues WHERE name = $1 FOR UPDATE", &[&name])
        .await?
        .is_none()
    {
        return Err(unknown_queue(tx.client(), name).await?);
    }
    let row = tx
        .client()
        .query_one(
            "SELECT COALESCE(SUM(CASE WHEN state = 'pending' THEN n END), 0)::BIGINT,
                COALESCE(SUM(CASE WHEN state = 'running' THEN n END), 0)::BIGINT,
                EXISTS (SELECT 1 FROM budgets WHERE queue = $1)
             FROM counts WHERE queue = $1",
            &[&name],
        )
        .await?;
    let (pending, running, budget): (i64, i64, bool) =
        (col(&row, 0)?, col(&row, 1)?, col(&row, 2)?);
    if let Some(refusal) = crate::decode::queue_removal_refusal(name, pending, running, budget) {
        return Err(refusal);
    }
    exec(tx, "DELETE FROM queues WHERE name = $1", &[&name]).await?;
    exec(tx, "DELETE FROM queue_starts WHERE queue = $1", &[&name]).await?;
    let now = db_now(tx.client()).await?;
    tx.emit(
        now,
        EventKind::Queue,
        None,
        serde_json::json!({"name": name, "removed": true}),
    );
    Ok(())
}

/// Pauses a queue for `reason`, or resumes it (`None`), with its `queue` event.
pub(super) async fn set_pause(
    tx: &mut Tx,
    name: &str,
    reason: Option<PauseReason>,
) -> Result<QueueInfo> {
    ensure_queue(tx, name).await?;
    exec(
        tx,
        "UPDATE queues SET paused = $2, pause_reason = $3 WHERE name = $1",
        &[&name, &reason.is_some(), &reason.map(PauseReason::as_str)],
    )
    .await?;
    announce(tx, name).await
}

/// One queue.
pub(super) async fn queue(c: &Client, name: &str) -> Result<QueueInfo> {
    queues(c)
        .await?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or_else(|| corrupt("queue", name))
}

/// The `queue` event of a change: the queue as it is now.
async fn announce(tx: &mut Tx, name: &str) -> Result<QueueInfo> {
    let info = queue(tx.client(), name).await?;
    let now = db_now(tx.client()).await?;
    tx.emit(
        now,
        EventKind::Queue,
        None,
        serde_json::to_value(&info).unwrap_or_default(),
    );
    Ok(info)
}

pub(crate) async fn counts(c: &Client) -> Result<Vec<(String, TaskState, u64)>> {
    crate::decode::counts(queue_counts(c).await?)
}
