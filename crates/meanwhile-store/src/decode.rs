//! What both stores share between their SQL and the records they answer with:
//! rows decoded into core's types, the checks a request passes before any SQL runs,
//! and the data of the events a write appends. Each store reads its columns into
//! these plain structs; what a write decides from them is `policy`'s. None of this
//! knows a database.

use crate::cells::Cells;
use crate::{AttemptEnd, StoreError};
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{
    Alert, AlertAck, AlertKind, AlertState, Attempt, AttemptOutcome, AuditFilter, AuditPage,
    BudgetInfo, BudgetSpec, BudgetWindow, LiveState, Notification, PauseReason, QueueInfo,
    RateLimit, ScheduleInfo, ScheduleSpec, Step, TaskId, TaskKind, TaskRecord, TaskSpec, TaskState,
    Timestamp,
};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

type Result<T> = std::result::Result<T, StoreError>;

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

/// A stored task state.
pub(crate) fn state(text: &str) -> Result<TaskState> {
    TaskState::parse(text).ok_or_else(|| corrupt("task state", text))
}

/// A task's columns as stored (the `TASK_COLS` of each store, in that order).
pub(crate) struct TaskColumns {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub state: String,
    pub queue: String,
    pub priority: i64,
    pub labels: String,
    pub session: Option<String>,
    pub spec: String,
    pub created_at: i64,
    pub run_after: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub attempts: i64,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub reason: Option<String>,
    pub progress: Option<String>,
    pub result: Option<String>,
    pub node: Option<String>,
    pub stop_requested: bool,
    pub tokens: i64,
    pub cost_usd: f64,
    pub model_calls: i64,
    pub live: Option<String>,
}

impl TaskColumns {
    /// The columns of a row that selects them in this order.
    pub(crate) fn read(r: &impl Cells) -> Result<Self> {
        Ok(TaskColumns {
            id: r.cell(0)?,
            kind: r.cell(1)?,
            name: r.cell(2)?,
            state: r.cell(3)?,
            queue: r.cell(4)?,
            priority: r.cell(5)?,
            labels: r.cell(6)?,
            session: r.cell(7)?,
            spec: r.cell(8)?,
            created_at: r.cell(9)?,
            run_after: r.cell(10)?,
            started_at: r.cell(11)?,
            finished_at: r.cell(12)?,
            attempts: r.cell(13)?,
            exit_code: r.cell(14)?,
            signal: r.cell(15)?,
            reason: r.cell(16)?,
            progress: r.cell(17)?,
            result: r.cell(18)?,
            node: r.cell(19)?,
            stop_requested: r.cell(20)?,
            tokens: r.cell(21)?,
            cost_usd: r.cell(22)?,
            model_calls: r.cell(23)?,
            live: r.cell(24)?,
        })
    }
}

impl TaskColumns {
    pub(crate) fn decode(self) -> Result<TaskRecord> {
        let spec = serde_json::from_str::<TaskSpec>(&self.spec).map_err(|e| corrupt("spec", e))?;
        let live: LiveState = match &self.live {
            Some(l) => serde_json::from_str(l).map_err(|e| corrupt("live state", e))?,
            None => LiveState::default(),
        };
        Ok(TaskRecord {
            id: TaskId(self.id),
            kind: TaskKind::parse(&self.kind).ok_or_else(|| corrupt("task kind", &self.kind))?,
            name: self.name,
            state: state(&self.state)?,
            queue: self.queue,
            priority: self.priority as i32,
            labels: serde_json::from_str(&self.labels).map_err(|e| corrupt("labels", e))?,
            session: self.session,
            // The column is the spec's key, kept apart for the claim to group by.
            concurrency_key: spec.concurrency_key.clone(),
            spec,
            created_at: Timestamp(self.created_at),
            run_after: self.run_after.map(Timestamp),
            started_at: self.started_at.map(Timestamp),
            finished_at: self.finished_at.map(Timestamp),
            attempts: self.attempts as u32,
            exit_code: self.exit_code.map(|c| c as i32),
            signal: self.signal.map(|s| s as i32),
            reason: self.reason,
            progress: match self.progress {
                Some(p) => Some(serde_json::from_str(&p).map_err(|e| corrupt("progress", e))?),
                None => None,
            },
            result: self.result,
            node: self.node,
            stop_requested: self.stop_requested,
            tokens: self.tokens.max(0) as u64,
            cost_usd: self.cost_usd,
            model_calls: self.model_calls.clamp(0, u32::MAX.into()) as u32,
            waiting_for_input: live.waiting_since.is_some(),
            waiting_since: live.waiting_since,
            prompt: live.prompt,
            listening: live.listening,
        })
    }
}

