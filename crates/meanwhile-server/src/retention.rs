//! Retention: a periodic clean of finished tasks and their logs, by age and count,
//! so that a home never grows without bound.

use crate::config::Retention;
use meanwhile_core::{TaskId, Timestamp};
use meanwhile_runtime::Runtime;
use meanwhile_runtime::store::CleanRequest;

/// Runs `req` until nothing more matches (the store removes a bounded batch per call,
/// so that one clean never holds the database for long).
pub(crate) async fn clean_all(
    rt: &Runtime,
    req: CleanRequest,
) -> Result<Vec<TaskId>, meanwhile_runtime::Error> {
    let mut all = Vec::new();
    // A bound on the rounds, in case the store ever removed less than it found.
    for _ in 0..10_000 {
        let removed = rt.clean(req).await?;
        if removed.is_empty() {
            break;
        }
        all.extend(removed);
    }
    Ok(all)
}

/// Cleans every `r.interval` until the runtime shuts down.
pub(crate) async fn run(rt: Runtime, r: Retention) {
    if r.max_age.is_none() && r.keep_last.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(r.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = meanwhile_runtime::now();
        let req = CleanRequest {
            finished_before: r
                .max_age
                .map(|a| Timestamp(now.0.saturating_sub(a.as_millis() as i64))),
            keep_last: r.keep_last,
        };
        match clean_all(&rt, req).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!("retention removed {} finished tasks", ids.len())
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("retention failed: {e}"),
        }
    }
}
