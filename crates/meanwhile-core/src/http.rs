//! The daemon's HTTP API: the request and answer types that only the HTTP wire needs
//! (the rest are the [`crate::Backend`] types), shared by the server and its client so
//! that the two cannot disagree.

use crate::{
    ApiError, Attempt, ListFilter, OutputQuery, QueueInfo, RateLimit, StopMode, TaskId, TaskRecord,
    TaskSpec, TaskState, WaitFor, WaitMode, parse_duration,
};
#[cfg(feature = "schema")]
use crate::{MAX_LIST_LIMIT, MAX_NOTIFICATIONS, MAX_OUTPUT_BYTES, MAX_TAIL_LINES, MAX_TEXT_FILTER};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The daemon's Unix socket, in the home directory.
pub const SOCKET_FILE: &str = "meanwhile.sock";
/// The bearer token of the TCP listener, in the home directory.
pub const TOKEN_FILE: &str = "token";
/// The header naming the session a request speaks for (MCP, agent); the daemon
/// records it with the request's changes in the audit trail.
pub const SESSION_HEADER: &str = "meanwhile-session";
/// The key that signs the audit trail's checkpoints, in the home directory.
pub const AUDIT_KEY_FILE: &str = "audit.key";

/// The answer to a submit: the new task's id (or the earlier task's, when the
/// idempotency key was known).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SubmitAnswer {
    /// The task's id.
    pub id: TaskId,
    /// What the task will trip over at its start, as things are now: `command not
    /// found: NAME` when its program is on no directory of its `PATH` (it will end
    /// with 127).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Many specs submitted in one transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The specs; every one is validated before any is stored.
    #[serde(deserialize_with = "crate::de::objects")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub tasks: Vec<TaskSpec>,
}

/// One result of a batch submit, in the order of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BatchItem {
    /// The task's id, when it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<TaskId>,
    /// Why it was not, otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// The answer to a batch submit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BatchAnswer {
    /// One result per spec, in order.
    pub results: Vec<BatchItem>,
}

/// A task with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TaskDetail {
    /// The task.
    pub task: TaskRecord,
    /// Its attempts, oldest first.
    pub attempts: Vec<Attempt>,
}

/// Query parameters of `GET /v1/tasks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only tasks in these states, comma-separated (`running,pending`); every state
    /// when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = STATES_PATTERN)))]
    pub state: Option<String>,
    /// Only tasks in this queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Only tasks carrying this label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Only tasks notifying this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Only tasks with exactly this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Only tasks whose name contains this text, ignoring ASCII case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_TEXT_FILTER)))]
    pub text: Option<String>,
    /// Only tasks with an id below this one (the `next` of the previous page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = i64::MAX)))]
    pub before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = MAX_LIST_LIMIT)))]
    pub limit: Option<u32>,
}

/// What `state` of `GET /v1/tasks` accepts: states joined by commas, or nothing.
pub const STATES_PATTERN: &str = "^((pending|running|succeeded|failed|timed_out|cancelled|quarantined|lost)(,(pending|running|succeeded|failed|timed_out|cancelled|quarantined|lost))*)?$";

impl ListParams {
    /// The parameters that ask for `filter`.
    pub fn from_filter(f: &ListFilter) -> ListParams {
        let states: Vec<&str> = f.states.iter().map(|s| s.as_str()).collect();
        ListParams {
            state: (!states.is_empty()).then(|| states.join(",")),
            queue: f.queue.clone(),
            label: f.label.clone(),
            session: f.session.clone(),
            name: f.name.clone(),
            text: f.text.clone(),
            before: f.before.map(|b| b.0),
            limit: f.limit,
        }
    }