/// An attempt's columns as stored (each store's `ATTEMPT_COLS`, in that order).
pub(crate) struct AttemptColumns {
    pub number: i64,
    pub node: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
    pub exit_code: Option<i64>,
    pub signal: Option<i64>,
    pub reason: Option<String>,
    pub pid: Option<i64>,
    pub peak_rss_kb: Option<i64>,
    pub cpu_ms: Option<i64>,
}

impl AttemptColumns {
    /// The columns of a row that selects them in this order.
    pub(crate) fn read(r: &impl Cells) -> Result<Self> {
        Ok(AttemptColumns {
            number: r.cell(0)?,
            node: r.cell(1)?,
            started_at: r.cell(2)?,
            ended_at: r.cell(3)?,
            outcome: r.cell(4)?,
            exit_code: r.cell(5)?,
            signal: r.cell(6)?,
            reason: r.cell(7)?,
            pid: r.cell(8)?,
            peak_rss_kb: r.cell(9)?,
            cpu_ms: r.cell(10)?,
        })
    }
}

impl AttemptColumns {
    pub(crate) fn decode(self) -> Attempt {
        Attempt {
            number: self.number as u32,
            node: self.node,
            started_at: Timestamp(self.started_at),
            ended_at: self.ended_at.map(Timestamp),
            outcome: self.outcome,
            exit_code: self.exit_code.map(|c| c as i32),
            signal: self.signal.map(|s| s as i32),
            reason: self.reason,
            pid: self.pid.map(|p| p as i32),
            peak_rss_kb: self.peak_rss_kb.map(|v| v as u64),
            cpu_ms: self.cpu_ms.map(|v| v as u64),
        }
    }
}

/// An alert's columns as stored.
pub(crate) struct AlertColumns {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub message: String,
    pub task_id: Option<i64>,
    pub queue: Option<String>,
    pub fired_at: i64,
    pub resolved_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub acked_until: Option<i64>,
    pub acked_by: Option<String>,
    pub notices: i64,
}

impl AlertColumns {
    /// The columns of a row that selects them in this order.
    pub(crate) fn read(r: &impl Cells) -> Result<Self> {
        Ok(AlertColumns {
            id: r.cell(0)?,
            kind: r.cell(1)?,
            state: r.cell(2)?,
            message: r.cell(3)?,
            task_id: r.cell(4)?,
            queue: r.cell(5)?,
            fired_at: r.cell(6)?,
            resolved_at: r.cell(7)?,
            acked_at: r.cell(8)?,
            acked_until: r.cell(9)?,
            acked_by: r.cell(10)?,
            notices: r.cell(11)?,
        })
    }
}

impl AlertColumns {
    pub(crate) fn decode(self) -> Result<Alert> {
        let kind = AlertKind::parse(&self.kind).ok_or_else(|| corrupt("alert kind", &self.kind))?;
        let state = match self.state.as_str() {
            "firing" => AlertState::Firing,
            "resolved" => AlertState::Resolved,
            other => return Err(corrupt("alert state", other)),
        };
        let fired_at = Timestamp(self.fired_at);
        let resolved_at = self.resolved_at.map(Timestamp);
        Ok(Alert {
            id: self.id,
            kind,
            state,
            message: self.message,
            task: self.task_id.map(TaskId),
            queue: self.queue,
            at: resolved_at.unwrap_or(fired_at),
            fired_at,
            resolved_at,
            acked: self.acked_at.map(|at| AlertAck {
                at: Timestamp(at),
                until: self.acked_until.map(Timestamp),
                by: self.acked_by.unwrap_or_default(),
            }),
            notices: self.notices.clamp(1, u32::MAX.into()) as u32,
        })
    }
}

