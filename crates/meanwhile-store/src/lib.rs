//! The `Store` trait, meanwhile's only source of truth (one trait per topic, see
//! `topics`), and its two implementations:
//! [`SqliteStore`] on one machine (the default), and `PgStore` (feature `postgres`)
//! for a fleet of nodes sharing one PostgreSQL database. Both pass one conformance
//! suite (`tests/it`), run against each.
//!
//! Claims are lease-based (claim runnable tasks for a node until a lease expiry, renew,
//! finish), so that nodes sharing a database each hold leases on what they run.
//! Every write commits its events (and, where a task ends, its notification) in the
//! same transaction as the state change, and publishes them only after the commit.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod actor;
pub mod backup;
mod cells;
mod chain;
mod conversation;
mod decode;
pub mod fault;
mod flow;
mod health;
#[cfg(feature = "plans")]
#[doc(hidden)]
pub mod plans;
mod policy;
#[cfg(feature = "postgres")]
mod postgres;
pub mod secrets;
mod sql;
mod sqlite;
mod topics;

pub use actor::{acting, current_actor};
pub use meanwhile_core::{ListFilter, Page};
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
pub use topics::{
    AlertStore, AuditStore, BudgetStore, EventStore, LifecycleStore, NodeStore, QueueStore,
    ScheduleStore, SessionStore, Store, TaskStore, TokenStore,
};
/// Every topic trait of [`Store`], in scope without its name: with
/// `use meanwhile_store::prelude::*`, a `dyn Store` answers each topic's methods.
pub mod prelude {
    pub use crate::topics::{
        AlertStore as _, AuditStore as _, BudgetStore as _, EventStore as _, LifecycleStore as _,
        NodeStore as _, QueueStore as _, ScheduleStore as _, SessionStore as _, Store,
        TaskStore as _, TokenStore as _,
    };
}
pub use sqlite::{PAGE_SIZE, SCHEMA_VERSION, SqliteStore, count_statements, statements_written};
/// How to reach a PostgreSQL database (parsed from a URL or `key=value` pairs).
#[cfg(feature = "postgres")]
pub use tokio_postgres::Config as PgConfig;

use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{
    Alert, AlertKind, Attempt, AttemptOutcome, BudgetInfo, BudgetSpec, Event, IllegalTransition,
    Notification, Progress, QueueInfo, ScheduleInfo, ScheduleSpec, TaskId, TaskKind, TaskRecord,
    TaskState, Timestamp, ValidSpec,
};
use meanwhile_core::{AuditFilter, AuditPage, AuditVerdict, NodeBeat, NodeRow, TokenInfo};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::broadcast;

/// A boxed future returned by [`Store`] methods, so the trait stays object-safe.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No task has this id.
    #[error("unknown task {0} (see 'meanwhile ls')")]
    UnknownTask(TaskId),
    /// The task's state does not allow what was asked.
    #[error("task {id}: {source}")]
    Illegal {
        /// The task.
        id: TaskId,
        /// The refused transition.
        #[source]
        source: IllegalTransition,
    },
    /// No schedule has this name.
    #[error("unknown schedule {0:?} (see 'meanwhile schedule ls')")]
    UnknownSchedule(String),
    /// No agent session of this name keeps a conversation.
    #[error("no agent session {0:?} keeps a conversation (see 'meanwhile agent --sessions')")]
    UnknownSession(String),
    /// No budget is set on this queue.
    #[error("no budget is set on queue {0:?} (see 'meanwhile budget ls')")]
    UnknownBudget(String),
    /// No queue has this name.
    #[error("{}", meanwhile_core::unknown_queue(name, known))]
    UnknownQueue {
        /// The name asked for.
        name: String,
        /// The queues there are.
        known: Vec<String>,
    },
    /// No node has this name.
    #[error("unknown node {0:?} (see 'meanwhile nodes')")]
    UnknownNode(String),
    /// No named token has this name.
    #[error("name: no token named {0:?} (see 'meanwhile token ls')")]
    UnknownToken(String),
    /// No alert has this id.
    #[error("unknown alert {0} (see 'meanwhile alerts --all')")]
    UnknownAlert(i64),
    /// A dependency (`after`) names no task.
    #[error("after: unknown task {0} (see 'meanwhile ls')")]
    UnknownDependency(TaskId),
    /// The task's state does not allow a request that is not a transition (progress
    /// of a task that is not running, removing one that has not ended).
    #[error("{field}: {message}")]
    Conflict {
        /// The field.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// A field of the request is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The PostgreSQL database failed.
    #[cfg(feature = "postgres")]
    #[error("database error: {}", postgres::describe_error(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// Stored data did not decode; the store was written by something else.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The database belongs to a newer meanwhile.
    #[error(
        "the database has schema version {found}, newer than this meanwhile's {supported}; upgrade meanwhile"
    )]
    TooNew {
        /// Version found in the database.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// The transaction holding this write failed to commit; nothing of it was kept.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// I/O outside the database (opening the home, for instance).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether the write failed because the disk holding the database is full
    /// (SQLite's `SQLITE_FULL`, `ENOSPC`, PostgreSQL's `disk_full`).
    pub fn is_disk_full(&self) -> bool {
        const FULL: &str = "database or disk is full";
        match self {
            StoreError::Database(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            // The writer hands a failed commit on as its text.
            StoreError::CommitFailed(why) => {
                why.contains(FULL) || why.contains("No space left on device")
            }
            StoreError::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            _ => self.is_postgres_disk_full(),
        }
    }

    #[cfg(feature = "postgres")]
    fn is_postgres_disk_full(&self) -> bool {
        matches!(self, StoreError::Postgres(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL))
    }

    #[cfg(not(feature = "postgres"))]
    fn is_postgres_disk_full(&self) -> bool {
        false
    }

    /// Whether the database itself failed (as opposed to a refused request): a write
    /// that failed this way is worth logging, counting and trying again.
    pub fn is_database_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Database(_) | StoreError::CommitFailed(_) | StoreError::Io { .. }
        ) || self.is_postgres()
    }

    #[cfg(feature = "postgres")]
    fn is_postgres(&self) -> bool {
        matches!(self, StoreError::Postgres(_))
    }

    #[cfg(not(feature = "postgres"))]
    fn is_postgres(&self) -> bool {
        false
    }
}

