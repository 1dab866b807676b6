//! Events: every state change, in the order the store committed them.

use crate::ident::{TaskId, Timestamp};
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A task was submitted.
    Submitted,
    /// An attempt started, or, with `taken_over_from` in the data, another node took
    /// a running attempt over as the same attempt, to resume it (its node had let
    /// its lease expire).
    Started,
    /// An attempt ended and the task moved on (its new state is in the data).
    AttemptEnded,
    /// A task reached a terminal state.
    Finished,
    /// A task reported progress.
    Progress,
    /// A stop was requested.
    StopRequested,
    /// A finished task was put back to pending by hand.
    Retried,
    /// A claim whose attempt never started was given back; the task is pending again.
    Released,
    /// A task was removed.
    Removed,
    /// A queue was created or changed.
    Queue,
    /// A schedule was added, removed, paused or resumed, fired a task, or missed
    /// firing times (`action` in the data says which).
    Schedule,
    /// An alert fired or resolved (the alert is the data).
    Alert,
    /// A queue's budget was set or removed, or its window ended and its usage
    /// counts from 0 again (`action` in the data says which, `budget` is the budget).
    Budget,
    /// A running task began or stopped waiting for input (`waiting` and `prompt` in
    /// the data).
    WaitingForInput,
    /// The sockets a running task listens on changed (`listening` in the data).
    Listening,
}

/// One entry of the durable event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Event {
    /// Position in the log, increasing.
    pub seq: i64,
    /// When it was committed.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// The task it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// Details (new state, exit code, progress, ...).
    #[serde(default)]
    pub data: serde_json::Value,
}

impl EventKind {
    /// The name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Started => "started",
            EventKind::AttemptEnded => "attempt_ended",
            EventKind::Finished => "finished",
            EventKind::Progress => "progress",
            EventKind::StopRequested => "stop_requested",
            EventKind::Retried => "retried",
            EventKind::Released => "released",
            EventKind::Removed => "removed",
            EventKind::Queue => "queue",
            EventKind::Schedule => "schedule",
            EventKind::Alert => "alert",
            EventKind::Budget => "budget",
            EventKind::WaitingForInput => "waiting_for_input",
            EventKind::Listening => "listening",
        }
    }

    /// Parses an event kind name.
    pub fn parse(s: &str) -> Option<EventKind> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}