/// A schedule's columns as stored, with the state of its latest task.
pub(crate) struct ScheduleColumns {
    pub name: String,
    pub spec: String,
    pub paused: bool,
    pub next_fire: Option<i64>,
    pub last_fire: Option<i64>,
    pub last_task: Option<i64>,
    pub last_state: Option<String>,
    pub fired: i64,
    pub missed: i64,
    pub created_at: i64,
}

impl ScheduleColumns {
    /// The columns of a row that selects them in this order.
    pub(crate) fn read(r: &impl Cells) -> Result<Self> {
        Ok(ScheduleColumns {
            name: r.cell(0)?,
            spec: r.cell(1)?,
            paused: r.cell(2)?,
            next_fire: r.cell(3)?,
            last_fire: r.cell(4)?,
            last_task: r.cell(5)?,
            last_state: r.cell(6)?,
            fired: r.cell(7)?,
            missed: r.cell(8)?,
            created_at: r.cell(9)?,
        })
    }
}

impl ScheduleColumns {
    pub(crate) fn decode(self) -> Result<ScheduleInfo> {
        let spec: ScheduleSpec = serde_json::from_str(&self.spec)
            .map_err(|e| corrupt(&format!("schedule {}", self.name), e))?;
        Ok(ScheduleInfo {
            spec,
            paused: self.paused,
            next_fire: self.next_fire.map(Timestamp),
            last_fire: self.last_fire.map(Timestamp),
            last_task: self.last_task.map(TaskId),
            last_state: self.last_state.as_deref().map(state).transpose()?,
            fired: self.fired.max(0) as u64,
            missed_count: self.missed.max(0) as u64,
            created_at: Timestamp(self.created_at),
        })
    }
}

/// A queue's columns as stored, with its pending and running counts.
pub(crate) struct QueueColumns {
    pub name: String,
    pub max_parallel: i64,
    pub paused: bool,
    pub per_key: Option<i64>,
    pub rate_count: Option<i64>,
    pub rate_window_ms: Option<i64>,
    pub alert_after: Option<i64>,
    pub pause_reason: Option<String>,
}

impl QueueColumns {
    /// The columns of a row that selects them in this order.
    pub(crate) fn read(r: &impl Cells) -> Result<Self> {
        Ok(QueueColumns {
            name: r.cell(0)?,
            max_parallel: r.cell(1)?,
            paused: r.cell(2)?,
            per_key: r.cell(3)?,
            rate_count: r.cell(4)?,
            rate_window_ms: r.cell(5)?,
            alert_after: r.cell(6)?,
            pause_reason: r.cell(7)?,
        })
    }
}

impl QueueColumns {
    pub(crate) fn decode(self, counts: &HashMap<(String, String), i64>) -> Result<QueueInfo> {
        let pause_reason = match (self.paused, self.pause_reason.as_deref()) {
            (false, _) => None,
            // Only a user pauses a queue without saying why.
            (true, None) => Some(PauseReason::User),
            (true, Some(r)) => {
                Some(PauseReason::parse(r).ok_or_else(|| corrupt("queue pause reason", r))?)
            }
        };
        let rate = match (self.rate_count, self.rate_window_ms) {
            (Some(count), Some(window)) => Some(
                u32::try_from(count)
                    .ok()
                    .and_then(|c| {
                        let w = Duration::from_millis(u64::try_from(window).ok()?);
                        RateLimit::new(c, w).ok()
                    })
                    .ok_or_else(|| corrupt("queue rate", format!("{count}/{window}ms")))?,
            ),
            _ => None,
        };
        let get = |s: &str| {
            counts
                .get(&(self.name.clone(), s.to_string()))
                .copied()
                .unwrap_or(0)
                .max(0) as u64
        };
        Ok(QueueInfo {
            pending: get("pending"),
            running: get("running"),
            max_parallel: self.max_parallel as u32,
            paused: self.paused,
            pause_reason,
            per_key: self.per_key.map(|n| n.clamp(1, u32::MAX.into()) as u32),
            rate,
            alert_after: self.alert_after.map(|n| n.clamp(1, u32::MAX.into()) as u32),
            name: self.name,
        })
    }
}

