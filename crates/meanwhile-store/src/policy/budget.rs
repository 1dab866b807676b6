//! A budget's decisions, the same on both stores: the alarms its usage reaches, a
//! new window, a set and a charge, and what its alerts and its queue's pause must
//! become.

use super::*;

/// The data of a `budget` event.
pub(crate) fn budget_event(action: &str, queue: &str, info: Option<&BudgetInfo>) -> Value {
    json!({"action": action, "queue": queue, "budget": info})
}

/// `b` with the alarms its usage reaches as the ones fired (and its state from them).
pub(crate) fn budget_evaluated(b: BudgetInfo) -> BudgetInfo {
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

/// The budget a new window starts when the current one ended by `now`, with why its
/// alerts resolve; `None` while the window goes on.
pub(crate) fn budget_rolled(b: &BudgetInfo, now: Timestamp) -> Option<(BudgetInfo, String)> {
    if !b.window_passed(now) {
        return None;
    }
    let start = b.spec.window.start_of(now, b.window_start);
    let end = b.spec.window.end_of(start);
    let rolled = BudgetInfo::new(
        b.queue.clone(),
        b.spec.clone(),
        start,
        end,
        0,
        0.0,
        0,
        Vec::new(),
    );
    let why = format!(
        "a new budget window of queue {:?} started at {}",
        rolled.queue,
        rfc3339_secs(start)
    );
    Some((rolled, why))
}

/// Checks a budget set on `queue` before anything changes; the spec as it is kept.
pub(crate) fn check_budget(queue: &str, spec: &BudgetSpec) -> Result<BudgetSpec> {
    let invalid = |e: meanwhile_core::SpecError| StoreError::Invalid {
        field: e.field,
        message: e.message,
    };
    check_queue_name(queue).map_err(invalid)?;
    spec.clone().validate().map_err(invalid)
}

/// The budget `spec` sets on `queue`, given the current one when it has the same
/// kind of window (already rolled to `now`): its usage so far still counts against
/// the new limits; otherwise the usage counts from `now`. With why the alerts it no
/// longer reaches resolve.
pub(crate) fn budget_set(
    queue: &str,
    spec: BudgetSpec,
    same_window: Option<BudgetInfo>,
    now: Timestamp,
) -> (BudgetInfo, String) {
    let b = match same_window {
        Some(old) => BudgetInfo::new(
            queue.to_string(),
            spec,
            old.window_start,
            old.window_end,
            old.used_tokens,
            old.used_cost_usd,
            old.model_calls,
            old.alarms_fired,
        ),
        None => {
            let start = spec.window.start_of(now, now);
            let end = spec.window.end_of(start);
            BudgetInfo::new(queue.to_string(), spec, start, end, 0, 0.0, 0, Vec::new())
        }
    };
    let b = budget_evaluated(b);
    let why = format!(
        "the budget of queue {queue:?} was changed: {} used {}",
        b.usage_text(),
        b.window_text()
    );
    (b, why)
}

/// Why the alerts of a removed budget resolve.
pub(crate) fn budget_removed_reason(queue: &str) -> String {
    format!("the budget of queue {queue:?} was removed")
}

/// Refuses a model call's cost that is not a number of dollars.
pub(crate) fn check_cost(cost_usd: f64) -> Result<()> {
    if !(cost_usd.is_finite() && cost_usd >= 0.0) {
        return Err(StoreError::Invalid {
            field: "cost_usd",
            message: format!("must be a number of US dollars from 0 up, got {cost_usd}"),
        });
    }
    Ok(())
}

/// `b` after a charge of model calls' usage (its window already rolled).
pub(crate) fn budget_charged(
    mut b: BudgetInfo,
    tokens: u64,
    cost_usd: f64,
    calls: u32,
) -> BudgetInfo {
    b.used_tokens = b.used_tokens.saturating_add(tokens).min(i64::MAX as u64);
    b.used_cost_usd += cost_usd;
    b.model_calls = b.model_calls.saturating_add(u64::from(calls));
    budget_evaluated(b)
}

/// The percentages of the firing `budget` alerts of `queue`, from their subjects.
pub(crate) fn firing_alarms(queue: &str, subjects: &[String]) -> BTreeSet<u32> {
    let prefix = format!("budget:{queue}:");
    subjects
        .iter()
        .filter_map(|s| s.strip_prefix(&prefix)?.parse().ok())
        .collect()
}

/// What bringing a budget's alerts and its queue's pause in line with its usage
/// does, in this order: pause the queue, resolve alerts, fire alerts, resume it.
pub(crate) struct Enforce {
    /// The budget is spent and the queue runs: pause it with the reason `budget`.
    pub pause: bool,
    /// Alarms whose alert fires but which the usage no longer reaches.
    pub resolve: Vec<u32>,
    /// Alarms reached that have no alert yet.
    pub fire: Vec<NewAlert>,
    /// The budget paused the queue and is no longer spent: resume it.
    pub resume: bool,
}

/// What the budget `b` asks of its alerts (`firing` now) and its queue `q`: an alert
/// fires for each alarm fired that has none yet, and resolves for each one no longer
/// fired; a spent budget pauses its queue (unless a user already paused it), and a
/// queue the budget paused resumes once it is not spent.
pub(crate) fn enforce(b: &BudgetInfo, firing: &BTreeSet<u32>, q: &QueueInfo) -> Enforce {
    let spent = b.state == BudgetState::Exhausted;
    Enforce {
        pause: spent && !q.paused,
        resolve: firing
            .iter()
            .filter(|p| !b.alarms_fired.contains(p))
            .copied()
            .collect(),
        fire: b
            .alarms_fired
            .iter()
            .filter(|p| !firing.contains(p))
            .map(|&p| NewAlert {
                kind: AlertKind::Budget,
                subject: BudgetInfo::alarm_subject(&b.queue, p),
                message: b.alarm_message(p),
                task: None,
                queue: Some(b.queue.clone()),
            })
            .collect(),
        resume: !spent && q.pause_reason == Some(PauseReason::Budget),
    }
}

/// Refuses to resume a queue whose budget (rolled to now) is spent: the budget says
/// when it resumes.
pub(crate) fn check_resumable(b: &BudgetInfo) -> Result<()> {
    if b.state == BudgetState::Exhausted {
        return Err(StoreError::Conflict {
            field: "paused",
            message: b.resume_refusal(),
        });
    }
    Ok(())
}
