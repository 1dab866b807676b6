//! The operations every way into meanwhile offers (in-process runtime, daemon client),
//! as one trait with its request and answer types, so that the agent and the MCP
//! server work the same against either.

use crate::{Notification, SpecError, TaskId, TaskRecord, TaskSpec, TaskState};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The most tasks one listing returns (`limit`), on every interface.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// The longest `text` a listing is filtered by, in characters.
pub const MAX_TEXT_FILTER: u32 = 200;
/// The tasks a listing returns when it names no `limit`.
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// The largest `max_bytes` of one output read, on every interface: 16 MiB.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;
/// The largest `tail` of one output read, in lines.
pub const MAX_TAIL_LINES: usize = 1_000_000;
/// The most notifications one drain or peek returns (`limit`), on every interface.
pub const MAX_NOTIFICATIONS: u32 = 1000;

fn bound_error(field: &'static str, message: String) -> SpecError {
    SpecError { field, message }
}

/// Checks a notification `limit` against its bounds, 1 to [`MAX_NOTIFICATIONS`].
pub fn check_notification_limit(limit: u32) -> Result<(), SpecError> {
    if !(1..=MAX_NOTIFICATIONS).contains(&limit) {
        return Err(bound_error(
            "limit",
            format!("must be between 1 and {MAX_NOTIFICATIONS} (MAX_NOTIFICATIONS), got {limit}"),
        ));
    }
    Ok(())
}

/// Which tasks to list. Results are newest first; page with `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ListFilter {
    /// Only tasks in one of these states (all states when empty).
    pub states: Vec<TaskState>,
    /// Only tasks in this queue.
    pub queue: Option<String>,
    /// Only tasks carrying this label.
    pub label: Option<String>,
    /// Only tasks notifying this session.
    pub session: Option<String>,
    /// Only tasks with exactly this name.
    pub name: Option<String>,
    /// Only tasks whose name contains this text, ignoring ASCII case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Only tasks with an id below this one (the cursor of the previous page).
    pub before: Option<TaskId>,
    /// At most this many (default 100, at most 1000).
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = MAX_LIST_LIMIT)))]
    pub limit: Option<u32>,
}

impl ListFilter {
    /// Checks the bounds of `limit` (1 to [`MAX_LIST_LIMIT`]) and `before` (a task id).
    /// Every interface calls this before listing, so each reports the same error.
    pub fn check(&self) -> Result<(), SpecError> {
        if let Some(l) = self.limit
            && !(1..=MAX_LIST_LIMIT).contains(&l)
        {
            return Err(bound_error(
                "limit",
                format!("must be between 1 and {MAX_LIST_LIMIT} (MAX_LIST_LIMIT), got {l}"),
            ));
        }
        if let Some(t) = &self.text
            && t.chars().count() > MAX_TEXT_FILTER as usize
        {
            return Err(bound_error(
                "text",
                format!(
                    "must be at most {MAX_TEXT_FILTER} characters (MAX_TEXT_FILTER), got {}",
                    t.chars().count()
                ),
            ));
        }
        if let Some(b) = self.before
            && b.0 < 1
        {
            return Err(bound_error(
                "before",
                format!("must be a task id (a positive integer), got {b}"),
            ));
        }
        Ok(())
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Page {
    /// The tasks, newest first.
    pub tasks: Vec<TaskRecord>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next: Option<TaskId>,
}

/// What to wait for before answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum WaitFor {
    /// Until the task ends.
    Exit,
    /// Until there is output past `since` (or the task ends).
    Output,
    /// Until a line past `since` matches this regex (or the task ends).
    Match(String),
    /// Until the task's processes listen on a socket (or the task ends).
    Listening,
    /// Until the task waits for input (or ends).
    Input,
}

/// How to read a task's output. All fields are optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct OutputQuery {
    /// Start at this byte offset (the `cursor` of an earlier answer); 0 when absent.
    pub since: Option<u64>,
    /// Only the last N lines (after `grep`), at most [`MAX_TAIL_LINES`].
    #[cfg_attr(feature = "schema", schemars(range(max = MAX_TAIL_LINES)))]
    pub tail: Option<usize>,
    /// Only lines matching this regex; the others are skipped in this answer, not deleted.
    pub grep: Option<String>,
    /// At most this many bytes of text, at most [`MAX_OUTPUT_BYTES`]: the head and the
    /// tail are kept, the middle is elided with a count.
    #[cfg_attr(feature = "schema", schemars(range(max = MAX_OUTPUT_BYTES)))]
    pub max_bytes: Option<usize>,
    /// Remove ANSI escape sequences (colours, cursor movement).
    pub strip_ansi: bool,
    /// Block until this happens (or `timeout` passes) before answering.
    pub wait: Option<WaitFor>,
    /// How long `wait` may block; 30s when absent.
    #[serde(with = "crate::serde_opt_duration")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::WireDurationText>")
    )]
    pub timeout: Option<Duration>,
}

impl OutputQuery {
    /// Checks the bounds of `max_bytes` ([`MAX_OUTPUT_BYTES`]) and `tail`
    /// ([`MAX_TAIL_LINES`]). Every interface calls this before reading, so each
    /// reports the same error.
    pub fn check(&self) -> Result<(), SpecError> {
        if let Some(m) = self.max_bytes
            && m > MAX_OUTPUT_BYTES
        {
            return Err(bound_error(
                "max_bytes",
                format!(
                    "must be at most {MAX_OUTPUT_BYTES} (MAX_OUTPUT_BYTES, 16 MiB), got {m}; page through longer output with since"
                ),
            ));
        }
        if let Some(t) = self.tail
            && t > MAX_TAIL_LINES
        {
            return Err(bound_error(
                "tail",
                format!("must be at most {MAX_TAIL_LINES} (MAX_TAIL_LINES) lines, got {t}"),
            ));
        }
        Ok(())
    }
}