/// The per-state counts, sorted, from the counters as stored.
pub(crate) fn counts(
    counts: HashMap<(String, String), i64>,
) -> Result<Vec<(String, TaskState, u64)>> {
    let mut out = Vec::new();
    for ((queue, s), n) in counts {
        out.push((queue, state(&s)?, n.max(0) as u64));
    }
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    Ok(out)
}

/// Refuses a queue change whose limits make no sense, before anything changes.
pub(crate) fn check_queue_update(change: &QueueUpdate) -> Result<()> {
    if change.max_parallel == Some(0) {
        return Err(StoreError::Invalid {
            field: "max_parallel",
            message: "must be at least 1 (pause the queue to start nothing)".into(),
        });
    }
    if change.alert_after == Some(Some(0)) {
        return Err(StoreError::Invalid {
            field: "alert_after",
            message: "must be at least 1 (or none for no failures alert)".into(),
        });
    }
    if change.per_key == Some(Some(0)) {
        return Err(StoreError::Invalid {
            field: "per_key",
            message: "must be at least 1 (or none for no limit per key)".into(),
        });
    }
    Ok(())
}

/// The bounds of one page of a listing: at most `limit` rows (clamped), one more
/// read to know whether a next page exists.
pub(crate) fn task_page(mut tasks: Vec<TaskRecord>, limit: u32) -> meanwhile_core::Page {
    let next = if tasks.len() > limit as usize {
        tasks.truncate(limit as usize);
        tasks.last().map(|t| t.id)
    } else {
        None
    };
    meanwhile_core::Page { tasks, next }
}

/// The most tasks one listing returns.
pub(crate) fn list_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(100).clamp(1, 1000)
}

/// `text` with its case folded (Unicode lower case), as the text filter compares.
pub(crate) fn fold_case(text: &str) -> String {
    text.to_lowercase()
}

/// A `LIKE` pattern (escape character `\`) matching names that contain `text`.
#[cfg(feature = "postgres")]
pub(crate) fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// An audit listing's bounds, and its page once read.
pub(crate) struct AuditQuery {
    pub after: i64,
    /// Only records before this sequence number.
    pub before: i64,
    pub since: i64,
    /// `ASC` or `DESC`.
    pub order: &'static str,
    /// Rows to read: one more than the page holds.
    pub fetch: i64,
    limit: i64,
}

impl AuditQuery {
    pub(crate) fn new(f: &AuditFilter) -> AuditQuery {
        let limit = i64::from(
            f.limit
                .unwrap_or(100)
                .clamp(1, meanwhile_core::MAX_AUDIT_LIMIT),
        );
        let (after, before, order) = if f.newest_first {
            (0, f.after.unwrap_or(i64::MAX), "DESC")
        } else {
            (f.after.unwrap_or(0), i64::MAX, "ASC")
        };
        AuditQuery {
            after,
            before,
            order,
            since: f.since.map_or(i64::MIN, |t| t.0),
            fetch: limit + 1,
            limit,
        }
    }

    pub(crate) fn page(&self, rows: Vec<crate::chain::AuditRow>) -> Result<AuditPage> {
        let mut records = rows
            .into_iter()
            .map(crate::chain::AuditRow::into_record)
            .collect::<Result<Vec<_>>>()?;
        let next = if records.len() as i64 > self.limit {
            records.truncate(self.limit as usize);
            records.last().map(|r| r.seq)
        } else {
            None
        };
        Ok(AuditPage { records, next })
    }
}

/// How an attempt's outcome is stored.
pub(crate) fn outcome_name(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Exited { .. } => "exited",
        AttemptOutcome::Signaled { .. } => "signaled",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::TimedOut => "timed_out",
        AttemptOutcome::Cancelled => "cancelled",
        AttemptOutcome::Lost => "lost",
    }
}

/// The data of an `attempt_ended` event.
pub(crate) fn attempt_ended_data(end: &AttemptEnd, to: TaskState) -> serde_json::Value {
    json!({
        "attempt": end.attempt,
        "outcome": outcome_name(end.outcome),
        "exit_code": end.exit_code,
        "signal": end.signal,
        "state": to,
        "retry_at": (to == TaskState::Pending).then_some(end.retry_at.0),
    })
}

