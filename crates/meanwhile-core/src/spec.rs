//! What a user asks for when submitting a task, and its validation.

use crate::ident::{TaskId, TaskKind, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The queue every task lands in unless it names another; it always exists.
pub const DEFAULT_QUEUE: &str = "default";
/// The longest duration a spec keeps: the most that its exact string form can write
/// (about 1.5 billion days), which is also the most that any duration string
/// accepted anywhere can say.
pub const MAX_STORED_DURATION_MS: u64 = crate::duration::MAX_WRITABLE_DURATION_MS;
/// Longest accepted task name, in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Longest accepted idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;
/// Longest accepted concurrency key, in characters.
pub const MAX_CONCURRENCY_KEY_LEN: usize = 200;
/// Most attempts a retry policy may ask for.
pub const MAX_ATTEMPTS: u32 = 1000;

/// A submitted task, as written by a user (CLI, HTTP, MCP, library).
///
/// Exactly one of `command`, `argv`, `agent` and `llm` says what to run (the library's
/// in-process closures set none of them). Everything else is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
// Exactly one of command, argv, agent and llm over the wire (the library's closures set
// none, and never reach it); a field that is null counts as absent.
#[cfg_attr(
    feature = "schema",
    schemars(extend("oneOf" = [
        {"required": ["command"], "properties": {"command": {"type": "string"}}},
        {"required": ["argv"], "properties": {"argv": {"type": "array"}}},
        {"required": ["agent"], "properties": {"agent": {"type": "object"}}},
        {"required": ["llm"], "properties": {"llm": {"type": "object"}}}
    ],
    "allOf" = [
        // A stall action needs a stall time.
        {
            "if": {"required": ["stall_action"], "properties": {"stall_action": {"type": "string"}}},
            "then": {"required": ["stall"], "properties": {"stall": {"type": ["string", "number"]}}}
        },
        // Only a command or argv task reads input, from a pipe or a terminal.
        {
            "if": {"anyOf": [
                {"required": ["tty"], "properties": {"tty": {"type": "object"}}},
                {"required": ["stdin"], "properties": {"stdin": {"const": true}}}
            ]},
            "then": {"anyOf": [
                {"required": ["command"], "properties": {"command": {"type": "string"}}},
                {"required": ["argv"], "properties": {"argv": {"type": "array"}}}
            ]}
        },
        {"not": {
            "required": ["stdin", "tty"],
            "properties": {"stdin": {"const": true}, "tty": {"type": "object"}}
        }},
        // Only a process is confined by limits and a network namespace, or given
        // secrets (a rule each: one `anyOf` of them defeats schema-driven generators).
        {
            "if": {"required": ["no_network"], "properties": {"no_network": {"const": true}}},
            "then": {"anyOf": [
                {"required": ["command"], "properties": {"command": {"type": "string"}}},
                {"required": ["argv"], "properties": {"argv": {"type": "array"}}}
            ]}
        },
        {
            "if": {"required": ["memory"], "properties": {"memory": {"type": ["string", "integer"]}}},
            "then": {"anyOf": [
                {"required": ["command"], "properties": {"command": {"type": "string"}}},
                {"required": ["argv"], "properties": {"argv": {"type": "array"}}}
            ]}
        },
        {
            "if": {"required": ["cpu_time"], "properties": {"cpu_time": {"type": ["string", "number"]}}},
            "then": {"anyOf": [
                {"required": ["command"], "properties": {"command": {"type": "string"}}},
                {"required": ["argv"], "properties": {"argv": {"type": "array"}}}
            ]}
        },
        {
            "if": {"required": ["max_procs"], "properties": {"max_procs": {"type": "integer"}}},
            "then": {"anyOf": [
                {"required": ["command"], "properties": {"command": {"type": "string"}}},
                {"required": ["argv"], "properties": {"argv": {"type": "array"}}}
            ]}
        },
        {
            "if": {"required": ["max_files"], "properties": {"max_files": {"type": "integer"}}},
            "then": {"anyOf": [
                {"required": ["command"], "properties": {"command": {"type": "string"}}},
                {"required": ["argv"], "properties": {"argv": {"type": "array"}}}
            ]}
        },
        {
            "if": {"required": ["max_output"], "properties": {"max_output": {"type": ["string", "integer"]}}},
            "then": {"anyOf": [
                {"required": ["command"], "properties": {"command": {"type": "string"}}},
                {"required": ["argv"], "properties": {"argv": {"type": "array"}}}
            ]}
        },
        {
            "if": {"required": ["secrets"], "properties": {"secrets": {"type": "object", "minProperties": 1}}},
            "then": {"anyOf": [
                {"required": ["command"], "properties": {"command": {"type": "string"}}},
                {"required": ["argv"], "properties": {"argv": {"type": "array"}}}
            ]}
        },
        // A sandbox confines a process, or every command of an agent.
        {
            "if": {"required": ["sandbox"], "properties": {"sandbox": {"const": true}}},
            "then": {"anyOf": [
                {"required": ["command"], "properties": {"command": {"type": "string"}}},
                {"required": ["argv"], "properties": {"argv": {"type": "array"}}},
                {"required": ["agent"], "properties": {"agent": {"type": "object"}}}
            ]}
        },
        // More writable paths only widen a sandbox.
        {
            "if": {"required": ["allow_write"], "properties": {"allow_write": {"type": "array", "minItems": 1}}},
            "then": {"required": ["sandbox"], "properties": {"sandbox": {"const": true}}}
        }
    ]))
)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// A command line run with `sh -c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::CommandText>")
    )]
    pub command: Option<String>,
    /// A program and its arguments, run without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::ArgvText>"))]
    pub argv: Option<Vec<String>>,
    /// A prompt for a sub-agent.
    #[serde(
        default,
        deserialize_with = "crate::de::opt_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent: Option<AgentSpec>,
    /// One model call: a prompt, and optionally a JSON Schema its answer must
    /// satisfy.
    #[serde(
        default,
        deserialize_with = "crate::de::opt_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub llm: Option<LlmSpec>,
    /// Working directory (absolute). Defaults to the submitter's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::AbsolutePath>")
    )]
    pub cwd: Option<PathBuf>,
    /// Variables added to the inherited environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::EnvMap"))]
    pub env: BTreeMap<String, String>,
    /// A short name for people and models; defaults to the shortened command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::NonBlank<MAX_NAME_LEN>>")
    )]
    pub name: Option<String>,
    /// Free-form labels to filter by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "schema", schemars(with = "Vec<crate::schema::Identifier>"))]
    pub labels: Vec<String>,
    /// The queue to run in; `default` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::Identifier>")
    )]
    pub queue: Option<String>,
    /// Higher runs first within a queue.
    #[serde(default, deserialize_with = "crate::de::int")]
    #[cfg_attr(feature = "schema", schemars(range(min = i32::MIN, max = i32::MAX)))]
    pub priority: i32,
    /// Stop an attempt that runs longer than this.
    #[serde(
        default,
        with = "crate::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::PositiveDurationText>")
    )]
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when stopping; the runtime's default when absent.
    #[serde(
        default,
        with = "crate::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::DurationText>")
    )]
    pub grace: Option<Duration>,
    /// How failed attempts are retried.
    #[serde(default, deserialize_with = "crate::de::object")]
    pub retry: RetryPolicy,
    /// Submitting the same key again returns the first task instead of a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(length(min = 1, max = MAX_IDEMPOTENCY_KEY_LEN))
    )]
    pub idempotency_key: Option<String>,
    /// Do not start before this time (milliseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_after: Option<Timestamp>,
    /// Do not start before this long after submission.
    #[serde(
        default,
        with = "crate::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::DurationText>")
    )]
    pub delay: Option<Duration>,
    /// Start only after all of these tasks succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<TaskId>,
    /// The session to notify when the task ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::Identifier>")
    )]
    pub session: Option<String>,
    /// Tasks of a queue with the same key share the queue's `per_key` limit: at most
    /// that many of them run at once. Without a key, only `max_parallel` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::ConcurrencyKey>")
    )]
    pub concurrency_key: Option<String>,
    /// A command run with `sh -c` each time the task ends (in its working directory,
    /// with `MEANWHILE_TASK_ID`, `MEANWHILE_TASK_STATE` and `MEANWHILE_EXIT_CODE` set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::CommandText>")
    )]
    pub on_end: Option<String>,
    /// A `stalled` alert fires when the task prints nothing for this long.
    #[serde(
        default,
        with = "crate::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::PositiveDurationText>")
    )]
    pub stall: Option<Duration>,
    /// What a stall does besides the alert: `stop` stops the task. Only with `stall`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_action: Option<crate::StallAction>,
    /// Give the task a pipe as its stdin, written to with `send` (`POST
    /// /v1/tasks/{id}/input`); without it (or `tty`) stdin is `/dev/null`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin: bool,
    /// Run the task in a pseudo-terminal of this size: its stdin, stdout and stderr
    /// are the terminal, and its log holds what the terminal showed.
    #[serde(
        default,
        deserialize_with = "crate::de::opt_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub tty: Option<crate::Terminal>,
    /// Confine the task: it may write only in its working directory, the
    /// `allow_write` paths and a private temporary directory (its `TMPDIR`);
    /// reading stays open (Landlock). For an agent task, every command it runs is
    /// sandboxed. Left out, its queue's default applies (`[queues.NAME] sandbox`
    /// in config.toml); `false` opts out of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
    /// More paths a sandboxed task may write in: absolute, existing. Only with
    /// `sandbox`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Vec<crate::schema::AbsolutePath>")
    )]
    pub allow_write: Vec<PathBuf>,
    /// Run the task without network: in a network namespace of its own, which has
    /// only a loopback interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_network: Option<bool>,
    /// The most memory (resident) the task's processes may use together; over it
    /// they are killed, and the attempt ends with `memory limit SIZE exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::SizeText>"))]
    pub memory: Option<crate::ByteSize>,
    /// The most CPU time each of the task's processes may use (`RLIMIT_CPU`, in
    /// whole seconds, rounded up); over it the process is killed, and the attempt
    /// ends with `cpu time limit DURATION exceeded`.
    #[serde(
        default,
        with = "crate::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::PositiveDurationText>")
    )]
    pub cpu_time: Option<Duration>,
    /// The most processes the task may have at once; over it they are killed, and
    /// the attempt ends with `process limit N exceeded`. Its supervisor counts them
    /// (the kernel's `RLIMIT_NPROC` counts all of a user's processes instead).
    #[serde(
        default,
        deserialize_with = "crate::de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = u32::MAX)))]
    pub max_procs: Option<u32>,
    /// The most files each of the task's processes may have open (`RLIMIT_NOFILE`).
    #[serde(
        default,
        deserialize_with = "crate::de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = u32::MAX)))]
    pub max_files: Option<u32>,
    /// The most output the task's log keeps. Beyond it the log keeps its first MiB
    /// and its newest part, and a read of the middle answers one line saying how
    /// many bytes were dropped; the task keeps running. Left out, its queue's
    /// default applies, then `[tasks] max_output` (1G).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::SizeText>"))]
    pub max_output: Option<crate::ByteSize>,
    /// Variables given to the task like `env`, whose values are never shown: the
    /// API, events, notifications and the audit trail show `***`, and each value
    /// is masked (`***`) in the task's output when it is read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::SecretMap"))]
    pub secrets: BTreeMap<String, crate::Secret>,
    /// The task from inside which this one was submitted (through the daemon's
    /// socket), set by the daemon, which replaces what a client sends. A task may
    /// stop, retry, remove and send input to the tasks it started only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<TaskId>,
}