/// A validated task to insert.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The spec.
    pub spec: ValidSpec,
    /// Submission time.
    pub now: Timestamp,
    /// The only node that may claim it (a closure lives in the process that submitted
    /// it); any node when `None`.
    pub owner: Option<String>,
}

impl NewTask {
    /// A task any node may run, submitted at `now`.
    pub fn new(spec: ValidSpec, now: Timestamp) -> NewTask {
        NewTask {
            spec,
            now,
            owner: None,
        }
    }
}

/// The result of submitting one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// A new task was created.
    Created(TaskId),
    /// The idempotency key was known: this is the task it names.
    Existing(TaskId),
}

impl Submitted {
    /// The task's id, either way.
    pub fn id(self) -> TaskId {
        match self {
            Submitted::Created(id) | Submitted::Existing(id) => id,
        }
    }
}

/// A claim of runnable tasks for one node.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// The claiming node.
    pub node: String,
    /// The current time: tasks whose run-after time is later are not runnable.
    pub now: Timestamp,
    /// The lease's expiry; the node renews it while the tasks run.
    pub lease_until: Timestamp,
    /// The kinds this node can run.
    pub kinds: Vec<TaskKind>,
    /// At most this many tasks in all.
    pub limit: u32,
    /// In a fleet: nodes with a heartbeat at or after this time share each queue's
    /// `max_parallel`, and the claiming node takes at most its share (rounded up),
    /// so that work spreads over the fleet rather than staying with the node that
    /// frees slots. `None` (one machine): no sharing.
    pub share_since: Option<Timestamp>,
}

/// What the node running a task saw it doing, for [`LifecycleStore::set_live`].
#[derive(Debug, Clone)]
pub struct LiveUpdate {
    /// The task.
    pub id: TaskId,
    /// The attempt seen; an observation of an attempt that is no longer the task's
    /// running one is dropped.
    pub attempt: u32,
    /// Everything seen now (not a change).
    pub live: meanwhile_core::LiveState,
    /// The last lines of its output, for a notice that it waits for input.
    pub tail: String,
    /// The size of its output.
    pub output_bytes: u64,
    /// When it was seen.
    pub now: Timestamp,
}

/// A task claimed for an attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The task, now `running`.
    pub task: TaskRecord,
    /// The attempt's number, from 1.
    pub attempt: u32,
}

/// What a claim got.
#[derive(Debug, Clone, Default)]
pub struct Claim {
    /// The tasks claimed, now `running`.
    pub tasks: Vec<Claimed>,
    /// When to look again without being asked: the earliest future run-after time of
    /// a task still pending, or, when a queue's rate limit held a runnable task back,
    /// the time its window lets the next one start, whichever comes first.
    pub next_wakeup: Option<Timestamp>,
}

