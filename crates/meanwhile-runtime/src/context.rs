//! In-process attempts: the host through which an attempt's
//! [`meanwhile_core::TaskContext`] reaches the engine (its output log, progress, the
//! queue's budget gate, usage, and the engine's task operations). It stands above
//! the engine's state and below the attempts that make it.

use crate::engine::Inner;
use meanwhile_core::{
    ApiError, Backend, BudgetState, HostFuture, Progress, Step, TaskContext, TaskHost, TaskId,
};
use meanwhile_store::NewStep;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::watch;

/// The engine's side of one in-process attempt. It holds the engine weakly: an
/// attempt that outlives its runtime writes its output still, and is told no for
/// the rest.
pub(crate) struct AttemptHost {
    id: TaskId,
    attempt: u32,
    /// The task's queue, whose budget its model calls are charged to.
    queue: String,
    log: Mutex<LazyLog>,
    size: watch::Sender<u64>,
    engine: Weak<Inner>,
    /// Set when the node lost its lease on the attempt (see `TaskHost::handed_over`).
    handed_over: Arc<AtomicBool>,
}

impl AttemptHost {
    /// The context of attempt `attempt` of `task` in `queue`, whose output goes to
    /// `log` and whose log size to `size`.
    pub(crate) fn context(
        inner: &Arc<Inner>,
        id: TaskId,
        attempt: u32,
        queue: String,
        log: PathBuf,
        size: watch::Sender<u64>,
        handed_over: Arc<AtomicBool>,
    ) -> TaskContext {
        let host = AttemptHost {
            id,
            attempt,
            queue: queue.clone(),
            log: Mutex::new(LazyLog::new(log)),
            size,
            engine: Arc::downgrade(inner),
            handed_over,
        };
        TaskContext::new(id, attempt, queue, Arc::new(host))
    }
}

impl AttemptHost {
    /// A model call's cost as the store takes it: one that is not a finite number of
    /// at least 0 is counted as 0, and logged.
    fn checked_cost(&self, cost_usd: f64) -> f64 {
        if cost_usd.is_finite() && cost_usd >= 0.0 {
            cost_usd
        } else {
            tracing::warn!(task = %self.id, "a model call reported a cost of {cost_usd} USD; counted as 0");
            0.0
        }
    }
}

impl TaskHost for AttemptHost {
    fn write(&self, bytes: &[u8]) {
        let Ok(mut log) = self.log.lock() else {
            return;
        };
        match log.append(bytes) {
            Ok(len) => {
                self.size.send_replace(len);
            }
            Err(e) => {
                // The task goes on; its output is what is lost, and the log says so.
                tracing::warn!(task = %self.id, "writing to {} failed: {e}", log.path.display());
            }
        }
    }

    fn progress(
        &self,
        percent: Option<f64>,
        message: String,
    ) -> HostFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let Some(inner) = self.engine.upgrade() else {
                // The same rule as for every other reporter, even when not recorded.
                Progress::new(percent, message, crate::now())?;
                return Ok(());
            };
            let p = Progress::new(percent, message, inner.now())?;
            inner
                .write_progress(self.id, p)
                .await
                .map_err(|e| ApiError::from(crate::Error::from(e)))
        })
    }

    fn budget_gate(&self) -> HostFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let Some(inner) = self.engine.upgrade() else {
                return Err("the runtime is shutting down".into());
            };
            match inner.store.budget_gate(&self.queue, inner.now()).await {
                Ok(None) => Ok(()),
                Ok(Some(budget)) => Err(budget.over_budget_reason()),
                Err(e) => {
                    inner.write_failed(
                        format_args!("reading the budget of queue {}", self.queue),
                        &e,
                    );
                    Err(format!(
                        "the budget of queue {:?} could not be read, so no model call starts: {e}",
                        self.queue
                    ))
                }
            }
        })
    }

    fn record_usage(&self, tokens: u64, cost_usd: f64) -> HostFuture<'_, ()> {
        Box::pin(async move {
            let Some(inner) = self.engine.upgrade() else {
                tracing::warn!(task = %self.id, "a model call's usage came after the runtime shut down; not recorded");
                return;
            };
            let cost_usd = self.checked_cost(cost_usd);
            match inner
                .store
                .charge_usage(self.id, tokens, cost_usd, 1, inner.now())
                .await
            {
                Ok(charged) => {
                    if let Some(b) = charged.budget
                        && b.state == BudgetState::Exhausted
                    {
                        tracing::info!(task = %self.id, "{}", b.over_budget_reason());
                    }
                }
                Err(e) => {
                    inner.write_failed(format_args!("recording the usage of task {}", self.id), &e)
                }
            }
        })
    }

    fn backend(&self) -> Option<Arc<dyn Backend>> {
        let inner = self.engine.upgrade()?;
        Some((inner.handle)(inner))
    }

    fn handed_over(&self) -> bool {
        self.handed_over.load(Ordering::SeqCst)
    }

    fn steps(&self) -> HostFuture<'_, Result<Vec<Step>, ApiError>> {
        Box::pin(async move {
            let inner = self.engine.upgrade().ok_or_else(shut_down)?;
            inner
                .store
                .steps(self.id, Some(self.attempt))
                .await
                .map_err(|e| ApiError::from(crate::Error::from(e)))
        })
    }

    fn record_step(
        &self,
        kind: String,
        data: serde_json::Value,
        usage: Option<(u64, f64)>,
    ) -> HostFuture<'_, Result<u32, ApiError>> {
        Box::pin(async move {
            let inner = self.engine.upgrade().ok_or_else(shut_down)?;
            let usage = usage.map(|(tokens, cost)| (tokens, self.checked_cost(cost)));
            let step = NewStep {
                id: self.id,
                attempt: self.attempt,
                kind,
                data: data.to_string(),
                usage,
                now: inner.now(),
                // In a fleet, another node may have taken the attempt over.
                node: inner.store.is_shared().then(|| inner.node.clone()),
            };
            let n = inner
                .store
                .record_step(step)
                .await
                .map_err(|e| ApiError::from(crate::Error::from(e)))?;
            // Where a test makes the daemon die with the step committed and not
            // yet acted on.
            crate::fault::point("steps.recorded")
                .map_err(|e| ApiError::from(crate::Error::from(e)))?;
            Ok(n)
        })
    }
}

/// What an attempt that outlived its runtime is told when it asks the store.
fn shut_down() -> ApiError {
    ApiError::new(
        meanwhile_core::ErrorCode::Unavailable,
        "the runtime has shut down; the attempt resumes in the next one",
    )
}

/// An in-process task's output log, created on its first write: a task that prints
/// nothing costs no directory and no file.
struct LazyLog {
    path: PathBuf,
    file: Option<File>,
}

impl LazyLog {
    fn new(path: PathBuf) -> LazyLog {
        LazyLog { path, file: None }
    }

    /// Appends `bytes`; returns the log's new size.
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<u64> {
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                if let Some(dir) = self.path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.file.insert(f)
            }
        };
        file.write_all(bytes)?;
        Ok(file.metadata()?.len())
    }
}