/// The data of the `started` event of an attempt taken over: the node it runs on
/// now, and the one it was taken over from.
pub(crate) fn taken_over_data(to: &crate::TakeOver, from: Option<&str>) -> serde_json::Value {
    json!({
        "attempt": to.attempt,
        "node": to.node,
        "taken_over_from": from,
    })
}

/// The data of a `finished` event.
pub(crate) fn finished_data(task: &TaskRecord) -> serde_json::Value {
    let mut data = json!({
        "state": task.state,
        "exit_code": task.exit_code,
        "signal": task.signal,
        "reason": task.reason,
    });
    if task.spec.on_end.is_some() {
        // Tells the hook runner which ends to read the task of.
        data["on_end"] = json!(true);
    }
    data
}

/// A stored notification.
pub(crate) fn notification(seq: i64, body: &str) -> Result<Notification> {
    let mut n: Notification = serde_json::from_str(body).map_err(|e| corrupt("notification", e))?;
    n.seq = seq;
    Ok(n)
}

/// The refusal to remove the queue `name` with `pending` and `running` tasks, or a
/// budget; `None` when it may go.
pub(crate) fn queue_removal_refusal(
    name: &str,
    pending: i64,
    running: i64,
    budget: bool,
) -> Option<StoreError> {
    let message = if name == "default" {
        "the default queue cannot be removed: tasks that name no queue go there".to_string()
    } else if pending > 0 || running > 0 {
        format!(
            "queue {name:?} has {pending} pending and {running} running tasks; stop them or let them end ('meanwhile ls --queue {name}'), then remove it"
        )
    } else if budget {
        format!("queue {name:?} has a budget; remove it first ('meanwhile budget rm {name}')")
    } else {
        return None;
    };
    Some(StoreError::Conflict {
        field: "name",
        message,
    })
}

/// The refusal to remove a task that has not ended.
pub(crate) fn not_ended(id: TaskId, state: TaskState) -> StoreError {
    StoreError::Conflict {
        field: "id",
        message: format!("task {id} is {state}; stop it before removing it"),
    }
}

/// A node's columns as stored, with the number of tasks it runs.
pub(crate) struct NodeColumns {
    pub name: String,
    pub address: Option<String>,
    pub version: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub stopped_at: Option<i64>,
    pub running: i64,
}

impl NodeColumns {
    /// The columns of a row that selects them in this order.
    pub(crate) fn read(r: &impl Cells) -> Result<Self> {
        Ok(NodeColumns {
            name: r.cell(0)?,
            address: r.cell(1)?,
            version: r.cell(2)?,
            started_at: r.cell(3)?,
            heartbeat_at: r.cell(4)?,
            stopped_at: r.cell(5)?,
            running: r.cell(6)?,
        })
    }
}

impl NodeColumns {
    pub(crate) fn decode(self) -> meanwhile_core::NodeRow {
        meanwhile_core::NodeRow {
            beat: meanwhile_core::NodeBeat {
                name: self.name,
                address: self.address,
                version: self.version,
                started_at: Timestamp(self.started_at),
                now: Timestamp(self.heartbeat_at),
            },
            stopped_at: self.stopped_at.map(Timestamp),
            running: self.running.max(0) as u64,
        }
    }
}

/// A budget's columns as stored (each store's budget `COLS`, in that order).
pub(crate) struct BudgetColumns {
    pub queue: String,
    pub tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub window: String,
    pub alarms: String,
    pub window_start: i64,
    pub window_end: Option<i64>,
    pub used_tokens: i64,
    pub used_cost_usd: f64,
    pub model_calls: i64,
    pub fired: String,
}

impl BudgetColumns {
    /// The columns of a row that selects them in this order.
    pub(crate) fn read(r: &impl Cells) -> Result<Self> {
        Ok(BudgetColumns {
            queue: r.cell(0)?,
            tokens: r.cell(1)?,
            cost_usd: r.cell(2)?,
            window: r.cell(3)?,
            alarms: r.cell(4)?,
            window_start: r.cell(5)?,
            window_end: r.cell(6)?,
            used_tokens: r.cell(7)?,
            used_cost_usd: r.cell(8)?,
            model_calls: r.cell(9)?,
            fired: r.cell(10)?,
        })
    }
}

