//! The records the store keeps about tasks and queues.

use crate::ident::{TaskId, TaskKind, Timestamp};
use crate::spec::TaskSpec;
use crate::state::TaskState;
use serde::{Deserialize, Serialize};

/// Progress a task reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Progress {
    /// 0 to 100, when the task said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f32>,
    /// What it is doing.
    #[serde(default)]
    pub message: String,
    /// When it said so.
    pub at: Timestamp,
}

/// Longest progress message kept, in bytes; a longer one is cut at a character.
pub const MAX_PROGRESS_MESSAGE: usize = 512;

impl Progress {
    /// The one rule for a reported percentage, whoever reports it (an API call, a
    /// closure, a `::progress` line): a finite number from 0 to 100. Checked before
    /// any narrowing to `f32`, which would round 100.000001 to 100.
    pub fn check_percent(p: f64) -> Result<f32, crate::SpecError> {
        if p.is_finite() && (0.0..=100.0).contains(&p) {
            Ok(p as f32)
        } else {
            Err(crate::SpecError {
                field: "percent",
                message: format!("must be a number from 0 to 100, got {p}"),
            })
        }
    }

    /// Progress as a reporter gives it: the percentage checked by
    /// [`Progress::check_percent`], the message cut to [`MAX_PROGRESS_MESSAGE`].
    pub fn new(
        percent: Option<f64>,
        message: impl Into<String>,
        at: Timestamp,
    ) -> Result<Progress, crate::SpecError> {
        let percent = percent.map(Progress::check_percent).transpose()?;
        let mut message = message.into();
        if message.len() > MAX_PROGRESS_MESSAGE {
            let mut cut = MAX_PROGRESS_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        Ok(Progress {
            percent,
            message,
            at,
        })
    }

    /// Parses the text after `::progress ` in a task's output: an optional percentage
    /// (`40` or `40%`) followed by a message. A first word that is not a percentage
    /// by the one rule (`250`, `NaN`) is part of the message.
    pub fn parse_line(rest: &str, at: Timestamp) -> Progress {
        let rest = rest.trim();
        let (first, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if let Ok(p) = first.trim_end_matches('%').parse::<f64>()
            && let Ok(progress) = Progress::new(Some(p), tail.trim(), at)
        {
            return progress;
        }
        Progress::new(None, rest, at).unwrap_or(Progress {
            percent: None,
            message: String::new(),
            at,
        })
    }
}

/// One execution of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Attempt {
    /// From 1.
    pub number: u32,
    /// The node that ran it.
    pub node: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// How it ended, once it has (`exited`, `signaled`, `timed_out`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why it ended the way it did, in words, when there is more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The task's process id (and process group id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Peak resident memory of the task's main process, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_kb: Option<u64>,
    /// User plus system CPU time, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
}

/// Everything the store knows about a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TaskRecord {
    /// The task's id.
    pub id: TaskId,
    /// What kind of work it is.
    pub kind: TaskKind,
    /// Its display name.
    pub name: String,
    /// Its state.
    pub state: TaskState,
    /// Its queue.
    pub queue: String,
    /// Its priority.
    pub priority: i32,
    /// Its labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The session it notifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Its concurrency key (the spec's), which shares its queue's `per_key` limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// The spec as submitted.
    pub spec: TaskSpec,
    /// When it was submitted.
    pub created_at: Timestamp,
    /// Earliest start of its next attempt, when it is waiting for a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_after: Option<Timestamp>,
    /// When its latest attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it reached its terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Exit code of the latest attempt, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal that ended the latest attempt, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why the task is in its state, when there is more to say than the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The latest progress it reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The final answer of an agent task, or the value an in-process task returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The node holding its lease while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A stop was requested and is being carried out.
    #[serde(default)]
    pub stop_requested: bool,
    /// Tokens its model calls used (input, cached or not, plus output), as the
    /// provider reported them; absent when none.
    #[serde(
        default,
        deserialize_with = "crate::de::int",
        skip_serializing_if = "is_zero"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = i64::MAX)))]
    pub tokens: u64,
    /// What its model calls cost in US dollars, by the provider's price table;
    /// absent when nothing.
    #[serde(default, skip_serializing_if = "is_nothing")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0)))]
    pub cost_usd: f64,
    /// Model calls it made; absent when none.
    #[serde(
        default,
        deserialize_with = "crate::de::int",
        skip_serializing_if = "is_zero"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = u32::MAX)))]
    pub model_calls: u32,
    /// True while it runs and its processes wait, blocked reading their terminal or
    /// stdin with no output for a moment (a prompt it cannot go on without).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting_for_input: bool,
    /// Since when it waits for input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<Timestamp>,
    /// The last line it printed before waiting for input (`Proceed? [y/N]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The TCP and Unix sockets its processes listen on, while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listening: Vec<crate::Listener>,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

fn is_nothing(usd: &f64) -> bool {
    *usd == 0.0
}