/// How an attempt ended, as the supervisor saw it.
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    /// The task.
    pub id: TaskId,
    /// The attempt that ended; a stale attempt number is ignored.
    pub attempt: u32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// When it ended.
    pub ended_at: Timestamp,
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Signal, when one ended it.
    pub signal: Option<i32>,
    /// Why, in words, when there is more to say.
    pub reason: Option<String>,
    /// Peak RSS of the main process, KiB.
    pub peak_rss_kb: Option<u64>,
    /// CPU time, ms.
    pub cpu_ms: Option<u64>,
    /// The main process's pid, recorded with the end when it was not recorded while
    /// the attempt ran (a short task's pid costs no write of its own); `None`
    /// leaves the attempt's pid as it is.
    pub pid: Option<i32>,
    /// When to start the next attempt if the policy retries.
    pub retry_at: Timestamp,
    /// The last lines of output, for the notification.
    pub tail: String,
    /// Total output bytes, for the notification.
    pub output_bytes: u64,
    /// The final answer (agent) or returned value (function), if any.
    pub result: Option<String>,
    /// The node that ran it, on a shared store: the end is recorded only while that
    /// node holds the task, since another node may have taken the attempt over as
    /// the same attempt ([`LifecycleStore::take_over`]). `None` records it whichever node
    /// holds the task; [`LifecycleStore::rescue`], whose caller ends another node's attempt,
    /// checks the lease instead.
    pub node: Option<String>,
}

/// An attempt that another node takes over as it is ([`LifecycleStore::take_over`]): the
/// same attempt, to be resumed there, not ended.
#[derive(Debug, Clone)]
pub struct TakeOver {
    /// The task.
    pub id: TaskId,
    /// The attempt its node let go of.
    pub attempt: u32,
    /// The node that takes it over.
    pub node: String,
    /// The time now: the attempt's lease must have ended before it.
    pub now: Timestamp,
    /// The lease the taking node holds it on.
    pub lease_until: Timestamp,
}

/// What finishing an attempt did.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The task after the change.
    pub task: TaskRecord,
    /// Dependents that failed because this task did not succeed.
    pub cascaded: Vec<TaskRecord>,
}

/// What one [`LifecycleStore::settle_and_claim`] did: each end's own result, in order, and the
/// claim's.
#[derive(Debug)]
pub struct Settled {
    /// One result per end: `None` when the attempt was no longer current.
    pub finished: Vec<Result<Option<Finished>, StoreError>>,
    /// The claim, when one was asked for.
    pub claim: Option<Result<Claim, StoreError>>,
}

/// What [`LifecycleStore::submit_and_claim`] did: the submits, then the claim.
#[derive(Debug)]
pub struct SubmittedAndClaimed {
    /// One result per task submitted, in order.
    pub submitted: Vec<Result<Submitted, StoreError>>,
    /// The claim, when one was asked for.
    pub claim: Option<Result<Claim, StoreError>>,
}

/// A firing of a schedule to record: the schedule moves on and, when there is one,
/// its task is submitted, in one transaction.
#[derive(Debug, Clone)]
pub struct ScheduleFiring {
    /// The schedule.
    pub name: String,
    /// The due time the firing was planned from: the firing is recorded only while
    /// the schedule is still due then and not paused, so a time fires once however
    /// many runtimes look. `None` for a firing by hand, which does not move the
    /// schedule.
    pub due: Option<Timestamp>,
    /// The firing time the task is for.
    pub fire: Option<Timestamp>,
    /// The task to submit (its idempotency key names the schedule and time).
    pub task: Option<NewTask>,
    /// Firing times that got no task.
    pub missed: u64,
    /// Whether the firing came late (the runtime was not running on time).
    pub late: bool,
    /// The schedule's next due time.
    pub next: Option<Timestamp>,
}

/// An alert to fire.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// What it is about.
    pub kind: AlertKind,
    /// Its cause (`task:7`, `queue:llm`): at most one alert of a kind fires per cause.
    pub subject: String,
    /// What happened, for people.
    pub message: String,
    /// The task it is about.
    pub task: Option<TaskId>,
    /// The queue it is about.
    pub queue: Option<String>,
}

/// An `alert` event's data: the alert as it is now, and what changed.
pub(crate) fn alert_event(a: &Alert, change: meanwhile_core::AlertChange) -> serde_json::Value {
    let mut data = serde_json::to_value(a).unwrap_or_default();
    if let Some(o) = data.as_object_mut() {
        o.insert("change".into(), change.as_str().into());
    }
    data
}

/// Why alert `id` cannot be acknowledged: there is none, or it resolved.
pub(crate) fn not_ackable(id: i64, found: Option<Alert>) -> StoreError {
    match found {
        None => StoreError::UnknownAlert(id),
        Some(a) => StoreError::Conflict {
            field: "id",
            message: format!(
                "alert {id} resolved at {}; only a firing alert can be acknowledged \
                 (see 'meanwhile alerts')",
                meanwhile_core::rfc3339_secs(a.at)
            ),
        },
    }
}

