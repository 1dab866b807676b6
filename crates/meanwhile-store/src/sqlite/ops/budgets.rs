//! Budgets: setting, listing and removing them; charging a model call's usage to its
//! task and to its queue's budget, which fires the alarms it reaches and pauses the
//! queue once the budget is spent; the gate a model call passes first; and the roll
//! to a new window, which counts from 0 again and resumes what the budget paused.
//!
//! Every change brings the budget's alerts and its queue's pause in line with its
//! usage in the same write (`enforce`), so an answered change never leaves a spent
//! budget's queue running or a raised one's paused. What a change decides is
//! `crate::decode`'s, shared with PostgreSQL.

use super::*;
use crate::decode::BudgetColumns;
use crate::flow;
use crate::policy;
use crate::{Charged, StoreError};
use meanwhile_core::{
    AlertKind, BudgetInfo, BudgetSpec, Event, EventKind, PauseReason, TaskId, Timestamp,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::BTreeSet;

const COLS: &str = crate::sql::ops::budgets::COLS.sqlite;

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<BudgetInfo>> {
    Ok(BudgetColumns::read(r).and_then(BudgetColumns::decode))
}

fn unknown(queue: &str) -> StoreError {
    StoreError::UnknownBudget(queue.to_string())
}

fn find(conn: &Connection, queue: &str) -> Result<Option<BudgetInfo>> {
    conn.prepare_cached(&format!("SELECT {COLS} FROM budgets WHERE queue = ?1"))?
        .query_row([queue], from_row)
        .optional()?
        .transpose()
}

pub(crate) fn budget(conn: &Connection, queue: &str) -> Result<BudgetInfo> {
    find(conn, queue)?.ok_or_else(|| unknown(queue))
}

/// Every budget, by queue.
pub(crate) fn budgets_sql() -> String {
    format!("SELECT {COLS} FROM budgets ORDER BY queue")
}

pub(crate) fn budgets(conn: &Connection) -> Result<Vec<BudgetInfo>> {
    let mut stmt = conn.prepare_cached(&budgets_sql())?;
    let rows = stmt.query_map([], from_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

fn event(
    conn: &Connection,
    events: &mut Vec<Event>,
    action: &str,
    queue: &str,
    info: Option<&BudgetInfo>,
    now: Timestamp,
) -> Result<()> {
    emit(
        conn,
        events,
        now,
        EventKind::Budget,
        None,
        policy::budget_event(action, queue, info),
    )
}

/// Writes a budget whole: its limits, window, usage and the alarms fired.
fn save(conn: &Connection, b: &BudgetInfo, now: Timestamp) -> Result<()> {
    let c = BudgetColumns::encode(b)?;
    conn.prepare_cached(
        "INSERT INTO budgets (queue, tokens, cost_usd, window_kind, alarms, window_start,
             window_end, used_tokens, used_cost_usd, model_calls, fired, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (queue) DO UPDATE SET tokens = excluded.tokens,
             cost_usd = excluded.cost_usd, window_kind = excluded.window_kind,
             alarms = excluded.alarms, window_start = excluded.window_start,
             window_end = excluded.window_end, used_tokens = excluded.used_tokens,
             used_cost_usd = excluded.used_cost_usd, model_calls = excluded.model_calls,
             fired = excluded.fired",
    )?
    .execute(params![
        c.queue,
        c.tokens,
        c.cost_usd,
        c.window,
        c.alarms,
        c.window_start,
        c.window_end,
        c.used_tokens,
        c.used_cost_usd,
        c.model_calls,
        c.fired,
        now.0,
    ])?;
    Ok(())
}

pub(crate) const FIRING_ALARMS: &str = crate::sql::ops::budgets::FIRING_ALARMS.sqlite;

/// The percentages whose `budget` alert fires for `queue`.
fn firing_alarms(conn: &Connection, queue: &str) -> Result<BTreeSet<u32>> {
    let mut stmt = conn.prepare_cached(FIRING_ALARMS)?;
    let subjects = stmt
        .query_map([queue], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(policy::firing_alarms(queue, &subjects))
}

/// Brings the budget's alerts and its queue's pause in line with `b` (see
/// [`policy::enforce`]), resolved alerts saying `why`.
fn enforce(
    conn: &Connection,
    events: &mut Vec<Event>,
    b: &BudgetInfo,
    why: &str,
    now: Timestamp,
) -> Result<()> {
    let firing = firing_alarms(conn, &b.queue)?;
    let plan = policy::enforce(b, &firing, &queue(conn, &b.queue)?);
    // The queue is paused before the alert that says so is sent.
    if plan.pause {
        set_pause(conn, events, &b.queue, Some(PauseReason::Budget))?;
    }
    for p in plan.resolve {
        let subject = BudgetInfo::alarm_subject(&b.queue, p);
        let db = &mut lite(conn, events);
        flow::ready(flow::resolve_alert(
            db,
            AlertKind::Budget,
            &subject,
            why,
            now,
        ))?;
    }
    for alert in &plan.fire {
        flow::ready(flow::fire_alert(&mut lite(conn, events), alert, now))?;
    }
    if plan.resume {
        set_pause(conn, events, &b.queue, None)?;
    }
    Ok(())
}

/// Starts a new window when the current one ended by `now`: the usage counts from 0,
/// the window's alerts resolve and a queue the budget paused resumes. Returns the
/// budget, and whether it rolled.
fn roll_if_due(
    conn: &Connection,
    events: &mut Vec<Event>,
    b: BudgetInfo,
    now: Timestamp,
) -> Result<(BudgetInfo, bool)> {
    let Some((rolled, why)) = policy::budget_rolled(&b, now) else {
        return Ok((b, false));
    };
    save(conn, &rolled, now)?;
    event(conn, events, "rolled", &rolled.queue, Some(&rolled), now)?;
    enforce(conn, events, &rolled, &why, now)?;
    Ok((rolled, true))
}

pub(crate) fn set_budget(
    conn: &Connection,
    events: &mut Vec<Event>,
    queue: &str,
    spec: &BudgetSpec,
    now: Timestamp,
) -> Result<BudgetInfo> {
    let spec = policy::check_budget(queue, spec)?;
    ensure_queue(conn, queue)?;
    let same_window = match find(conn, queue)? {
        Some(old) if old.spec.window == spec.window => Some(roll_if_due(conn, events, old, now)?.0),
        _ => None,
    };
    let (b, why) = policy::budget_set(queue, spec, same_window, now);
    save(conn, &b, now)?;
    event(conn, events, "set", queue, Some(&b), now)?;
    enforce(conn, events, &b, &why, now)?;
    Ok(b)
}

pub(crate) fn remove_budget(
    conn: &Connection,
    events: &mut Vec<Event>,
    queue: &str,
    now: Timestamp,
) -> Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM budgets WHERE queue = ?1")?
        .execute([queue])?;
    if n == 0 {
        return Err(unknown(queue));
    }
    event(conn, events, "removed", queue, None, now)?;
    let why = policy::budget_removed_reason(queue);
    for p in firing_alarms(conn, queue)? {
        let subject = BudgetInfo::alarm_subject(queue, p);
        let db = &mut lite(conn, events);
        flow::ready(flow::resolve_alert(
            db,
            AlertKind::Budget,
            &subject,
            &why,
            now,
        ))?;
    }
    if queue_paused_by_budget(conn, queue)? {
        set_pause(conn, events, queue, None)?;
    }
    Ok(())
}

fn queue_paused_by_budget(conn: &Connection, queue: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT pause_reason FROM queues WHERE name = ?1 AND paused <> 0")?
        .query_row([queue], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten()
        .as_deref()
        == Some(PauseReason::Budget.as_str()))
}

pub(crate) fn charge_usage(
    conn: &Connection,
    events: &mut Vec<Event>,
    task: TaskId,
    tokens: u64,
    cost_usd: f64,
    calls: u32,
    now: Timestamp,
) -> Result<Charged> {
    policy::check_cost(cost_usd)?;
    let add = tokens.min(i64::MAX as u64) as i64;
    // Counts stop at the largest integer rather than overflow into a float.
    let queue: String = conn
        .prepare_cached(
            "UPDATE tasks SET
                 tokens = CASE WHEN tokens > 9223372036854775807 - ?2
                     THEN 9223372036854775807 ELSE tokens + ?2 END,
                 cost_usd = cost_usd + ?3,
                 model_calls = model_calls + ?4
             WHERE id = ?1 RETURNING queue",
        )?
        .query_row(params![task.0, add, cost_usd, calls], |r| r.get(0))
        .optional()?
        .ok_or(StoreError::UnknownTask(task))?;
    let Some(b) = find(conn, &queue)? else {
        return Ok(Charged {
            queue,
            budget: None,
        });
    };
    let (b, _) = roll_if_due(conn, events, b, now)?;
    let b = policy::budget_charged(b, tokens, cost_usd, calls);
    save(conn, &b, now)?;
    enforce(conn, events, &b, "", now)?;
    Ok(Charged {
        queue,
        budget: Some(b),
    })
}

pub(crate) fn budget_gate(
    conn: &Connection,
    queue: &str,
    now: Timestamp,
) -> Result<Option<BudgetInfo>> {
    Ok(find(conn, queue)?.filter(|b| !b.allows_call(now)))
}

pub(crate) fn roll_budget(
    conn: &Connection,
    events: &mut Vec<Event>,
    queue: &str,
    now: Timestamp,
) -> Result<Option<BudgetInfo>> {
    let Some(b) = find(conn, queue)? else {
        return Ok(None);
    };
    let (b, rolled) = roll_if_due(conn, events, b, now)?;
    Ok(rolled.then_some(b))
}

/// Refuses to resume a queue whose budget is spent (after rolling a window that
/// ended): the budget says when it resumes.
pub(crate) fn check_resumable(
    conn: &Connection,
    events: &mut Vec<Event>,
    queue: &str,
) -> Result<()> {
    let Some(b) = find(conn, queue)? else {
        return Ok(());
    };
    let (b, _) = roll_if_due(conn, events, b, db_now(conn)?)?;
    policy::check_resumable(&b)
}
