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
