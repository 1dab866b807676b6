//! Budgets: setting, listing and removing them; charging a model call's usage to its
//! task and to its queue's budget, which fires the alarms it reaches and pauses the
//! queue once the budget is spent; the gate a model call passes first; and the roll
//! to a new window, which counts from 0 again and resumes what the budget paused.
//!
//! Every change brings the budget's alerts and its queue's pause in line with its
//! usage in the same write (`enforce`), so an answered change never leaves a spent
//! budget's queue running or a raised one's paused.

use super::*;
use crate::{Charged, NewAlert, StoreError};
use meanwhile_core::{
    AlertKind, BudgetInfo, BudgetSpec, BudgetState, BudgetWindow, Event, EventKind, PauseReason,
    TaskId, Timestamp, check_queue_name, rfc3339_secs,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;
use std::collections::BTreeSet;

const COLS: &str = "queue, tokens, cost_usd, window_kind, alarms, window_start, window_end, \
    used_tokens, used_cost_usd, model_calls, fired";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<BudgetInfo>> {
    let queue: String = r.get(0)?;
    let window: String = r.get(3)?;
    let alarms: String = r.get(4)?;
    let fired: String = r.get(10)?;
    let build = || -> Result<BudgetInfo> {
        let window =
            BudgetWindow::parse(&window).ok_or_else(|| corrupt("budget window", &window))?;
        let alarms: Vec<u32> =
            serde_json::from_str(&alarms).map_err(|e| corrupt("budget alarms", e))?;
        let fired: Vec<u32> =
            serde_json::from_str(&fired).map_err(|e| corrupt("budget alarms fired", e))?;
        let spec = BudgetSpec {
            tokens: r.get::<_, Option<i64>>(1)?.map(|t| t.max(0) as u64),
            cost_usd: r.get(2)?,
            window,
            alarms,
        };
        Ok(BudgetInfo::new(
            queue.clone(),
            spec,
            Timestamp(r.get(5)?),
            r.get::<_, Option<i64>>(6)?.map(Timestamp),
            r.get::<_, i64>(7)?.max(0) as u64,
            r.get(8)?,
            r.get::<_, i64>(9)?.max(0) as u64,
            fired,
        ))
    };
    Ok(build())
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

pub(crate) fn budgets(conn: &Connection) -> Result<Vec<BudgetInfo>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLS} FROM budgets ORDER BY queue"))?;
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
        json!({"action": action, "queue": queue, "budget": info}),
    )
}

fn text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| corrupt("budget", e))
}

/// Writes a budget whole: its limits, window, usage and the alarms fired.
fn save(conn: &Connection, b: &BudgetInfo, now: Timestamp) -> Result<()> {
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
        b.queue,
        b.spec.tokens.map(|t| t.min(i64::MAX as u64) as i64),
        b.spec.cost_usd,
        b.spec.window.as_str(),
        text(&b.spec.alarms)?,
        b.window_start.0,
        b.window_end.map(|t| t.0),
        b.used_tokens.min(i64::MAX as u64) as i64,
        b.used_cost_usd,
        b.model_calls.min(i64::MAX as u64) as i64,
        text(&b.alarms_fired)?,
        now.0,
    ])?;
    Ok(())
}

/// `b` with the alarms its usage reaches as the ones fired (and its state from them).
fn evaluated(b: BudgetInfo) -> BudgetInfo {
    let reached = b.spec.reached(b.used_tokens, b.used_cost_usd);
    BudgetInfo::new(
        b.queue,
        b.spec,
        b.window_start,
        b.window_end,
        b.used_tokens,
        b.used_cost_usd,
        b.model_calls,
        reached,
    )
}