/// What a sub-agent task runs: a prompt with its model, tools and limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// The task for the sub-agent.
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::NonBlank<0>"))]
    pub prompt: String,
    /// Model name; the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Provider name; the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Tools the sub-agent may use; all of its default tools when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Most model calls the sub-agent may make.
    #[serde(
        default,
        deserialize_with = "crate::de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = u32::MAX)))]
    pub max_turns: Option<u32>,
    /// Most tokens (input plus output) the sub-agent may use.
    #[serde(
        default,
        deserialize_with = "crate::de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = u64::MAX)))]
    pub max_tokens: Option<u64>,
    /// Most US dollars the sub-agent may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub max_cost_usd: Option<f64>,
    /// Directory the sub-agent's file tools are confined to; the task's cwd when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
}

/// What an `llm` task runs: one model call (not an agent loop) with a prompt, and
/// optionally a JSON Schema that the answer must satisfy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct LlmSpec {
    /// What to ask the model.
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::NonBlank<0>"))]
    pub prompt: String,
    /// A system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Model name; the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Provider name; the configured default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// A JSON Schema (an object) the answer must satisfy: asked of the provider as
    /// structured output, validated either way, and asked again once when the answer
    /// does not satisfy it. The task's result is then the answer's JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")
    )]
    pub schema: Option<serde_json::Value>,
    /// Sampling temperature, 0 to 2; 0 when absent, so that a line sent again gets
    /// the same answer where the model allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 2)))]
    pub temperature: Option<f64>,
    /// Most tokens the answer may take; 4096 when absent.
    #[serde(
        default,
        deserialize_with = "crate::de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = u32::MAX)))]
    pub max_tokens: Option<u32>,
}

