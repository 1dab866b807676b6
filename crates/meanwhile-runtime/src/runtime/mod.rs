//! The `Runtime` handle and its public API: opening the home and the store, shutdown
//! and health here; tasks, output and input, what an operator steers, and the
//! `Backend` implementation in the modules below.

mod admin;
mod backend;
mod io;
pub(crate) mod sessions;
mod tasks;

pub use backend::Acting;

use crate::engine::Inner;
use crate::functions::TaskFn;
use crate::output::{self, Reader};
use crate::watch::OutputWatcher;
use crate::{Error, Home, Result, RuntimeConfig, ShutdownMode};
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{Actor, AuditFilter, AuditPage, AuditVerdict, Timestamp, TokenInfo};
use meanwhile_core::{
    ApiError, Attempt, Backend, BackendFuture, ErrorCode, Event, EventKind, Executor, Notification,
    OutputChunk, OutputQuery, Progress, QueueInfo, ScheduleInfo, ScheduleSpec, StopMode,
    TaskContext, TaskFuture, TaskId, TaskKind, TaskRecord, TaskSpec, ValidSpec, WaitFor, WaitMode,
    WaitOutcome,
};
use meanwhile_core::{BudgetInfo, BudgetSpec, InputSent, Key, TaskInput, TaskState};
use meanwhile_store::{AuditKey, StoredToken};
use meanwhile_store::{
    CleanRequest, ListFilter, NewTask, Page, ScheduleFiring, SqliteStore, StopOutcome, Store,
    StoreError, Submitted,
};
use regex::bytes::Regex;
use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc, watch};

/// An in-process meanwhile runtime. Cheap to clone; every clone is the same runtime.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

fn lock_home(home: &Home) -> Result<File> {
    let path = home.lock_file();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(format!("opening {}", path.display())))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(_) => Err(Error::Locked {
            home: home.root().display().to_string(),
        }),
    }
}

