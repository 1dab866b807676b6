//! The layout of a meanwhile home directory.

use meanwhile_core::TaskId;
use std::path::{Path, PathBuf};

/// Paths inside a home: `meanwhile.db`, `tasks/<id>/output.log`, the supervisors'
/// journal, the lock.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A home rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }
    /// The home directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("meanwhile.db")
    }
    /// The lock file that keeps two runtimes off one home.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("runtime.lock")
    }
    /// A task's directory.
    pub fn task_dir(&self, id: TaskId) -> PathBuf {
        self.root.join("tasks").join(id.to_string())
    }
    /// A task's output log.
    pub fn log(&self, id: TaskId) -> PathBuf {
        self.task_dir(id).join("output.log")
    }
    /// The socket where the supervisor of an interactive task's attempt takes input.
    pub fn io_socket(&self, id: TaskId, attempt: u32) -> PathBuf {
        self.task_dir(id).join(format!("io.{attempt}.sock"))
    }
    /// A sandboxed attempt's private temporary directory (its `TMPDIR`).
    pub fn task_tmp(&self, id: TaskId, attempt: u32) -> PathBuf {
        self.task_dir(id).join(format!("tmp.{attempt}"))
    }
    /// The private temporary directory of a sandboxed task's `on_end` command.
    pub fn hook_tmp(&self, id: TaskId) -> PathBuf {
        self.task_dir(id).join("tmp.on_end")
    }
    /// The key that seals the tasks' secrets in the store.
    pub fn secrets_key(&self) -> PathBuf {
        self.root.join("secrets.key")
    }
    /// The pid of the runtime's spawner process.
    pub fn spawner_pid_file(&self) -> PathBuf {
        self.root.join("spawner.pid")
    }
    /// The supervisors' journal: the processes of each attempt and how each ended.
    pub fn journal(&self) -> PathBuf {
        self.root.join("supervisors.journal")
    }
}
