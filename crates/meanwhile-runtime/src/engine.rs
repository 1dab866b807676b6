//! The engine's state, shared by the dispatcher, the attempts, recovery and the
//! public API: the store, the registry of running attempts, the closures and
//! executors, the spawner, the journal, and the shutdown signal. It imports no module
//! above it; the public API (`runtime/`) is a handle on it.

use crate::watch::OutputWatcher;
use crate::{Home, RuntimeConfig, ShutdownMode};
use meanwhile_core::{Backend, Executor, Progress, TaskId, TaskKind, TaskRecord, TaskState};
use meanwhile_store::AttemptEnd;
use meanwhile_store::{Store, StoreError};
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{Notify, mpsc, watch};

/// The end of an attempt this node ran, on its way to the dispatcher and the store.
pub(crate) struct Settle {
    pub kind: TaskKind,
    pub end: AttemptEnd,
    /// Failed tries so far.
    pub failures: u32,
}

pub(crate) type Hook = Arc<dyn Fn(&TaskRecord) + Send + Sync>;

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub home: Home,
    /// Seals the secrets of the specs stored, and opens them for a task.
    pub secrets: crate::sealed::SecretsKey,
    pub config: RuntimeConfig,
    pub node: String,
    pub default_cwd: PathBuf,
    pub base_env: Vec<(String, String)>,
    pub wake: Notify,
    /// Wakes the scheduler when a schedule is added, resumed or removed.
    pub schedules_changed: Notify,
    /// Wakes the budget loop when a budget is set or removed.
    pub budgets_changed: Notify,
    /// The attempts running on this node; never held across an await.
    pub active: Mutex<crate::stop::Registry>,
    /// Ends of attempts on their way to the dispatcher, which records them.
    pub settles: mpsc::UnboundedSender<Settle>,
    pub functions: crate::functions::Functions,
    pub executors: RwLock<HashMap<TaskKind, Arc<dyn Executor>>>,
    pub on_complete: RwLock<Vec<Hook>>,
    pub on_error: RwLock<Vec<Hook>>,
    pub watcher: OutputWatcher,
    /// What running process tasks are seen doing (waiting for input, listening).
    pub live: crate::live::Live,
    /// The attached terminal writing to each task, and when it last did.
    pub writers: Mutex<HashMap<TaskId, (String, std::time::Instant)>>,
    pub spawner: crate::spawner::Spawner,
    pub journal: Mutex<crate::journal::Journal>,
    pub shutdown: watch::Sender<bool>,
    /// The mode a shutdown was asked with, when it differs from the configured one.
    pub shutdown_mode: std::sync::OnceLock<ShutdownMode>,
    /// Attempts in flight, so shutdown can wait for them.
    pub in_flight: AtomicUsize,
    pub idle: Notify,
    pub metrics: crate::metrics::Counters,
    /// What the supervised loops did wrong, by loop.
    pub loops: Arc<crate::loops::Loops>,
    /// Held while the runtime owns the home; released at the end of shutdown.
    pub lock: Mutex<Option<File>>,
    /// Makes the public handle on this engine, for the in-process tasks that submit
    /// or wait on others; given by the public API, which stands above this module.
    pub handle: fn(Arc<Inner>) -> Arc<dyn Backend>,
}

impl Inner {
    /// The registry of running attempts.
    pub fn registry(&self) -> std::sync::MutexGuard<'_, crate::stop::Registry> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The time now, on the runtime's clock.
    pub fn now(&self) -> meanwhile_core::Timestamp {
        self.config.clock.now()
    }

    /// A uniform sample in [0, 1) for backoff jitter.
    pub fn sample(&self) -> f64 {
        rand::random::<f64>()
    }

    /// Logs and counts a failed write that has no caller to answer. Refusals (a task
    /// that ended meanwhile) are expected and only logged at debug level.
    /// Logs and counts a failed store call of the supervised loop `name`, like
    /// [`Inner::write_failed`], and counts it against the loop, whose health checks
    /// report it once it keeps failing.
    pub fn loop_failed(
        &self,
        name: &'static str,
        what: std::fmt::Arguments<'_>,
        e: &meanwhile_store::StoreError,
    ) {
        if e.is_database_failure() {
            self.metrics.commit_failed();
            self.loops.failed(name, what, e);
        } else {
            tracing::debug!("{what} refused: {e}");
        }
    }

    /// Runs the loop that `f` makes under supervision as `name` (see
    /// [`crate::loops::supervise`]): made again after a panic, until shutdown.
    pub fn spawn_loop<F, Fut>(self: &Arc<Self>, name: &'static str, f: F)
    where
        F: Fn(Arc<Inner>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let inner = self.clone();
        crate::loops::supervise(
            self.loops.clone(),
            name,
            self.shutdown.subscribe(),
            move || f(inner.clone()),
        );
    }

    pub fn write_failed(&self, what: std::fmt::Arguments<'_>, e: &meanwhile_store::StoreError) {
        if e.is_database_failure() {
            self.metrics.commit_failed();
            tracing::error!("{what} failed: {e}");
        } else {
            tracing::debug!("{what} refused: {e}");
        }
    }

    /// The one writer of progress, whoever reports it (an API call, a closure, a
    /// `::progress` line): `p` was built by [`Progress::new`], the one rule.
    pub async fn write_progress(&self, id: TaskId, p: Progress) -> Result<(), StoreError> {
        self.store.set_progress(id, p).await
    }

    /// True when the executor of `kind` registered here continues an attempt from
    /// what it recorded (see [`meanwhile_core::Executor::resumable`]): such an
    /// attempt left by a process that is gone, this node's (recovery) or another
    /// node's (a takeover), runs on as the same attempt.
    pub fn resumable(&self, kind: TaskKind) -> bool {
        self.executors
            .read()
            .map(|e| e.get(&kind).is_some_and(|x| x.resumable()))
            .unwrap_or(false)
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn run_hooks(&self, task: &TaskRecord) {
        let hooks = match task.state {
            TaskState::Succeeded => &self.on_complete,
            TaskState::Failed | TaskState::TimedOut | TaskState::Quarantined | TaskState::Lost => {
                &self.on_error
            }
            _ => return,
        };
        let hooks: Vec<Hook> = hooks.read().map(|h| h.clone()).unwrap_or_default();
        for hook in hooks {
            // A hook that panics must not take the supervisor down with it.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(task)));
            if r.is_err() {
                tracing::error!(task = %task.id, "a completion hook panicked");
            }
        }
    }
}

impl Inner {
    /// What shutdown does to running tasks: the mode it was asked with, else the
    /// configured one.
    pub fn shutdown_mode(&self) -> ShutdownMode {
        self.shutdown_mode
            .get()
            .copied()
            .unwrap_or(self.config.shutdown_mode)
    }
}
