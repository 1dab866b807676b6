//! meanwhile's engine, usable in-process: `Runtime::open(home)`.
//!
//! The dispatcher claims runnable tasks from the store when something wakes it (a
//! submit, an end, a timer), recording the ends of attempts and claiming the slots
//! they free in one commit. Each attempt runs as a process tree under a supervisor
//! process of its own (or as an in-process future); its output goes straight to
//! `tasks/<id>/output.log`; its timeout and stops are enforced; its end is committed
//! together with the session's notification. A runtime opened on a home that a dead
//! process left behind finds the tasks it was running and records their true end.
//!
//! The runtime never forks: it runs its own executable again as the process spawner,
//! which a constructor of this crate recognises before `main`, so a program that
//! embeds the runtime needs no second binary.
#![warn(missing_docs)]

mod alerts;
mod attempt;
mod budgets;
mod clock;
mod config;
mod context;
mod dispatch;
mod engine;
mod fleet;
mod functions;
mod home;
mod hooks;
mod input;
mod interact;
mod journal;
mod live;
mod logwrite;
mod loops;
mod metrics;
mod nodes;
mod output;
mod pool;
mod procfs;
mod recover;
mod runtime;
mod sandbox;
mod schedules;
mod sealed;
mod spawn;
mod spawner;
mod stop;
mod supervisor;
mod sys;
mod timed;

/// How the supervisors of attempts recorded their ends, for tools that measure them.
pub mod status {
    pub use crate::journal::{ExitStatus, Journal};
    pub use crate::sandbox::Exceeded;
}
mod watch;
mod wire;

pub use clock::{Clock, Looker};
pub use config::{
    AlertSink, DEFAULT_MAX_OUTPUT, EndHook, RemoteError, RemoteOutput, RuntimeConfig, ShutdownMode,
    TaskEnd,
};
pub use home::Home;
pub use loops::{FAILING_AFTER, Loops, supervise};
pub use meanwhile_core as core;
pub use meanwhile_core::{
    ApiError, Backend, ErrorCode, Executor, ListFilter, OutputChunk, OutputQuery, Page, StopMode,
    TaskContext, TaskFuture, WaitFor, WaitMode, WaitOutcome,
};
pub use meanwhile_store as store;
/// Fault points for tests (empty without the store's `faults` feature), for the loops
/// of the program around the runtime too.
pub use meanwhile_store::fault;
pub use metrics::RuntimeMetrics;
pub use output::DEFAULT_PAGE_BYTES;
pub use runtime::sessions::MAX_SESSIONS_LISTED;
pub use runtime::{Acting, Runtime};

use meanwhile_core::{SpecError, TaskId, Timestamp};
use meanwhile_store::StoreError;

/// What can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A submitted spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A request field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A request that does not apply to the task it names (a terminal's key to a
    /// pipe): a sentence about that task, with the field it concerns apart.
    #[error("{message}")]
    NotApplicable {
        /// The field.
        field: &'static str,
        /// What is wrong, naming the task, and what to do.
        message: String,
    },
    /// Another runtime holds the home.
    #[error(
        "another meanwhile runtime is using {home}; stop it, or set MEANWHILE_HOME to another directory"
    )]
    Locked {
        /// The home.
        home: String,
    },
    /// I/O on the home failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime has shut down.
    #[error("the runtime has shut down")]
    ShutDown,
    /// The fleet's database could not be opened.
    #[error("the database {url} cannot be used: {message}")]
    Database {
        /// Its URL, without the password.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The idempotency key names a task submitted with another spec.
    #[error(
        "idempotency key {key:?} belongs to task {existing}, submitted with another spec; resend that spec to get task {existing}, or use a new key"
    )]
    IdempotencyConflict {
        /// The key.
        key: String,
        /// The task it names.
        existing: TaskId,
    },
    /// An agent or llm task, and no LLM provider to run it.
    #[error(
        "this meanwhile has no LLM provider configured for {kind} tasks; set ANTHROPIC_API_KEY or OPENAI_API_KEY (or the [agent] section of config.toml) where it runs, then restart it"
    )]
    NoProvider {
        /// `agent` or `llm`.
        kind: &'static str,
    },
    /// A request from inside a task that its confinement does not allow.
    #[error("{0}")]
    Confined(String),
    /// The disk holding the home is full: nothing of the request was kept.
    #[error(
        "the disk holding {} is full: {source}; free space there and try again (nothing of this request was kept)",
        home.display()
    )]
    DiskFull {
        /// The home.
        home: std::path::PathBuf,
        /// The store's error.
        source: StoreError,
    },
    /// The node keeping a task's output refused the read, for this reason.
    #[error("{}", .0.message)]
    Remote(meanwhile_core::ApiError),
    /// A task's output is kept by another node, which could not be asked for it.
    #[error(
        "{what} task {task} is on node {node:?}, which {why}; it can be reached there once that node is back"
    )]
    Elsewhere {
        /// What was asked for: `the output of`, `the input of`.
        what: &'static str,
        /// The task.
        task: TaskId,
        /// The node that ran its last attempt.
        node: String,
        /// Why it could not be read (`is gone (last heartbeat ...)`, `does not
        /// answer at http://...: ...`).
        why: String,
    },
}

impl Error {
    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::Spec(e) => Some(e.field),
            Error::Invalid { field, .. } | Error::NotApplicable { field, .. } => Some(field),
            Error::Store(
                StoreError::Invalid { field, .. } | StoreError::Conflict { field, .. },
            ) => Some(field),
            Error::Store(StoreError::UnknownDependency(_)) => Some("after"),
            Error::Store(StoreError::UnknownAlert(_)) => Some("id"),
            Error::Store(StoreError::UnknownToken(_) | StoreError::UnknownQueue { .. }) => {
                Some("name")
            }
            Error::IdempotencyConflict { .. } => Some("idempotency_key"),
            Error::NoProvider { kind } => Some(kind),
            _ => None,
        }
    }

    /// True when the error is the caller's: bad input, an unknown task, an illegal
    /// transition. False for failures of meanwhile or the machine.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            Error::Spec(_)
                | Error::Invalid { .. }
                | Error::NotApplicable { .. }
                | Error::Confined(_)
                | Error::IdempotencyConflict { .. }
                | Error::NoProvider { .. }
                | Error::Store(
                    StoreError::Invalid { .. }
                        | StoreError::Conflict { .. }
                        | StoreError::UnknownDependency(_)
                        | StoreError::UnknownTask(_)
                        | StoreError::UnknownSchedule(_)
                        | StoreError::UnknownSession(_)
                        | StoreError::UnknownBudget(_)
                        | StoreError::UnknownQueue { .. }
                        | StoreError::UnknownNode(_)
                        | StoreError::UnknownToken(_)
                        | StoreError::UnknownAlert(_)
                        | StoreError::Illegal { .. }
                )
        )
    }

    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// A result with the runtime's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The system's time now. A runtime reads its own [`Clock`], which tests may move.
pub fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}
