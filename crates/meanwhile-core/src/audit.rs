//! The audit trail's vocabulary: who did something ([`Actor`]), one record of the
//! hash-chained trail ([`AuditRecord`]), what a verification found
//! ([`AuditVerdict`]), and the named API tokens ([`TokenInfo`]).

use crate::{ApiError, TaskId, Timestamp};
use serde::{Deserialize, Serialize};

/// The name the daemon itself goes by in the audit trail.
pub const SELF_ACTOR: &str = "meanwhile";
/// The name of the token kept in the home's token file.
pub const DEFAULT_TOKEN: &str = "default";
/// Longest token name.
pub const MAX_TOKEN_NAME_LEN: usize = 64;
/// What a token name may be: letters, digits, `_`, `.` and `-`.
pub const TOKEN_NAME_PATTERN: &str = "^[A-Za-z0-9_.-]{1,64}$";
/// Most audit records in one page.
pub const MAX_AUDIT_LIMIT: u32 = 1000;

/// Who made a change, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// meanwhile itself: an attempt ended, a retry was scheduled, a schedule fired,
    /// retention removed something; also an in-process library call, which has no
    /// other caller to name.
    Meanwhile,
    /// The daemon's settings, applied at start (the queues of config.toml).
    Config {
        /// Where the settings came from (`config.toml`, an environment variable).
        source: String,
    },
    /// A peer of the daemon's Unix socket, as the kernel names it (`SO_PEERCRED`).
    Socket {
        /// The peer's user id.
        uid: u32,
        /// The peer's process id, when the kernel gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
        /// The peer's process name (`/proc/<pid>/comm`), when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// The session it spoke for (MCP, agent), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// The running task whose process tree the peer belongs to, when it does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<TaskId>,
    },
    /// A client of the TCP listener, by the name of the bearer token it used.
    Token {
        /// The token's name (`default` for the token file's).
        name: String,
        /// The session it spoke for (MCP, agent), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
    },
}

impl Actor {
    /// The same actor speaking for `session` (MCP and agent requests).
    pub fn with_session(self, session: Option<String>) -> Actor {
        match self {
            Actor::Socket {
                uid,
                pid,
                process,
                task,
                ..
            } => Actor::Socket {
                uid,
                pid,
                process,
                session,
                task,
            },
            Actor::Token { name, .. } => Actor::Token { name, session },
            other => other,
        }
    }

    /// The actor in a few words: `meanwhile`, `uid 1000 (meanwhile)`,
    /// `task 7 (uid 1000)`, `token ci session s1`, `config (config.toml)`.
    pub fn who(&self) -> String {
        let (mut s, session) = match self {
            Actor::Meanwhile => (SELF_ACTOR.to_string(), None),
            Actor::Config { source } => (format!("config ({source})"), None),
            Actor::Socket {
                uid,
                process,
                session,
                task,
                ..
            } => (
                match (task, process) {
                    (Some(t), _) => format!("task {t} (uid {uid})"),
                    (None, Some(p)) => format!("uid {uid} ({p})"),
                    (None, None) => format!("uid {uid}"),
                },
                session.as_deref(),
            ),
            Actor::Token { name, session } => (format!("token {name}"), session.as_deref()),
        };
        if let Some(sess) = session {
            s.push_str(" session ");
            s.push_str(sess);
        }
        s
    }
}

/// One record of the audit trail. Records are appended in the transaction of the
/// change they record and never changed; each carries the hash of the one before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditRecord {
    /// Position in the trail, increasing from 1.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = i64::MAX)))]
    pub seq: i64,
    /// When the change was committed.
    pub at: Timestamp,
    /// Who made it.
    pub actor: Actor,
    /// [`Actor::who`], for people.
    pub who: String,
    /// What was done: `submitted`, `started`, `attempt_ended`, `finished`,
    /// `stop_requested`, `retried`, `released`, `removed`, `queue_set`,
    /// `schedule_*`, `alert_firing`, `alert_acked`, `alert_resolved`, `budget_set`,
    /// `budget_removed`, `budget_rolled`, `token_added`, `token_removed`.
    pub action: String,
    /// What it was done to: `task 7`, `queue gpu`, `schedule nightly`, `budget llm`,
    /// `token ci`.
    pub subject: String,
    /// The task, when the subject is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// The change in a line.
    pub summary: String,
    /// The hash of the previous record (or of the checkpoint it follows), hex.
    pub prev_hash: String,
    /// SHA-256 of `prev_hash` and this record's content, hex.
    pub hash: String,
}

/// A page of audit records, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditPage {
    /// The records.
    pub records: Vec<AuditRecord>,
    /// The `cursor` of the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<i64>,
}

/// Which audit records to list, oldest first (or newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only records committed at or after this time.
    pub since: Option<Timestamp>,
    /// Only records about this task.
    pub task: Option<TaskId>,
    /// Where the page starts (the `next` of the previous page): only records after
    /// this sequence number, or before it when `newest_first`.
    pub after: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
    /// The newest record first, paging back in time.
    pub newest_first: bool,
}

/// Query parameters of `GET /v1/audit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only records committed at or after this time, milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = i64::MIN, max = i64::MAX)))]
    pub since: Option<i64>,
    /// Only records about this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = i64::MAX)))]
    pub task: Option<i64>,
    /// Where the page starts, the `next` of the previous page: only records after
    /// this sequence number (before it with `order=newest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = i64::MAX)))]
    pub cursor: Option<i64>,
    /// At most this many (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = MAX_AUDIT_LIMIT)))]
    pub limit: Option<u32>,
    /// `oldest` first (the default) or `newest` first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<AuditOrder>,
}

