//! The budget loop: it starts each budget's next window when the current one ends.
//!
//! It sleeps until the earliest window end of any budget (or until a budget is set
//! or removed), then asks the store to roll every budget whose window has ended: the
//! usage counts from 0, the window's `budget` alerts resolve, and a queue the budget
//! paused resumes, all in one write. The roll is guarded by the window's end, so a
//! second look (or a charge that rolled it first) changes nothing. A charge and the
//! gate look at the window themselves, so a late loop never lets a spent window
//! count against the next one.

use crate::engine::Inner;
use meanwhile_core::{Timestamp, rfc3339_secs};
use meanwhile_store::StoreError;
use std::sync::Arc;

pub(crate) fn start(inner: &Arc<Inner>) {
    inner.spawn_loop("budgets", |inner| {
        crate::timed::run(
            inner,
            |i| &i.budgets_changed,
            "budgets",
            |inner| async move { look(&inner).await },
        )
    });
}

/// Rolls every budget whose window has ended; returns the earliest end to come.
async fn look(inner: &Inner) -> Result<Option<Timestamp>, StoreError> {
    crate::fault::point("budgets.look")?;
    let now = inner.now();
    let mut next: Option<Timestamp> = None;
    for b in inner.store.budgets().await? {
        let Some(end) = b.window_end else { continue };
        let at = if end > now {
            Some(end)
        } else {
            match inner.store.roll_budget(&b.queue, now).await? {
                Some(rolled) => {
                    tracing::info!(
                        "queue {}: a new budget window started at {}",
                        rolled.queue,
                        rfc3339_secs(rolled.window_start)
                    );
                    // The roll may have resumed the queue.
                    inner.wake.notify_one();
                    rolled.window_end
                }
                // Rolled by a charge meanwhile, or removed: look again.
                None => Some(now),
            }
        };
        if let Some(at) = at {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    Ok(next)
}
