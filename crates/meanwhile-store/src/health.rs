//! The health of the store's own background work (SQLite's checkpoint thread,
//! PostgreSQL's stamps and event follower): each failed round is logged and
//! counted, and reported through `Store::background` beside the runtime's loops.

use meanwhile_core::http::LoopHealth;
use std::sync::Mutex;

/// Consecutive failed rounds after which a loop counts as failing (as a runtime
/// loop does).
const FAILING_AFTER: u32 = 3;

/// The rounds of one background loop.
pub(crate) struct LoopMeter(Mutex<LoopHealth>);

impl LoopMeter {
    /// A loop named `name`, as `/metrics` names it.
    pub(crate) fn new(name: &str) -> LoopMeter {
        LoopMeter(Mutex::new(LoopHealth {
            name: name.into(),
            errors: 0,
            restarts: 0,
            failing: false,
            consecutive_failures: 0,
            last_error: None,
            last_error_at: None,
        }))
    }

    /// Records how a round went: a failure is logged and counted (as a restart when
    /// the loop panicked and was started again), a success ends a streak of them.
    pub(crate) fn record(&self, r: Result<(), String>, restarted: bool) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(()) => h.consecutive_failures = 0,
            Err(e) => {
                tracing::warn!(target: "meanwhile::loops", "loop {}: {e}", h.name);
                if restarted {
                    h.restarts += 1;
                } else {
                    h.errors += 1;
                }
                h.consecutive_failures = h.consecutive_failures.saturating_add(1);
                h.last_error = Some(e);
                h.last_error_at =
                    Some(meanwhile_core::Timestamp::from(std::time::SystemTime::now()));
            }
        }
        h.failing = h.consecutive_failures >= FAILING_AFTER;
    }

    /// The loop's health once it has something to report, as a runtime loop's is.
    pub(crate) fn report(&self) -> Option<LoopHealth> {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (h.errors + h.restarts > 0).then(|| h.clone())
    }
}