/// Retry policy: attempts, and exponential backoff with jitter and a cap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (1 = no retries).
    #[serde(deserialize_with = "crate::de::int")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = MAX_ATTEMPTS)))]
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each one after (never longer than
    /// `backoff_max`).
    #[serde(with = "crate::serde_duration")]
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::DurationText"))]
    pub backoff: Duration,
    /// The delay never exceeds this.
    #[serde(with = "crate::serde_duration")]
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::DurationText"))]
    pub backoff_max: Duration,
    /// Fraction (0 to 1) by which a delay is randomly shortened or lengthened.
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 1)))]
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay before the attempt after `attempt` (counting from 1).
    /// `sample` is a uniform random number in `[0, 1)`, passed in so that this stays pure.
    pub fn delay_after(&self, attempt: u32, sample: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(62);
        let base = self.backoff.as_secs_f64() * 2f64.powi(exp as i32);
        let capped = base.min(self.backoff_max.as_secs_f64());
        let factor = 1.0 + self.jitter * (2.0 * sample.clamp(0.0, 1.0) - 1.0);
        let secs = (capped * factor).clamp(0.0, self.backoff_max.as_secs_f64());
        Duration::from_secs_f64(secs)
    }
}

/// What a valid spec runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// `sh -c <command>`.
    Shell(String),
    /// A program and arguments.
    Argv(Vec<String>),
    /// A sub-agent.
    Agent(AgentSpec),
    /// One model call.
    Llm(LlmSpec),
    /// An in-process closure of the library API.
    Function,
}