/// A piece of a task's output with where to continue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct OutputChunk {
    /// The task.
    pub id: TaskId,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
    /// Byte offset in the log where this answer's range starts.
    pub start: u64,
    /// Pass as `since` to read only what comes after this answer.
    pub cursor: u64,
    /// Size of the whole log.
    pub total_bytes: u64,
    /// Bytes left out of the middle by `max_bytes`.
    pub elided_bytes: u64,
    /// Bytes the log itself dropped from its middle, over the task's `max_output`;
    /// a read from inside them answers a line saying so, then what follows.
    #[serde(default)]
    pub dropped_bytes: u64,
    /// Lines skipped by `grep`.
    pub skipped_lines: u64,
    /// True when the answer stopped at the page size; read again from `cursor`.
    pub more: bool,
    /// The task's state when the output was read.
    pub state: TaskState,
    /// Exit code, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The line that matched `wait: match`, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// True when a wait ended because its timeout passed.
    #[serde(default)]
    pub timed_out: bool,
    /// The sockets the task's processes listen on, when it was read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listening: Vec<crate::Listener>,
    /// True when the task was waiting for input, when it was read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting_for_input: bool,
    /// The line it waits at, then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// How to stop a running task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum StopMode {
    /// SIGTERM to the process group, the grace period, then SIGKILL.
    #[default]
    Graceful,
    /// SIGKILL at once.
    Force,
}

/// Whether a wait returns when any or when all of the tasks have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum WaitMode {
    /// As soon as one has ended.
    Any,
    /// Once every one has ended.
    #[default]
    All,
}

/// What a wait saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WaitOutcome {
    /// The tasks, in the order asked, as they were when the wait ended.
    pub tasks: Vec<TaskRecord>,
    /// True when the timeout passed first.
    pub timed_out: bool,
}

/// The kind of an [`ApiError`], which decides its HTTP status and MCP error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A field of the request is wrong (400).
    InvalidArgument,
    /// No such task (404).
    NotFound,
    /// The task's state does not allow it (409).
    Conflict,
    /// The idempotency key names a task submitted with another spec (409); the
    /// message names that task. A resend of the same spec answers that task instead.
    IdempotencyConflict,
    /// A valid agent or llm task, on a daemon with no LLM provider configured (409).
    NoProvider,
    /// Missing or wrong credentials (401).
    Unauthorized,
    /// A request from a web page of another site: a foreign `Host` or `Origin` (403).
    Forbidden,
    /// A request from inside a confined task that its confinement does not allow
    /// (403).
    Confined,
    /// The request body is too large (413).
    PayloadTooLarge,
    /// meanwhile is shutting down or cannot be reached (503).
    Unavailable,
    /// The disk holding meanwhile's home is full: nothing of the request was kept
    /// (507). Free space and ask again; no restart is needed.
    DiskFull,
    /// Something failed inside meanwhile (500).
    Internal,
}

/// An error as every interface reports it: `{"code", "message", "field"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[error("{message}")]
pub struct ApiError {
    /// What kind of error.
    pub code: ErrorCode,
    /// What was wrong and what to do.
    pub message: String,
    /// The request field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> ApiError {
        ApiError::invalid(e.field, e.to_string())
    }
}

impl ApiError {
    /// The request field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// An invalid-argument error naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            code: ErrorCode::InvalidArgument,
            message: message.into(),
            field: Some(field.into()),
        }
    }
}

/// A boxed future returned by [`Backend`] methods, so the trait stays object-safe.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// The task operations an agent or an MCP server needs, offered both by the
/// in-process runtime and by the daemon's client.
pub trait Backend: Send + Sync + 'static {
    /// Submits a task; returns its id at once.
    fn submit(&self, spec: TaskSpec) -> BackendFuture<'_, TaskId>;
    /// One task.
    fn get(&self, id: TaskId) -> BackendFuture<'_, TaskRecord>;
    /// A page of tasks, newest first.
    fn list(&self, filter: ListFilter) -> BackendFuture<'_, Page>;
    /// Reads a task's output.
    fn read_output(&self, id: TaskId, query: OutputQuery) -> BackendFuture<'_, OutputChunk>;
    /// Stops a task (a pending one never starts).
    fn stop(&self, id: TaskId, mode: StopMode) -> BackendFuture<'_, TaskRecord>;
    /// Waits for any or all of `ids` to end, at most `timeout`.
    fn wait(
        &self,
        ids: Vec<TaskId>,
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> BackendFuture<'_, WaitOutcome>;
    /// Sends input to a running task started with `stdin` or `tty`.
    fn send_input(
        &self,
        id: TaskId,
        input: crate::TaskInput,
    ) -> BackendFuture<'_, crate::InputSent>;
    /// Returns and marks delivered the session's undelivered notifications.
    fn drain_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>>;
    /// The session's undelivered notifications, without marking them.
    fn peek_notifications(&self, session: &str, limit: u32)
    -> BackendFuture<'_, Vec<Notification>>;
    /// The same backend with the changes it makes recorded in the audit trail as
    /// made by `actor` (a server serving a request for someone); `None` when this
    /// backend names its caller some other way (a client of the daemon is named by
    /// the daemon, from its connection).
    fn acting_as(&self, actor: crate::Actor) -> Option<std::sync::Arc<dyn Backend>> {
        let _ = actor; // the default backend has no use for it
        None
    }
}