    /// The filter these parameters ask for.
    pub fn into_filter(self) -> Result<ListFilter, ApiError> {
        let mut states = Vec::new();
        for s in self
            .state
            .iter()
            .filter(|s| !s.is_empty())
            .flat_map(|s| s.split(','))
        {
            states.push(TaskState::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "state",
                    format!(
                        "unknown state {s:?}; give states separated by commas (no spaces): pending, running, succeeded, failed, timed_out, cancelled, quarantined or lost"
                    ),
                )
            })?);
        }
        let filter = ListFilter {
            states,
            queue: self.queue,
            label: self.label,
            session: self.session,
            name: self.name,
            text: self.text.filter(|t| !t.is_empty()),
            before: self.before.map(TaskId),
            limit: self.limit,
        };
        filter.check()?;
        Ok(filter)
    }
}

/// Query parameters of `GET /v1/tasks/{id}/output`: an [`OutputQuery`] spelled for a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OutputParams {
    /// Start at this byte offset (the `cursor` of an earlier answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = u64::MAX)))]
    pub since: Option<u64>,
    /// Only the last N lines (after `grep`), at most 1000000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = MAX_TAIL_LINES)))]
    pub tail: Option<usize>,
    /// Only lines matching this regex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Regex>"))]
    pub grep: Option<String>,
    /// At most this many bytes (at most 16 MiB): head and tail kept, the middle elided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = MAX_OUTPUT_BYTES)))]
    pub max_bytes: Option<usize>,
    /// Remove ANSI escape sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_ansi: Option<bool>,
    /// Block until `exit` (the task ends), `output` (new output past `since`),
    /// `match` (a line past `since` matches `match`; any line when `match` is not
    /// given), `listening` (its processes listen on a socket: a dev server is ready)
    /// or `input` (it waits for input), at most `timeout`. Every wait also ends when
    /// the task does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<WaitName>"))]
    pub wait: Option<String>,
    /// The regex to wait for: the wait also ends at a line that matches it. Alone or
    /// with `wait=exit`, this is `wait=match`; `wait=output` ends at any new output,
    /// matching or not.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::Regex>"))]
    pub pattern: Option<String>,
    /// How long a wait may block (`30s`, `5m`); 30s when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::DurationString>")
    )]
    pub timeout: Option<String>,
}

/// The values of `wait` in [`OutputParams`].
#[cfg(feature = "schema")]
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum WaitName {
    Exit,
    Output,
    Match,
    Listening,
    Input,
}

impl OutputParams {
    /// The parameters that ask for `q`.
    pub fn from_query(q: &OutputQuery) -> OutputParams {
        let (wait, pattern) = match &q.wait {
            None => (None, None),
            Some(WaitFor::Exit) => (Some("exit".to_string()), None),
            Some(WaitFor::Output) => (Some("output".to_string()), None),
            Some(WaitFor::Match(re)) => (Some("match".to_string()), Some(re.clone())),
            Some(WaitFor::Listening) => (Some("listening".to_string()), None),
            Some(WaitFor::Input) => (Some("input".to_string()), None),
        };
        OutputParams {
            since: q.since,
            tail: q.tail,
            grep: q.grep.clone(),
            max_bytes: q.max_bytes,
            strip_ansi: q.strip_ansi.then_some(true),
            wait,
            pattern,
            timeout: q.timeout.map(|t| format!("{}ms", t.as_millis())),
        }
    }

    /// The query these parameters ask for.
    pub fn into_query(self) -> Result<OutputQuery, ApiError> {
        // A wait ends at the first of its end conditions, and always when the task
        // ends; `match` adds a matching line to them. So every combination means
        // something, as the OpenAPI document (which cannot tie parameters together)
        // promises.
        let wait = match (self.wait.as_deref(), self.pattern) {
            (None, None) => None,
            (Some("exit"), None) => Some(WaitFor::Exit),
            (Some("output"), _) => Some(WaitFor::Output),
            (Some("listening"), _) => Some(WaitFor::Listening),
            (Some("input"), _) => Some(WaitFor::Input),
            (Some("match" | "exit") | None, Some(re)) => Some(WaitFor::Match(re)),
            (Some("match"), None) => Some(WaitFor::Match(String::new())),
            (Some(other), _) => {
                return Err(ApiError::invalid(
                    "wait",
                    format!("must be exit, output, match, listening or input, got {other:?}"),
                ));
            }
        };
        let timeout = match self.timeout {
            None => None,
            Some(t) => {
                Some(parse_duration(&t).map_err(|e| ApiError::invalid("timeout", e.to_string()))?)
            }
        };
        let query = OutputQuery {
            since: self.since,
            tail: self.tail,
            grep: self.grep,
            max_bytes: self.max_bytes,
            strip_ansi: self.strip_ansi.unwrap_or(false),
            wait,
            timeout,
        };
        query.check()?;
        Ok(query)
    }
}

