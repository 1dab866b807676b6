//! The loop shared by the scheduler and the budget windows: look, then sleep until
//! the earliest time the look named, a change, the clock moving, or shutdown.

use crate::engine::Inner;
use meanwhile_core::Timestamp;
use meanwhile_store::StoreError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The longest sleep, so a clock that jumped is noticed.
const IDLE_RECHECK: Duration = Duration::from_secs(30);
/// The pause after the store failed, before the next look.
const RETRY: Duration = Duration::from_secs(1);

/// Runs `look` until shutdown: again at the time it returns (at most
/// [`IDLE_RECHECK`] later), as soon as `changed` is notified, or [`RETRY`] after it
/// failed, which is logged as `what`.
pub(crate) async fn run<F, Fut>(
    inner: Arc<Inner>,
    changed: fn(&Inner) -> &Notify,
    what: &'static str,
    look: F,
) where
    F: Fn(Arc<Inner>) -> Fut,
    Fut: Future<Output = Result<Option<Timestamp>, StoreError>>,
{
    let mut shutdown = inner.shutdown.subscribe();
    let mut clock = inner.config.clock.looker(what);
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Registered before the look, so a change during it is not missed.
        let notified = changed(&inner).notified();
        // The look reads the clock itself; it counts as after every move until here.
        let _ = clock.now();
        let wait = match look(inner.clone()).await {
            Ok(next) => {
                inner.loops.ok(what);
                let now = inner.now();
                next.map(|t| Duration::from_millis(now.millis_until(t).max(1)))
                    .map_or(IDLE_RECHECK, |d| d.min(IDLE_RECHECK))
            }
            Err(e) => {
                inner.loop_failed(what, format_args!("{what}"), &e);
                RETRY
            }
        };
        clock.looked();
        tokio::select! {
            _ = clock.sleep(wait) => {}
            _ = notified => {}
            _ = shutdown.changed() => {}
        }
    }
}