/// A database URL as it may be shown: without its password.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(given as key=value settings)".to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(feature = "postgres")]
async fn open_database(url: &str) -> Result<Arc<dyn Store>> {
    let bad = |message: String| Error::Database {
        url: redact_url(url),
        message,
    };
    let mut config: meanwhile_store::PgConfig = url.parse().map_err(|e| {
        bad(format!(
            "{e}; give a URL such as postgres://user:password@host:5432/meanwhile"
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    match meanwhile_store::PgStore::connect_with(config).await {
        Ok(s) => Ok(Arc::new(s)),
        Err(e @ StoreError::TooNew { .. }) => Err(Error::Store(e)),
        Err(e) => Err(bad(e.to_string())),
    }
}

#[cfg(not(feature = "postgres"))]
async fn open_database(url: &str) -> Result<Arc<dyn Store>> {
    Err(Error::Database {
        url: redact_url(url),
        message: "this build of meanwhile has no PostgreSQL support (feature `postgres`)".into(),
    })
}

fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name.into_owned()
    }
}

impl Runtime {
    pub(crate) fn from_inner(inner: Arc<Inner>) -> Runtime {
        Runtime { inner }
    }

    /// Opens a runtime on `home` with default settings; it runs until
    /// [`Runtime::shutdown`]. Must be called inside a Tokio runtime.
    pub async fn open(home: impl Into<PathBuf>) -> Result<Runtime> {
        Runtime::start(RuntimeConfig::new(home), std::future::pending()).await
    }

    /// Opens a runtime with `config`; it shuts down when `shutdown` completes (or
    /// [`Runtime::shutdown`] is called). Tasks that a previous process left running
    /// on this home are adopted, or recorded as they ended.
    pub async fn start(
        config: RuntimeConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Runtime> {
        let home = Home::new(config.home.clone());
        std::fs::create_dir_all(home.root().join("tasks"))
            .map_err(Error::io(format!("creating {}", home.root().display())))?;
        let lock = lock_home(&home)?;
        let store: Arc<dyn Store> = match &config.database_url {
            None => Arc::new(SqliteStore::open(&home.database())?),
            Some(url) => open_database(url).await?,
        };
        Runtime::start_with_store(config, store, lock, shutdown).await
    }

    async fn start_with_store(
        config: RuntimeConfig,
        store: Arc<dyn Store>,
        lock: File,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Runtime> {
        let home = Home::new(config.home.clone());
        let default_cwd = match &config.default_cwd {
            Some(c) => c.clone(),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        };
        let spawner = crate::spawner::Spawner::start(&home.spawner_pid_file())
            .map_err(Error::io("starting the process spawner"))?;
        let loops = Arc::new(crate::loops::Loops::default());
        let shutdown_tx = watch::channel(false).0;
        let (watcher, progress_rx) = OutputWatcher::start(loops.clone(), shutdown_tx.subscribe())
            .map_err(Error::io("starting the output watcher"))?;
        if let Some(n) = config.default_max_parallel {
            let change = QueueUpdate {
                max_parallel: Some(n),
                ..QueueUpdate::default()
            };
            store.set_queue("default", change).await?;
        }
        let journal = crate::journal::Journal::new(&home.journal());
        let (settles, settles_rx) = mpsc::unbounded_channel();
        let secrets = crate::sealed::SecretsKey::load_or_create(&home.secrets_key()).map_err(
            Error::io(format!("reading {}", home.secrets_key().display())),
        )?;
        // Values an earlier version stored in clear are sealed now, once.
        let key = secrets.clone();
        let sealed = store
            .seal_clear_secrets(Arc::new(move |v: &str| key.seal_clear(v)))
            .await?;
        if sealed > 0 {
            tracing::info!(
                "sealed the secrets of {sealed} specs stored in clear by an earlier version"
            );
        }
        let live = crate::live::Live::start(
            store.clone(),
            loops.clone(),
            shutdown_tx.subscribe(),
            secrets.clone(),
            config.clock.clone(),
        );
        // In place before recovery, which resumes the attempts they can resume.
        let executors: HashMap<_, _> = config.executors.iter().cloned().collect();
        let inner = Arc::new(Inner {
            store,
            live,
            writers: Mutex::default(),
            node: config.node.clone().unwrap_or_else(host_name),
            default_cwd,
            base_env: std::env::vars().collect(),
            home,
            secrets,
            config,
            wake: Notify::new(),
            schedules_changed: Notify::new(),
            budgets_changed: Notify::new(),
            active: Mutex::default(),
            settles,
            functions: Default::default(),
            executors: RwLock::new(executors),
            on_complete: RwLock::new(Vec::new()),
            on_error: RwLock::new(Vec::new()),
            watcher,
            spawner,
            journal: Mutex::new(journal),
            shutdown: shutdown_tx,
            shutdown_mode: std::sync::OnceLock::new(),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            metrics: crate::metrics::Counters::default(),
            loops,
            lock: Mutex::new(Some(lock)),
            handle: |inner| Arc::new(Runtime::from_inner(inner)),
        });
        crate::recover::recover(&inner).await?;
        crate::dispatch::start(&inner, settles_rx, progress_rx);
        crate::schedules::start(&inner);
        crate::budgets::start(&inner);
        crate::hooks::start(&inner);
        crate::alerts::start(&inner);
        crate::nodes::start(&inner);
        crate::fleet::start(&inner);
        crate::pool::start(&inner);
        let rt = Runtime {
            inner: inner.clone(),
        };
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            shutdown.await;
            if let Some(inner) = weak.upgrade() {
                Runtime::from_inner(inner).shutdown().await;
            }
        });
        Ok(rt)
    }

    /// Stops dispatching and, per [`ShutdownMode`], stops running tasks or leaves them
    /// for the next runtime. Returns once no attempt of this runtime is in flight.
    pub async fn shutdown(&self) {
        self.shutdown_with(self.inner.config.shutdown_mode).await
    }

    /// [`Runtime::shutdown`] with `mode` instead of the configured one, for a daemon
    /// told how to stop by its caller. The first shutdown's mode holds.
    pub async fn shutdown_with(&self, mode: ShutdownMode) {
        // Set before the signal goes out, so every attempt that sees the signal reads
        // this mode.
        let _ = self.inner.shutdown_mode.set(mode); // a later call does not change it
        // Each attempt sees the signal and, per the mode, stops its task or leaves it.
        self.inner.shutdown.send_replace(true);
        self.inner.wake.notify_one();
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                break;
            }
            idle.await;
        }
        // No attempt starts any more: the spawner and its pool go (a supervisor
        // still running a task left for the next runtime exits once it is recorded).
        self.inner.spawner.close();
        // A clean stop: the other nodes do not take this one's silence for a death.
        if let Err(e) = self
            .inner
            .store
            .node_stopped(&self.inner.node, self.inner.now())
            .await
        {
            self.inner
                .write_failed(format_args!("recording this node's stop"), &e);
        }
        // A clean stop leaves the store's files as small as they go (an empty WAL).
        if let Err(e) = self.inner.store.checkpoint().await {
            tracing::warn!("checkpointing the store at shutdown: {e}");
        }
        // The home is free for the next runtime as soon as this one is done with it.
        if let Ok(mut lock) = self.inner.lock.lock() {
            lock.take();
        }
    }

    /// True once shutdown has begun.
    pub fn is_shut_down(&self) -> bool {
        self.inner.is_shutting_down()
    }

    /// What this runtime's supervised loops did wrong since it started, by loop.
    pub fn loop_health(&self) -> Vec<meanwhile_core::http::LoopHealth> {
        let mut all = self.inner.loops.snapshot();
        all.extend(self.inner.store.background());
        all
    }

    /// The record of this runtime's supervised loops, for loops of the program
    /// around it (see [`crate::supervise`]), so that health checks see them too.
    pub fn loops(&self) -> Arc<crate::Loops> {
        self.inner.loops.clone()
    }

    /// Runs a loop of the program around the runtime under the same supervision as
    /// the runtime's own (see [`crate::supervise`]), until shutdown.
    pub fn spawn_loop<F, Fut>(&self, name: &'static str, f: F)
    where
        F: Fn(Runtime) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let rt = self.clone();
        crate::supervise(
            self.inner.loops.clone(),
            name,
            self.inner.shutdown.subscribe(),
            move || f(rt.clone()),
        );
    }

    /// Completes, with the reason, once the store can no longer write (its writer
    /// thread died). A process that embeds the runtime should then end, loudly and
    /// with a failing status, so that its supervisor starts it again: the next
    /// runtime adopts the running tasks.
    pub async fn broken(&self) -> String {
        self.inner
            .store
            .broken()
            .await
            .unwrap_or_else(|e| e.to_string())
    }

    /// This runtime's counters since it started (spawns, spawn latency, output).
    pub fn metrics(&self) -> crate::metrics::RuntimeMetrics {
        self.inner.metrics.snapshot()
    }

    /// Undelivered notifications per session.
    pub async fn notifications_pending(&self) -> Result<Vec<(String, u64)>> {
        Ok(self.inner.store.notifications_pending().await?)
    }

    /// The clock this runtime records and decides by (see [`crate::Clock`]).
    pub fn clock(&self) -> &Arc<crate::Clock> {
        &self.inner.config.clock
    }

    /// The time now, on this runtime's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.now()
    }

    /// The home this runtime works in.
    pub fn home(&self) -> &Home {
        &self.inner.home
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The nodes sharing this runtime's store, by name: their address, version,
    /// latest heartbeat, running tasks, and whether they are alive.
    pub async fn nodes(&self) -> Result<Vec<meanwhile_core::NodeInfo>> {
        crate::nodes::list(&self.inner).await
    }

    /// Forgets a node that is gone for good (its `node_silent` alert resolves); a
    /// node that is alive is refused.
    pub async fn remove_node(&self, name: &str) -> Result<()> {
        let nodes = self.nodes().await?;
        match nodes.iter().find(|n| n.name == name) {
            None => Err(Error::Store(StoreError::UnknownNode(name.to_string()))),
            Some(n) if n.alive => Err(Error::Store(StoreError::Conflict {
                field: "node",
                message: format!(
                    "node {name:?} is alive (its last heartbeat was at {}); stop it first",
                    n.heartbeat_at.rfc3339()
                ),
            })),
            Some(_) => Ok(self.inner.store.remove_node(name).await?),
        }
    }

    /// The store behind this runtime.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.is_shutting_down() {
            return Err(Error::ShutDown);
        }
        Ok(())
    }

    /// A valid spec this runtime can run from a submit: not a closure, and not an
    /// agent task without an executor for it.
    /// Fills what `spec` leaves out with its queue's defaults (see
    /// [`RuntimeConfig::queue_defaults`]).
    fn queue_defaults(&self, spec: &mut TaskSpec) {
        let queue = spec
            .queue
            .as_deref()
            .unwrap_or(meanwhile_core::DEFAULT_QUEUE);
        if let Some(d) = self.inner.config.queue_defaults.get(queue) {
            d.apply(spec);
        }
    }

    fn runnable(&self, v: ValidSpec) -> Result<ValidSpec> {
        match v.work() {
            w @ (meanwhile_core::Work::Agent(_) | meanwhile_core::Work::Llm(_))
                if !self.has_executor(w.kind()) =>
            {
                Err(Error::NoProvider {
                    kind: w.kind().as_str(),
                })
            }
            meanwhile_core::Work::Function => Err(Error::Invalid {
                field: "command",
                message: "give one of command, argv, agent and llm (closures go through submit_fn)"
                    .into(),
            }),
            _ => Ok(v),
        }
    }

    /// The task `existing` that an idempotency key named, when `sent` is the spec it
    /// was submitted with (a resend); a conflict naming it otherwise. Secrets are
    /// compared by value: each is sealed afresh, so their stored forms differ.
    async fn same_spec_or_conflict(&self, existing: TaskId, sent: &TaskSpec) -> Result<TaskId> {
        let task = self.inner.store.get(existing).await?;
        let opened = |spec: &TaskSpec| {
            let mut spec = spec.clone();
            for v in spec.secrets.values_mut() {
                if let Some(value) = self.inner.secrets.open(v.expose()) {
                    *v = meanwhile_core::Secret::new(value);
                }
            }
            spec
        };
        if opened(&task.spec) == opened(sent) {
            Ok(existing)
        } else {
            Err(Error::IdempotencyConflict {
                key: sent.idempotency_key.clone().unwrap_or_default(),
                existing,
            })
        }
    }
}

