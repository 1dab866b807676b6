//! The one supervision helper that runs every long-running loop of the runtime (and
//! of the daemon around it): a loop's failed rounds are logged and counted by loop
//! name, a panic restarts the loop with a growing pause, and a loop that keeps
//! failing is reported by health checks.
//!
//! A loop reports each round's outcome ([`Loops::failed`], [`Loops::ok`]); it never
//! gives up by itself, and it moves a cursor only once the work at that position is
//! done, so that what a failed round did not do is done again by the next.

use meanwhile_core::Timestamp;
use meanwhile_core::http::LoopHealth;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Consecutive failed rounds after which a loop counts as failing.
pub const FAILING_AFTER: u32 = 3;
/// The pause before a panicked loop is started again, doubling up to the longest.
const FIRST_RESTART: Duration = Duration::from_millis(100);
const LONGEST_RESTART: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Clone)]
struct Stats {
    errors: u64,
    restarts: u64,
    failing_for: u32,
    last_error: Option<String>,
    last_error_at: Option<Timestamp>,
}

/// What every supervised loop has done wrong so far, by loop name.
#[derive(Debug, Default)]
pub struct Loops {
    stats: Mutex<BTreeMap<&'static str, Stats>>,
}

impl Loops {
    fn with<T>(&self, name: &'static str, f: impl FnOnce(&mut Stats) -> T) -> T {
        let mut map = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(name).or_default())
    }

    /// Records a failed round of loop `name`, and logs what it was doing.
    pub fn failed(
        &self,
        name: &'static str,
        what: std::fmt::Arguments<'_>,
        error: &dyn std::fmt::Display,
    ) {
        let message = format!("{what} failed: {error}");
        tracing::error!(target: "meanwhile::loops", "loop {name}: {message}");
        self.with(name, |s| {
            s.errors += 1;
            s.failing_for = s.failing_for.saturating_add(1);
            s.last_error = Some(message);
            s.last_error_at = Some(crate::now());
        });
    }

    /// Records a round of loop `name` that did its work: it is not failing now.
    pub fn ok(&self, name: &'static str) {
        let mut map = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get_mut(name) {
            s.failing_for = 0;
        }
    }

    fn restarted(&self, name: &'static str, why: &str) {
        self.with(name, |s| {
            s.restarts += 1;
            s.failing_for = s.failing_for.saturating_add(1);
            s.last_error = Some(why.to_string());
            s.last_error_at = Some(crate::now());
        });
    }

    /// Every loop that failed or restarted at least once, by name.
    pub fn snapshot(&self) -> Vec<LoopHealth> {
        let map = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .map(|(name, s)| LoopHealth {
                name: (*name).to_string(),
                errors: s.errors,
                restarts: s.restarts,
                failing: s.failing_for >= FAILING_AFTER,
                consecutive_failures: s.failing_for,
                last_error: s.last_error.clone(),
                last_error_at: s.last_error_at,
            })
            .collect()
    }
}

/// Runs the loop that `start` makes until it returns (which a loop does at shutdown)
/// or `shutdown` is set: a panic is logged, counted as a restart of `name` and the
/// loop is made again after a pause that doubles from 100 ms to 30 s.
pub fn supervise<F, Fut>(
    loops: Arc<Loops>,
    name: &'static str,
    mut shutdown: watch::Receiver<bool>,
    start: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut pause = FIRST_RESTART;
        loop {
            match tokio::spawn(start()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    let panic = e.into_panic();
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    let why = format!("panicked: {text}");
                    tracing::error!(
                        target: "meanwhile::loops",
                        "loop {name} {why}; starting it again in {}",
                        meanwhile_core::format_duration(pause)
                    );
                    loops.restarted(name, &why);
                }
                // Cancelled: the runtime is going away.
                Err(_) => return,
            }
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.wait_for(|d| *d) => return,
            }
            pause = (pause * 2).min(LONGEST_RESTART);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_panicking_loop_is_started_again_and_counted() {
        let loops = Arc::new(Loops::default());
        let (_tx, rx) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let handle = supervise(loops.clone(), "test", rx, move || {
            let r = r.clone();
            async move {
                if r.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("round {}", r.load(Ordering::SeqCst));
                }
            }
        });
        handle.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let s = &loops.snapshot()[0];
        assert_eq!((s.name.as_str(), s.restarts, s.errors), ("test", 2, 0));
        assert!(s.last_error.as_deref().unwrap().contains("panicked: round"));
    }

    #[test]
    fn a_loop_that_keeps_failing_is_failing_until_a_round_succeeds() {
        let loops = Loops::default();
        for _ in 0..FAILING_AFTER {
            loops.failed("follow", format_args!("reading"), &"disk I/O error");
        }
        let s = &loops.snapshot()[0];
        assert!(s.failing);
        assert_eq!(s.errors, u64::from(FAILING_AFTER));
        assert_eq!(
            s.last_error.as_deref(),
            Some("reading failed: disk I/O error")
        );
        loops.ok("follow");
        assert!(!loops.snapshot()[0].failing);
    }
}
