//! meanwhile's vocabulary: task ids, specs, states, transitions, retry arithmetic,
//! notifications and events. This crate does no I/O: every clock reading and every
//! random sample is passed in, so all of it is testable with plain values.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod alert;
mod api;
mod audit;
mod budget;
mod confine;
mod de;
mod duration;
mod event;
mod exec;
pub mod http;
mod ident;
mod input;
mod node;
mod notification;
mod rate;
mod schedule;
#[cfg(feature = "schema")]
mod schema;
mod spec;
mod state;
mod step;
mod task;

pub use alert::{Alert, AlertAck, AlertChange, AlertKind, AlertState, StallAction};
pub use api::{
    ApiError, Backend, BackendFuture, DEFAULT_LIST_LIMIT, ErrorCode, ListFilter, MAX_LIST_LIMIT,
    MAX_NOTIFICATIONS, MAX_OUTPUT_BYTES, MAX_TAIL_LINES, MAX_TEXT_FILTER, OutputChunk, OutputQuery,
    Page, StopMode, WaitFor, WaitMode, WaitOutcome, check_notification_limit,
};
pub use audit::{
    Actor, AuditCheckpoint, AuditFilter, AuditOrder, AuditPage, AuditParams, AuditRecord,
    AuditVerdict, DEFAULT_TOKEN, MAX_AUDIT_LIMIT, MAX_TOKEN_NAME_LEN, NewToken, NewTokenRequest,
    SELF_ACTOR, TOKEN_NAME_PATTERN, TokenInfo, check_token_name,
};
pub use budget::{
    BudgetInfo, BudgetSpec, BudgetState, BudgetWindow, DEFAULT_ALARMS, MAX_BUDGET_TOKENS, dollars,
    rfc3339_secs,
};
pub use confine::{
    ByteSize, MAX_PLAIN_BYTES, SECRET_MASK, Secret, expose_secrets, mask_secrets, size_pattern,
};
pub use duration::{
    DURATION_PATTERN, DurationError, MAX_DURATION_MS, MAX_WRITABLE_DURATION_MS,
    duration_from_secs_f64, format_duration, format_duration_exact, parse_duration, serde_duration,
    serde_opt_duration,
};
pub use event::{Event, EventKind};
pub use exec::{Executor, HostFuture, TaskContext, TaskFuture, TaskHost};
pub use ident::{TaskId, TaskKind, Timestamp};
pub use input::{
    InputSent, Key, Listener, LiveState, MAX_INPUT_BYTES, MAX_INPUT_CHARS, MAX_INPUT_KEYS,
    MAX_PROMPT_LEN, MAX_TERMINAL_SIDE, TaskInput, Terminal, prompt_line,
};
pub use node::{NodeBeat, NodeInfo, NodeRow};
pub use notification::{NoticeKind, Notification};
pub use rate::{MAX_RATE_COUNT, RATE_POSITIVE_PATTERN, RateError, RateLimit, rate_pattern};
pub use schedule::{
    DEFAULT_LATE_AFTER, MAX_SCHEDULE_NAME_LEN, Missed, Plan, ScheduleInfo, ScheduleSpec,
    ValidSchedule, check_schedule_name,
};
pub use spec::{
    AgentSpec, DEFAULT_QUEUE, LlmSpec, MAX_ATTEMPTS, MAX_CONCURRENCY_KEY_LEN,
    MAX_IDEMPOTENCY_KEY_LEN, MAX_NAME_LEN, MAX_STORED_DURATION_MS, MIN_MAX_OUTPUT, RetryPolicy,
    SpecError, TaskDefaults, TaskSpec, ValidSpec, Work, check_queue_name, check_session_name,
    unknown_queue,
};
pub use state::{AttemptOutcome, IllegalTransition, TaskState, Transition, transition};
pub use step::{
    AgentSession, MAX_SESSION_STEPS, MAX_STEP_BYTES, NewSessionStep, OpenSession, Step,
    StepRecorded, Transcript,
};
pub use task::{Attempt, MAX_PROGRESS_MESSAGE, PauseReason, Progress, QueueInfo, TaskRecord};

/// Shortens `s` to at most `max` characters, marking the cut with an ellipsis.
pub fn shorten(s: &str, max: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
