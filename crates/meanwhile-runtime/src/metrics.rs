//! Counters of what the runtime did since it started, for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    spawns: AtomicU64,
    spawn_micros: AtomicU64,
    spawn_failures: AtomicU64,
    output_bytes: AtomicU64,
    attempts_ended: AtomicU64,
    commit_failures: AtomicU64,
}

/// A snapshot of the runtime's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuntimeMetrics {
    /// Processes started.
    pub spawns: u64,
    /// Time spent starting them (from the request to the spawner until the task was
    /// exec'd), in microseconds, summed.
    pub spawn_micros: u64,
    /// Attempts that could not start a process.
    pub spawn_failures: u64,
    /// Output bytes in the logs of ended attempts (a retried task's log counts at
    /// the end of each of its attempts).
    pub output_bytes: u64,
    /// Attempts that ended on this runtime.
    pub attempts_ended: u64,
    /// Writes to the store that failed on a path with no caller to answer (an
    /// attempt's end, progress, lease renewal): each was logged and tried again.
    pub commit_failures: u64,
}

impl Counters {
    pub(crate) fn spawned(&self, took: Duration) {
        self.spawns.fetch_add(1, Ordering::Relaxed);
        self.spawn_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn spawn_failed(&self) {
        self.spawn_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn attempt_ended(&self, output_bytes: u64) {
        self.attempts_ended.fetch_add(1, Ordering::Relaxed);
        self.output_bytes.fetch_add(output_bytes, Ordering::Relaxed);
    }

    pub(crate) fn commit_failed(&self) {
        self.commit_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> RuntimeMetrics {
        RuntimeMetrics {
            spawns: self.spawns.load(Ordering::Relaxed),
            spawn_micros: self.spawn_micros.load(Ordering::Relaxed),
            spawn_failures: self.spawn_failures.load(Ordering::Relaxed),
            output_bytes: self.output_bytes.load(Ordering::Relaxed),
            attempts_ended: self.attempts_ended.load(Ordering::Relaxed),
            commit_failures: self.commit_failures.load(Ordering::Relaxed),
        }
    }
}
