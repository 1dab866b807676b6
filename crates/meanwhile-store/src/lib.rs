//! The `Store` trait, meanwhile's only source of truth, and its two implementations:
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
mod chain;
mod conversation;
mod decode;
pub mod fault;
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

pub use actor::{acting, current_actor};
pub use meanwhile_core::{ListFilter, Page};
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
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

/// What the node running a task saw it doing, for [`Store::set_live`].
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
    /// the same attempt ([`Store::take_over`]). `None` records it whichever node
    /// holds the task; [`Store::rescue`], whose caller ends another node's attempt,
    /// checks the lease instead.
    pub node: Option<String>,
}

/// An attempt that another node takes over as it is ([`Store::take_over`]): the
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

/// What one [`Store::settle_and_claim`] did: each end's own result, in order, and the
/// claim's.
#[derive(Debug)]
pub struct Settled {
    /// One result per end: `None` when the attempt was no longer current.
    pub finished: Vec<Result<Option<Finished>, StoreError>>,
    /// The claim, when one was asked for.
    pub claim: Option<Result<Claim, StoreError>>,
}

/// What [`Store::submit_and_claim`] did: the submits, then the claim.
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

/// A step for [`Store::record_step`].
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
    /// its queue's budget in the same write, as [`Store::charge_usage`] does.
    pub usage: Option<(u64, f64)>,
    /// When.
    pub now: Timestamp,
    /// The node recording it, on a shared store: refused unless that node holds
    /// the task, since another node may have taken the attempt over
    /// ([`Store::take_over`]). `None` records it whichever node holds the task.
    pub node: Option<String>,
}

/// An agent session to open, for [`Store::open_agent_session`].
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

/// A step of an agent session, for [`Store::record_session_step`].
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

