//! Budgets on PostgreSQL: the same operations as SQLite's `ops/budgets.rs`, with
//! the same decisions (`crate::decode`). A write that changes a budget locks its
//! row first (`FOR UPDATE`), so charges from several nodes add up, and a roll or a
//! change made by one node is seen whole by the next.

use super::*;
use crate::decode::BudgetColumns;
use crate::policy;
use crate::postgres::Client;
use crate::{Charged, StoreError};
use meanwhile_core::{
    AlertKind, BudgetInfo, BudgetSpec, EventKind, PauseReason, TaskId, Timestamp,
};
use std::collections::BTreeSet;
use tokio_postgres::Row;

const COLS: &str = crate::sql::ops::budgets::COLS.postgres;

fn from_row(r: &Row) -> Result<BudgetInfo> {
    BudgetColumns::read(r)?.decode()
}

fn unknown(queue: &str) -> StoreError {
    StoreError::UnknownBudget(queue.to_string())
}

async fn find(c: &Client, queue: &str) -> Result<Option<BudgetInfo>> {
    c.query_opt(
        &format!("SELECT {COLS} FROM budgets WHERE queue = $1"),
        &[&queue],
    )
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// The budget of `queue`, its row locked until the write commits.
async fn lock(tx: &Tx, queue: &str) -> Result<Option<BudgetInfo>> {
    tx.client()
        .query_opt(
            &format!("SELECT {COLS} FROM budgets WHERE queue = $1 FOR UPDATE"),
            &[&queue],
        )
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub(crate) async fn budget(c: &Client, queue: &str) -> Result<BudgetInfo> {
    find(c, queue).await?.ok_or_else(|| unknown(queue))
}

/// Every budget, by queue.
pub(crate) fn budgets_sql() -> String {
    format!("SELECT {COLS} FROM budgets ORDER BY queue")
}

pub(crate) async fn budgets(c: &Client) -> Result<Vec<BudgetInfo>> {
    let rows = c.query(&budgets_sql(), &[]).await?;
    rows.iter().map(from_row).collect()
}

fn event(tx: &mut Tx, action: &str, queue: &str, info: Option<&BudgetInfo>, now: Timestamp) {
    tx.emit(
        now,
        EventKind::Budget,
        None,
        policy::budget_event(action, queue, info),
    );
}

/// Writes a budget whole: its limits, window, usage and the alarms fired.
async fn save(tx: &Tx, b: &BudgetInfo, now: Timestamp) -> Result<()> {
    let c = BudgetColumns::encode(b)?;
    exec(
        tx,
        "INSERT INTO budgets (queue, tokens, cost_usd, window_kind, alarms, window_start,
             window_end, used_tokens, used_cost_usd, model_calls, fired, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (queue) DO UPDATE SET tokens = excluded.tokens,
             cost_usd = excluded.cost_usd, window_kind = excluded.window_kind,
             alarms = excluded.alarms, window_start = excluded.window_start,
             window_end = excluded.window_end, used_tokens = excluded.used_tokens,
             used_cost_usd = excluded.used_cost_usd, model_calls = excluded.model_calls,
             fired = excluded.fired",
        &[
            &c.queue,
            &c.tokens,
            &c.cost_usd,
            &c.window,
            &c.alarms,
            &c.window_start,
            &c.window_end,
            &c.used_tokens,
            &c.used_cost_usd,
            &c.model_calls,
            &c.fired,
            &now.0,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) const FIRING_ALARMS: &str = crate::sql::ops::budgets::FIRING_ALARMS.postgres;

/// The percentages whose `budget` alert fires for `queue`.
async fn firing_alarms(c: &Client, queue: &str) -> Result<BTreeSet<u32>> {
    let rows = c.query(FIRING_ALARMS, &[&queue]).await?;
    let subjects = rows
        .iter()
        .map(|r| col::<String>(r, 0))
        .collect::<Result<Vec<_>>>()?;
    Ok(policy::firing_alarms(queue, &subjects))
}

/// Brings the budget's alerts and its queue's pause in line with `b` (see
/// [`policy::enforce`]), resolved alerts saying `why`.
async fn enforce(tx: &mut Tx, b: &BudgetInfo, why: &str, now: Timestamp) -> Result<()> {
    let firing = firing_alarms(tx.client(), &b.queue).await?;
    let q = queue(tx.client(), &b.queue).await?;
    let plan = policy::enforce(b, &firing, &q);
    // The queue is paused before the alert that says so is sent.
    if plan.pause {
        set_pause(tx, &b.queue, Some(PauseReason::Budget)).await?;
    }
    for p in plan.resolve {
        let subject = BudgetInfo::alarm_subject(&b.queue, p);
        crate::flow::resolve_alert(tx, AlertKind::Budget, &subject, why, now).await?;
    }
    for alert in &plan.fire {
        crate::flow::fire_alert(tx, alert, now).await?;
    }
    if plan.resume {
        set_pause(tx, &b.queue, None).await?;
    }
    Ok(())
}

/// Starts a new window when the current one ended by `now`: the usage counts from 0,
/// the window's alerts resolve and a queue the budget paused resumes. Returns the
/// budget, and whether it rolled.
async fn roll_if_due(tx: &mut Tx, b: BudgetInfo, now: Timestamp) -> Result<(BudgetInfo, bool)> {
    let Some((rolled, why)) = policy::budget_rolled(&b, now) else {
        return Ok((b, false));
    };
    save(tx, &rolled, now).await?;
    event(tx, "rolled", &rolled.queue, Some(&rolled), now);
    enforce(tx, &rolled, &why, now).await?;
    Ok((rolled, true))
}

pub(crate) async fn set_budget(
    tx: &mut Tx,
    queue: &str,
    spec: &BudgetSpec,
    now: Timestamp,
) -> Result<BudgetInfo> {
    let spec = policy::check_budget(queue, spec)?;
    ensure_queue(tx, queue).await?;
    let same_window = match lock(tx, queue).await? {
        Some(old) if old.spec.window == spec.window => Some(roll_if_due(tx, old, now).await?.0),
        _ => None,
    };
    let (b, why) = policy::budget_set(queue, spec, same_window, now);
    save(tx, &b, now).await?;
    event(tx, "set", queue, Some(&b), now);
    enforce(tx, &b, &why, now).await?;
    Ok(b)
}

pub(crate) async fn remove_budget(tx: &mut Tx, queue: &str, now: Timestamp) -> Result<()> {
    if exec(tx, "DELETE FROM budgets WHERE queue = $1", &[&queue]).await? == 0 {
        return Err(unknown(queue));
    }
    event(tx, "removed", queue, None, now);
    let why = policy::budget_removed_reason(queue);
    for p in firing_alarms(tx.client(), queue).await? {
        let subject = BudgetInfo::alarm_subject(queue, p);
        crate::flow::resolve_alert(tx, AlertKind::Budget, &subject, &why, now).await?;
    }
    let paused_by_budget = tx
        .client()
        .query_opt(
            "SELECT 1 FROM queues WHERE name = $1 AND paused AND pause_reason = $2",
            &[&queue, &PauseReason::Budget.as_str()],
        )
        .await?
        .is_some();
    if paused_by_budget {
        set_pause(tx, queue, None).await?;
    }
    Ok(())
}

pub(crate) async fn charge_usage(
    tx: &mut Tx,
    task: TaskId,
    tokens: u64,
    cost_usd: f64,
    calls: u32,
    now: Timestamp,
) -> Result<Charged> {
    policy::check_cost(cost_usd)?;
    let add = tokens.min(i64::MAX as u64) as i64;
    // Counts stop at the largest integer rather than overflow.
    let row = tx
        .client()
        .query_opt(
            "UPDATE tasks SET
                 tokens = CASE WHEN tokens > 9223372036854775807 - $2
                     THEN 9223372036854775807 ELSE tokens + $2 END,
                 cost_usd = cost_usd + $3,
                 model_calls = model_calls + $4
             WHERE id = $1 RETURNING queue",
            &[&task.0, &add, &cost_usd, &i64::from(calls)],
        )
        .await?
        .ok_or(StoreError::UnknownTask(task))?;
    let queue: String = col(&row, 0)?;
    // The lock makes a concurrent charge of another node wait and read this one's sum.
    let Some(b) = lock(tx, &queue).await? else {
        return Ok(Charged {
            queue,
            budget: None,
        });
    };
    let (b, _) = roll_if_due(tx, b, now).await?;
    let b = policy::budget_charged(b, tokens, cost_usd, calls);
    save(tx, &b, now).await?;
    enforce(tx, &b, "", now).await?;
    Ok(Charged {
        queue,
        budget: Some(b),
    })
}

pub(crate) async fn budget_gate(
    c: &Client,
    queue: &str,
    now: Timestamp,
) -> Result<Option<BudgetInfo>> {
    Ok(find(c, queue).await?.filter(|b| !b.allows_call(now)))
}

pub(crate) async fn roll_budget(
    tx: &mut Tx,
    queue: &str,
    now: Timestamp,
) -> Result<Option<BudgetInfo>> {
    let Some(b) = lock(tx, queue).await? else {
        return Ok(None);
    };
    let (b, rolled) = roll_if_due(tx, b, now).await?;
    Ok(rolled.then_some(b))
}

/// Refuses to resume a queue whose budget is spent (after rolling a window that
/// ended): the budget says when it resumes.
pub(crate) async fn check_resumable(tx: &mut Tx, queue: &str) -> Result<()> {
    let Some(b) = lock(tx, queue).await? else {
        return Ok(());
    };
    let now = db_now(tx.client()).await?;
    let (b, _) = roll_if_due(tx, b, now).await?;
    policy::check_resumable(&b)
}
