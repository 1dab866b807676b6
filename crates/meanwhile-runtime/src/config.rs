//! How a runtime is set up.

use meanwhile_core::TaskRecord;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// One task's end, as an [`EndHook`] is told it.
#[derive(Debug, Clone)]
pub struct TaskEnd {
    /// Names this delivery (the seq of the task's `finished` event): the same end
    /// delivered again has the same id, so a receiver can drop the second.
    pub delivery: i64,
    /// The task as it ended.
    pub task: TaskRecord,
}

/// Told of every task's end after it is committed (a webhook, or a sink of the
/// program that embeds the runtime). Delivered at least once: an end that was being
/// delivered when the runtime stopped is delivered again by the next one.
pub trait EndHook: Send + Sync + 'static {
    /// What it is, for logs (`webhook https://hooks.example.com/x`).
    fn name(&self) -> String;
    /// Delivers one end. An error is tried again with backoff, a few times over some
    /// minutes, then logged and given up.
    fn deliver(&self, end: TaskEnd) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

/// Told of every alert as it fires and as it resolves (a webhook of the daemon's
/// `[[alerts.sinks]]`), at least once, like an [`EndHook`].
pub trait AlertSink: Send + Sync + 'static {
    /// What it is, for logs.
    fn name(&self) -> String;
    /// Delivers one alert change; an error is tried again with backoff.
    fn deliver(
        &self,
        alert: meanwhile_core::Alert,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
}

impl std::fmt::Debug for dyn AlertSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::fmt::Debug for dyn EndHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Why another node's output could not be read through it.
#[derive(Debug, Clone)]
pub enum RemoteError {
    /// The node answered with an error, which is the answer.
    Refused(meanwhile_core::ApiError),
    /// The node could not be reached, or its answer was not one.
    Unreachable(String),
}

/// Reads output kept by another node of a fleet, through that node's API (the
/// daemon gives one that speaks HTTP with this node's credentials).
pub trait RemoteOutput: Send + Sync + 'static {
    /// Reads task `id`'s output from the node whose API listens at `address`
    /// (`host:port`), as `query` says, waits included.
    fn read(
        &self,
        address: &str,
        id: meanwhile_core::TaskId,
        query: &meanwhile_core::OutputQuery,
    ) -> Pin<Box<dyn Future<Output = Result<meanwhile_core::OutputChunk, RemoteError>> + Send>>;
    /// Sends `input` to task `id`, running on the node whose API listens at
    /// `address`.
    fn input(
        &self,
        address: &str,
        id: meanwhile_core::TaskId,
        input: &meanwhile_core::TaskInput,
    ) -> Pin<Box<dyn Future<Output = Result<meanwhile_core::InputSent, RemoteError>> + Send>>;
}

impl std::fmt::Debug for dyn RemoteOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteOutput")
    }
}

/// What happens to running tasks when the runtime shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShutdownMode {
    /// Stop every running task (SIGTERM, grace, SIGKILL) and record it as cancelled.
    #[default]
    StopTasks,
    /// Leave process tasks running; the next runtime on this home adopts them and
    /// records their true end. In-process tasks end with the process.
    LeaveRunning,
}

