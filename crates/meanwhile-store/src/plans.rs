//! The store's list, filter and claim queries as it runs them, each with sample
//! parameters, so that a test can ask the database which indexes they use
//! (`tests/it/plans.rs`). Each store lists its own (`SqliteStore::planned_queries`,
//! `PgStore::planned_queries`) from the very text and builders its code runs, so
//! the test cannot drift from the code. Built only with the feature `plans`, which
//! only the tests turn on.

use meanwhile_core::{ListFilter, TaskId, TaskKind, TaskState, Timestamp};

/// A query the store runs, with sample values for its parameters.
#[derive(Debug, Clone)]
pub struct PlannedQuery {
    /// What it is for, the same in both stores (`claim: pick`).
    pub name: &'static str,
    /// Its SQL, exactly as the store runs it.
    pub sql: String,
    /// A value for each of its parameters, in order.
    pub params: Vec<Param>,
}

impl PlannedQuery {
    pub(crate) fn new(name: &'static str, sql: String, params: Vec<Param>) -> Self {
        PlannedQuery { name, sql, params }
    }
}

/// A sample value of a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// SQL NULL.
    Null,
    /// An integer (ids, times in milliseconds, limits).
    Int(i64),
    /// A text.
    Text(String),
    /// An array of texts (PostgreSQL's `ANY($1::TEXT[])`).
    Texts(Vec<String>),
}

/// A time for the samples (2025-06-15).
pub(crate) const NOW: Timestamp = Timestamp(1_750_000_000_000);

/// The node the samples claim and renew for.
pub(crate) const NODE: &str = "node-a";

/// The kinds the sample claim takes.
pub(crate) const KINDS: &[TaskKind] = &[TaskKind::Shell, TaskKind::Llm];

/// The filters of a listing the samples cover: each alone, and the one pair
/// (`--queue` with `--state`) that a person combines most.
pub(crate) fn list_filters() -> Vec<(&'static str, ListFilter)> {
    let f = ListFilter::default;
    vec![
        ("list", f()),
        (
            "list by state",
            ListFilter {
                states: vec![TaskState::Failed],
                ..f()
            },
        ),
        (
            "list by states",
            ListFilter {
                states: vec![TaskState::Failed, TaskState::TimedOut],
                ..f()
            },
        ),
        (
            "list by queue",
            ListFilter {
                queue: Some("build".into()),
                ..f()
            },
        ),
        (
            "list by queue and state",
            ListFilter {
                queue: Some("build".into()),
                states: vec![TaskState::Pending],
                ..f()
            },
        ),
        (
            "list by session",
            ListFilter {
                session: Some("s1".into()),
                ..f()
            },
        ),
        (
            "list by name",
            ListFilter {
                name: Some("deploy".into()),
                ..f()
            },
        ),
        (
            "list by text",
            ListFilter {
                text: Some("deploy".into()),
                ..f()
            },
        ),
        (
            "list by label",
            ListFilter {
                label: Some("ci".into()),
                ..f()
            },
        ),
        (
            "list, next page",
            ListFilter {
                before: Some(TaskId(1_000)),
                ..f()
            },
        ),
    ]
}

/// The planned queries whose SQL both stores name alike, with their sample
/// parameters: each store's `plans.rs` expands it where `ops`, `retention` and
/// `audit` are its own modules, so each entry is that store's own statement.
macro_rules! shared_queries {
    () => {{
        use $crate::plans::{NODE, NOW, Param, PlannedQuery};
        let q = PlannedQuery::new;
        let t = |s: &str| Param::Text(s.to_string());
        let i = Param::Int;
        let window = NOW.0 - 60_000;
        vec![
            q(
                "submit: task of a key",
                ops::TASK_WITH_KEY.into(),
                vec![t("k")],
            ),
            q(
                "end: pending dependents",
                ops::PENDING_DEPENDENTS.into(),
                vec![i(7)],
            ),
            q("clean: by age", ops::FINISHED_BEFORE.into(), vec![i(NOW.0)]),
            q(
                "clean: by count",
                ops::FINISHED_BEYOND.into(),
                vec![i(1_000)],
            ),
            q(
                "claim: unpaused queues",
                ops::UNPAUSED_QUEUES.into(),
                vec![],
            ),
            q(
                "claim: running per queue",
                ops::RUNNING_PER_QUEUE.into(),
                vec![],
            ),
            q(
                "claim: running per key",
                ops::RUNNING_PER_KEY.into(),
                vec![t("build")],
            ),
            q(
                "claim: forget starts",
                ops::FORGET_STARTS.into(),
                vec![t("build"), i(window)],
            ),
            q(
                "claim: starts counted",
                ops::STARTS_COUNTED.into(),
                vec![t("build")],
            ),
            q("claim: starts", ops::STARTS.into(), vec![t("build")]),
            q("next wakeup", ops::NEXT_WAKEUP.into(), vec![i(NOW.0)]),
            q("renew", ops::RENEW.into(), vec![t(NODE), i(NOW.0)]),
            q("steps of an attempt", ops::STEPS.into(), vec![i(7), i(1)]),
            q(
                "steps of a session",
                ops::SESSION_STEPS.into(),
                vec![t("shop")],
            ),
            q("agent sessions", ops::AGENT_SESSIONS.into(), vec![i(100)]),
            q(
                "idle agent sessions",
                ops::IDLE_AGENT_SESSIONS.into(),
                vec![i(NOW.0), i(50)],
            ),
            q(
                "running of a node",
                ops::running_sql(),
                vec![t(NODE), Param::Null],
            ),
            q(
                "running, lease expired",
                ops::running_sql(),
                vec![Param::Null, i(NOW.0)],
            ),
            q(
                "last ends of a queue",
                ops::LAST_ENDS.into(),
                vec![t("default"), i(3)],
            ),
            q("nodes", ops::NODES.into(), vec![]),
            q("queues", ops::QUEUES.into(), vec![]),
            q("counts", ops::COUNTS.into(), vec![]),
            q("budgets", ops::budgets_sql(), vec![]),
            q("schedules", ops::schedules_sql(), vec![]),
            q("alerts", ops::alerts_sql(true), vec![i(100)]),
            q("alerts: firing", ops::alerts_sql(false), vec![i(100)]),
            q(
                "alerts: budget alarms",
                ops::FIRING_ALARMS.into(),
                vec![t("llm")],
            ),
            q(
                "events after",
                ops::EVENTS_AFTER.into(),
                vec![i(100), i(1_000)],
            ),
            q(
                "notifications after",
                ops::NOTIFICATIONS_AFTER.into(),
                vec![t("s1"), i(100), i(100)],
            ),
            q(
                "notifications pending",
                ops::NOTIFICATIONS_PENDING.into(),
                vec![],
            ),
            q("tokens", audit::TOKENS.into(), vec![]),
            q(
                "prune: events of removed",
                retention::EVENTS_OF_REMOVED.into(),
                vec![i(0), i(10_000)],
            ),
            q(
                "prune: notices of removed",
                retention::NOTIFICATIONS_OF_REMOVED.into(),
                vec![i(0), i(10_000)],
            ),
            q(
                "prune: sessions",
                retention::SESSIONS_WITHOUT_NOTICES.into(),
                vec![],
            ),
            q(
                "prune: resolved alerts",
                retention::RESOLVED_ALERTS.into(),
                vec![i(NOW.0), i(2_000)],
            ),
        ]
    }};
}
pub(crate) use shared_queries;
