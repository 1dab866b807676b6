//! Task states and the one function that moves a task from one state to the next.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a task is in its life. See DESIGN.md "States".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for its run-after time, its dependencies or a free slot in its queue.
    Pending,
    /// An attempt is executing.
    Running,
    /// The last attempt exited 0, and that exit was seen.
    Succeeded,
    /// The last attempt failed (non-zero exit, a signal, or it could not start).
    Failed,
    /// The last attempt ran past its timeout and was stopped.
    TimedOut,
    /// Stopped or cancelled on request.
    Cancelled,
    /// Every allowed attempt failed; kept aside, visible and re-runnable by hand.
    Quarantined,
    /// The end of the last attempt was not seen (its supervisor vanished); no retries left.
    Lost,
}

impl TaskState {
    /// Every state, in display order.
    pub const ALL: [TaskState; 8] = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::TimedOut,
        TaskState::Cancelled,
        TaskState::Quarantined,
        TaskState::Lost,
    ];

    /// True once the task will not change again unless retried by hand.
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskState::Pending | TaskState::Running)
    }

    /// The name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::TimedOut => "timed_out",
            TaskState::Cancelled => "cancelled",
            TaskState::Quarantined => "quarantined",
            TaskState::Lost => "lost",
        }
    }

    /// Parses a state name, also accepting the names other tools use
    /// (`completed`, `done`, `killed`, `stopped`, `timeout`, `queued`).
    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s.to_ascii_lowercase().as_str() {
            "pending" | "queued" | "waiting" => TaskState::Pending,
            "running" => TaskState::Running,
            "succeeded" | "success" | "completed" | "done" | "ok" => TaskState::Succeeded,
            "failed" | "error" => TaskState::Failed,
            "timed_out" | "timeout" | "timedout" => TaskState::TimedOut,
            "cancelled" | "canceled" | "killed" | "stopped" => TaskState::Cancelled,
            "quarantined" => TaskState::Quarantined,
            "lost" => TaskState::Lost,
            _ => return None,
        })
    }

    /// The state as a sentence says it after a task's name: `task 17 has succeeded`,
    /// `task 9 is running`, `task 4 was cancelled`.
    pub fn in_words(self) -> &'static str {
        match self {
            TaskState::Pending => "is pending",
            TaskState::Running => "is running",
            TaskState::Succeeded => "has succeeded",
            TaskState::Failed => "has failed",
            TaskState::TimedOut => "has timed out",
            TaskState::Cancelled => "was cancelled",
            TaskState::Quarantined => "was quarantined",
            TaskState::Lost => "was lost",
        }
    }

    /// A one-character symbol for tables.
    pub fn symbol(self) -> char {
        match self {
            TaskState::Pending => '…',
            TaskState::Running => '▶',
            TaskState::Succeeded => '✔',
            TaskState::Failed => '✘',
            TaskState::TimedOut => '⏱',
            TaskState::Cancelled => '■',
            TaskState::Quarantined => '☣',
            TaskState::Lost => '?',
        }
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The process exited with this code.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// The process was killed by this signal (not by meanwhile's own stop or timeout).
    Signaled {
        /// The signal number.
        signal: i32,
    },
    /// The attempt could not start, or an in-process task returned an error.
    Failed,
    /// The attempt ran past its timeout and was stopped.
    TimedOut,
    /// The attempt was stopped on request.
    Cancelled,
    /// The attempt's end was not seen.
    Lost,
}

impl AttemptOutcome {
    /// True for the one outcome that counts as success.
    pub fn is_success(self) -> bool {
        self == AttemptOutcome::Exited { code: 0 }
    }
}

/// A request to change a task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The dispatcher claimed the task for an attempt.
    Claim,
    /// The current attempt ended.
    AttemptEnded {
        /// How it ended.
        outcome: AttemptOutcome,
        /// The number of the attempt that ended, from 1.
        attempt: u32,
        /// The retry policy's limit.
        max_attempts: u32,
    },
    /// Cancel a task that has not ended. A running task's attempt is stopped first and
    /// ends with [`AttemptOutcome::Cancelled`]; this transition is for pending tasks.
    Cancel,
    /// A dependency ended without succeeding, so this task can never run.
    DependencyFailed,
    /// Run a finished task again, by hand.
    Retry,
    /// Give back a claim whose attempt never started a process (its runtime died
    /// before spawning it): the task waits again and the attempt does not count.
    Release,
}

/// A transition that the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} task cannot {action}")]
pub struct IllegalTransition {
    /// The state the task was in.
    pub from: TaskState,
    /// What was asked, in words.
    pub action: &'static str,
}