impl Work {
    /// The kind of task this work makes.
    pub fn kind(&self) -> TaskKind {
        match self {
            Work::Shell(_) | Work::Argv(_) => TaskKind::Shell,
            Work::Agent(_) => TaskKind::Agent,
            Work::Llm(_) => TaskKind::Llm,
            Work::Function => TaskKind::Function,
        }
    }
}

/// A spec that passed validation. Only [`TaskSpec::validate`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    spec: TaskSpec,
    work: Work,
}

impl ValidSpec {
    /// The spec as submitted.
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }
    /// What the task runs.
    pub fn work(&self) -> &Work {
        &self.work
    }
    /// The queue, `default` when none was named.
    pub fn queue(&self) -> &str {
        self.spec.queue.as_deref().unwrap_or(DEFAULT_QUEUE)
    }
    /// The display name: the given name, else the shortened command or prompt.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.spec.name {
            return n.clone();
        }
        match &self.work {
            Work::Shell(c) => crate::shorten(c, 80),
            Work::Argv(a) => crate::shorten(&a.join(" "), 80),
            Work::Agent(a) => format!("agent: {}", crate::shorten(&a.prompt, 70)),
            Work::Llm(l) => format!("llm: {}", crate::shorten(&l.prompt, 70)),
            Work::Function => "function".to_string(),
        }
    }
    /// The earliest start time given the submission time `now`.
    pub fn run_after(&self, now: Timestamp) -> Option<Timestamp> {
        let from_delay = self
            .spec
            .delay
            .map(|d| Timestamp(now.0.saturating_add(d.as_millis() as i64)));
        match (self.spec.run_after, from_delay) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
    /// Unwraps into the submitted spec.
    pub fn into_spec(self) -> TaskSpec {
        self.spec
    }
}

/// A spec field that is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The field's name as written in the spec (`retry.max_attempts`).
    pub field: &'static str,
    /// What is wrong and what to do instead.
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> SpecError {
    SpecError {
        field,
        message: message.into(),
    }
}

/// What is said of a queue `name` that is not one of `known`: the queues there are,
/// and how to make one.
pub fn unknown_queue(name: &str, known: &[String]) -> String {
    format!(
        "unknown queue {name:?}; the queues are {} (create one with 'meanwhile queue set {name}')",
        known.join(", ")
    )
}

/// Checks a queue's name as the `queue` of a spec is checked: 1 to 100 letters,
/// digits and `- _ . : / @`.
pub fn check_queue_name(name: &str) -> Result<(), SpecError> {
    check_identifier("queue", name)
}

/// Checks a session name as a task's `session` is checked; `field` names it in the
/// error.
pub fn check_session_name(field: &'static str, value: &str) -> Result<(), SpecError> {
    check_identifier(field, value)
}

fn check_identifier(field: &'static str, value: &str) -> Result<(), SpecError> {
    check_identifier_up_to(field, value, 100)
}

/// Letters, digits and `- _ . : / @`, 1 to `max` of them.
fn check_identifier_up_to(field: &'static str, value: &str, max: usize) -> Result<(), SpecError> {
    if value.is_empty() || value.len() > max {
        return Err(err(field, format!("must be 1 to {max} characters long")));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@'))
    {
        return Err(err(
            field,
            format!("{value:?} may only contain letters, digits and - _ . : / @"),
        ));
    }
    Ok(())
}

impl LlmSpec {
    fn check(&self) -> Result<(), SpecError> {
        if self.prompt.trim().is_empty() {
            return Err(err("llm.prompt", "must not be empty"));
        }
        if self.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(err("llm.temperature", "must be a number from 0 to 2"));
        }
        if self.max_tokens == Some(0) {
            return Err(err("llm.max_tokens", "must be at least 1"));
        }
        if let Some(schema) = &self.schema
            && !schema.is_object()
        {
            return Err(err(
                "llm.schema",
                "must be a JSON Schema object, such as {\"type\": \"object\", \"properties\": {...}}",
            ));
        }
        Ok(())
    }
}

impl TaskSpec {
    /// A spec running `sh -c command`.
    pub fn shell(command: impl Into<String>) -> TaskSpec {
        TaskSpec {
            command: Some(command.into()),
            ..TaskSpec::default()
        }
    }

    /// A spec running `argv` without a shell.
    pub fn argv<I: IntoIterator<Item = S>, S: Into<String>>(argv: I) -> TaskSpec {
        TaskSpec {
            argv: Some(argv.into_iter().map(Into::into).collect()),
            ..TaskSpec::default()
        }
    }