/// The percentages whose `budget` alert fires for `queue`.
fn firing_alarms(conn: &Connection, queue: &str) -> Result<BTreeSet<u32>> {
    let prefix = format!("budget:{queue}:");
    let mut stmt = conn.prepare_cached(
        "SELECT subject FROM alerts WHERE kind = 'budget' AND state = 'firing' AND queue = ?1",
    )?;
    let subjects = stmt
        .query_map([queue], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(subjects
        .iter()
        .filter_map(|s| s.strip_prefix(&prefix)?.parse().ok())
        .collect())
}

/// Brings the budget's alerts and its queue's pause in line with `b`: an alert fires
/// for each alarm fired that has none yet, and resolves (saying `why`) for each one
/// no longer fired; a spent budget pauses its queue (unless a user already paused
/// it), and a queue the budget paused resumes once it is not spent.
fn enforce(
    conn: &Connection,
    events: &mut Vec<Event>,
    b: &BudgetInfo,
    why: &str,
    now: Timestamp,
) -> Result<()> {
    let firing = firing_alarms(conn, &b.queue)?;
    let spent = b.state == BudgetState::Exhausted;
    let q = queue(conn, &b.queue)?;
    // The queue is paused before the alert that says so is sent.
    if spent && !q.paused {
        set_pause(conn, events, &b.queue, Some(PauseReason::Budget))?;
    }
    for &p in firing.iter().filter(|p| !b.alarms_fired.contains(p)) {
        resolve_alert(
            conn,
            events,
            AlertKind::Budget,
            &BudgetInfo::alarm_subject(&b.queue, p),
            why,
            now,
        )?;
    }
    for &p in b.alarms_fired.iter().filter(|p| !firing.contains(p)) {
        fire_alert(
            conn,
            events,
            &NewAlert {
                kind: AlertKind::Budget,
                subject: BudgetInfo::alarm_subject(&b.queue, p),
                message: b.alarm_message(p),
                task: None,
                queue: Some(b.queue.clone()),
            },
            now,
        )?;
    }
    if !spent && q.pause_reason == Some(PauseReason::Budget) {
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
    if !b.window_passed(now) {
        return Ok((b, false));
    }
    let start = b.spec.window.start_of(now, b.window_start);
    let end = b.spec.window.end_of(start);
    let rolled = BudgetInfo::new(b.queue, b.spec, start, end, 0, 0.0, 0, Vec::new());
    save(conn, &rolled, now)?;
    event(conn, events, "rolled", &rolled.queue, Some(&rolled), now)?;
    let why = format!(
        "a new budget window of queue {:?} started at {}",
        rolled.queue,
        rfc3339_secs(start)
    );
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
    let invalid = |e: meanwhile_core::SpecError| StoreError::Invalid {
        field: e.field,
        message: e.message,
    };
    check_queue_name(queue).map_err(invalid)?;
    let spec = spec.clone().validate().map_err(invalid)?;
    ensure_queue(conn, queue)?;
    let b = match find(conn, queue)? {
        // The same kind of window: the usage so far still counts against the new
        // limits.
        Some(old) if old.spec.window == spec.window => {
            let (old, _) = roll_if_due(conn, events, old, now)?;
            BudgetInfo::new(
                queue.to_string(),
                spec,
                old.window_start,
                old.window_end,
                old.used_tokens,
                old.used_cost_usd,
                old.model_calls,
                old.alarms_fired,
            )
        }
        // A new budget, or another kind of window: the usage counts from now.
        _ => {
            let start = spec.window.start_of(now, now);
            let end = spec.window.end_of(start);
            BudgetInfo::new(queue.to_string(), spec, start, end, 0, 0.0, 0, Vec::new())
        }
    };
    let b = evaluated(b);
    save(conn, &b, now)?;
    event(conn, events, "set", queue, Some(&b), now)?;
    let why = format!(
        "the budget of queue {queue:?} was changed: {} used {}",
        b.usage_text(),
        b.window_text()
    );
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
    let why = format!("the budget of queue {queue:?} was removed");
    for p in firing_alarms(conn, queue)? {
        resolve_alert(
            conn,
            events,
            AlertKind::Budget,
            &BudgetInfo::alarm_subject(queue, p),
            &why,
            now,
        )?;
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
    if !(cost_usd.is_finite() && cost_usd >= 0.0) {
        return Err(StoreError::Invalid {
            field: "cost_usd",
            message: format!("must be a number of US dollars from 0 up, got {cost_usd}"),
        });
    }
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
    let (mut b, _) = roll_if_due(conn, events, b, now)?;
    b.used_tokens = b.used_tokens.saturating_add(tokens).min(i64::MAX as u64);
    b.used_cost_usd += cost_usd;
    b.model_calls = b.model_calls.saturating_add(u64::from(calls));
    let b = evaluated(b);
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
    if b.state == BudgetState::Exhausted {
        return Err(StoreError::Conflict {
            field: "paused",
            message: b.resume_refusal(),
        });
    }
    Ok(())
}