impl Runtime {
    /// A store error, naming the home when the disk holding it is full.
    fn disk_full(&self, e: StoreError) -> Error {
        if e.is_disk_full() {
            Error::DiskFull {
                home: self.inner.home.root().to_path_buf(),
                source: e,
            }
        } else {
            Error::Store(e)
        }
    }
}

/// A request the task's state does not allow (409).
fn conflict(message: String) -> Error {
    Error::Store(StoreError::Conflict {
        field: "id",
        message,
    })
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let code = match &e {
            Error::Remote(answer) => return answer.clone(),
            Error::Elsewhere { .. } => ErrorCode::Unavailable,
            Error::Confined(_) => ErrorCode::Confined,
            Error::IdempotencyConflict { .. } => ErrorCode::IdempotencyConflict,
            Error::NoProvider { .. } => ErrorCode::NoProvider,
            Error::Spec(_)
            | Error::Invalid { .. }
            | Error::NotApplicable { .. }
            | Error::Store(StoreError::Invalid { .. }) => ErrorCode::InvalidArgument,
            Error::Store(
                StoreError::UnknownTask(_)
                | StoreError::UnknownDependency(_)
                | StoreError::UnknownSchedule(_)
                | StoreError::UnknownSession(_)
                | StoreError::UnknownBudget(_)
                | StoreError::UnknownQueue { .. }
                | StoreError::UnknownNode(_)
                | StoreError::UnknownToken(_)
                | StoreError::UnknownAlert(_),
            ) => ErrorCode::NotFound,
            Error::Store(StoreError::Illegal { .. } | StoreError::Conflict { .. }) => {
                ErrorCode::Conflict
            }
            Error::ShutDown | Error::Store(StoreError::Closed) => ErrorCode::Unavailable,
            Error::DiskFull { .. } => ErrorCode::DiskFull,
            Error::Store(e) if e.is_disk_full() => ErrorCode::DiskFull,
            _ => ErrorCode::Internal,
        };
        // A conflict's message is a whole sentence about the task or the name; the
        // field it concerns travels apart, not as a prefix (`id: task 17 ...`).
        let message = match &e {
            Error::Store(StoreError::Conflict { message, .. }) => message.clone(),
            _ => e.to_string(),
        };
        ApiError {
            code,
            field: e.field().map(str::to_string),
            message,
        }
    }
}