    /// Confines this spec, submitted from inside the task whose spec is `parent`, at
    /// least as tightly as the parent (`default_cwd` is the working directory of a
    /// spec that names none): its sandbox kept (writable paths, the
    /// working directory included, only within the parent's), its network cut if
    /// the parent's is, each limit no looser. What cannot be honoured is refused
    /// with the reason: a task run in-process (agent, llm), which no sandbox holds,
    /// from a confined parent.
    pub fn confine_within(
        &mut self,
        parent: &TaskSpec,
        default_cwd: &std::path::Path,
    ) -> Result<(), String> {
        let confined = parent.sandbox == Some(true) || parent.no_network == Some(true);
        if confined && self.command.is_none() && self.argv.is_none() {
            return Err(
                "a confined task may start only command and argv tasks: an agent or llm task runs inside the daemon, where its confinement cannot hold"
                    .into(),
            );
        }
        if parent.sandbox == Some(true) {
            let mut writable = vec![
                parent
                    .cwd
                    .clone()
                    .unwrap_or_else(|| default_cwd.to_path_buf()),
            ];
            writable.extend(parent.allow_write.iter().cloned());
            let within = |p: &std::path::Path| writable.iter().any(|w| p.starts_with(w));
            let cwd = self
                .cwd
                .clone()
                .unwrap_or_else(|| default_cwd.to_path_buf());
            if !within(&cwd) {
                return Err(format!(
                    "the working directory {} is outside what the sandbox of the task that submits it may write; give one inside it (--cwd)",
                    cwd.display()
                ));
            }
            if let Some(p) = self.allow_write.iter().find(|p| !within(p)) {
                return Err(format!(
                    "the writable path {} is outside what the sandbox of the task that submits it may write; leave it out of --allow-write",
                    p.display()
                ));
            }
            self.cwd = Some(cwd);
            self.sandbox = Some(true);
        }
        if parent.no_network == Some(true) {
            self.no_network = Some(true);
        }
        fn tighter<T: Ord + Copy>(mine: &mut Option<T>, parent: Option<T>) {
            if let Some(p) = parent {
                *mine = Some(mine.map_or(p, |m| m.min(p)));
            }
        }
        tighter(&mut self.memory, parent.memory);
        tighter(&mut self.cpu_time, parent.cpu_time);
        tighter(&mut self.max_procs, parent.max_procs);
        tighter(&mut self.max_files, parent.max_files);
        tighter(&mut self.max_output, parent.max_output);
        Ok(())
    }

    /// Checks every field; the error names the first wrong one and says how to fix it.
    pub fn validate(self) -> Result<ValidSpec, SpecError> {
        let work = match (&self.command, &self.argv, &self.agent, &self.llm) {
            (Some(c), None, None, None) => {
                if c.trim().is_empty() {
                    return Err(err("command", "must not be empty"));
                }
                if c.contains('\0') {
                    return Err(err("command", "must not contain NUL bytes"));
                }
                Work::Shell(c.clone())
            }
            (None, Some(a), None, None) => {
                if a.is_empty() || a[0].is_empty() {
                    return Err(err("argv", "must name a program as its first element"));
                }
                if a.iter().any(|s| s.contains('\0')) {
                    return Err(err("argv", "must not contain NUL bytes"));
                }
                Work::Argv(a.clone())
            }
            (None, None, Some(a), None) => {
                if a.prompt.trim().is_empty() {
                    return Err(err("agent.prompt", "must not be empty"));
                }
                if a.max_turns == Some(0) {
                    return Err(err("agent.max_turns", "must be at least 1"));
                }
                if a.max_cost_usd.is_some_and(|c| !(c >= 0.0 && c.is_finite())) {
                    return Err(err("agent.max_cost_usd", "must be a non-negative number"));
                }
                Work::Agent(a.clone())
            }
            (None, None, None, Some(l)) => {
                l.check()?;
                Work::Llm(l.clone())
            }
            (None, None, None, None) => Work::Function,
            _ => {
                return Err(err(
                    "command",
                    "give exactly one of command, argv, agent and llm",
                ));
            }
        };
        if let Some(cwd) = &self.cwd
            && cwd.as_os_str().as_encoded_bytes().contains(&0)
        {
            return Err(err("cwd", "must not contain NUL bytes"));
        }
        if let Some(cwd) = &self.cwd
            && !cwd.is_absolute()
        {
            return Err(err(
                "cwd",
                format!(
                    "must be an absolute path, got {:?}",
                    cwd.display().to_string()
                ),
            ));
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(err(
                    "env",
                    format!("{k:?} is not a valid variable name (no '=', no NUL, not empty)"),
                ));
            }
        }
        if let Some(name) = &self.name
            && (name.trim().is_empty() || name.chars().count() > MAX_NAME_LEN)
        {
            return Err(err(
                "name",
                format!("must be 1 to {MAX_NAME_LEN} characters long"),
            ));
        }
        for l in &self.labels {
            check_identifier("labels", l)?;
        }
        if let Some(q) = &self.queue {
            check_identifier("queue", q)?;
        }
        if let Some(s) = &self.session {
            check_identifier("session", s)?;
        }
        if self.stall == Some(Duration::ZERO) {
            return Err(err(
                "stall",
                "must be longer than 0s; leave it out for none",
            ));
        }
        if self.stall_action.is_some() && self.stall.is_none() {
            return Err(err(
                "stall_action",
                "only with stall (how long without output is a stall)",
            ));
        }
        if let Some(c) = &self.on_end {
            if c.trim().is_empty() {
                return Err(err("on_end", "must not be empty; leave it out for no hook"));
            }
            if c.contains('\0') {
                return Err(err("on_end", "must not contain NUL bytes"));
            }
        }
        if let Some(k) = &self.concurrency_key {
            check_identifier_up_to("concurrency_key", k, MAX_CONCURRENCY_KEY_LEN)?;
        }
        for (field, d) in [
            ("timeout", self.timeout),
            ("grace", self.grace),
            ("delay", self.delay),
            ("stall", self.stall),
            ("retry.backoff", Some(self.retry.backoff)),
            ("retry.backoff_max", Some(self.retry.backoff_max)),
        ] {
            if let Some(d) = d {
                check_duration(field, d)?;
            }
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(err(
                "timeout",
                "must be longer than 0s; leave it out for none",
            ));
        }
        let r = &self.retry;
        if r.max_attempts == 0 || r.max_attempts > MAX_ATTEMPTS {
            return Err(err(
                "retry.max_attempts",
                format!("must be between 1 (no retries) and {MAX_ATTEMPTS}"),
            ));
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            return Err(err("retry.jitter", "must be between 0 and 1"));
        }
        if let Some(k) = &self.idempotency_key
            && (k.is_empty() || k.chars().count() > MAX_IDEMPOTENCY_KEY_LEN)
        {
            return Err(err(
                "idempotency_key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters long"),
            ));
        }
        if self.stdin || self.tty.is_some() {
            let field = if self.tty.is_some() { "tty" } else { "stdin" };
            if !matches!(work, Work::Shell(_) | Work::Argv(_)) {
                return Err(err(
                    field,
                    "only a command or argv task reads input; leave it out",
                ));
            }
            if self.stdin && self.tty.is_some() {
                return Err(err(
                    "stdin",
                    "give stdin (a pipe) or tty (a terminal, which is also the input), not both",
                ));
            }
            if let Some(t) = &self.tty {
                t.check("tty")?;
            }
        }
        self.check_confinement(&work)?;
        if self.after.iter().any(|id| id.0 <= 0) {
            return Err(err("after", "task ids are positive integers"));
        }
        // The daemon sets it, but a value no task can have is refused as any other.
        if self.started_by.is_some_and(|id| id.0 <= 0) {
            return Err(err("started_by", "a task id is a positive integer"));
        }
        Ok(ValidSpec { spec: self, work })
    }
}

