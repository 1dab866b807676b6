//! Retention: a periodic clean of finished tasks and their logs, by age and count,
//! so that a home never grows without bound.

use crate::config::Retention;
use meanwhile_core::{TaskId, Timestamp};
use meanwhile_runtime::Runtime;
use meanwhile_runtime::store::{AuditKey, CleanRequest, PruneRequest, Pruned};

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

/// Prunes the event log and what removed tasks left behind, slice by slice.
pub(crate) async fn prune_all(
    rt: &Runtime,
    r: &Retention,
    now: Timestamp,
) -> Result<Pruned, meanwhile_runtime::Error> {
    let mut total = Pruned::default();
    let mut req = PruneRequest {
        events_before: r
            .events_max_age
            .map(|a| Timestamp(now.0.saturating_sub(a.as_millis() as i64))),
        events_keep_last: r.events_keep_last,
        from_seq: 0,
        agent_sessions_before: r
            .sessions_max_age
            .map(|a| Timestamp(now.0.saturating_sub(a.as_millis() as i64))),
        // A resolved alert goes with the finished tasks of its time.
        alerts_resolved_before: r
            .max_age
            .map(|a| Timestamp(now.0.saturating_sub(a.as_millis() as i64))),
    };
    loop {
        let p = rt.prune(req).await?;
        total.events += p.events;
        total.notifications += p.notifications;
        total.sessions += p.sessions;
        total.agent_sessions += p.agent_sessions;
        total.alerts += p.alerts;
        match p.next {
            Some(next) => req.from_seq = next,
            None => return Ok(total),
        }
    }
}

/// Prunes audit records older than `max_age` behind a checkpoint signed with `key`,
/// slice by slice; returns how many.
pub(crate) async fn prune_audit(
    rt: &Runtime,
    before: Timestamp,
    key: &AuditKey,
) -> Result<u64, meanwhile_runtime::Error> {
    let mut total = 0;
    loop {
        let n = rt.prune_audit(before, key.clone()).await?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// The loop's name, for its errors and health.
const RETENTION: &str = "retention";

/// Cleans every `r.interval` until the runtime shuts down.
pub(crate) async fn run(rt: Runtime, r: Retention, audit_key: AuditKey) {
    let mut tick = tokio::time::interval(r.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let loops = rt.loops();
    loop {
        tick.tick().await;
        if rt.is_shut_down() {
            return;
        }
        let now = rt.now();
        if let Err(e) = meanwhile_runtime::fault::point("retention.pass") {
            // Nothing was removed: the next pass removes what this one would have.
            loops.failed(RETENTION, format_args!("a retention pass"), &e);
            continue;
        }
        let mut failed = false;
        if r.max_age.is_some() || r.keep_last.is_some() {
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
                Err(e) => {
                    failed = true;
                    loops.failed(RETENTION, format_args!("removing finished tasks"), &e)
                }
            }
        }
        match prune_all(&rt, &r, now).await {
            Ok(p) if p != Pruned::default() => tracing::info!(
                "retention removed {} events, {} notifications, {} sessions' cursors, {} idle agent sessions, {} resolved alerts",
                p.events,
                p.notifications,
                p.sessions,
                p.agent_sessions,
                p.alerts
            ),
            Ok(_) => {}
            Err(e) => {
                failed = true;
                loops.failed(RETENTION, format_args!("pruning the event log"), &e)
            }
        }
        if let Some(age) = r.audit_max_age {
            let before = Timestamp(now.0.saturating_sub(age.as_millis() as i64));
            match prune_audit(&rt, before, &audit_key).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    "retention removed {n} audit records, behind a signed checkpoint"
                ),
                Err(e) => {
                    failed = true;
                    loops.failed(RETENTION, format_args!("pruning the audit trail"), &e)
                }
            }
        }
        if !failed {
            loops.ok(RETENTION);
        }
    }
}
