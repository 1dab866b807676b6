//! The store's traits, one per topic. [`Store`] is all of them, with what concerns
//! the store as a whole; `use meanwhile_store::prelude::*` brings every topic's
//! methods into scope.

use crate::*;

/// Tasks: what was submitted, found, listed, counted and removed.
pub trait TaskStore: Send + Sync {
    /// Inserts tasks (deduplicating by idempotency key), each with a `submitted` event.
    /// One result per task, in order; an invalid one does not stop the others.
    fn submit(&self, tasks: Vec<NewTask>) -> StoreFuture<'_, Vec<Result<Submitted, StoreError>>>;
    /// One task.
    fn get(&self, id: TaskId) -> StoreFuture<'_, TaskRecord>;
    /// A page of tasks, newest first.
    fn list(&self, filter: ListFilter) -> StoreFuture<'_, Page>;
    /// Removes finished tasks; returns their ids (so their logs can go too).
    fn remove(&self, ids: Vec<TaskId>) -> StoreFuture<'_, Vec<TaskId>>;
    /// Removes finished tasks by age or count; returns their ids.
    fn clean(&self, req: CleanRequest) -> StoreFuture<'_, Vec<TaskId>>;
    /// Tasks per state (all queues), from counters kept in step with every change.
    fn counts(&self) -> StoreFuture<'_, Vec<(String, TaskState, u64)>>;
}

/// A task's way through its attempts: claims, leases, ends, stops and retries, progress, steps.
pub trait LifecycleStore: TaskStore + Send + Sync {
    /// Inserts tasks as [`TaskStore::submit`] does, then claims as [`LifecycleStore::claim`] does:
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
    /// The attempts of a task, oldest first.
    fn attempts(&self, id: TaskId) -> StoreFuture<'_, Vec<Attempt>>;
    /// Records the next step of a task's running attempt, and charges its usage in
    /// the same write when it has some; answers the step's number. Refused
    /// (`Conflict`, field `attempt`) when the attempt is not the task's running one.
    fn record_step(&self, step: NewStep) -> StoreFuture<'_, u32>;
    /// A task's steps, oldest first: of attempt `attempt`, or of every attempt.
    fn steps(&self, id: TaskId, attempt: Option<u32>)
    -> StoreFuture<'_, Vec<meanwhile_core::Step>>;
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
    /// attempt's end, since [`LifecycleStore::finish_attempt`] needs it to be current.
    fn rescue(&self, end: AttemptEnd, now: Timestamp) -> StoreFuture<'_, Option<Finished>>;
    /// Moves an attempt whose node let its lease expire to another node as the same
    /// attempt (for an executor that resumes it, see
    /// [`meanwhile_core::Executor::resumable`]): if, under the row's lock, the task
    /// still runs that attempt and its lease ended before `now`, the task and the
    /// attempt are recorded on `node` with its lease, and a `started` event says
    /// which node it was taken over from (`taken_over_from`). The attempt keeps its
    /// start time. `None` when it was renewed or ended meanwhile. As with
    /// [`LifecycleStore::rescue`], the node that let it go can no longer renew it nor record
    /// its end.
    fn take_over(&self, to: TakeOver) -> StoreFuture<'_, Option<TaskRecord>>;
    /// Records the end of an attempt and moves the task on; `None` when the attempt is
    /// no longer the task's current one (already finished elsewhere).
    fn finish_attempt(&self, end: AttemptEnd) -> StoreFuture<'_, Option<Finished>>;
    /// Records the ends of attempts, then claims: one write, so the slots the ends free
    /// are claimed in the same commit. One end failing does not undo the others or the
    /// claim. The default runs [`LifecycleStore::finish_attempt`] and [`LifecycleStore::claim`] in turn.
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
    /// The ids and states of the last `n` tasks of `queue` that ended (succeeded or
    /// failed, not cancelled), newest first.
    fn last_ends(&self, queue: &str, n: u32) -> StoreFuture<'_, Vec<(TaskId, TaskState)>>;
}