/// The body of `POST /v1/tasks/{id}/stop`; may be empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// `graceful` (SIGTERM, grace period, SIGKILL; the default) or `force` (SIGKILL).
    #[serde(default)]
    pub mode: StopMode,
}

/// The body of `POST /v1/wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    /// The tasks to wait for.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub ids: Vec<TaskId>,
    /// `all` (the default) or `any`.
    #[serde(default)]
    pub mode: WaitMode,
    /// Answer after this long even if they have not ended; no limit when absent.
    #[serde(
        default,
        with = "crate::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::WireDurationText>")
    )]
    pub timeout: Option<Duration>,
}

/// The body of `POST /v1/tasks/remove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RemoveRequest {
    /// Finished tasks to remove with their logs.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub ids: Vec<TaskId>,
}

/// The body of `POST /v1/clean`: which finished tasks to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct CleanBody {
    /// Remove tasks that finished longer ago than this.
    #[serde(
        default,
        with = "crate::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::WireDurationText>")
    )]
    pub older_than: Option<Duration>,
    /// Keep at most this many finished tasks (the newest). With neither field, every
    /// finished task is removed.
    #[serde(
        default,
        deserialize_with = "crate::de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = i64::MAX)))]
    pub keep_last: Option<u64>,
}

/// Tasks that were removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Removed {
    /// Their ids.
    pub removed: Vec<TaskId>,
}

/// The body of `PUT /v1/queues/{name}`: creates the queue or changes it. A field
/// left out leaves its setting as it is; `per_key` and `rate` set to null remove
/// their limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct QueueUpdate {
    /// How many of its tasks may run at once.
    #[serde(
        default,
        deserialize_with = "crate::de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = u32::MAX)))]
    pub max_parallel: Option<u32>,
    /// True pauses it (nothing new starts), false resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// At most this many tasks with the same concurrency key run at once; null
    /// removes the limit.
    #[serde(
        default,
        deserialize_with = "nullable_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::PerKeyUpdate"))]
    pub per_key: Option<Option<u32>>,
    /// At most this many task starts in any window of the given length (`"60/m"`,
    /// `"10/30s"`); null removes the limit.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::RateUpdate"))]
    pub rate: Option<Option<RateLimit>>,
    /// A `failures` alert fires when this many of its tasks in a row failed; null
    /// removes it.
    #[serde(
        default,
        deserialize_with = "nullable_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::AlertAfterUpdate"))]
    pub alert_after: Option<Option<u32>>,
}

/// A field present as a value (`Some(Some(v))`) or as null (`Some(None)`); an absent
/// one is `None` through `#[serde(default)]`.
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// [`nullable`] for an integer written `7` or `7.0`.
fn nullable_int<'de, D: serde::Deserializer<'de>, T: crate::de::Integer>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    crate::de::opt_int(d).map(Some)
}

impl QueueUpdate {
    /// Checks the values serde cannot: the error names the field.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.max_parallel == Some(0) {
            return Err(ApiError::invalid(
                "max_parallel",
                "must be at least 1; pause the queue to start nothing",
            ));
        }
        if self.per_key == Some(Some(0)) {
            return Err(ApiError::invalid(
                "per_key",
                "must be at least 1 (or null for no limit per key)",
            ));
        }
        if self.alert_after == Some(Some(0)) {
            return Err(ApiError::invalid(
                "alert_after",
                "must be at least 1 (or null for no failures alert)",
            ));
        }
        Ok(())
    }
}

