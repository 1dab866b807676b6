//! In-process tasks: the context a closure or an executor gets, and the executor seam
//! through which other crates (the agent) run their kinds of task.

use meanwhile_core::{TaskId, TaskRecord};
use std::any::Any;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::watch;

/// The future an in-process task runs: `Ok(Some(result))`, `Ok(None)` or an error
/// message that becomes the attempt's failure reason.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send>>;

/// Runs tasks of one kind in-process (the agent crate registers one for `agent`).
pub trait Executor: Send + Sync + 'static {
    /// Starts an attempt. Dropping the returned future must stop the work (the
    /// runtime drops it on stop and on timeout).
    fn run(&self, task: TaskRecord, ctx: TaskContext) -> TaskFuture;
}

pub(crate) type TaskFn = Arc<dyn Fn(TaskContext) -> TaskFuture + Send + Sync>;

/// What an in-process attempt can do: write output, report progress, set a result,
/// and, for tasks that call a model, pass their queue's budget gate before each call
/// and record each call's usage after it.
#[derive(Clone)]
pub struct TaskContext {
    pub(crate) id: TaskId,
    pub(crate) attempt: u32,
    /// The task's queue, whose budget its model calls are charged to.
    pub(crate) queue: String,
    pub(crate) log: Arc<Mutex<LazyLog>>,
    pub(crate) size: Arc<watch::Sender<u64>>,
    /// The engine running the attempt, opaque here so that this module stands below
    /// it; `engine.rs` and `runtime.rs` implement what needs it.
    pub(crate) engine: Weak<dyn Any + Send + Sync>,
}

impl TaskContext {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The task's queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Appends bytes to the task's output log.
    pub fn write(&self, bytes: &[u8]) {
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

    /// Appends a line to the task's output log.
    pub fn println(&self, line: impl AsRef<str>) {
        let mut s = line.as_ref().to_string();
        s.push('\n');
        self.write(s.as_bytes());
    }
}

/// An in-process task's output log, created on its first write: a task that prints
/// nothing costs no directory and no file.
pub(crate) struct LazyLog {
    path: PathBuf,
    file: Option<File>,
}

impl LazyLog {
    pub(crate) fn new(path: PathBuf) -> LazyLog {
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
