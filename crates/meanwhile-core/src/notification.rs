//! Completion notices: how a task ended, written for a model or a person to read.

use crate::duration::format_duration;
use crate::state::TaskState;
use crate::task::{TaskId, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// "task 7 (cargo test) failed with exit code 101 after 41s; last lines: ...".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Notification {
    /// Position in the session's stream, increasing.
    pub seq: i64,
    /// The session it is for.
    pub session: String,
    /// The task that ended.
    pub task_id: TaskId,
    /// Its name or shortened command.
    pub name: String,
    /// How it ended.
    pub state: TaskState,
    /// Exit code, when the last attempt exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal, when one ended the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why, when there is more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the last attempt ran, in milliseconds.
    pub duration_ms: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The last lines of output (bounded).
    pub tail: String,
    /// Total bytes of output, so the reader knows how much more there is.
    pub output_bytes: u64,
    /// When the task ended.
    pub created_at: Timestamp,
}

impl Notification {
    /// The one-line headline: `task 7 (cargo test) failed with exit code 101 after 41s`.
    pub fn headline(&self) -> String {
        let how = match self.state {
            TaskState::Succeeded => "succeeded".to_string(),
            TaskState::Failed | TaskState::Quarantined => {
                let end = match (self.exit_code, self.signal) {
                    (Some(c), _) => format!("with exit code {c}"),
                    (None, Some(s)) => format!("killed by signal {s} ({})", signal_name(s)),
                    (None, None) => String::new(),
                };
                let verb = if self.state == TaskState::Quarantined {
                    format!("was quarantined after {} attempts, the last", self.attempts)
                } else {
                    "failed".to_string()
                };
                format!("{verb} {end}").trim_end().to_string()
            }
            TaskState::TimedOut => "timed out".to_string(),
            TaskState::Cancelled => "was cancelled".to_string(),
            TaskState::Lost => "was lost (its end was not seen)".to_string(),
            TaskState::Pending | TaskState::Running => self.state.to_string(),
        };
        format!(
            "task {} ({}) {} after {}",
            self.task_id,
            self.name,
            how,
            format_duration(Duration::from_millis(self.duration_ms))
        )
    }

    /// The whole notice: headline, reason, last lines, and how to read the rest.
    pub fn text(&self) -> String {
        let mut s = self.headline();
        if let Some(r) = &self.reason {
            s.push_str(&format!("; {r}"));
        }
        if self.tail.is_empty() {
            s.push_str("; no output");
        } else {
            s.push_str(&format!(
                "; last lines of output:\n{}",
                self.tail.trim_end_matches('\n')
            ));
            s.push_str(&format!(
                "\n(output is {} bytes; read it all with the output tool or `meanwhile logs {}`)",
                self.output_bytes, self.task_id
            ));
        }
        s
    }
}

/// The conventional name of a signal number (`SIGKILL`), for messages.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(state: TaskState, exit_code: Option<i32>, signal: Option<i32>) -> Notification {
        Notification {
            seq: 1,
            session: "s".into(),
            task_id: TaskId(7),
            name: "cargo test".into(),
            state,
            exit_code,
            signal,
            reason: None,
            duration_ms: 41_000,
            attempts: 3,
            tail: "test result: FAILED\n".into(),
            output_bytes: 1234,
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn headlines_say_how_it_ended() {
        let check = |n: Notification, want: &str| assert_eq!(n.headline(), want);
        check(
            notice(TaskState::Failed, Some(101), None),
            "task 7 (cargo test) failed with exit code 101 after 41s",
        );
        check(
            notice(TaskState::Failed, None, Some(9)),
            "task 7 (cargo test) failed killed by signal 9 (SIGKILL) after 41s",
        );
        check(
            notice(TaskState::Succeeded, Some(0), None),
            "task 7 (cargo test) succeeded after 41s",
        );
        check(
            notice(TaskState::TimedOut, None, Some(15)),
            "task 7 (cargo test) timed out after 41s",
        );
        check(
            notice(TaskState::Quarantined, Some(1), None),
            "task 7 (cargo test) was quarantined after 3 attempts, the last with exit code 1 after 41s",
        );
    }

    #[test]
    fn text_includes_tail_and_how_to_read_more() {
        let t = notice(TaskState::Failed, Some(101), None).text();
        assert!(t.contains("last lines of output:\ntest result: FAILED\n(output is 1234 bytes"));
        assert!(t.contains("meanwhile logs 7"));
    }
}