/// The body of `POST /v1/tasks/{id}/progress`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ProgressReport {
    /// 0 to 100, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    pub percent: Option<f64>,
    /// What the task is doing.
    #[serde(default)]
    pub message: String,
}

/// Query parameters of the notification endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitParams {
    /// At most this many (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = MAX_NOTIFICATIONS)))]
    pub limit: Option<u32>,
}

impl LimitParams {
    /// The limit asked for (100 when none), checked against its bounds.
    pub fn limit(self) -> Result<u32, ApiError> {
        let limit = self.limit.unwrap_or(100);
        crate::check_notification_limit(limit)?;
        Ok(limit)
    }
}

/// Query parameters of `GET /v1/events`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Start after this event sequence number (the `Last-Event-ID` header wins when
    /// both are given); only new events when neither is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = i64::MIN, max = i64::MAX)))]
    pub after: Option<i64>,
}

/// The daemon's health: `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Status {
    /// The daemon's version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// Its home directory.
    pub home: String,
    /// This node's name.
    pub node: String,
    /// When it started, milliseconds since the Unix epoch.
    pub started_at: i64,
    /// Tasks per state, from the store's counters.
    pub counts: BTreeMap<String, u64>,
    /// The queues.
    pub queues: Vec<QueueInfo>,
}

/// The body of `POST /v1/shutdown`; may be empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ShutdownRequest {
    /// Stop the running tasks first (they end `cancelled`). By default they keep
    /// running, and the next daemon on the home adopts them and records their end.
    #[serde(default)]
    pub stop_tasks: bool,
}

/// The answer to `POST /v1/dashboard` (Unix socket only): where the dashboard is
/// served, and a link that logs a browser in once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DashboardLink {
    /// The dashboard's address (`http://127.0.0.1:PORT/ui/`).
    pub url: String,
    /// Opens the dashboard logged in; it works once, within `expires_in_seconds`.
    pub login_url: String,
    /// Seconds the login link stays valid.
    pub expires_in_seconds: u64,
}

/// The answer to `POST /v1/shutdown`: the daemon that is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ShuttingDown {
    /// The daemon's process id, to wait for its exit.
    pub pid: u32,
    /// Whether it stops the running tasks before it exits.
    pub stop_tasks: bool,
}

/// The body of every error answer: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ApiError,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// JSON values of any shape, with the field names a spec has so that decoding
    /// gets past the first key.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let key = prop_oneof![
            Just("command"),
            Just("argv"),
            Just("cwd"),
            Just("env"),
            Just("timeout"),
            Just("grace"),
            Just("delay"),
            Just("retry"),
            Just("max_attempts"),
            Just("backoff"),
            Just("jitter"),
            Just("after"),
            Just("queue"),
            Just("labels"),
            Just("priority"),
            Just("agent"),
            Just("prompt"),
            Just("session"),
            Just("run_after"),
            Just("x"),
        ];
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            "\\PC{0,16}".prop_map(serde_json::Value::from),
            "[0-9.dhms]{0,8}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| {
                    serde_json::Value::Object(
                        m.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    )
                }),
            ]
        })
    }

    proptest! {
        /// Any JSON is a spec with an answer (valid, or an error naming a field),
        /// never a panic, and a valid spec survives JSON unchanged.
        #[test]
        fn any_json_decodes_to_a_spec_or_an_error(v in json()) {
            if let Ok(spec) = serde_json::from_value::<TaskSpec>(v)
                && spec.clone().validate().is_ok()
            {
                let again: TaskSpec =
                    serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
                prop_assert_eq!(again, spec);
            }
        }

        /// Raw bytes as a request body: decoded or refused.
        #[test]
        fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = serde_json::from_slice::<TaskSpec>(&bytes);
            let _ = serde_json::from_slice::<BatchRequest>(&bytes);
            let _ = serde_json::from_slice::<WaitRequest>(&bytes);
        }

        /// Any query string: parameters with an answer, never a panic.
        #[test]
        fn any_query_decodes_or_is_refused(q in "([a-z_]{1,10}=[a-zA-Z0-9%.,|()*+?_-]{0,12}&?){0,6}") {
            if let Ok(p) = serde_urlencoded::from_str::<ListParams>(&q) {
                let _ = p.into_filter();
            }
            if let Ok(p) = serde_urlencoded::from_str::<OutputParams>(&q) {
                let _ = p.into_query();
            }
        }
    }

    #[test]
    fn output_params_round_trip() {
        let q = OutputQuery {
            since: Some(10),
            tail: Some(3),
            grep: Some("err".into()),
            max_bytes: Some(100),
            strip_ansi: true,
            wait: Some(WaitFor::Match("listening on".into())),
            timeout: Some(Duration::from_millis(1500)),
        };
        assert_eq!(OutputParams::from_query(&q).into_query().unwrap(), q);
        let e = OutputParams {
            wait: Some("soon".into()),
            ..Default::default()
        }
        .into_query()
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("wait"));
    }

    #[test]
    fn list_params_round_trip() {
        let f = ListFilter {
            states: vec![TaskState::Running, TaskState::TimedOut],
            queue: Some("q".into()),
            text: Some("cargo".into()),
            before: Some(TaskId(9)),
            limit: Some(5),
            ..Default::default()
        };
        assert_eq!(ListParams::from_filter(&f).into_filter().unwrap(), f);
        let e = ListParams {
            state: Some("runing".into()),
            ..Default::default()
        }
        .into_filter()
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("state"));
    }
}

