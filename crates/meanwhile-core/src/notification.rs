//! Notices for a session: how a task ended, and what a running task needs or offers
//! (it waits for input, it listens on a socket), written for a model or a person to
//! read.

use crate::duration::format_duration;
use crate::ident::{TaskId, Timestamp};
use crate::state::TaskState;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a notice is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The task ended.
    #[default]
    Ended,
    /// The running task waits for input (its `prompt` is the last line it printed).
    WaitingForInput,
    /// The running task listens on new sockets (in `listening`).
    Listening,
}

/// "task 7 (cargo test) failed with exit code 101 after 41s; last lines: ...".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Notification {
    /// Position in the session's stream, increasing.
    pub seq: i64,
    /// What it is about: the task's end, or a running task that waits for input or
    /// listens.
    #[serde(default)]
    pub kind: NoticeKind,
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
    /// When the task ended (or was seen waiting or listening).
    pub created_at: Timestamp,
    /// The line it waits at, for a `waiting_for_input` notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The sockets it began to listen on, for a `listening` notice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listening: Vec<crate::Listener>,
}

impl Notification {
    /// The one-line headline: `task 7 (cargo test) failed with exit code 101 after 41s`.
    pub fn headline(&self) -> String {
        match self.kind {
            NoticeKind::Ended => {}
            NoticeKind::WaitingForInput => {
                return format!(
                    "task {} ({}) is waiting for input: {}",
                    self.task_id,
                    self.name,
                    self.prompt.as_deref().unwrap_or("(no prompt shown)")
                );
            }
            NoticeKind::Listening => {
                let places: Vec<&str> = self.listening.iter().map(|l| l.reach()).collect();
                return format!(
                    "task {} ({}) is listening on {}",
                    self.task_id,
                    self.name,
                    places.join(", ")
                );
            }
        }
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
        match self.kind {
            NoticeKind::Ended => {}
            NoticeKind::WaitingForInput => {
                s.push_str(&format!(
                    "; it is still running. Answer with the background_input tool or `meanwhile send {} TEXT --key enter`",
                    self.task_id
                ));
                return s;
            }
            NoticeKind::Listening => {
                s.push_str("; it is still running");
                return s;
            }
        }
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
            kind: NoticeKind::Ended,
            prompt: None,
            listening: Vec::new(),
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
    fn running_tasks_say_what_they_need_or_offer() {
        let mut n = notice(TaskState::Running, None, None);
        n.kind = NoticeKind::WaitingForInput;
        n.prompt = Some("Proceed? [y/N]".into());
        assert_eq!(
            n.headline(),
            "task 7 (cargo test) is waiting for input: Proceed? [y/N]"
        );
        assert!(n.text().contains("meanwhile send 7 TEXT --key enter"));
        n.kind = NoticeKind::Listening;
        n.listening = vec![crate::Listener::tcp([127, 0, 0, 1].into(), 5173)];
        assert_eq!(
            n.headline(),
            "task 7 (cargo test) is listening on http://127.0.0.1:5173"
        );
    }

    #[test]
    fn text_includes_tail_and_how_to_read_more() {
        let t = notice(TaskState::Failed, Some(101), None).text();
        assert!(t.contains("last lines of output:\ntest result: FAILED\n(output is 1234 bytes"));
        assert!(t.contains("meanwhile logs 7"));
    }
}
