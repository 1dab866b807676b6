//! The scheduler: the loop that fires due schedules.
//!
//! It reads the schedules, and for each one that is due asks the schedule (core's
//! `ValidSchedule::plan`) which time fires, how many were missed and when it is due
//! next, then records that in one store write with the firing's task. The write is
//! guarded by the due time it planned from, and the task's idempotency key names the
//! schedule and the time, so a time fires once: after a restart, or with a second
//! runtime on the same store. It sleeps until the earliest due time, or until a
//! schedule changes.

use crate::engine::Inner;
use meanwhile_core::{AlertKind, ScheduleInfo, Timestamp};
use meanwhile_store::{NewAlert, NewTask, ScheduleFiring, StoreError, Submitted};
use std::sync::Arc;

pub(crate) fn start(inner: &Arc<Inner>) {
    inner.spawn_loop("schedules", |inner| {
        crate::timed::run(
            inner,
            |i| &i.schedules_changed,
            "schedules",
            |inner| async move { look(&inner).await },
        )
    });
}

/// Fires every due schedule; returns the earliest time one is due next.
async fn look(inner: &Inner) -> Result<Option<Timestamp>, StoreError> {
    crate::fault::point("schedules.look")?;
    let now = inner.now();
    let mut next: Option<Timestamp> = None;
    for s in inner.store.schedules().await? {
        let due = match s.next_fire {
            Some(due) if !s.paused => due,
            _ => continue,
        };
        let at = if due > now {
            Some(due)
        } else {
            fire(inner, &s, due, now).await?
        };
        if let Some(at) = at {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    Ok(next)
}

/// Fires one due schedule; returns when it is due next.
async fn fire(
    inner: &Inner,
    s: &ScheduleInfo,
    due: Timestamp,
    now: Timestamp,
) -> Result<Option<Timestamp>, StoreError> {
    let name = &s.spec.name;
    let valid = match s.spec.clone().validate() {
        Ok(v) => v,
        Err(e) => {
            // Only a store written by another version gets here; say so once a look.
            tracing::error!("schedule {name} cannot fire: {e}");
            return Ok(None);
        }
    };
    let plan = valid.plan(due, s.created_at, now, inner.config.schedule_late_after);
    let task = match plan.fire.map(|f| valid.task_for(f, false).validate()) {
        Some(Ok(spec)) => Some(NewTask::new(spec, now)),
        Some(Err(e)) => {
            tracing::error!("schedule {name} cannot fire: {e}");
            None
        }
        None => None,
    };
    if plan.late {
        tracing::warn!(
            "schedule {name}: {} firing time(s) passed while meanwhile was not running{}",
            plan.missed + u64::from(plan.fire.is_some()),
            if plan.fire.is_some() {
                "; running one now (missed = once)"
            } else {
                ""
            }
        );
    }
    let fired = inner
        .store
        .fire_schedule(ScheduleFiring {
            name: name.clone(),
            due: Some(due),
            fire: plan.fire,
            task,
            missed: plan.missed,
            late: plan.late,
            next: plan.next,
        })
        .await?;
    // A failure after the firing is written must not fire the time again.
    crate::fault::point("schedules.fired")?;
    match fired {
        Some(f) => {
            if matches!(f.task, Some(Submitted::Created(_))) {
                inner.wake.notify_one();
            }
            missed_alert(inner, name, &plan, now).await?;
            Ok(f.schedule.next_fire)
        }
        // Another runtime fired it, or it was paused or removed meanwhile: look again.
        None => Ok(Some(now)),
    }
}

/// The `schedule_missed` alert: fires when times were missed, resolves at the next
/// firing on time.
async fn missed_alert(
    inner: &Inner,
    name: &str,
    plan: &meanwhile_core::Plan,
    now: Timestamp,
) -> Result<(), StoreError> {
    let subject = format!("schedule:{name}");
    if plan.late {
        let n = plan.missed + u64::from(plan.fire.is_some());
        let message = format!(
            "schedule {name} missed {n} firing time(s) while meanwhile was not running{}",
            if plan.fire.is_some() {
                "; one ran late (missed = once)"
            } else {
                ""
            }
        );
        inner
            .store
            .fire_alert(
                NewAlert {
                    kind: AlertKind::ScheduleMissed,
                    subject,
                    message,
                    task: None,
                    queue: None,
                },
                now,
            )
            .await?;
    } else if plan.fire.is_some() {
        let message = format!("schedule {name} fired on time");
        inner
            .store
            .resolve_alert(AlertKind::ScheduleMissed, &subject, &message, now)
            .await?;
    }
    Ok(())
}