impl TaskSpec {
    /// The sandbox, limits and secrets: each only where it means something.
    fn check_confinement(&self, work: &Work) -> Result<(), SpecError> {
        let process = matches!(work, Work::Shell(_) | Work::Argv(_));
        let only_process = [
            ("no_network", self.no_network == Some(true)),
            ("memory", self.memory.is_some()),
            ("cpu_time", self.cpu_time.is_some()),
            ("max_procs", self.max_procs.is_some()),
            ("max_files", self.max_files.is_some()),
            ("max_output", self.max_output.is_some()),
            ("secrets", !self.secrets.is_empty()),
        ];
        if !process && let Some((field, _)) = only_process.iter().find(|(_, set)| *set) {
            return Err(err(
                field,
                "only a command or argv task is a process to confine; leave it out",
            ));
        }
        if self.sandbox == Some(true) && !process && !matches!(work, Work::Agent(_)) {
            return Err(err(
                "sandbox",
                "only a command, argv or agent task (whose commands it confines) runs in a sandbox; leave it out",
            ));
        }
        if !self.allow_write.is_empty() && self.sandbox != Some(true) {
            return Err(err(
                "allow_write",
                "only widens a sandbox; give sandbox: true with it (--sandbox)",
            ));
        }
        for p in &self.allow_write {
            if !p.is_absolute() || p.as_os_str().as_encoded_bytes().contains(&0) {
                return Err(err(
                    "allow_write",
                    format!(
                        "must be absolute paths without NUL bytes, got {:?}",
                        p.display().to_string()
                    ),
                ));
            }
        }
        if let Some(d) = self.cpu_time {
            check_duration("cpu_time", d)?;
            if d.is_zero() {
                return Err(err(
                    "cpu_time",
                    "must be longer than 0s; leave it out for none",
                ));
            }
        }
        if self.max_procs == Some(0) {
            return Err(err("max_procs", "must be at least 1"));
        }
        if self.max_files == Some(0) {
            return Err(err("max_files", "must be at least 1"));
        }
        if let Some(m) = self.max_output
            && m.0 < MIN_MAX_OUTPUT
        {
            return Err(err(
                "max_output",
                format!(
                    "must be at least 64K, got {m}: the log keeps its head and its newest part within it"
                ),
            ));
        }
        for (k, v) in &self.secrets {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(err(
                    "secrets",
                    format!("{k:?} is not a valid variable name (no '=', no NUL, not empty)"),
                ));
            }
            if v.expose().is_empty() || v.expose().contains('\0') {
                return Err(err(
                    "secrets",
                    format!("{k}: a secret's value must not be empty or contain NUL bytes"),
                ));
            }
            if self.env.contains_key(k) {
                return Err(err(
                    "secrets",
                    format!("{k} is also in env; give it once, as a secret"),
                ));
            }
        }
        Ok(())
    }
}