/// What charging a model call's usage did.
#[derive(Debug, Clone)]
pub struct Charged {
    /// The queue of the task charged.
    pub queue: String,
    /// Its budget after the charge, when it has one.
    pub budget: Option<BudgetInfo>,
}

/// What recording a firing did.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The schedule after it.
    pub schedule: ScheduleInfo,
    /// The task submitted (or the one its key already named).
    pub task: Option<Submitted>,
}

/// What a stop request did.
#[derive(Debug, Clone)]
pub enum StopOutcome {
    /// The task had not started; it is now cancelled (with its failed dependents).
    Cancelled(Finished),
    /// The task is running; its node must stop it. The flag is recorded.
    Stopping(TaskRecord),
}

/// Retention: which finished tasks to remove.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanRequest {
    /// Remove tasks that finished before this time.
    pub finished_before: Option<Timestamp>,
    /// Keep at most this many finished tasks (the newest).
    pub keep_last: Option<u64>,
}

/// A step for [`LifecycleStore::record_step`].
#[derive(Debug, Clone)]
pub struct NewStep {
    /// The task.
    pub id: TaskId,
    /// Its running attempt, which alone records steps.
    pub attempt: u32,
    /// What the step is (`model`, `tool_start`, ...): lowercase letters, digits, `_`.
    pub kind: String,
    /// The step, as JSON text.
    pub data: String,
    /// A model call's usage (tokens, cost in US dollars) to charge to the task and
    /// its queue's budget in the same write, as [`BudgetStore::charge_usage`] does.
    pub usage: Option<(u64, f64)>,
    /// When.
    pub now: Timestamp,
    /// The node recording it, on a shared store: refused unless that node holds
    /// the task, since another node may have taken the attempt over
    /// ([`LifecycleStore::take_over`]). `None` records it whichever node holds the task.
    pub node: Option<String>,
}

/// An agent session to open, for [`SessionStore::open_agent_session`].
#[derive(Debug, Clone)]
pub struct OpenAgentSession {
    /// Its name.
    pub name: String,
    /// Replace the conversation it has with a new one.
    pub fresh: bool,
    /// The agent's workspace, recorded when a conversation begins.
    pub workspace: String,
    /// Who opens it.
    pub holder: String,
    /// When.
    pub now: Timestamp,
}

/// A step of an agent session, for [`SessionStore::record_session_step`].
#[derive(Debug, Clone)]
pub struct NewAgentSessionStep {
    /// The session.
    pub name: String,
    /// The holder its open answered.
    pub holder: String,
    /// The steps the recorder knows of; the step becomes number `after + 1`.
    pub after: u32,
    /// What the step is: lowercase letters, digits, `_`.
    pub kind: String,
    /// The step, as JSON text.
    pub data: String,
    /// When.
    pub now: Timestamp,
}

/// Retention of the event log and of what removed tasks left behind. Each call
/// works through a bounded slice, so that it never holds the database for long.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneRequest {
    /// Remove events recorded before this time.
    pub events_before: Option<Timestamp>,
    /// Keep at most this many events (the newest).
    pub events_keep_last: Option<u64>,
    /// Where this call's sweep for the events, notifications and sessions of removed
    /// tasks starts: 0 at first, then the `next` of the previous call.
    pub from_seq: i64,
    /// Remove the conversations of agent sessions idle since before this time
    /// (a bounded number per call).
    pub agent_sessions_before: Option<Timestamp>,
    /// Remove alerts resolved before this time (a bounded number per call); firing
    /// ones stay.
    pub alerts_resolved_before: Option<Timestamp>,
}

/// What one [`Store::prune`] call removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events removed (by age, by count, or because their task is gone).
    pub events: u64,
    /// Notifications of removed tasks.
    pub notifications: u64,
    /// Sessions with no notification left, whose read cursor meant nothing anymore.
    pub sessions: u64,
    /// Agent sessions' conversations removed as idle.
    pub agent_sessions: u64,
    /// Resolved alerts removed.
    pub alerts: u64,
    /// Where the next call continues the sweep; `None` when this call reached the end.
    pub next: Option<i64>,
}

/// The key that signs the audit trail's checkpoints (HMAC-SHA256). It is kept out
/// of the database, so that whoever can edit the database cannot forge a checkpoint.
#[derive(Clone)]
pub struct AuditKey(Vec<u8>);

impl AuditKey {
    /// A key of these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> AuditKey {
        AuditKey(bytes.into())
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

/// A named API token as stored: its SHA-256 hash (hex), never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// Its name.
    pub name: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// When it was added.
    pub created_at: Timestamp,
}