/// Which end of the audit trail a listing starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditOrder {
    /// The oldest record first, paging forward.
    Oldest,
    /// The newest record first, paging back.
    Newest,
}

impl AuditParams {
    /// The filter these parameters ask for, checked against its bounds.
    pub fn into_filter(self) -> Result<AuditFilter, ApiError> {
        if let Some(l) = self.limit
            && !(1..=MAX_AUDIT_LIMIT).contains(&l)
        {
            return Err(ApiError::invalid(
                "limit",
                format!("must be from 1 to {MAX_AUDIT_LIMIT}, got {l}"),
            ));
        }
        if let Some(t) = self.task
            && t < 1
        {
            return Err(ApiError::invalid(
                "task",
                format!("task ids are positive integers like 7, got {t}"),
            ));
        }
        if let Some(c) = self.cursor
            && c < 0
        {
            return Err(ApiError::invalid(
                "cursor",
                format!("give the `next` of the previous page (0 or more), got {c}"),
            ));
        }
        Ok(AuditFilter {
            since: self.since.map(Timestamp),
            task: self.task.map(TaskId),
            after: self.cursor,
            limit: self.limit,
            newest_first: self.order == Some(AuditOrder::Newest),
        })
    }

    /// The parameters that ask for `f`.
    pub fn from_filter(f: &AuditFilter) -> AuditParams {
        AuditParams {
            since: f.since.map(|t| t.0),
            task: f.task.map(|t| t.0),
            cursor: f.after,
            limit: f.limit,
            order: f.newest_first.then_some(AuditOrder::Newest),
        }
    }
}

/// The signed checkpoint that retention leaves where it pruned the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditCheckpoint {
    /// The sequence number of the last pruned record.
    pub seq: i64,
    /// That record's hash, which the first record kept names as its `prev_hash`.
    pub hash: String,
    /// When the checkpoint was written.
    pub at: Timestamp,
}

/// What `meanwhile audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditVerdict {
    /// True when every record and the checkpoint are as they were written.
    pub intact: bool,
    /// Records checked.
    pub records: u64,
    /// The checkpoint verification started from, when retention left one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<AuditCheckpoint>,
    /// The sequence number of the last record checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<i64>,
    /// The first record found changed, or where the chain breaks because records
    /// were removed (the first record after the gap); absent when intact or when
    /// the checkpoint itself is forged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<i64>,
    /// What is wrong, in words; absent when intact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A named API token, as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TokenInfo {
    /// Its name, recorded as the actor of the requests made with it.
    pub name: String,
    /// When it was created (for `default`, when the token file was last written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
}

/// The body of `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// The new token's name: 1 to 64 letters, digits, `_`, `.` or `-`.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = TOKEN_NAME_PATTERN)))]
    pub name: String,
}

/// The answer to `POST /v1/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NewToken {
    /// Its name.
    pub name: String,
    /// The bearer token; meanwhile keeps only its hash.
    pub token: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Checks a token name: 1 to 64 letters, digits, `_`, `.` or `-`.
pub fn check_token_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TOKEN_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "name",
            format!(
                "a token name is 1 to {MAX_TOKEN_NAME_LEN} letters, digits, '_', '.' or '-', got {name:?}"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_reads_as_a_person_would_say_it() {
        for (actor, expect) in [
            (Actor::Meanwhile, "meanwhile"),
            (
                Actor::Config {
                    source: "config.toml".into(),
                },
                "config (config.toml)",
            ),
            (
                Actor::Socket {
                    uid: 1000,
                    pid: Some(7),
                    process: Some("meanwhile".into()),
                    session: None,
                    task: None,
                },
                "uid 1000 (meanwhile)",
            ),
            (
                Actor::Socket {
                    uid: 1000,
                    pid: Some(8),
                    process: Some("curl".into()),
                    session: None,
                    task: Some(TaskId(7)),
                },
                "task 7 (uid 1000)",
            ),
            (
                Actor::Token {
                    name: "ci".into(),
                    session: Some("s1".into()),
                },
                "token ci session s1",
            ),
        ] {
            assert_eq!(actor.who(), expect);
            let back: Actor =
                serde_json::from_str(&serde_json::to_string(&actor).unwrap()).unwrap();
            assert_eq!(back, actor);
        }
    }

    #[test]
    fn token_names_are_checked() {
        for good in ["ci", "a.b-c_d", &"x".repeat(64)] {
            assert!(check_token_name(good).is_ok(), "{good}");
        }
        for bad in ["", "with space", "é", &"x".repeat(65), "a/b"] {
            let e = check_token_name(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("name"), "{bad}");
        }
    }

    #[test]
    fn audit_params_are_bounded() {
        for (p, field) in [
            (
                AuditParams {
                    limit: Some(0),
                    ..Default::default()
                },
                "limit",
            ),
            (
                AuditParams {
                    limit: Some(MAX_AUDIT_LIMIT + 1),
                    ..Default::default()
                },
                "limit",
            ),
            (
                AuditParams {
                    task: Some(0),
                    ..Default::default()
                },
                "task",
            ),
            (
                AuditParams {
                    cursor: Some(-1),
                    ..Default::default()
                },
                "cursor",
            ),
        ] {
            assert_eq!(p.into_filter().unwrap_err().field.as_deref(), Some(field));
        }
        let f = AuditFilter {
            since: Some(Timestamp(5)),
            task: Some(TaskId(3)),
            after: Some(9),
            limit: Some(10),
            newest_first: true,
        };
        assert_eq!(AuditParams::from_filter(&f).into_filter().unwrap(), f);
    }
}