/// The smallest `max_output`: a log keeps at most half of it as its head.
pub const MIN_MAX_OUTPUT: u64 = 64 << 10;

/// How a queue confines its tasks unless their specs say otherwise (`[queues.NAME]`
/// in config.toml): each field fills the same field of a spec that leaves it out,
/// where it applies to the task's kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDefaults {
    /// `sandbox` (command, argv and agent tasks).
    pub sandbox: Option<bool>,
    /// `no_network` (command and argv tasks, as the rest).
    pub no_network: Option<bool>,
    /// `memory`.
    pub memory: Option<crate::ByteSize>,
    /// `cpu_time`.
    #[serde(default, with = "crate::serde_opt_duration")]
    pub cpu_time: Option<Duration>,
    /// `max_procs`.
    pub max_procs: Option<u32>,
    /// `max_files`.
    pub max_files: Option<u32>,
    /// `max_output`.
    pub max_output: Option<crate::ByteSize>,
}

impl TaskDefaults {
    /// Fills what `spec` leaves out, as far as its kind takes it.
    pub fn apply(&self, spec: &mut TaskSpec) {
        let process = spec.command.is_some() || spec.argv.is_some();
        if process || spec.agent.is_some() {
            spec.sandbox = spec.sandbox.or(self.sandbox);
        }
        if !process {
            return;
        }
        spec.no_network = spec.no_network.or(self.no_network);
        spec.memory = spec.memory.or(self.memory);
        spec.cpu_time = spec.cpu_time.or(self.cpu_time);
        spec.max_procs = spec.max_procs.or(self.max_procs);
        spec.max_files = spec.max_files.or(self.max_files);
        spec.max_output = spec.max_output.or(self.max_output);
    }

    /// True when it sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == TaskDefaults::default()
    }
}

