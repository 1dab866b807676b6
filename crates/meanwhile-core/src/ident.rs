//! The words every other module of this crate uses: a task's id and kind, and the
//! timestamp of every record.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A task's short integer id, assigned by the store (`7`, not a UUID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(#[serde(deserialize_with = "crate::de::int")] pub i64);

#[cfg(feature = "schema")]
impl schemars::JsonSchema for TaskId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TaskId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A task's id: a positive integer",
            "type": "integer",
            "minimum": 1,
            "maximum": i64::MAX,
        })
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for TaskId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_start_matches('#');
        match t.parse::<i64>() {
            Ok(n) if n > 0 => Ok(TaskId(n)),
            _ => Err(format!("task ids are positive integers like 7, got {s:?}")),
        }
    }
}

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Timestamp(#[serde(deserialize_with = "crate::de::int")] pub i64);

#[cfg(feature = "schema")]
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Milliseconds since the Unix epoch, UTC",
            "type": "integer",
            "minimum": i64::MIN,
            "maximum": i64::MAX,
        })
    }
}

impl From<std::time::SystemTime> for Timestamp {
    /// The instant `t` in milliseconds; an instant before the epoch is the epoch.
    fn from(t: std::time::SystemTime) -> Timestamp {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

impl Timestamp {
    /// Milliseconds from `self` to `later`, never negative.
    pub fn millis_until(self, later: Timestamp) -> u64 {
        later.0.saturating_sub(self.0).max(0) as u64
    }

    /// `d` later, at most the end of time.
    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }

    /// Its RFC 3339 form in UTC, to the millisecond (`2026-11-27T21:00:00.000Z`); the
    /// bare number for a time out of the calendar's range.
    pub fn rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_else(|| self.0.to_string())
    }

    /// Its RFC 3339 form in UTC to the millisecond, a time outside the years RFC 3339
    /// can write (0000 to 9999) given as the nearest end of them: always valid.
    pub fn rfc3339_clamped(self) -> String {
        /// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z.
        const FIRST: i64 = -62_167_219_200_000;
        const LAST: i64 = 253_402_300_799_999;
        Timestamp(self.0.clamp(FIRST, LAST)).rfc3339()
    }

    /// A time given as RFC 3339 (`2030-01-02T03:04:05Z`, `...+02:00`, fractions of
    /// a second allowed, seconds left out allowed: `2030-01-02T03:04Z`); the error
    /// says what is wrong, and when the zone is missing.
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
        let t = s.trim();
        let err = match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(d) => return Ok(Timestamp(d.timestamp_millis())),
            Err(e) => e,
        };
        // Minutes without seconds, the zone as an offset or Z.
        let offset = match t.strip_suffix(['Z', 'z']) {
            Some(local) => format!("{local}+00:00"),
            None => t.to_string(),
        };
        if let Ok(d) = chrono::DateTime::parse_from_str(&offset, "%Y-%m-%dT%H:%M%:z") {
            return Ok(Timestamp(d.timestamp_millis()));
        }
        let zoneless = [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S%.f",
        ]
        .iter()
        .any(|f| chrono::NaiveDateTime::parse_from_str(t, f).is_ok());
        Err(if zoneless {
            format!("{err}; give a zone (Z or +02:00)")
        } else {
            err.to_string()
        })
    }
}

/// The kind of work a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// A command line or argv run as a process tree.
    Shell,
    /// A prompt run by a sub-agent.
    Agent,
    /// One model call.
    Llm,
    /// An async closure of the in-process library API.
    Function,
}

impl TaskKind {
    /// The name used on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Shell => "shell",
            TaskKind::Agent => "agent",
            TaskKind::Llm => "llm",
            TaskKind::Function => "function",
        }
    }
    /// Parses a kind name.
    pub fn parse(s: &str) -> Option<TaskKind> {
        match s {
            "shell" => Some(TaskKind::Shell),
            "agent" => Some(TaskKind::Agent),
            "llm" => Some(TaskKind::Llm),
            "function" => Some(TaskKind::Function),
            _ => None,
        }
    }
}