/// The durable store behind a runtime: SQLite for one machine, PostgreSQL for a fleet.
///
/// Every method that changes state does it through [`meanwhile_core::transition`] in
/// one transaction with its events, and publishes the events after the commit.
pub trait Store: Send + Sync + 'static {
    /// True when other nodes share this store (PostgreSQL): running tasks may be
    /// other nodes', and events come from them too. False for one machine's SQLite.
    fn is_shared(&self) -> bool {
        false
    }
    /// Makes the store's own files as small as they can be without losing anything
    /// (SQLite: the WAL checkpointed into the database and truncated), as at a clean
    /// stop; the store stays usable. Nothing to do on PostgreSQL.
    fn checkpoint(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    /// Completes, with the reason, once the store can no longer write at all (SQLite:
    /// its writer thread ended), so that the process can end loudly and be restarted
    /// instead of refusing every write. Never completes while the store can write.
    fn broken(&self) -> StoreFuture<'static, String> {
        Box::pin(std::future::pending())
    }
    /// What the store's own background work (SQLite: the checkpointer; PostgreSQL:
    /// the stamps, as `sequencer`, and the `event_follower`) did wrong since it
    /// opened, for health checks and `/metrics`, beside the runtime's loops.
    fn background(&self) -> Vec<meanwhile_core::http::LoopHealth> {
        Vec::new()
    }
    /// Seals the secrets an earlier version stored in clear: each `secrets` value of
    /// every stored spec (tasks and schedules) goes through `seal`, which answers the
    /// sealed value, or `None` for one already sealed. Done once per database, which
    /// remembers it; the clear values' old bytes are overwritten where the store can
    /// (SQLite: `secure_delete` for the rewrite). Answers how many specs changed.
    fn seal_clear_secrets(&self, seal: secrets::Seal) -> StoreFuture<'_, u64>;
    /// Inserts tasks (deduplicating by idempotency key), each with a `submitted` event.
    /// One result per task, in order; an invalid one does not stop the others.
    fn submit(&self, tasks: Vec<NewTask>) -> StoreFuture<'_, Vec<Result<Submitted, StoreError>>>;
    /// Inserts tasks as [`Store::submit`] does, then claims as [`Store::claim`] does:
    /// one write, so that a task submitted to a free slot is claimed in the commit
    /// that records it. A failed claim does not undo the submits. The default runs
    /// the two in turn.
    fn submit_and_claim(
        &self,
        tasks: Vec<NewTask>,
        claim: Option<ClaimRequest>,
    ) -> StoreFuture<'_, SubmittedAndClaimed> {
        Box::pin(async move {
            let submitted = self.submit(tasks).await?;
            let claim = match claim {
                Some(req) => Some(self.claim(req).await),
                None => None,
            };
            Ok(SubmittedAndClaimed { submitted, claim })
        })
    }
    /// One task.
    fn get(&self, id: TaskId) -> StoreFuture<'_, TaskRecord>;
    /// A page of tasks, newest first.
    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Page>;
    /// The attempts of a task, oldest first.
    fn attempts(&self, id: TaskId) -> StoreFuture<'_, Vec<Attempt>>;
    /// Records the next step of a task's running attempt, and charges its usage in
    /// the same write when it has some; answers the step's number. Refused
    /// (`Conflict`, field `attempt`) when the attempt is not the task's running one.
    fn record_step(&self, step: NewStep) -> StoreFuture<'_, u32>;
    /// A task's steps, oldest first: of attempt `attempt`, or of every attempt.
    fn steps(&self, id: TaskId, attempt: Option<u32>)
    -> StoreFuture<'_, Vec<meanwhile_core::Step>>;
    /// Opens agent session `open.name` for `open.holder`, who alone records its
    /// steps from now on: a fresh one replaces the conversation the name had; else
    /// the one it has is continued (begun when it has none).
    fn open_agent_session(
        &self,
        open: OpenAgentSession,
    ) -> StoreFuture<'_, meanwhile_core::AgentSession>;
    /// Records the next step of an agent session; answers its number. Refused
    /// (`Conflict`) when the session is held by another holder (field `holder`) or
    /// has another number of steps than `after` (field `after`).
    fn record_session_step(&self, step: NewAgentSessionStep) -> StoreFuture<'_, u32>;
    /// An agent session's steps, oldest first (their `attempt` is 0).
    fn agent_session_steps(&self, name: &str) -> StoreFuture<'_, Vec<meanwhile_core::Step>>;
    /// One agent session.
    fn agent_session(&self, name: &str) -> StoreFuture<'_, meanwhile_core::AgentSession>;
    /// Agent sessions, the last active first; at most `limit`.
    fn agent_sessions(&self, limit: u32) -> StoreFuture<'_, Vec<meanwhile_core::AgentSession>>;
    /// Removes an agent session's conversation (its notices stay); false when it had
    /// none.
    fn forget_agent_session(&self, name: &str) -> StoreFuture<'_, bool>;
    /// Claims runnable tasks: pending, run-after reached, dependencies succeeded, queue
    /// not paused and below its `max_parallel`, owned by no node or by the claiming
    /// one; priority order within each queue.
    /// Where the queue has a `per_key` limit, a task whose concurrency key already has
    /// that many running is passed over; where it has a rate limit, no more tasks are
    /// claimed than the window that ends at `now` has room for, and each claim is
    /// counted in it, in the same transaction.
    fn claim(&self, req: ClaimRequest) -> StoreFuture<'_, Claim>;
    /// Records the process id of a running attempt.
    fn set_pid(&self, id: TaskId, attempt: u32, pid: i32) -> StoreFuture<'_, ()>;
    /// Extends the lease of every task `node` runs; returns the tasks it holds, so
    /// that a node can tell which of its attempts another node has taken over.
    fn renew(&self, node: &str, lease_until: Timestamp) -> StoreFuture<'_, Vec<TaskId>>;
    /// Takes over an attempt whose node let its lease expire: records `end` (an
    /// attempt `lost`) if, under the row's lock, the task still runs that attempt
    /// and its lease ended before `now`. `None` when it was renewed or ended
    /// meanwhile. A node that lost its lease this way can no longer record the
    /// attempt's end, since [`Store::finish_attempt`] needs it to be current.
    fn rescue(&self, end: AttemptEnd, now: Timestamp) -> StoreFuture<'_, Option<Finished>>;
    /// Moves an attempt whose node let its lease expire to another node as the same
    /// attempt (for an executor that resumes it, see
    /// [`meanwhile_core::Executor::resumable`]): if, under the row's lock, the task
    /// still runs that attempt and its lease ended before `now`, the task and the
    /// attempt are recorded on `node` with its lease, and a `started` event says
    /// which node it was taken over from (`taken_over_from`). The attempt keeps its
    /// start time. `None` when it was renewed or ended meanwhile. As with
    /// [`Store::rescue`], the node that let it go can no longer renew it nor record
    /// its end.
    fn take_over(&self, to: TakeOver) -> StoreFuture<'_, Option<TaskRecord>>;
    /// Records the end of an attempt and moves the task on; `None` when the attempt is
    /// no longer the task's current one (already finished elsewhere).
    fn finish_attempt(&self, end: AttemptEnd) -> StoreFuture<'_, Option<Finished>>;
    /// Records the ends of attempts, then claims: one write, so the slots the ends free
    /// are claimed in the same commit. One end failing does not undo the others or the
    /// claim. The default runs [`Store::finish_attempt`] and [`Store::claim`] in turn.
    fn settle_and_claim(
        &self,
        ends: Vec<AttemptEnd>,
        claim: Option<ClaimRequest>,
    ) -> StoreFuture<'_, Settled> {
        Box::pin(async move {
            let mut finished = Vec::with_capacity(ends.len());
            for end in ends {
                finished.push(self.finish_attempt(end).await);
            }
            let claim = match claim {
                Some(req) => Some(self.claim(req).await),
                None => None,
            };
            Ok(Settled { finished, claim })
        })
    }
    /// Gives back the claim of a running task whose attempt never started a process:
    /// the task is pending again and the attempt is forgotten. `None` when the task
    /// is not running that attempt.
    fn release(
        &self,
        id: TaskId,
        attempt: u32,
        now: Timestamp,
    ) -> StoreFuture<'_, Option<TaskRecord>>;
    /// Cancels a pending task, or flags a running one for its node to stop (the
    /// `stop_requested` event says whether at once, `force`, or after a grace).
    fn request_stop(&self, id: TaskId, now: Timestamp, force: bool)
    -> StoreFuture<'_, StopOutcome>;
    /// Puts a finished task back to pending, with a fresh retry budget.
    fn retry(&self, id: TaskId, now: Timestamp) -> StoreFuture<'_, TaskRecord>;
    /// Records progress a task reported.
    fn set_progress(&self, id: TaskId, progress: Progress) -> StoreFuture<'_, ()>;
    /// Records what a running task is seen doing. A change of its waiting for input
    /// commits a `waiting_for_input` event, a change of its sockets a `listening`
    /// event; its session gets a notice when it begins to wait and when it listens
    /// on a new socket. Nothing is written when nothing changed.
    fn set_live(&self, update: LiveUpdate) -> StoreFuture<'_, ()>;
    /// Running tasks, with their current attempt: those of `node`, or whose lease
    /// expired before `expired_before` (any node).
    fn running(
        &self,
        node: Option<&str>,
        expired_before: Option<Timestamp>,
    ) -> StoreFuture<'_, Vec<(TaskRecord, Attempt)>>;
    /// The earliest future run-after time of a pending task, to set a timer for.
    fn next_wakeup(&self, now: Timestamp) -> StoreFuture<'_, Option<Timestamp>>;
    /// Removes finished tasks; returns their ids (so their logs can go too).
    fn remove(&self, ids: Vec<TaskId>) -> StoreFuture<'_, Vec<TaskId>>;
    /// Removes finished tasks by age or count; returns their ids.
    fn clean(&self, req: CleanRequest) -> StoreFuture<'_, Vec<TaskId>>;
    /// Removes old events and what removed tasks left behind (see [`PruneRequest`]).
    fn prune(&self, req: PruneRequest) -> StoreFuture<'_, Pruned>;
    /// All queues with their counts.
    fn queues(&self) -> StoreFuture<'_, Vec<QueueInfo>>;
    /// Creates or changes a queue: the fields of `change` that are given (a limit
    /// given as none is removed). A new queue takes the `default` queue's
    /// `max_parallel` and no other limit.
    fn set_queue(&self, name: &str, change: QueueUpdate) -> StoreFuture<'_, QueueInfo>;
    /// Removes a queue, refused while it has pending or running tasks or a budget,
    /// and for `default`. Its finished tasks stay, and go back to a queue of that
    /// name (made again) when retried.
    fn remove_queue(&self, name: &str) -> StoreFuture<'_, ()>;
    /// Tasks per state (all queues), from counters kept in step with every change.
    fn counts(&self) -> StoreFuture<'_, Vec<(String, TaskState, u64)>>;
    /// Returns a session's undelivered notifications and marks them delivered, in one
    /// transaction: each is returned exactly once, in order.
    fn drain_notifications(&self, session: &str, limit: u32) -> StoreFuture<'_, Vec<Notification>>;
    /// A session's undelivered notifications, without marking them.
    fn peek_notifications(&self, session: &str, limit: u32) -> StoreFuture<'_, Vec<Notification>>;
    /// Undelivered notifications per session.
    fn notifications_pending(&self) -> StoreFuture<'_, Vec<(String, u64)>>;
    /// Events after `seq`, oldest first.
    fn events_after(&self, seq: i64, limit: u32) -> StoreFuture<'_, Vec<Event>>;
    /// Events as they are committed.
    fn subscribe(&self) -> broadcast::Receiver<Event>;
    /// Fires an alert with an `alert` event; `None` when one of its kind fires for
    /// that cause already.
    fn fire_alert(&self, alert: NewAlert, now: Timestamp) -> StoreFuture<'_, Option<Alert>>;
    /// Resolves the firing alert of `kind` for `subject`, with `message` saying why;
    /// `None` when none fires.
    fn resolve_alert(
        &self,
        kind: AlertKind,
        subject: &str,
        message: &str,
        now: Timestamp,
    ) -> StoreFuture<'_, Option<Alert>>;
    /// Acknowledges firing alert `id` for the actor of the write (see [`acting`]),
    /// until `until` or until it resolves, with an `alert` event the sinks do not
    /// hear. [`StoreError::UnknownAlert`] when there is none, a conflict on `id` when
    /// it resolved.
    fn ack_alert(
        &self,
        id: i64,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreFuture<'_, Alert>;
    /// Reminds the sinks of firing alerts, each with an `alert` event: those whose
    /// acknowledgement ran out by `now` (the acknowledgement is cleared), and, when
    /// `every` is given, those unacknowledged whose sinks were last told `every` ago
    /// or more. Returns them, oldest first.
    fn repeat_alerts(
        &self,
        every: Option<std::time::Duration>,
        now: Timestamp,
    ) -> StoreFuture<'_, Vec<Alert>>;
    /// Alerts, newest first: the firing ones, or all.
    fn alerts(&self, all: bool, limit: u32) -> StoreFuture<'_, Vec<Alert>>;
    /// The ids and states of the last `n` tasks of `queue` that ended (succeeded or
    /// failed, not cancelled), newest first.
    fn last_ends(&self, queue: &str, n: u32) -> StoreFuture<'_, Vec<(TaskId, TaskState)>>;
    /// Where the reader `name` of the event log is (the seq of the last event it is
    /// done with); the first time, the log's end, so a new reader replays nothing.
    fn reader_cursor(&self, name: &str) -> StoreFuture<'_, i64>;
    /// Moves the reader `name` on to `seq`.
    fn set_reader_cursor(&self, name: &str, seq: i64) -> StoreFuture<'_, ()>;
    /// Adds a schedule, due first at `next_fire`; a name in use is refused.
    fn add_schedule(
        &self,
        spec: ScheduleSpec,
        next_fire: Option<Timestamp>,
        now: Timestamp,
    ) -> StoreFuture<'_, ScheduleInfo>;
    /// All schedules, by name, each with the state of its latest task.
    fn schedules(&self) -> StoreFuture<'_, Vec<ScheduleInfo>>;
    /// One schedule.
    fn schedule(&self, name: &str) -> StoreFuture<'_, ScheduleInfo>;
    /// Removes a schedule (its tasks stay).
    fn remove_schedule(&self, name: &str) -> StoreFuture<'_, ()>;
    /// Pauses a schedule, or resumes it due next at `next_fire`. Asking for the
    /// state it is in changes nothing.
    fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
        next_fire: Option<Timestamp>,
    ) -> StoreFuture<'_, ScheduleInfo>;
    /// Records a firing (see [`ScheduleFiring`]); `None` when the schedule was no
    /// longer due at that time (another runtime fired it, or it was paused).
    fn fire_schedule(&self, firing: ScheduleFiring) -> StoreFuture<'_, Option<Fired>>;
    /// A page of the audit trail, oldest first. Every write that records an event
    /// also appends, in its own transaction, an audit record per change it made,
    /// naming the actor it was made for (see [`acting`]).
    fn audit(&self, filter: AuditFilter) -> StoreFuture<'_, AuditPage>;
    /// Checks the audit trail's hash chain from its checkpoint (whose signature is
    /// checked with `key`) to its last record; names the first record that fails.
    fn verify_audit(&self, key: AuditKey) -> StoreFuture<'_, AuditVerdict>;
    /// Removes audit records committed before `before` from the head of the trail,
    /// one bounded slice per call, and leaves a checkpoint signed with `key` naming
    /// the last one removed; returns how many were removed (0 when none is left).
    fn prune_audit(&self, before: Timestamp, key: AuditKey) -> StoreFuture<'_, u64>;
    /// The named API tokens, by name, with their hashes.
    fn tokens(&self) -> StoreFuture<'_, Vec<StoredToken>>;
    /// Adds a named token by its hash; a name in use is refused. Recorded in the
    /// audit trail.
    fn add_token(&self, name: &str, hash: &str, now: Timestamp) -> StoreFuture<'_, TokenInfo>;
    /// Removes a named token. Recorded in the audit trail.
    fn remove_token(&self, name: &str) -> StoreFuture<'_, ()>;
    /// Sets the budget of `queue` (creating the queue if needed), with a `budget`
    /// event. With the same kind of window as before, the usage of the current window
    /// still counts against the new limits; otherwise it counts from `now`. The
    /// budget's alarms and its queue's pause follow at once: a raised or changed
    /// budget resolves the alerts of alarms it no longer reaches and resumes a queue
    /// it paused, and one already spent pauses the queue.
    fn set_budget(
        &self,
        queue: &str,
        spec: BudgetSpec,
        now: Timestamp,
    ) -> StoreFuture<'_, BudgetInfo>;
    /// Every budget, by queue.
    fn budgets(&self) -> StoreFuture<'_, Vec<BudgetInfo>>;
    /// The budget of `queue`.
    fn budget(&self, queue: &str) -> StoreFuture<'_, BudgetInfo>;
    /// Removes the budget of `queue`, with a `budget` event: its alerts resolve and
    /// a queue it paused resumes.
    fn remove_budget(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, ()>;
    /// Adds one or more model calls' usage to `task` and to its queue's budget, in
    /// one write: a budget whose window ended by `now` rolls first; each alarm the
    /// usage reaches fires a `budget` alert (once per window); a spent budget pauses
    /// the queue with the reason `budget` (a queue a user paused stays as it is).
    fn charge_usage(
        &self,
        task: TaskId,
        tokens: u64,
        cost_usd: f64,
        calls: u32,
        now: Timestamp,
    ) -> StoreFuture<'_, Charged>;
    /// Whether a model call of a task of `queue` may start at `now`: `None` when it
    /// may (no budget, one not spent, or one whose window has ended), else the spent
    /// budget that holds it back.
    fn budget_gate(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, Option<BudgetInfo>>;
    /// Starts a new window of the budget of `queue` when its current one ended by
    /// `now`: the usage counts from 0, the window's `budget` alerts resolve and a
    /// queue the budget paused resumes (never one a user paused). Returns the budget
    /// when it rolled; `None` when its window goes on or there is no budget.
    fn roll_budget(&self, queue: &str, now: Timestamp) -> StoreFuture<'_, Option<BudgetInfo>>;
    /// Records a node's heartbeat (and that it runs again, after a clean stop).
    fn beat(&self, beat: NodeBeat) -> StoreFuture<'_, ()>;
    /// Records that a node shut down cleanly, so that its silence raises no alert.
    fn node_stopped(&self, name: &str, now: Timestamp) -> StoreFuture<'_, ()>;
    /// Every node that ever beat, by name, with the tasks it runs now.
    fn nodes(&self) -> StoreFuture<'_, Vec<NodeRow>>;
    /// Forgets a node.
    fn remove_node(&self, name: &str) -> StoreFuture<'_, ()>;
}