/// Settings of a [`crate::Runtime`]. `RuntimeConfig::new(home)` gives the defaults.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The home directory: database, logs, lock.
    pub home: PathBuf,
    /// This node's name in leases and attempts; the host name when absent.
    pub node: Option<String>,
    /// Time between SIGTERM and SIGKILL when a task is stopped or times out, unless
    /// its spec says otherwise. Default 5s.
    pub grace: Duration,
    /// How long a claim holds a task before it must be renewed. Default 60s. In a
    /// fleet, a node that could not renew its leases for this long stops its tasks,
    /// and the other nodes take them over.
    pub lease: Duration,
    /// A PostgreSQL database shared by the nodes of a fleet (`postgres://...`), in
    /// place of the SQLite file in the home. Default: none.
    pub database_url: Option<String>,
    /// If set, the `default` queue's `max_parallel` is set to this at open.
    pub default_max_parallel: Option<u32>,
    /// What shutdown does to running tasks.
    pub shutdown_mode: ShutdownMode,
    /// Working directory of tasks whose spec has none; the process's when absent.
    pub default_cwd: Option<PathBuf>,
    /// Lines of output quoted in a notification. Default 10.
    pub notice_lines: usize,
    /// Bytes of output quoted in a notification at most. Default 2048.
    pub notice_bytes: usize,
    /// How late a schedule's firing may come and still run as on time; a later one
    /// was missed (the schedule's `missed` policy decides). Default 1 minute.
    pub schedule_late_after: Duration,
    /// A command run with `sh -c` at the end of every task (besides the task's own
    /// `on_end`), with `MEANWHILE_TASK_ID`, `MEANWHILE_TASK_STATE` and
    /// `MEANWHILE_EXIT_CODE` set. Default: none.
    pub on_end: Option<String>,
    /// Told of every task's end (see [`EndHook`]). Default: none.
    pub end_hooks: Vec<Arc<dyn EndHook>>,
    /// How long an end command may run before it is killed. Default 1 minute.
    pub hook_timeout: Duration,
    /// Told of every alert change (see [`AlertSink`]). Default: none.
    pub alert_sinks: Vec<Arc<dyn AlertSink>>,
    /// Commands run with `sh -c` at every alert change, with `MEANWHILE_ALERT_ID`,
    /// `MEANWHILE_ALERT_KIND`, `MEANWHILE_ALERT_STATE`, `MEANWHILE_ALERT_MESSAGE`,
    /// `MEANWHILE_ALERT_NOTICES` (2 and up for a reminder), `MEANWHILE_ALERT_TASK`
    /// and `MEANWHILE_ALERT_QUEUE` set. Default: none.
    pub alert_commands: Vec<String>,
    /// How often the sinks are reminded of an alert that still fires and that no
    /// one acknowledged; none: never. An acknowledgement that runs out while the
    /// alert fires reminds them at once. Default 4h.
    pub alert_repeat: Option<Duration>,
    /// Where this node's HTTP API listens over TCP, recorded with its heartbeat so
    /// that other nodes and people can reach it. Default: none.
    pub node_address: Option<String>,
    /// How often this node writes its heartbeat and looks at the others'. Default 5s.
    pub node_heartbeat: Duration,
    /// A node without a heartbeat for this long is silent: a `node_silent` alert
    /// fires. Default 30s.
    pub node_silent_after: Duration,
    /// In a fleet, how output that another node keeps is read; without it, such a
    /// read names the node to ask. Default: none.
    pub remote_output: Option<Arc<dyn RemoteOutput>>,
    /// How each queue confines the tasks submitted here whose specs leave it out
    /// (sandbox, network, limits), by queue name. Default: none.
    pub queue_defaults: std::collections::BTreeMap<String, meanwhile_core::TaskDefaults>,
    /// The most output a command or argv task's log keeps when neither its spec nor
    /// its queue sets `max_output`; `None` for no bound. Default 1 GiB.
    pub max_output: Option<meanwhile_core::ByteSize>,
    /// The clock the runtime records and decides by. Default: the system's; tests
    /// give one from [`crate::Clock::ahead`] and move it forward.
    pub clock: Arc<crate::Clock>,
    /// Executors of in-process task kinds, in place before the runtime looks at what
    /// an earlier process left running: an attempt of a kind whose executor is
    /// [`meanwhile_core::Executor::resumable`] then resumes where it stopped rather
    /// than ending `lost`. [`crate::Runtime::register_executor`] adds more later.
    /// Default: none.
    pub executors: Vec<(meanwhile_core::TaskKind, Arc<dyn meanwhile_core::Executor>)>,
}

/// The default `max_output`: 1 GiB of log per task.
pub const DEFAULT_MAX_OUTPUT: u64 = 1 << 30;

impl RuntimeConfig {
    /// The defaults, for a home at `home`.
    pub fn new(home: impl Into<PathBuf>) -> RuntimeConfig {
        RuntimeConfig {
            home: home.into(),
            node: None,
            grace: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            database_url: None,
            default_max_parallel: None,
            shutdown_mode: ShutdownMode::StopTasks,
            default_cwd: None,
            notice_lines: 10,
            notice_bytes: 2048,
            schedule_late_after: meanwhile_core::DEFAULT_LATE_AFTER,
            on_end: None,
            end_hooks: Vec::new(),
            hook_timeout: Duration::from_secs(60),
            alert_sinks: Vec::new(),
            alert_commands: Vec::new(),
            alert_repeat: Some(Duration::from_secs(4 * 3600)),
            node_address: None,
            node_heartbeat: Duration::from_secs(5),
            node_silent_after: Duration::from_secs(30),
            remote_output: None,
            queue_defaults: Default::default(),
            max_output: Some(meanwhile_core::ByteSize(DEFAULT_MAX_OUTPUT)),
            clock: crate::Clock::system(),
            executors: Vec::new(),
        }
    }
}