/// The one place that decides a task's next state. Every state change in meanwhile
/// goes through here, in the same transaction that writes it.
pub fn transition(from: TaskState, t: Transition) -> Result<TaskState, IllegalTransition> {
    use TaskState::*;
    let illegal = |action| Err(IllegalTransition { from, action });
    match t {
        Transition::Claim => match from {
            Pending => Ok(Running),
            _ => illegal("be started"),
        },
        Transition::AttemptEnded {
            outcome,
            attempt,
            max_attempts,
        } => {
            if from != Running {
                return illegal("end an attempt");
            }
            let failed_state = match outcome {
                AttemptOutcome::Exited { code: 0 } => return Ok(Succeeded),
                AttemptOutcome::Cancelled => return Ok(Cancelled),
                AttemptOutcome::Exited { .. }
                | AttemptOutcome::Signaled { .. }
                | AttemptOutcome::Failed => Failed,
                AttemptOutcome::TimedOut => TimedOut,
                AttemptOutcome::Lost => Lost,
            };
            if attempt < max_attempts {
                Ok(Pending)
            } else if max_attempts > 1 {
                Ok(Quarantined)
            } else {
                Ok(failed_state)
            }
        }
        Transition::Cancel => match from {
            Pending => Ok(Cancelled),
            _ => illegal("be cancelled"),
        },
        Transition::DependencyFailed => match from {
            Pending => Ok(Failed),
            _ => illegal("fail for a dependency"),
        },
        Transition::Release => match from {
            Running => Ok(Pending),
            _ => illegal("be released"),
        },
        Transition::Retry => {
            if from.is_terminal() {
                Ok(Pending)
            } else {
                illegal("be retried before it ends")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState::*;

    fn ended(outcome: AttemptOutcome, attempt: u32, max_attempts: u32) -> Transition {
        Transition::AttemptEnded {
            outcome,
            attempt,
            max_attempts,
        }
    }

    const EXIT0: AttemptOutcome = AttemptOutcome::Exited { code: 0 };
    const EXIT1: AttemptOutcome = AttemptOutcome::Exited { code: 1 };
    const SIG9: AttemptOutcome = AttemptOutcome::Signaled { signal: 9 };

    /// Every (state, transition) pair, with the expected result. Pairs not listed
    /// here must be illegal; the test walks all states to make sure.
    fn legal_table() -> Vec<(TaskState, Transition, TaskState)> {
        let mut v = vec![
            (Pending, Transition::Claim, Running),
            (Pending, Transition::Cancel, Cancelled),
            (Pending, Transition::DependencyFailed, Failed),
            (Running, Transition::Release, Pending),
            (Running, ended(EXIT0, 1, 1), Succeeded),
            (Running, ended(EXIT0, 3, 3), Succeeded),
            (Running, ended(EXIT1, 1, 1), Failed),
            (Running, ended(SIG9, 1, 1), Failed),
            (Running, ended(AttemptOutcome::Failed, 1, 1), Failed),
            (Running, ended(AttemptOutcome::TimedOut, 1, 1), TimedOut),
            (Running, ended(AttemptOutcome::Lost, 1, 1), Lost),
            (Running, ended(AttemptOutcome::Cancelled, 1, 3), Cancelled),
            (Running, ended(EXIT1, 1, 3), Pending),
            (Running, ended(SIG9, 2, 3), Pending),
            (Running, ended(AttemptOutcome::TimedOut, 1, 2), Pending),
            (Running, ended(AttemptOutcome::Lost, 1, 2), Pending),
            (Running, ended(EXIT1, 3, 3), Quarantined),
            (Running, ended(AttemptOutcome::TimedOut, 2, 2), Quarantined),
            (Running, ended(AttemptOutcome::Lost, 2, 2), Quarantined),
        ];
        for s in [Succeeded, Failed, TimedOut, Cancelled, Quarantined, Lost] {
            v.push((s, Transition::Retry, Pending));
        }
        v
    }

    #[test]
    fn legal_transitions_go_where_expected() {
        for (from, t, to) in legal_table() {
            assert_eq!(transition(from, t), Ok(to), "{from} with {t:?}");
        }
    }

    #[test]
    fn everything_else_is_illegal() {
        let kinds = [
            Transition::Claim,
            Transition::Cancel,
            Transition::DependencyFailed,
            Transition::Retry,
            Transition::Release,
            ended(EXIT0, 1, 1),
            ended(EXIT1, 1, 3),
        ];
        let table = legal_table();
        for from in TaskState::ALL {
            for t in kinds {
                let is_legal = table.iter().any(|(f, tt, _)| {
                    *f == from && std::mem::discriminant(tt) == std::mem::discriminant(&t)
                });
                let got = transition(from, t);
                assert_eq!(got.is_ok(), is_legal, "{from} with {t:?} gave {got:?}");
                if let Err(e) = got {
                    assert!(e.to_string().starts_with(&format!("a {from} task cannot")));
                }
            }
        }
    }

    #[test]
    fn names_round_trip_and_aliases_map() {
        for s in TaskState::ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskState::parse("COMPLETED"), Some(Succeeded));
        assert_eq!(TaskState::parse("killed"), Some(Cancelled));
        assert_eq!(TaskState::parse("timeout"), Some(TimedOut));
        assert_eq!(TaskState::parse("bogus"), None);
    }
}