/// Durations are stored exactly, in whole milliseconds, so a library caller's finer
/// or enormous `Duration` is refused rather than silently changed.
pub(crate) fn check_duration(field: &'static str, d: Duration) -> Result<(), SpecError> {
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(err(field, "must be a whole number of milliseconds"));
    }
    if d.as_millis() > u128::from(crate::MAX_DURATION_MS) {
        return Err(err(
            field,
            format!("must be at most {} ms", crate::MAX_DURATION_MS),
        ));
    }
    // A stored duration is served back as a string that must parse to the same
    // value; one the grammar cannot write would make the task unreadable.
    if d.as_millis() > u128::from(MAX_STORED_DURATION_MS) {
        return Err(err(
            field,
            "must be at most 999999999d9999999999h99999999999m999999999999.999s999999999999999ms (about 1.5 billion days)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24: a task submitted from inside a confined task ran unconfined.
    #[test]
    fn a_child_is_confined_at_least_as_tightly_as_its_parent() {
        let parent = TaskSpec {
            sandbox: Some(true),
            no_network: Some(true),
            cwd: Some("/work".into()),
            allow_write: vec!["/data".into()],
            memory: Some(crate::ByteSize(1 << 30)),
            cpu_time: Some(Duration::from_secs(10)),
            ..TaskSpec::shell("parent")
        };
        let mut child = TaskSpec {
            cwd: Some("/work/sub".into()),
            allow_write: vec!["/data/out".into()],
            memory: Some(crate::ByteSize(2 << 30)),
            max_files: Some(64),
            ..TaskSpec::shell("child")
        };
        let root = std::path::Path::new("/");
        child.confine_within(&parent, root).unwrap();
        assert_eq!(child.sandbox, Some(true));
        assert_eq!(child.no_network, Some(true));
        assert_eq!(
            child.memory,
            Some(crate::ByteSize(1 << 30)),
            "the tighter one"
        );
        assert_eq!(child.cpu_time, Some(Duration::from_secs(10)));
        assert_eq!(child.max_files, Some(64));
        // Nothing it may write beyond what the parent may, and nothing in-process.
        let check = |mut child: TaskSpec, expect: &str| {
            let e = child.confine_within(&parent, root).unwrap_err();
            assert!(e.contains(expect), "{e}");
        };
        check(
            TaskSpec::shell("no cwd"),
            "the working directory / is outside",
        );
        check(
            TaskSpec {
                cwd: Some("/work".into()),
                allow_write: vec!["/etc".into()],
                ..TaskSpec::shell("widen")
            },
            "the writable path /etc is outside",
        );
        check(
            TaskSpec {
                cwd: Some("/work".into()),
                ..TaskSpec::default()
            },
            "only command and argv tasks",
        );
        // An unconfined parent passes on its limits only.
        let mut child = TaskSpec::shell("free");
        let limits = TaskSpec {
            max_procs: Some(8),
            ..TaskSpec::shell("limited")
        };
        child.confine_within(&limits, root).unwrap();
        assert_eq!(
            (child.sandbox, child.no_network, child.max_procs),
            (None, None, Some(8))
        );
    }

    fn field_of(json: &str) -> &'static str {
        let spec: TaskSpec = serde_json::from_str(json).expect("parses");
        spec.validate().expect_err("is invalid").field
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"command": " "}"#), "command");
        assert_eq!(field_of(r#"{"argv": []}"#), "argv");
        assert_eq!(field_of(r#"{"command": "x", "argv": ["y"]}"#), "command");
        assert_eq!(field_of(r#"{"command": "x", "cwd": "rel"}"#), "cwd");
        assert_eq!(field_of(r#"{"command": "x", "queue": "a b"}"#), "queue");
        assert_eq!(field_of(r#"{"command": "x", "timeout": "0s"}"#), "timeout");
        assert_eq!(
            field_of(r#"{"command": "x", "retry": {"max_attempts": 0}}"#),
            "retry.max_attempts"
        );
        assert_eq!(
            field_of(r#"{"command": "x", "retry": {"jitter": 2}}"#),
            "retry.jitter"
        );
        assert_eq!(field_of(r#"{"command": "x", "after": [0]}"#), "after");
        assert_eq!(
            field_of(r#"{"command": "x", "started_by": -1}"#),
            "started_by"
        );
        assert_eq!(
            field_of(r#"{"command": "x", "stdin": true, "tty": {}}"#),
            "stdin"
        );
        assert_eq!(
            field_of(r#"{"command": "x", "tty": {"cols": 0, "rows": 5}}"#),
            "tty"
        );
        assert_eq!(field_of(r#"{"llm": {"prompt": "x"}, "tty": {}}"#), "tty");
        assert_eq!(field_of(r#"{"command": "x", "env": {"A=B": "1"}}"#), "env");
        assert_eq!(field_of(r#"{"agent": {"prompt": ""}}"#), "agent.prompt");
        assert_eq!(field_of(r#"{"llm": {"prompt": " "}}"#), "llm.prompt");
        assert_eq!(
            field_of(r#"{"llm": {"prompt": "x", "temperature": 3}}"#),
            "llm.temperature"
        );
        assert_eq!(
            field_of(r#"{"llm": {"prompt": "x", "schema": "string"}}"#),
            "llm.schema"
        );
        assert_eq!(
            field_of(r#"{"llm": {"prompt": "x"}, "command": "ls"}"#),
            "command"
        );
        assert_eq!(
            field_of(r#"{"command": "x", "concurrency_key": "a b"}"#),
            "concurrency_key"
        );
        assert_eq!(
            field_of(r#"{"command": "x", "concurrency_key": ""}"#),
            "concurrency_key"
        );
    }

    #[test]
    fn concurrency_keys_are_identifiers_up_to_200_characters() {
        let mut s = TaskSpec::shell("x");
        s.concurrency_key = Some("customer-42".into());
        assert!(s.clone().validate().is_ok());
        s.concurrency_key = Some("k".repeat(MAX_CONCURRENCY_KEY_LEN));
        assert!(s.clone().validate().is_ok());
        s.concurrency_key = Some("k".repeat(MAX_CONCURRENCY_KEY_LEN + 1));
        let e = s.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "concurrency_key: must be 1 to 200 characters long"
        );
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_rejected() {
        let e = serde_json::from_str::<TaskSpec>(r#"{"command": "x", "colour": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = serde_json::from_str::<TaskSpec>(r#"{"command": "x", "timeout": "fast"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("like 30s"), "{e}");
    }

    #[test]
    fn durations_accept_strings_and_seconds() {
        let s: TaskSpec = serde_json::from_str(r#"{"command": "x", "timeout": "5m"}"#).unwrap();
        assert_eq!(s.timeout, Some(Duration::from_secs(300)));
        let s: TaskSpec = serde_json::from_str(r#"{"command": "x", "timeout": 1.5}"#).unwrap();
        assert_eq!(s.timeout, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 10,
            backoff: Duration::from_secs(1),
            backoff_max: Duration::from_secs(10),
            jitter: 0.5,
        };
        assert_eq!(p.delay_after(1, 0.5), Duration::from_secs(1));
        assert_eq!(p.delay_after(2, 0.5), Duration::from_secs(2));
        assert_eq!(p.delay_after(3, 0.5), Duration::from_secs(4));
        assert_eq!(p.delay_after(9, 0.5), Duration::from_secs(10));
        assert_eq!(p.delay_after(9, 0.999), Duration::from_secs(10));
        assert_eq!(p.delay_after(1, 0.0), Duration::from_millis(500));
        assert_eq!(p.delay_after(200, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn display_name_prefers_the_name() {
        let v = TaskSpec::shell("cargo   test\n --all").validate().unwrap();
        assert_eq!(v.display_name(), "cargo test --all");
        let mut s = TaskSpec::shell("x");
        s.name = Some("build".into());
        assert_eq!(s.validate().unwrap().display_name(), "build");
    }
}
