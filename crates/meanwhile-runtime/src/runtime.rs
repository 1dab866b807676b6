//! The `Runtime` handle and its public API.

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
        );
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
            executors: RwLock::new(HashMap::new()),
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
        // A clean stop: the other nodes do not take this one's silence for a death.
        if let Err(e) = self
            .inner
            .store
            .node_stopped(&self.inner.node, crate::now())
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

    /// Adds a schedule: from now on its task is submitted at each time it names (see
    /// [`ScheduleSpec`]). The first time is the next one after now.
    pub async fn add_schedule(&self, mut spec: ScheduleSpec) -> Result<ScheduleInfo> {
        self.check_open()?;
        // Its queue's defaults are kept with the schedule, as with a task.
        self.queue_defaults(&mut spec.task);
        self.inner.secrets.seal_all(&mut spec.task.secrets);
        // A schedule's tasks are started by meanwhile, not by a task: no task may
        // be handed control of them through a spec that names it.
        // (A value no task can have is left for validation to refuse, by name.)
        if spec.task.started_by.is_none_or(|id| id.0 > 0) {
            spec.task.started_by = None;
        }
        let valid = spec.validate()?;
        self.runnable(valid.spec().task.clone().validate()?)?;
        let now = crate::now();
        let Some(next) = valid.next_after(now, now) else {
            return Err(Error::Invalid {
                field: "cron",
                message: "the expression matches no time from now on".into(),
            });
        };
        let info = self
            .inner
            .store
            .add_schedule(valid.spec().clone(), Some(next), now)
            .await?;
        self.inner.schedules_changed.notify_one();
        Ok(info)
    }

    /// Sets the budget of a queue (creating the queue if needed): the tokens and
    /// the US dollars its tasks' model calls may use per window, and the alarms that
    /// fire `budget` alerts. With the same kind of window as before, what the current
    /// window used still counts. A budget raised above what was used resumes a queue
    /// it paused at once; one set below it pauses the queue.
    pub async fn set_budget(&self, queue: &str, spec: BudgetSpec) -> Result<BudgetInfo> {
        meanwhile_core::check_queue_name(queue)?;
        let spec = spec.validate()?;
        let b = self
            .inner
            .store
            .set_budget(queue, spec, crate::now())
            .await?;
        self.inner.budgets_changed.notify_one();
        self.inner.wake.notify_one();
        Ok(b)
    }

    /// Every budget, by queue, with its window and what was used in it.
    pub async fn budgets(&self) -> Result<Vec<BudgetInfo>> {
        Ok(self.inner.store.budgets().await?)
    }

    /// The budget of one queue.
    pub async fn budget(&self, queue: &str) -> Result<BudgetInfo> {
        Ok(self.inner.store.budget(queue).await?)
    }

    /// Removes the budget of a queue: its alerts resolve, and a queue it paused
    /// resumes.
    pub async fn remove_budget(&self, queue: &str) -> Result<()> {
        self.inner.store.remove_budget(queue, crate::now()).await?;
        self.inner.budgets_changed.notify_one();
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Alerts, newest first: the firing ones, or all (at most `limit`).
    pub async fn alerts(&self, all: bool, limit: u32) -> Result<Vec<meanwhile_core::Alert>> {
        Ok(self.inner.store.alerts(all, limit).await?)
    }

    /// Acknowledges firing alert `id` for `hold` (until it resolves without one):
    /// the sinks hear no reminder of it meanwhile, and health does not count it. The
    /// audit trail records who did it.
    pub async fn ack_alert(
        &self,
        id: i64,
        hold: Option<Duration>,
    ) -> Result<meanwhile_core::Alert> {
        if hold.is_some_and(|d| d.is_zero()) {
            return Err(Error::Invalid {
                field: "for",
                message: "must be longer than 0s (leave it out to hold until the alert resolves)"
                    .into(),
            });
        }
        let now = crate::now();
        let until = hold.map(|d| now.plus(d));
        Ok(self.inner.store.ack_alert(id, until, now).await?)
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        Ok(self.inner.store.schedules().await?)
    }

    /// One schedule.
    pub async fn schedule(&self, name: &str) -> Result<ScheduleInfo> {
        Ok(self.inner.store.schedule(name).await?)
    }

    /// Removes a schedule; the tasks it submitted stay.
    pub async fn remove_schedule(&self, name: &str) -> Result<()> {
        self.inner.store.remove_schedule(name).await?;
        self.inner.schedules_changed.notify_one();
        Ok(())
    }

    /// Pauses a schedule (it fires nothing), or resumes it from the next time after
    /// now; the times passed while paused are not missed, they are skipped.
    pub async fn pause_schedule(&self, name: &str, paused: bool) -> Result<ScheduleInfo> {
        let s = self.inner.store.schedule(name).await?;
        let next = if paused {
            None
        } else {
            s.spec.validate()?.next_after(crate::now(), s.created_at)
        };
        let info = self.inner.store.pause_schedule(name, paused, next).await?;
        self.inner.schedules_changed.notify_one();
        Ok(info)
    }

    /// Fires a schedule now, by hand: its task is submitted at once, and its next
    /// time stays as it was. Returns the task's id.
    pub async fn run_schedule(&self, name: &str) -> Result<TaskId> {
        self.check_open()?;
        let s = self.inner.store.schedule(name).await?;
        let valid = s.spec.validate()?;
        let now = crate::now();
        let spec = self.runnable(valid.task_for(now, true).validate()?)?;
        let fired = self
            .inner
            .store
            .fire_schedule(ScheduleFiring {
                name: name.to_string(),
                due: None,
                fire: Some(now),
                task: Some(NewTask::new(spec, now)),
                missed: 0,
                late: false,
                next: None,
            })
            .await?;
        self.inner.wake.notify_one();
        match fired.and_then(|f| f.task) {
            Some(t) => Ok(t.id()),
            None => Err(Error::Store(StoreError::UnknownSchedule(name.to_string()))),
        }
    }

    /// What a shell task submitted now would trip over at its start, said at once:
    /// `command not found: NAME` when its program is on no directory of its `PATH`.
    pub fn start_warning(&self, spec: &TaskSpec) -> Option<String> {
        crate::attempt::missing_program(&self.inner.base_env, &self.inner.default_cwd, spec)
    }

    /// Submits a task; returns its id at once (the id of the earlier task when the
    /// idempotency key is known).
    pub async fn submit(&self, spec: TaskSpec) -> Result<TaskId> {
        let mut r = self.submit_batch(vec![spec]).await?;
        r.pop().unwrap_or(Err(Error::ShutDown))
    }

    /// Submits many tasks in one transaction; one result per spec, in order. A
    /// submit from inside a running task (see [`Runtime::task_of_process`]) is
    /// recorded as started by it and confined at least as tightly as it is.
    pub async fn submit_batch(&self, specs: Vec<TaskSpec>) -> Result<Vec<Result<TaskId>>> {
        self.check_open()?;
        let now = crate::now();
        let caller = calling_task();
        let parent = match caller {
            Some(p) => Some(self.inner.store.get(p).await?),
            None => None,
        };
        let mut results: Vec<Option<Result<TaskId>>> = Vec::with_capacity(specs.len());
        let mut valid = Vec::new();
        let mut slots = Vec::new();
        let mut keyed: Vec<Option<TaskSpec>> = Vec::new();
        for mut spec in specs {
            self.queue_defaults(&mut spec);
            self.inner.secrets.seal_all(&mut spec.secrets);
            // A value no task can have is left for validation to refuse, by name.
            if spec.started_by.is_none_or(|id| id.0 > 0) {
                spec.started_by = caller;
            }
            if let Some(parent) = &parent
                && let Err(why) = spec.confine_within(&parent.spec, &self.inner.default_cwd)
            {
                results.push(Some(Err(Error::Confined(format!(
                    "refused: task {} is confined, and {why}",
                    parent.id
                )))));
                continue;
            }
            match spec
                .validate()
                .map_err(Error::from)
                .and_then(|v| self.runnable(v))
            {
                Ok(v) => {
                    slots.push(results.len());
                    results.push(None);
                    // Kept to tell a resend from another spec under the same key.
                    keyed.push(v.spec().idempotency_key.is_some().then(|| v.spec().clone()));
                    valid.push(NewTask::new(v, now));
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !valid.is_empty() {
            let stored = self
                .inner
                .store
                .submit(valid)
                .await
                .map_err(|e| self.disk_full(e))?;
            for ((slot, r), sent) in slots.into_iter().zip(stored).zip(keyed) {
                results[slot] = Some(match (r, sent) {
                    (Ok(Submitted::Existing(id)), Some(sent)) => {
                        self.same_spec_or_conflict(id, &sent).await
                    }
                    (r, _) => r.map(Submitted::id).map_err(Error::from),
                });
            }
            self.inner.wake.notify_one();
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::ShutDown)))
            .collect())
    }

    /// Runs an async closure as a background task with the full lifecycle (queue,
    /// timeout, retries, stop, wait, notifications). `spec` gives everything but the
    /// command; the closure is called once per attempt.
    pub async fn submit_fn<F, Fut, E>(&self, spec: TaskSpec, f: F) -> Result<TaskId>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let mut r = self.submit_fn_batch(vec![(spec, f)]).await?;
        r.pop().ok_or(Error::ShutDown)?
    }

    /// Submits many function tasks in one commit; one result per item, in order (an
    /// invalid spec fails alone, naming its field). Concurrent callers do not wait
    /// for each other: no lock is held across the commit.
    pub async fn submit_fn_batch<F, Fut, E>(
        &self,
        items: Vec<(TaskSpec, F)>,
    ) -> Result<Vec<Result<TaskId>>>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.check_open()?;
        let mut results: Vec<Option<Result<TaskId>>> = Vec::with_capacity(items.len());
        let mut valid = Vec::new();
        let mut fns = Vec::new();
        let now = crate::now();
        for (mut spec, f) in items {
            self.inner.secrets.seal_all(&mut spec.secrets);
            let v = match spec.validate() {
                Ok(v) if matches!(v.work(), meanwhile_core::Work::Function) => v,
                Ok(_) => {
                    results.push(Some(Err(Error::Invalid {
                        field: "command",
                        message: "a function task's spec must not name a command, argv or agent"
                            .into(),
                    })));
                    continue;
                }
                Err(e) => {
                    results.push(Some(Err(e.into())));
                    continue;
                }
            };
            let f: TaskFn = Arc::new(move |ctx: TaskContext| -> TaskFuture {
                let fut = f(ctx);
                Box::pin(async move { fut.await.map(|()| None).map_err(|e| e.to_string()) })
            });
            results.push(None);
            // A closure lives in this process: in a fleet, no other node may claim it.
            valid.push(NewTask {
                spec: v,
                now,
                owner: self
                    .inner
                    .store
                    .is_shared()
                    .then(|| self.inner.node.clone()),
            });
            fns.push(f);
        }
        if valid.is_empty() {
            return Ok(results.into_iter().flatten().collect());
        }
        // Until the closures are registered, an attempt that claims one of these
        // tasks waits for them instead of calling the closure lost.
        let submitting = self.inner.functions.submitting();
        let stored = self.inner.store.submit(valid).await?;
        let mut register = Vec::new();
        let mut stored = stored.into_iter().zip(fns);
        for slot in results.iter_mut().filter(|r| r.is_none()) {
            let Some((r, f)) = stored.next() else {
                *slot = Some(Err(Error::ShutDown));
                continue;
            };
            *slot = Some(match r {
                Ok(Submitted::Created(id)) => {
                    register.push((id, f));
                    Ok(id)
                }
                Ok(Submitted::Existing(id)) => Ok(id),
                Err(e) => Err(e.into()),
            });
        }
        self.inner.functions.register(register);
        drop(submitting);
        self.inner.wake.notify_one();
        Ok(results.into_iter().flatten().collect())
    }

    /// Registers the executor for a kind of in-process task (the agent registers
    /// `agent`); the dispatcher then claims tasks of that kind.
    pub fn register_executor(&self, kind: TaskKind, executor: Arc<dyn Executor>) {
        if let Ok(mut e) = self.inner.executors.write() {
            e.insert(kind, executor);
        }
        self.inner.wake.notify_one();
    }

    /// True when an executor for `kind` is registered on this runtime.
    pub fn has_executor(&self, kind: TaskKind) -> bool {
        self.inner
            .executors
            .read()
            .map(|e| e.contains_key(&kind))
            .unwrap_or(false)
    }

    /// Calls `hook` after each task that succeeds, once its end is committed.
    pub fn on_complete(&self, hook: impl Fn(&TaskRecord) + Send + Sync + 'static) {
        if let Ok(mut h) = self.inner.on_complete.write() {
            h.push(Arc::new(hook));
        }
    }

    /// Calls `hook` after each task that fails, times out, is quarantined or lost.
    pub fn on_error(&self, hook: impl Fn(&TaskRecord) + Send + Sync + 'static) {
        if let Ok(mut h) = self.inner.on_error.write() {
            h.push(Arc::new(hook));
        }
    }

    /// One task.
    pub async fn get(&self, id: TaskId) -> Result<TaskRecord> {
        Ok(self.inner.store.get(id).await?)
    }

    /// A page of tasks, newest first. `limit` is at most
    /// [`MAX_LIST_LIMIT`](meanwhile_core::MAX_LIST_LIMIT).
    pub async fn list(&self, filter: ListFilter) -> Result<Page> {
        filter.check()?;
        Ok(self.inner.store.list(filter).await?)
    }

    /// A task's attempts, oldest first.
    pub async fn attempts(&self, id: TaskId) -> Result<Vec<Attempt>> {
        Ok(self.inner.store.attempts(id).await?)
    }

    /// Stops a task: a pending one is cancelled and never starts; a running one gets
    /// SIGTERM, the grace period and SIGKILL (or SIGKILL at once with `Force`), and
    /// ends `cancelled`. Returns the task as it is once the stop is under way.
    pub async fn stop(&self, id: TaskId, mode: StopMode) -> Result<TaskRecord> {
        self.check_started_by_caller(id, "stop").await?;
        let force = mode == StopMode::Force;
        match self
            .inner
            .store
            .request_stop(id, crate::now(), force)
            .await?
        {
            StopOutcome::Cancelled(fin) => {
                self.inner.functions.remove(id);
                for t in std::iter::once(&fin.task).chain(&fin.cascaded) {
                    self.inner.run_hooks(t);
                }
                Ok(fin.task)
            }
            StopOutcome::Stopping(task) => {
                // A task running on another node is stopped by that node, which
                // hears of the `stop_requested` event (see `fleet`).
                if task.node.as_deref() == Some(self.inner.node.as_str()) {
                    self.inner.registry().stop(id, task.attempts, mode);
                }
                Ok(task)
            }
        }
    }

    /// Puts a finished task back to pending with a fresh retry budget.
    pub async fn retry(&self, id: TaskId) -> Result<TaskRecord> {
        self.check_started_by_caller(id, "retry").await?;
        let t = self.inner.store.retry(id, crate::now()).await?;
        self.inner.wake.notify_one();
        Ok(t)
    }

    /// Removes finished tasks and their logs.
    pub async fn remove(&self, ids: Vec<TaskId>) -> Result<Vec<TaskId>> {
        for &id in &ids {
            self.check_started_by_caller(id, "remove").await?;
        }
        let removed = self.inner.store.remove(ids).await?;
        self.remove_dirs(&removed);
        Ok(removed)
    }

    /// Removes finished tasks by age or count, with their logs.
    pub async fn clean(&self, req: CleanRequest) -> Result<Vec<TaskId>> {
        let removed = self.inner.store.clean(req).await?;
        self.remove_dirs(&removed);
        Ok(removed)
    }

    /// Removes old events and what removed tasks left behind, one bounded slice per
    /// call (see [`meanwhile_store::PruneRequest`]).
    pub async fn prune(
        &self,
        req: meanwhile_store::PruneRequest,
    ) -> Result<meanwhile_store::Pruned> {
        Ok(self.inner.store.prune(req).await?)
    }

    /// A page of the audit trail, oldest first.
    pub async fn audit(&self, filter: AuditFilter) -> Result<AuditPage> {
        Ok(self.inner.store.audit(filter).await?)
    }

    /// Checks the audit trail's hash chain and its checkpoint (signed with `key`).
    pub async fn verify_audit(&self, key: AuditKey) -> Result<AuditVerdict> {
        Ok(self.inner.store.verify_audit(key).await?)
    }

    /// Removes audit records committed before `before`, one bounded slice per
    /// call, behind a checkpoint signed with `key`; returns how many.
    pub async fn prune_audit(&self, before: Timestamp, key: AuditKey) -> Result<u64> {
        Ok(self.inner.store.prune_audit(before, key).await?)
    }

    /// The named API tokens with their hashes.
    pub async fn tokens(&self) -> Result<Vec<StoredToken>> {
        Ok(self.inner.store.tokens().await?)
    }

    /// Adds a named API token by its hash.
    pub async fn add_token(&self, name: &str, hash: &str) -> Result<TokenInfo> {
        meanwhile_core::check_token_name(name).map_err(|e| Error::Invalid {
            field: "name",
            message: e.message,
        })?;
        Ok(self.inner.store.add_token(name, hash, crate::now()).await?)
    }

    /// Removes a named API token.
    pub async fn remove_token(&self, name: &str) -> Result<()> {
        Ok(self.inner.store.remove_token(name).await?)
    }

    /// The running task whose process tree `pid` belongs to, if any: the walk up
    /// its parents meets the task's main process, or its supervisor (the
    /// subreaper that orphans of the tree are handed to). What a daemon asks of
    /// the peer of its socket, so that a request from inside a task acts with
    /// that task's confinement.
    pub fn task_of_process(&self, pid: i32) -> Option<TaskId> {
        let mut roots = HashMap::new();
        for (id, pgid) in self.inner.registry().process_groups() {
            roots.insert(pgid, id);
            if let Some(supervisor) = crate::procfs::parent_of(pgid) {
                roots.insert(supervisor, id);
            }
        }
        let mut at = pid;
        // A chain of parents ends at pid 1; the bound only guards against a loop
        // seen through pids reused while walking.
        for _ in 0..4096 {
            if let Some(&id) = roots.get(&at) {
                return Some(id);
            }
            match crate::procfs::parent_of(at) {
                Some(p) if p > 1 => at = p,
                _ => return None,
            }
        }
        None
    }

    /// Refuses a change to task `id` asked from inside a task that did not start it.
    async fn check_started_by_caller(&self, id: TaskId, what: &str) -> Result<()> {
        let Some(caller) = calling_task() else {
            return Ok(());
        };
        if self.inner.store.get(id).await?.spec.started_by == Some(caller) {
            return Ok(());
        }
        Err(Error::Confined(format!(
            "refused: from inside task {caller}, only the tasks it started may be asked to {what}, and task {id} is not one of them"
        )))
    }

    /// A [`Backend`] over this runtime whose changes are recorded in the audit
    /// trail as made by `actor` (what a server does for the client it serves).
    pub fn acting_as(&self, actor: Actor) -> Acting {
        Acting {
            rt: self.clone(),
            actor,
        }
    }

    fn remove_dirs(&self, ids: &[TaskId]) {
        for id in ids {
            let dir = self.inner.home.task_dir(*id);
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
        }
    }

    /// Removes a queue that has no pending or running task and no budget (see
    /// [`meanwhile_store::Store::remove_queue`]).
    pub async fn remove_queue(&self, name: &str) -> Result<()> {
        self.check_open()?;
        meanwhile_core::check_queue_name(name)?;
        self.inner.store.remove_queue(name).await?;
        Ok(())
    }

    /// All queues with their counts.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        Ok(self.inner.store.queues().await?)
    }

    /// Creates or changes a queue: its parallelism, paused or not, its limit per
    /// concurrency key and its rate limit (the fields of `change` that are given; a
    /// limit given as `Some(None)` is removed). Resuming a queue whose budget is
    /// spent is refused (a conflict on `paused`): raise or remove the budget, or wait
    /// for its next window.
    pub async fn set_queue(&self, name: &str, change: QueueUpdate) -> Result<QueueInfo> {
        meanwhile_core::check_queue_name(name)?;
        let q = self.inner.store.set_queue(name, change).await?;
        self.inner.wake.notify_one();
        Ok(q)
    }

    /// Records progress for a running task (what a task does with the
    /// `MEANWHILE_TASK_ID` it finds in its environment).
    pub async fn report_progress(
        &self,
        id: TaskId,
        percent: Option<f32>,
        message: impl Into<String>,
    ) -> Result<()> {
        let p = Progress::new(percent.map(f64::from), message, crate::now())?;
        Ok(self.inner.write_progress(id, p).await?)
    }

    /// Returns the session's undelivered notifications, oldest first, and marks them
    /// delivered: each is returned exactly once, also across restarts.
    pub async fn drain_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        meanwhile_core::check_notification_limit(limit)?;
        Ok(self.inner.store.drain_notifications(session, limit).await?)
    }

    /// The session's undelivered notifications, without marking them.
    pub async fn peek_notifications(&self, session: &str, limit: u32) -> Result<Vec<Notification>> {
        meanwhile_core::check_notification_limit(limit)?;
        Ok(self.inner.store.peek_notifications(session, limit).await?)
    }

    /// Events as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.store.subscribe()
    }

    /// Events after `seq` from the durable log.
    pub async fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<Event>> {
        Ok(self.inner.store.events_after(seq, limit).await?)
    }

    /// Waits until any or all of `ids` have ended, or `timeout` passes.
    pub async fn wait(
        &self,
        ids: &[TaskId],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome> {
        if ids.is_empty() {
            return Err(Error::Invalid {
                field: "ids",
                message: "name at least one task to wait for".into(),
            });
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        // Subscribe before reading, so no end between the read and the wait is missed.
        let mut events = self.subscribe();
        let mut tasks = Vec::with_capacity(ids.len());
        for id in ids {
            tasks.push(self.get(*id).await?);
        }
        let wanted: std::collections::HashSet<TaskId> = ids.iter().copied().collect();
        loop {
            let done = match mode {
                WaitMode::Any => tasks.iter().any(|t| t.state.is_terminal()),
                WaitMode::All => tasks.iter().all(|t| t.state.is_terminal()),
            };
            if done {
                return Ok(WaitOutcome {
                    tasks,
                    timed_out: false,
                });
            }
            // Re-read only the tasks an event names (all of them if events were lost).
            let next = async {
                loop {
                    match events.recv().await {
                        Ok(e) if matches!(e.kind, EventKind::Finished | EventKind::Retried) => {
                            if let Some(id) = e.task_id.filter(|id| wanted.contains(id)) {
                                return Some(id);
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return None,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            let changed = match deadline {
                Some(d) => match tokio::time::timeout_at(d, next).await {
                    Ok(c) => c,
                    Err(_) => {
                        return Ok(WaitOutcome {
                            tasks,
                            timed_out: true,
                        });
                    }
                },
                None => next.await,
            };
            for (i, id) in ids.iter().enumerate() {
                if changed.is_none_or(|c| c == *id) {
                    tasks[i] = self.get(*id).await?;
                }
            }
        }
    }

    /// Reads a task's output as `query` says; see [`OutputQuery`]. In a fleet, the
    /// output of a task whose last attempt ran on another node is read through that
    /// node (see [`RuntimeConfig::remote_output`]).
    pub async fn read_output(&self, id: TaskId, query: OutputQuery) -> Result<OutputChunk> {
        query.check()?;
        compile(query.grep.as_deref(), "grep")?;
        if let Some(node) = self.output_node(id).await? {
            return self.read_remote(id, &node, query).await;
        }
        self.read_output_here(id, query).await
    }

    /// Sends input to a running task started with `stdin` or `tty` (see
    /// [`TaskInput`]): the text, then the keys, then the end of input; and resizes its
    /// terminal. Keys are the bytes a terminal sends for them; on a pipe, `enter` is
    /// a newline and `ctrl-d` ends the input, and keys that only mean something to a
    /// terminal are refused. In a fleet, input to a task running on another node goes
    /// through that node.
    pub async fn send_input(&self, id: TaskId, input: TaskInput) -> Result<InputSent> {
        self.check_started_by_caller(id, "send input to").await?;
        input.check()?;
        let task = self.get(id).await?;
        let interactive = task.spec.stdin || task.spec.tty.is_some();
        if !interactive {
            return Err(conflict(format!(
                "task {id} takes no input: its stdin is /dev/null; start it with --stdin (a pipe) or --tty (a terminal) to send it input"
            )));
        }
        if task.state != TaskState::Running {
            return Err(conflict(format!(
                "task {id} {}; only a running task takes input",
                task.state.in_words()
            )));
        }
        let node = task.node.clone().unwrap_or_default();
        if node != self.inner.node {
            let address = self.node_address(id, &node, "the input of").await?;
            let Some(remote) = &self.inner.config.remote_output else {
                return Err(Error::Elsewhere {
                    what: "the input of",
                    task: id,
                    node,
                    why: format!("is not asked from here; ask it at {address}"),
                });
            };
            return match remote.input(&address, id, &input).await {
                Ok(sent) => Ok(sent),
                Err(crate::RemoteError::Refused(answer)) => Err(Error::Remote(answer)),
                Err(crate::RemoteError::Unreachable(why)) => Err(Error::Elsewhere {
                    what: "the input of",
                    task: id,
                    node,
                    why: format!("does not answer at {address}: {why}"),
                }),
            };
        }
        if let Some(writer) = &input.writer {
            let mut writers = self.inner.writers.lock().unwrap_or_else(|e| e.into_inner());
            writers.retain(|_, (_, at)| at.elapsed() < WRITER_LEASE);
            match writers.get(&id) {
                Some((other, _)) if other != writer => {
                    return Err(conflict(format!(
                        "task {id} has another terminal attached for writing; watch it read-only until that one detaches"
                    )));
                }
                _ if input.detach => {
                    writers.remove(&id);
                }
                _ => {
                    writers.insert(id, (writer.clone(), std::time::Instant::now()));
                }
            }
        }
        let tty = task.spec.tty.is_some();
        let mut bytes: Vec<u8> = input.text.clone().unwrap_or_default().into_bytes();
        let mut eof = input.eof;
        for key in &input.keys {
            match (tty, key) {
                (true, k) => bytes.extend_from_slice(k.terminal_bytes()),
                (false, Key::Enter) => bytes.push(b'\n'),
                (false, Key::CtrlD) => eof = true,
                (false, Key::Tab) => bytes.push(b'\t'),
                // The others are escape sequences or control bytes that only a
                // terminal's line discipline or a full-screen program reads: written
                // into a pipe they would reach the program as garbage input.
                (false, k) => {
                    let instead = if matches!(k, Key::CtrlC | Key::CtrlZ) {
                        format!("stop it with `meanwhile stop {id}`, or start it with --tty")
                    } else {
                        "on a pipe only enter, tab and ctrl-d mean something; start it with --tty for the others".to_string()
                    };
                    return Err(Error::NotApplicable {
                        field: "keys",
                        message: format!(
                            "{} is a key of a terminal, and task {id} reads a pipe (--stdin); {instead}",
                            k.name()
                        ),
                    });
                }
            }
        }
        if input.resize.is_some() && !tty {
            return Err(Error::NotApplicable {
                field: "resize",
                message: format!("task {id} has no terminal to resize: it reads a pipe (--stdin)"),
            });
        }
        let socket = self.inner.home.io_socket(id, task.attempts);
        let failed = |e: crate::input::InputError| match e {
            crate::input::InputError::Gone => conflict(format!(
                "task {id}'s input is closed: its processes have ended"
            )),
            crate::input::InputError::Refused(why) => conflict(format!("task {id}: {why}")),
            crate::input::InputError::Io(e) => Error::Io {
                what: format!("sending input to task {id}"),
                source: e,
            },
        };
        self.await_io_socket(id, task.attempts, &socket)
            .await
            .map_err(failed)?;
        if !bytes.is_empty() {
            crate::input::request(&socket, crate::interact::OP_WRITE, &bytes)
                .await
                .map_err(failed)?;
        }
        if let Some(size) = input.resize {
            let mut b = size.cols.to_le_bytes().to_vec();
            b.extend_from_slice(&size.rows.to_le_bytes());
            crate::input::request(&socket, crate::interact::OP_RESIZE, &b)
                .await
                .map_err(failed)?;
        }
        if eof {
            crate::input::request(&socket, crate::interact::OP_EOF, b"")
                .await
                .map_err(failed)?;
        }
        Ok(InputSent {
            id,
            bytes: bytes.len() as u64,
            eof,
        })
    }

    /// Waits for the input socket of attempt `attempt` of `id` to be bound: a task
    /// is running from its claim, a moment before its supervisor has bound the
    /// socket. Gives up once the task has left that attempt, or after the time an
    /// answer may take.
    async fn await_io_socket(
        &self,
        id: TaskId,
        attempt: u32,
        socket: &std::path::Path,
    ) -> std::result::Result<(), crate::input::InputError> {
        let start = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        while !socket.exists() {
            let still = self
                .get(id)
                .await
                .is_ok_and(|t| t.state == TaskState::Running && t.attempts == attempt);
            if !still || start.elapsed() > crate::input::ANSWER_WITHIN {
                return Err(crate::input::InputError::Gone);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The node keeping the output of `id`, when it is another one.
    async fn output_node(&self, id: TaskId) -> Result<Option<String>> {
        if !self.inner.store.is_shared() {
            return Ok(None);
        }
        let task = self.get(id).await?;
        let node = match task.node {
            Some(n) => Some(n),
            None if task.attempts > 0 => self.attempts(id).await?.pop().map(|a| a.node),
            None => None,
        };
        Ok(node.filter(|n| *n != self.inner.node))
    }

    /// The API address of `node`, another node of the fleet that must be alive.
    async fn node_address(&self, id: TaskId, node: &str, what: &'static str) -> Result<String> {
        let elsewhere = |why: String| Error::Elsewhere {
            what,
            task: id,
            node: node.to_string(),
            why,
        };
        let nodes = self.nodes().await?;
        let Some(info) = nodes.iter().find(|n| n.name == node) else {
            return Err(elsewhere("is gone (it was forgotten)".into()));
        };
        if !info.alive {
            return Err(elsewhere(format!(
                "is gone (its last heartbeat was at {})",
                info.heartbeat_at.rfc3339()
            )));
        }
        match &info.address {
            Some(address) => Ok(address.clone()),
            None => Err(elsewhere(
                "has no API address for other nodes (start it with --listen, or set node_address)"
                    .into(),
            )),
        }
    }

    async fn read_remote(&self, id: TaskId, node: &str, query: OutputQuery) -> Result<OutputChunk> {
        let address = self.node_address(id, node, "the output of").await?;
        let elsewhere = |why: String| Error::Elsewhere {
            what: "the output of",
            task: id,
            node: node.to_string(),
            why,
        };
        let Some(remote) = &self.inner.config.remote_output else {
            return Err(elsewhere(format!(
                "is not asked from here; ask it at {address}"
            )));
        };
        match remote.read(&address, id, &query).await {
            Ok(chunk) => Ok(chunk),
            Err(crate::RemoteError::Refused(answer)) => Err(Error::Remote(answer)),
            Err(crate::RemoteError::Unreachable(why)) => {
                Err(elsewhere(format!("does not answer at {address}: {why}")))
            }
        }
    }

    /// Reads a task's output from this node's own log, never through another node
    /// (what a node asked by another does).
    pub async fn read_output_here(&self, id: TaskId, query: OutputQuery) -> Result<OutputChunk> {
        query.check()?;
        let grep = compile(query.grep.as_deref(), "grep")?;
        let wait_re = match &query.wait {
            Some(WaitFor::Match(re)) => compile(Some(re), "wait")?,
            _ => None,
        };
        let path = self.inner.home.log(id);
        let since = query.since.unwrap_or(0);
        let mut matched = None;
        let mut timed_out = false;
        // Subscribe before reading the state, and take the output watch before
        // measuring the log, so that an end or a write in between still wakes us.
        let mut events = self.subscribe();
        let mut task = self.get(id).await?;
        if let Some(wait) = &query.wait {
            let timeout = query.timeout.unwrap_or(Duration::from_secs(30));
            let deadline = tokio::time::Instant::now() + timeout;
            let mut scanned = since;
            let mut _following = None;
            loop {
                let mut output = self.output_watch(id).await;
                // Woken by the kernel at each write while waiting, not only at the
                // watcher's next regular look.
                _following = self.inner.watcher.follow(id);
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let ended = task.state.is_terminal();
                let met = match wait {
                    WaitFor::Exit => ended,
                    WaitFor::Output => size > since || ended,
                    WaitFor::Match(_) => {
                        if let Some(re) = &wait_re {
                            let p = path.clone();
                            let re2 = re.clone();
                            let mask = output::Mask::of(&task, &self.inner.secrets);
                            let (found, upto) = tokio::task::spawn_blocking(move || {
                                output::find_match(&p, scanned, &re2, ended, &mask)
                            })
                            .await
                            .map_err(|_| Error::ShutDown)?
                            .map_err(Error::io("reading the output log"))?;
                            scanned = upto;
                            matched = found;
                        }
                        matched.is_some() || ended
                    }
                    WaitFor::Listening => !task.listening.is_empty() || ended,
                    WaitFor::Input => task.waiting_for_input || ended,
                };
                if met {
                    break;
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    timed_out = true;
                    break;
                }
                // A task already running whose attempt is not registered yet (its
                // start event came before this wait subscribed) sends nothing more
                // until it ends: look again in a moment instead.
                let unregistered = output.is_none() && task.state == TaskState::Running;
                tokio::select! {
                    _ = wait_for_event(&mut events, Some(deadline), |e| e.task_id == Some(id)) => {}
                    _ = async {
                        match output.as_mut() {
                            Some(rx) => { let _ = rx.changed().await; }
                            None if unregistered => tokio::time::sleep(REGISTER_PAUSE).await,
                            None => std::future::pending::<()>().await,
                        }
                    } => {}
                }
                task = self.get(id).await?;
            }
        }
        let reader_query = (since, query.tail, query.max_bytes, query.strip_ansi);
        let mask = output::Mask::of(&task, &self.inner.secrets);
        let slice = tokio::task::spawn_blocking(move || {
            let (since, tail, max_bytes, strip_ansi) = reader_query;
            Reader {
                since,
                tail,
                grep: grep.as_ref(),
                max_bytes,
                strip_ansi,
                mask: &mask,
            }
            .read(&path)
        })
        .await
        .map_err(|_| Error::ShutDown)?
        .map_err(Error::io("reading the output log"))?;
        Ok(OutputChunk {
            id,
            text: String::from_utf8_lossy(&slice.text).into_owned(),
            start: slice.start,
            cursor: slice.cursor,
            total_bytes: slice.total,
            elided_bytes: slice.elided,
            dropped_bytes: slice.dropped,
            skipped_lines: slice.skipped_lines,
            more: slice.more,
            state: task.state,
            exit_code: task.exit_code,
            matched,
            timed_out,
            listening: task.listening,
            waiting_for_input: task.waiting_for_input,
            prompt: task.prompt,
        })
    }

    /// A watch of the log size of a task running on this node.
    async fn output_watch(&self, id: TaskId) -> Option<watch::Receiver<u64>> {
        self.inner.registry().get(id).map(|a| a.output.clone())
    }
}

/// How long a wait on a running task's output pauses before it looks for the
/// task's attempt again, when the attempt was not registered yet.
const REGISTER_PAUSE: Duration = Duration::from_millis(20);

fn compile(re: Option<&str>, field: &'static str) -> Result<Option<Regex>> {
    match re {
        None => Ok(None),
        Some(s) => Regex::new(s).map(Some).map_err(|e| Error::Invalid {
            field,
            message: format!("not a valid regex: {e}"),
        }),
    }
}

/// Waits for an event that satisfies `pred` (or a lagged stream, which may have hidden
/// one); false when the deadline passed first.
async fn wait_for_event(
    rx: &mut broadcast::Receiver<Event>,
    deadline: Option<tokio::time::Instant>,
    pred: impl Fn(&Event) -> bool,
) -> bool {
    let next = async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return true,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Err(broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    match deadline {
        Some(d) => tokio::time::timeout_at(d, next).await.unwrap_or(false),
        None => next.await,
    }
}

/// How long an attached terminal holds a task's input without a request.
const WRITER_LEASE: Duration = Duration::from_secs(10);

/// The task from inside which the request being served was made, as the server
/// named its actor.
fn calling_task() -> Option<TaskId> {
    match meanwhile_store::current_actor() {
        Actor::Socket { task, .. } => task,
        _ => None,
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

impl Backend for Runtime {
    fn submit(&self, spec: TaskSpec) -> BackendFuture<'_, TaskId> {
        Box::pin(async move { Ok(Runtime::submit(self, spec).await?) })
    }

    fn get(&self, id: TaskId) -> BackendFuture<'_, TaskRecord> {
        Box::pin(async move { Ok(Runtime::get(self, id).await?) })
    }

    fn list(&self, filter: ListFilter) -> BackendFuture<'_, Page> {
        Box::pin(async move { Ok(Runtime::list(self, filter).await?) })
    }

    fn read_output(&self, id: TaskId, query: OutputQuery) -> BackendFuture<'_, OutputChunk> {
        Box::pin(async move { Ok(Runtime::read_output(self, id, query).await?) })
    }

    fn stop(&self, id: TaskId, mode: StopMode) -> BackendFuture<'_, TaskRecord> {
        Box::pin(async move { Ok(Runtime::stop(self, id, mode).await?) })
    }

    fn send_input(&self, id: TaskId, input: TaskInput) -> BackendFuture<'_, InputSent> {
        Box::pin(async move { Ok(Runtime::send_input(self, id, input).await?) })
    }

    fn wait(
        &self,
        ids: Vec<TaskId>,
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> BackendFuture<'_, WaitOutcome> {
        Box::pin(async move { Ok(Runtime::wait(self, &ids, mode, timeout).await?) })
    }

    fn drain_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        let session = session.to_string();
        Box::pin(async move { Ok(Runtime::drain_notifications(self, &session, limit).await?) })
    }

    fn peek_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        let session = session.to_string();
        Box::pin(async move { Ok(Runtime::peek_notifications(self, &session, limit).await?) })
    }

    fn acting_as(&self, actor: Actor) -> Option<Arc<dyn Backend>> {
        Some(Arc::new(Runtime::acting_as(self, actor)))
    }
}

/// A runtime serving one actor: its [`Backend`] calls are recorded in the audit
/// trail as that actor's (see [`Runtime::acting_as`]).
#[derive(Clone)]
pub struct Acting {
    rt: Runtime,
    actor: Actor,
}

impl Acting {
    fn run<'a, T: Send + 'a>(
        &'a self,
        f: impl Future<Output = std::result::Result<T, ApiError>> + Send + 'a,
    ) -> BackendFuture<'a, T> {
        Box::pin(meanwhile_store::acting(self.actor.clone(), f))
    }
}

impl Backend for Acting {
    fn submit(&self, spec: TaskSpec) -> BackendFuture<'_, TaskId> {
        self.run(Backend::submit(&self.rt, spec))
    }

    fn get(&self, id: TaskId) -> BackendFuture<'_, TaskRecord> {
        Backend::get(&self.rt, id)
    }

    fn list(&self, filter: ListFilter) -> BackendFuture<'_, Page> {
        Backend::list(&self.rt, filter)
    }

    fn read_output(&self, id: TaskId, query: OutputQuery) -> BackendFuture<'_, OutputChunk> {
        Backend::read_output(&self.rt, id, query)
    }

    fn stop(&self, id: TaskId, mode: StopMode) -> BackendFuture<'_, TaskRecord> {
        self.run(Backend::stop(&self.rt, id, mode))
    }

    fn send_input(&self, id: TaskId, input: TaskInput) -> BackendFuture<'_, InputSent> {
        self.run(Backend::send_input(&self.rt, id, input))
    }

    fn wait(
        &self,
        ids: Vec<TaskId>,
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> BackendFuture<'_, WaitOutcome> {
        Backend::wait(&self.rt, ids, mode, timeout)
    }

    fn drain_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        self.run(Backend::drain_notifications(&self.rt, session, limit))
    }

    fn peek_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        Backend::peek_notifications(&self.rt, session, limit)
    }

    fn acting_as(&self, actor: Actor) -> Option<Arc<dyn Backend>> {
        Some(Arc::new(self.rt.acting_as(actor)))
    }
}
