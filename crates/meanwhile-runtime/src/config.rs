//! How a runtime is set up.

use std::path::PathBuf;
use std::time::Duration;

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
    /// How long a claim holds a task before it must be renewed. Default 60s.
    pub lease: Duration,
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
}

impl RuntimeConfig {
    /// The defaults, for a home at `home`.
    pub fn new(home: impl Into<PathBuf>) -> RuntimeConfig {
        RuntimeConfig {
            home: home.into(),
            node: None,
            grace: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            default_max_parallel: None,
            shutdown_mode: ShutdownMode::StopTasks,
            default_cwd: None,
            notice_lines: 10,
            notice_bytes: 2048,
            schedule_late_after: meanwhile_core::DEFAULT_LATE_AFTER,
        }
    }
}
