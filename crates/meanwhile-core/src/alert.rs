//! Alerts: conditions an operator must hear of when no one is watching. Each fires
//! once when its cause appears and resolves once when the cause clears.

use crate::ident::{TaskId, Timestamp};
use serde::{Deserialize, Serialize};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A task with a `stall` time printed nothing for that long; resolves when it
    /// prints again or ends.
    Stalled,
    /// A queue's last `alert_after` tasks all failed; resolves when one succeeds.
    Failures,
    /// A task used up its retries; resolves when it is retried or removed.
    Quarantined,
    /// A schedule's times passed while meanwhile was not running; resolves when it
    /// next fires on time.
    ScheduleMissed,
    /// A queue's budget reached one of its alarms (one alert per percentage, once per
    /// window); resolves when a new window starts or the budget is raised or removed.
    Budget,
    /// A node of the fleet has not written its heartbeat for `silent_after`; the
    /// other nodes raise it. Resolves when it beats again or is stopped cleanly.
    NodeSilent,
}

impl AlertKind {
    /// The name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Stalled => "stalled",
            AlertKind::Failures => "failures",
            AlertKind::Quarantined => "quarantined",
            AlertKind::ScheduleMissed => "schedule_missed",
            AlertKind::Budget => "budget",
            AlertKind::NodeSilent => "node_silent",
        }
    }

    /// Parses a kind's name.
    pub fn parse(s: &str) -> Option<AlertKind> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// Whether an alert's cause is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The cause is there.
    Firing,
    /// The cause cleared.
    Resolved,
}

/// One alert, as listed and as sinks receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Alert {
    /// Its id, increasing.
    pub id: i64,
    /// What it is about.
    pub kind: AlertKind,
    /// Firing or resolved.
    pub state: AlertState,
    /// What happened, for people.
    pub message: String,
    /// The task it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// The queue it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// When it fired, or resolved (the latest of the two).
    pub at: Timestamp,
    /// When it fired.
    pub fired_at: Timestamp,
    /// When it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// A person's acknowledgement, while it holds: the sinks hear no reminder of
    /// the alert until it resolves or the acknowledgement runs out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked: Option<AlertAck>,
    /// How many times the sinks were told it fires: 1 when it fired, one more per
    /// reminder (`[alerts] repeat_every`).
    #[serde(default = "one")]
    pub notices: u32,
}

fn one() -> u32 {
    1
}

impl Alert {
    /// Whether a person acknowledged it and the acknowledgement still holds at `now`.
    pub fn acked_at(&self, now: Timestamp) -> bool {
        self.state == AlertState::Firing
            && self
                .acked
                .as_ref()
                .is_some_and(|a| a.until.is_none_or(|u| u > now))
    }
}

/// An acknowledgement of a firing alert (`meanwhile alerts ack ID [--for 1h]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AlertAck {
    /// When it was acknowledged.
    pub at: Timestamp,
    /// When the acknowledgement runs out; none: when the alert resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// Who acknowledged it, as the audit trail names them.
    pub by: String,
}

/// What changed in an alert, as its `alert` event's `change` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertChange {
    /// It fired; the sinks are told.
    Fired,
    /// Its cause cleared; the sinks are told.
    Resolved,
    /// A person acknowledged it; the sinks are not told.
    Acked,
    /// It still fires and no acknowledgement holds: a reminder to the sinks.
    Repeated,
}

impl AlertChange {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertChange::Fired => "fired",
            AlertChange::Resolved => "resolved",
            AlertChange::Acked => "acked",
            AlertChange::Repeated => "repeated",
        }
    }

    /// Whether the sinks hear of this change.
    pub fn told(self) -> bool {
        self != AlertChange::Acked
    }
}

/// What a task does when it printed nothing for its `stall` time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum StallAction {
    /// A `stalled` alert fires; the task goes on.
    #[default]
    Alert,
    /// The alert fires and the task is stopped (SIGTERM, grace, SIGKILL).
    Stop,
}