/// Queues and their limits.
pub trait QueueStore: Send + Sync {
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
}

/// Sessions: the notices each one is told, exactly once, and agent sessions' conversations.
pub trait SessionStore: Send + Sync {
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
    /// Returns a session's undelivered notifications and marks them delivered, in one
    /// transaction: each is returned exactly once, in order.
    fn drain_notifications(&self, session: &str, limit: u32) -> StoreFuture<'_, Vec<Notification>>;
    /// A session's undelivered notifications, without marking them.
    fn peek_notifications(&self, session: &str, limit: u32) -> StoreFuture<'_, Vec<Notification>>;
    /// Undelivered notifications per session.
    fn notifications_pending(&self) -> StoreFuture<'_, Vec<(String, u64)>>;
}

/// The event log: read in order, followed as it is committed, and where each named reader is.
pub trait EventStore: Send + Sync {
    /// Events after `seq`, oldest first.
    fn events_after(&self, seq: i64, limit: u32) -> StoreFuture<'_, Vec<Event>>;
    /// Events as they are committed.
    fn subscribe(&self) -> broadcast::Receiver<Event>;
    /// Where the reader `name` of the event log is (the seq of the last event it is
    /// done with); the first time, the log's end, so a new reader replays nothing.
    fn reader_cursor(&self, name: &str) -> StoreFuture<'_, i64>;
    /// Moves the reader `name` on to `seq`.
    fn set_reader_cursor(&self, name: &str, seq: i64) -> StoreFuture<'_, ()>;
}

/// Alerts: fired, resolved, acknowledged and repeated.
pub trait AlertStore: Send + Sync {
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
}

/// Schedules and their firings.
pub trait ScheduleStore: Send + Sync {
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
}

/// Budgets: their windows, the usage charged to them, their alarms and the pause of a spent one.
pub trait BudgetStore: Send + Sync {
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
}

/// The hash-chained audit trail.
pub trait AuditStore: Send + Sync {
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
}

/// Named API tokens, by their hashes.
pub trait TokenStore: Send + Sync {
    /// The named API tokens, by name, with their hashes.
    fn tokens(&self) -> StoreFuture<'_, Vec<StoredToken>>;
    /// Adds a named token by its hash; a name in use is refused. Recorded in the
    /// audit trail.
    fn add_token(&self, name: &str, hash: &str, now: Timestamp) -> StoreFuture<'_, TokenInfo>;
    /// Removes a named token. Recorded in the audit trail.
    fn remove_token(&self, name: &str) -> StoreFuture<'_, ()>;
}

/// The nodes of a fleet and their heartbeats.
pub trait NodeStore: Send + Sync {
    /// Records a node's heartbeat (and that it runs again, after a clean stop).
    fn beat(&self, beat: NodeBeat) -> StoreFuture<'_, ()>;
    /// Records that a node shut down cleanly, so that its silence raises no alert.
    fn node_stopped(&self, name: &str, now: Timestamp) -> StoreFuture<'_, ()>;
    /// Every node that ever beat, by name, with the tasks it runs now.
    fn nodes(&self) -> StoreFuture<'_, Vec<NodeRow>>;
    /// Forgets a node.
    fn remove_node(&self, name: &str) -> StoreFuture<'_, ()>;
}

/// The durable store behind a runtime: SQLite for one machine, PostgreSQL for a fleet.
///
/// Every method that changes state does it through [`meanwhile_core::transition`] in
/// one transaction with its events, and publishes the events after the commit.
pub trait Store:
    TaskStore
    + LifecycleStore
    + QueueStore
    + SessionStore
    + EventStore
    + AlertStore
    + ScheduleStore
    + BudgetStore
    + AuditStore
    + TokenStore
    + NodeStore
    + Send
    + Sync
    + 'static
{
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
    /// Removes old events and what removed tasks left behind (see [`PruneRequest`]).
    fn prune(&self, req: PruneRequest) -> StoreFuture<'_, Pruned>;
}