/// The query of `GET /v1/alerts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    /// Resolved alerts too, not only the firing ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<bool>,
}

/// The body of `POST /v1/alerts/{id}/ack`: how long the acknowledgement holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Silence the alert's reminders this long (`"1h"`, or seconds); without it,
    /// until the alert resolves.
    #[serde(
        default,
        rename = "for",
        with = "crate::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::PositiveDurationText>")
    )]
    pub for_: Option<Duration>,
}

/// The body of `POST /v1/clock`, served on the Unix socket of a daemon started
/// with `MEANWHILE_TEST_CLOCK`: how far to move its clock forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ClockAdvance {
    /// How far (`"1h"`, or seconds); `0s` moves nothing but still waits for a look.
    #[serde(with = "crate::serde_duration")]
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::DurationText"))]
    pub advance: Duration,
}

/// The answer of `POST /v1/clock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClockMoved {
    /// The daemon's time after the move.
    pub now: crate::Timestamp,
    /// How far the daemon's clock is ahead of the system's, in milliseconds.
    pub ahead_ms: u64,
    /// Whether every timed loop (schedules, budget windows, alert reminders,
    /// stalls, node and dead man's heartbeats) looked at the new time before the
    /// answer; false when one did not within 30 s (see `meanwhile health`).
    pub settled: bool,
}

/// The answer of `GET /v1/health`: whether anything is firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Health {
    /// True when no alert fires unacknowledged and no loop of the daemon keeps
    /// failing.
    pub ok: bool,
    /// The firing alerts, newest first, acknowledged ones included.
    pub firing: Vec<crate::Alert>,
    /// The daemon's long-running loops that failed or restarted since it started,
    /// by name; `failing` ones make `ok` false.
    #[serde(default)]
    pub loops: Vec<LoopHealth>,
}

/// What one of the daemon's long-running loops (the dispatcher, a follower of the
/// event log, retention, ...) did wrong since the daemon started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LoopHealth {
    /// The loop, as `/metrics` names it (`meanwhile_loop_errors_total{loop}`).
    pub name: String,
    /// Rounds that failed (each logged), since the daemon started.
    pub errors: u64,
    /// Times it panicked and was started again.
    pub restarts: u64,
    /// True when its last rounds all failed (three or more in a row).
    pub failing: bool,
    /// Failed rounds since its last good one.
    pub consecutive_failures: u32,
    /// What went wrong last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<crate::Timestamp>,
}