impl BudgetColumns {
    pub(crate) fn decode(self) -> Result<BudgetInfo> {
        let window = BudgetWindow::parse(&self.window)
            .ok_or_else(|| corrupt("budget window", &self.window))?;
        let alarms: Vec<u32> =
            serde_json::from_str(&self.alarms).map_err(|e| corrupt("budget alarms", e))?;
        let fired: Vec<u32> =
            serde_json::from_str(&self.fired).map_err(|e| corrupt("budget alarms fired", e))?;
        let spec = BudgetSpec {
            tokens: self.tokens.map(|t| t.max(0) as u64),
            cost_usd: self.cost_usd,
            window,
            alarms,
        };
        Ok(BudgetInfo::new(
            self.queue,
            spec,
            Timestamp(self.window_start),
            self.window_end.map(Timestamp),
            self.used_tokens.max(0) as u64,
            self.used_cost_usd,
            self.model_calls.max(0) as u64,
            fired,
        ))
    }

    /// A budget as its columns, counts kept within the integer columns.
    pub(crate) fn encode(b: &BudgetInfo) -> Result<BudgetColumns> {
        let text = |v: &Vec<u32>| serde_json::to_string(v).map_err(|e| corrupt("budget", e));
        Ok(BudgetColumns {
            queue: b.queue.clone(),
            tokens: b.spec.tokens.map(|t| t.min(i64::MAX as u64) as i64),
            cost_usd: b.spec.cost_usd,
            window: b.spec.window.as_str().to_string(),
            alarms: text(&b.spec.alarms)?,
            window_start: b.window_start.0,
            window_end: b.window_end.map(|t| t.0),
            used_tokens: b.used_tokens.min(i64::MAX as u64) as i64,
            used_cost_usd: b.used_cost_usd,
            model_calls: b.model_calls.min(i64::MAX as u64) as i64,
            fired: text(&b.alarms_fired)?,
        })
    }
}

/// `text` as an SQL string literal (quotes doubled), for the same text in both
/// stores' SQL where a parameter would not do.
pub(crate) fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The rules of a step to record: a kind that is a short name, data within
/// [`meanwhile_core::MAX_STEP_BYTES`].
pub(crate) fn check_step(kind: &str, data: &str) -> Result<()> {
    let named = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !named {
        return Err(StoreError::Invalid {
            field: "kind",
            message: format!(
                "{kind:?} is not a step kind: use 1 to 64 lowercase letters, digits or _"
            ),
        });
    }
    if data.len() > meanwhile_core::MAX_STEP_BYTES {
        return Err(StoreError::Invalid {
            field: "data",
            message: format!(
                "a step of {} bytes is over the limit of {} bytes; record less (a tool's \
                 output is in the task's log and its own task)",
                data.len(),
                meanwhile_core::MAX_STEP_BYTES
            ),
        });
    }
    Ok(())
}

/// A step is recorded only by the task's running attempt: one that was stopped, or
/// that another node took over, records nothing more.
pub(crate) fn check_step_attempt(
    s: &crate::NewStep,
    state: &str,
    current: u32,
    holder: Option<&str>,
) -> Result<()> {
    let (id, attempt) = (s.id, s.attempt);
    let state = self::state(state)?;
    if state != TaskState::Running || current != attempt {
        return Err(StoreError::Conflict {
            field: "attempt",
            message: format!(
                "task {id} is {state} at attempt {current}: attempt {attempt} records no more steps"
            ),
        });
    }
    if let Some(node) = s.node.as_deref()
        && holder != Some(node)
    {
        return Err(StoreError::Conflict {
            field: "attempt",
            message: format!(
                "node {} took attempt {attempt} of task {id} over: node {node:?} records no more steps of it",
                holder.map_or_else(|| "?".to_string(), |h| format!("{h:?}"))
            ),
        });
    }
    Ok(())
}

/// A step as the store keeps it.
pub(crate) fn step(attempt: u32, n: u32, at: i64, kind: String, data: &str) -> Result<Step> {
    Ok(Step {
        attempt,
        n,
        at: Timestamp(at),
        kind,
        data: serde_json::from_str(data).map_err(|e| corrupt("step data", e))?,
    })
}