/// Why a queue is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// Someone paused it (`queue pause`, the API, config.toml).
    User,
    /// Its budget is spent; it resumes by itself when the next window starts, or
    /// when the budget is raised or removed.
    Budget,
}

impl PauseReason {
    /// The name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::User => "user",
            PauseReason::Budget => "budget",
        }
    }

    /// Parses a reason's name.
    pub fn parse(s: &str) -> Option<PauseReason> {
        match s {
            "user" => Some(PauseReason::User),
            "budget" => Some(PauseReason::Budget),
            _ => None,
        }
    }
}

impl TaskRecord {
    /// How long the task ran (latest attempt), or has been running until `now`.
    pub fn duration_ms(&self, now: Timestamp) -> Option<u64> {
        let start = self.started_at?;
        Some(start.millis_until(self.finished_at.unwrap_or(now)))
    }
}

/// A queue and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct QueueInfo {
    /// Its name.
    pub name: String,
    /// How many of its tasks may run at once.
    pub max_parallel: u32,
    /// A paused queue starts nothing new.
    pub paused: bool,
    /// Why it is paused: `user` or `budget`; null when it is not.
    #[serde(default)]
    pub pause_reason: Option<PauseReason>,
    /// How many of its tasks with the same concurrency key may run at once; null for
    /// no limit (tasks without a key are only bound by `max_parallel`).
    #[serde(default, deserialize_with = "crate::de::opt_int")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = u32::MAX)))]
    pub per_key: Option<u32>,
    /// At most this many task starts (each attempt counts) in any stretch of time of
    /// its window's length; null for no limit.
    #[serde(default)]
    pub rate: Option<crate::RateLimit>,
    /// A `failures` alert fires when this many of its tasks in a row failed; null
    /// for none.
    #[serde(default, deserialize_with = "crate::de::opt_int")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = u32::MAX)))]
    pub alert_after: Option<u32>,
    /// Tasks waiting in it.
    #[serde(default)]
    pub pending: u64,
    /// Tasks running in it.
    #[serde(default)]
    pub running: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_and_read_as_rfc3339() {
        let t = Timestamp::parse_rfc3339("2030-01-02T03:04:05.250+02:00").unwrap();
        assert_eq!(t.rfc3339(), "2030-01-02T01:04:05.250Z");
        assert_eq!(Timestamp::parse_rfc3339("2030-01-02T01:04:05.25Z"), Ok(t));
        let minutes = Timestamp::parse_rfc3339("2030-01-02T03:04+02:00").unwrap();
        assert_eq!(minutes.rfc3339(), "2030-01-02T01:04:00.000Z");
        assert_eq!(Timestamp::parse_rfc3339("2030-01-02T01:04Z"), Ok(minutes));
        assert!(Timestamp::parse_rfc3339("2030-02-30T00:00Z").is_err());
        let e = Timestamp::parse_rfc3339("2030-01-02T03:04").unwrap_err();
        assert!(e.ends_with("give a zone (Z or +02:00)"), "{e}");
        let e = Timestamp::parse_rfc3339("2030-01-02T03:04:05").unwrap_err();
        assert!(e.ends_with("give a zone (Z or +02:00)"), "{e}");
        let e = Timestamp::parse_rfc3339("yesterday").unwrap_err();
        assert!(!e.contains("zone"), "{e}");
        assert_eq!(
            Timestamp(i64::MAX).rfc3339_clamped(),
            "9999-12-31T23:59:59.999Z"
        );
        assert_eq!(Timestamp(0).rfc3339_clamped(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn progress_lines_parse() {
        let at = Timestamp(1);
        let p = Progress::parse_line("40 compiling", at);
        assert_eq!((p.percent, p.message.as_str()), (Some(40.0), "compiling"));
        let p = Progress::parse_line("75%  linking crates ", at);
        assert_eq!(
            (p.percent, p.message.as_str()),
            (Some(75.0), "linking crates")
        );
        let p = Progress::parse_line("warming up", at);
        assert_eq!((p.percent, p.message.as_str()), (None, "warming up"));
        let p = Progress::parse_line("250 done", at);
        assert_eq!((p.percent, p.message.as_str()), (None, "250 done"));
        let p = Progress::parse_line("NaN%", at);
        assert_eq!(p.percent, None);
        let long = "é".repeat(MAX_PROGRESS_MESSAGE);
        let p = Progress::parse_line(&long, at);
        assert!(p.message.len() <= MAX_PROGRESS_MESSAGE && long.starts_with(&p.message));
        assert_eq!(
            Progress::check_percent(100.000001).unwrap_err().field,
            "percent"
        );
        assert_eq!(Progress::check_percent(100.0), Ok(100.0));
    }

    #[test]
    fn ids_parse_with_clear_errors() {
        assert_eq!("7".parse::<TaskId>(), Ok(TaskId(7)));
        assert_eq!("#12".parse::<TaskId>(), Ok(TaskId(12)));
        assert!(
            "abc"
                .parse::<TaskId>()
                .unwrap_err()
                .contains("positive integers")
        );
        assert!("0".parse::<TaskId>().is_err());
    }
}
