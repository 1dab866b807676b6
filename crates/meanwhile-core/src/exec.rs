//! The contract between the engine and code that runs a task in the engine's own
//! process: an [`Executor`] for a kind of task (the agent's, the `llm` task's), or a
//! closure. The engine hands each attempt a [`TaskContext`]; what the context does
//! with the engine (the output log, progress, the budget gate, usage, submitting
//! other tasks) goes through the [`TaskHost`] the engine implements, so that an
//! executor needs this crate only, not the engine.

use crate::{ApiError, Backend, Step, TaskId, TaskRecord};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The future an in-process task runs: `Ok(Some(result))`, `Ok(None)` or an error
/// message that becomes the attempt's failure reason.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send>>;

/// A boxed future returned by [`TaskHost`] methods, so the trait stays object-safe.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs tasks of one kind in the engine's process; registered with the engine for
/// that kind.
pub trait Executor: Send + Sync + 'static {
    /// Starts an attempt. Dropping the returned future must stop the work (the
    /// engine drops it on stop and on timeout).
    fn run(&self, task: TaskRecord, ctx: TaskContext) -> TaskFuture;

    /// True when an attempt this executor left running (its process died: a crash,
    /// a restart) can go on where it stopped: the engine then runs it again as the
    /// same attempt, and the executor continues from the steps it recorded
    /// ([`TaskContext::steps`]). False (the default): such an attempt ends `lost`,
    /// and the task's retry policy decides.
    fn resumable(&self) -> bool {
        false
    }
}

impl std::fmt::Debug for dyn Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.resumable() {
            "a resumable executor"
        } else {
            "an executor"
        })
    }
}

/// What the engine does for one in-process attempt. The engine implements it; a task
/// reaches it through its [`TaskContext`].
pub trait TaskHost: Send + Sync + 'static {
    /// Appends bytes to the task's output log.
    fn write(&self, bytes: &[u8]);

    /// Records progress: a percentage (0 to 100) when known, and what is happening.
    fn progress(
        &self,
        percent: Option<f64>,
        message: String,
    ) -> HostFuture<'_, Result<(), ApiError>>;

    /// Whether the task may start a model call now: `Err` with the reason when not.
    fn budget_gate(&self) -> HostFuture<'_, Result<(), String>>;

    /// Records one model call's usage on the task and its queue's budget.
    fn record_usage(&self, tokens: u64, cost_usd: f64) -> HostFuture<'_, ()>;

    /// The engine's task operations, while the engine runs.
    fn backend(&self) -> Option<Arc<dyn Backend>>;

    /// True once this attempt was taken from this process: its node lost the lease
    /// and another node goes on with the same attempt. What the attempt would undo
    /// on its way out (stop the tasks it started) is then no longer its to do.
    fn handed_over(&self) -> bool {
        false
    }

    /// The steps this attempt recorded so far, oldest first.
    fn steps(&self) -> HostFuture<'_, Result<Vec<Step>, ApiError>>;

    /// Records the attempt's next step, and charges a model call's usage (tokens,
    /// cost in US dollars) with it when given, in one write; answers its number.
    fn record_step(
        &self,
        kind: String,
        data: serde_json::Value,
        usage: Option<(u64, f64)>,
    ) -> HostFuture<'_, Result<u32, ApiError>>;
}

/// What an in-process attempt can do: write output, report progress, set a result,
/// submit and wait on other tasks, and, for tasks that call a model, pass their
/// queue's budget gate before each call and record each call's usage after it.
#[derive(Clone)]
pub struct TaskContext {
    id: TaskId,
    attempt: u32,
    queue: String,
    host: Arc<dyn TaskHost>,
}

impl TaskContext {
    /// The context of attempt `attempt` of task `id` in `queue`, served by `host`.
    pub fn new(id: TaskId, attempt: u32, queue: String, host: Arc<dyn TaskHost>) -> TaskContext {
        TaskContext {
            id,
            attempt,
            queue,
            host,
        }
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The task's queue, whose budget its model calls are charged to.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Appends bytes to the task's output log.
    pub fn write(&self, bytes: &[u8]) {
        self.host.write(bytes);
    }

    /// Appends a line to the task's output log.
    pub fn println(&self, line: impl AsRef<str>) {
        let mut s = line.as_ref().to_string();
        s.push('\n');
        self.write(s.as_bytes());
    }

    /// Reports progress: a percentage (0 to 100) when known, and what is happening.
    /// A percentage out of that range is refused (field `percent`), as from any
    /// other reporter; an engine that has shut down ignores the report.
    pub async fn progress(
        &self,
        percent: Option<f32>,
        message: impl Into<String>,
    ) -> Result<(), ApiError> {
        self.host
            .progress(percent.map(f64::from), message.into())
            .await
    }

    /// Whether this task may start a model call now: `Err` with the reason when its
    /// queue's budget is spent (`queue "llm" is over its budget: 1000 of 1000 tokens
    /// used this day (from 2026-11-27T00:00:00Z); it resumes at
    /// 2026-11-28T00:00:00Z`). Call it before every model call, and make none when
    /// it says no: that is what keeps a spent budget from being overrun by more than
    /// the calls already in flight. A budget that cannot be read, or an engine that
    /// shut down, says no too.
    pub async fn budget_gate(&self) -> Result<(), String> {
        self.host.budget_gate().await
    }

    /// Records one model call's usage (tokens as the provider reported them, input
    /// plus output, and their cost in US dollars) on this task and on its queue's
    /// budget, which fires the budget's alarms and pauses the queue once it is spent.
    /// A failure is logged and counted by the engine, not returned: the call was made
    /// either way.
    pub async fn record_usage(&self, tokens: u64, cost_usd: f64) {
        self.host.record_usage(tokens, cost_usd).await
    }

    /// The engine's task operations, to submit or wait on other tasks; `None` once it
    /// has shut down.
    pub fn backend(&self) -> Option<Arc<dyn Backend>> {
        self.host.backend()
    }

    /// True once another node took this attempt over (see
    /// [`TaskHost::handed_over`]): a task dropped for that leaves what it started to
    /// the node that goes on with it.
    pub fn handed_over(&self) -> bool {
        self.host.handed_over()
    }

    /// The steps this attempt recorded before ([`TaskContext::record_step`]), oldest
    /// first: empty on a fresh attempt; what it had done when it resumes after its
    /// process died (see [`Executor::resumable`]).
    pub async fn steps(&self) -> Result<Vec<Step>, ApiError> {
        self.host.steps().await
    }

    /// Records a step of this attempt in the store, durably, once it completed; answers
    /// its number. Refused (`conflict`) once the attempt is no longer the task's
    /// running one (it was stopped, or another node took it over), and (`invalid`,
    /// field `data`) past [`crate::MAX_STEP_BYTES`].
    pub async fn record_step(
        &self,
        kind: impl Into<String>,
        data: serde_json::Value,
    ) -> Result<u32, ApiError> {
        self.host.record_step(kind.into(), data, None).await
    }

    /// [`TaskContext::record_step`] for a model call's response, whose usage (as for
    /// [`TaskContext::record_usage`]) is charged in the same write: an attempt that
    /// resumes has every recorded call charged once, and no call charged that is
    /// not recorded.
    pub async fn record_step_with_usage(
        &self,
        kind: impl Into<String>,
        data: serde_json::Value,
        tokens: u64,
        cost_usd: f64,
    ) -> Result<u32, ApiError> {
        self.host
            .record_step(kind.into(), data, Some((tokens, cost_usd)))
            .await
    }
}
