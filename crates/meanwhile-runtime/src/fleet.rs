//! What a node does for the fleet it shares a store with, besides running its own
//! tasks: it follows every node's events (to claim what another node submitted or
//! freed, and to stop its own tasks when a stop was asked on another node), and it
//! takes over the attempts of nodes that stopped renewing their leases: as the same
//! attempt, resumed here, when their executor resumes (an agent's), else by
//! recording them `lost`.
//!
//! Nothing here runs on a store that is not shared: one machine's SQLite has one
//! runtime, whose recovery at start settles everything a previous process left.

use crate::attempt::{self, Ended};
use crate::engine::Inner;
use meanwhile_core::{EventKind, StopMode, TaskId, TaskRecord, TaskState, Timestamp};
use meanwhile_store::{Claim, Claimed, TakeOver};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The longest time between two looks for expired leases and missed stops.
const MAX_LOOK: Duration = Duration::from_secs(5);

pub(crate) fn start(inner: &Arc<Inner>) {
    if !inner.store.is_shared() {
        return;
    }
    inner.spawn_loop("fleet", follow);
    inner.spawn_loop("rescue", rescue_loop);
}

/// Reacts to the fleet's events as they commit.
async fn follow(inner: Arc<Inner>) {
    let mut events = inner.store.subscribe();
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = shutdown.changed() => return,
        };
        match event {
            Ok(e) => match e.kind {
                // Work to claim, or a slot freed: the dispatcher looks.
                EventKind::Submitted
                | EventKind::Retried
                | EventKind::Released
                | EventKind::AttemptEnded
                | EventKind::Queue => inner.wake.notify_one(),
                EventKind::Budget => {
                    inner.budgets_changed.notify_one();
                    inner.wake.notify_one();
                }
                EventKind::Schedule => inner.schedules_changed.notify_one(),
                EventKind::StopRequested => {
                    let force = e.data.get("force").and_then(|f| f.as_bool()) == Some(true);
                    let mode = if force {
                        StopMode::Force
                    } else {
                        StopMode::Graceful
                    };
                    if let Some(id) = e.task_id {
                        let mut registry = inner.registry();
                        if let Some(n) = registry.get(id).map(|a| a.attempt) {
                            // Asked on another node: nobody here waits for it.
                            let _ = registry.stop(id, n, mode);
                        }
                    }
                }
                _ => {}
            },
            // Too far behind to know what was missed: look at everything.
            Err(RecvError::Lagged(_)) => {
                inner.wake.notify_one();
                stop_flagged(&inner).await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Stops this node's tasks that carry a stop flag: the safety net for a
/// `stop_requested` event this node did not hear.
async fn stop_flagged(inner: &Arc<Inner>) {
    let mine = match inner.store.running(Some(&inner.node), None).await {
        Ok(mine) => mine,
        Err(e) => {
            // Looked at again on the next round; said now so a failing store shows.
            tracing::warn!("looking for stop flags of this node's tasks: {e}");
            return;
        }
    };
    let mut registry = inner.registry();
    for (t, a) in mine {
        if t.stop_requested && registry.get(t.id).is_some_and(|r| r.attempt == a.number) {
            registry.stop(t.id, a.number, StopMode::Graceful);
        }
    }
}

/// Looks, every third of a lease (5 s at most), for attempts whose lease expired and
/// takes them over; and for stop flags of this node's tasks.
async fn rescue_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let every = (inner.config.lease / 3).clamp(Duration::from_millis(100), MAX_LOOK);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let now = inner.now();
        let expired = match crate::fault::point("rescue.look") {
            Ok(()) => inner.store.running(None, Some(now)).await,
            Err(e) => Err(e),
        };
        match expired {
            Ok(expired) => {
                inner.loops.ok("rescue");
                for (task, a) in expired {
                    if task.node.as_deref() == Some(inner.node.as_str()) {
                        // This node's own: its renewals decide (see the dispatcher).
                        continue;
                    }
                    rescue(&inner, &task, a.number, a.node).await;
                }
            }
            Err(e) => inner.loop_failed("rescue", format_args!("looking for expired leases"), &e),
        }
        stop_flagged(&inner).await;
    }
}

/// Takes over an attempt whose lease expired, if it still is when the store looks
/// under the row's lock: as the same attempt, resumed here from what it recorded,
/// when this node's executor of its kind resumes (an agent's, as at recovery);
/// else it is recorded `lost` (then the retry policy applies).
async fn rescue(inner: &Arc<Inner>, task: &TaskRecord, attempt: u32, holder: String) {
    if inner.resumable(task.kind) {
        return take_over(inner, task.id, attempt, &holder).await;
    }
    let ended = Ended::lost(format!(
        "node {holder:?} stopped renewing its lease (it went silent, or lost its database); node {:?} took the task over",
        inner.node
    ));
    let end = attempt::end_record(inner, task, attempt, ended);
    match inner.store.rescue(end, inner.now()).await {
        Ok(Some(fin)) => {
            tracing::warn!(task = %task.id, "attempt {attempt} of node {holder:?} taken over: its lease expired");
            attempt::recorded(inner, task.kind, &fin);
            inner.wake.notify_one();
        }
        Ok(None) => {}
        Err(e) => inner.loop_failed(
            "rescue",
            format_args!("taking over task {} from node {holder:?}", task.id),
            &e,
        ),
    }
}

/// Moves an attempt whose lease expired to this node as the same attempt, and starts
/// it here as recovery does (`dispatch::start_claimed`, no new claim): it keeps its
/// start time, so its timeout counts from when it first started, and this node's
/// renewals hold it from now on.
async fn take_over(inner: &Arc<Inner>, id: TaskId, attempt: u32, holder: &str) {
    let now = inner.now();
    let to = TakeOver {
        id,
        attempt,
        node: inner.node.clone(),
        now,
        lease_until: Timestamp(now.0 + inner.config.lease.as_millis() as i64),
    };
    let task = match inner.store.take_over(to).await {
        Ok(Some(task)) => task,
        Ok(None) => return,
        Err(e) => {
            inner.loop_failed(
                "rescue",
                format_args!("taking over attempt {attempt} of task {id} from node {holder:?}"),
                &e,
            );
            // The write may have committed though its answer was lost; then the task
            // is this node's, and nobody else runs it. Otherwise the next look tries
            // again.
            match inner.store.get(id).await {
                Ok(t) if is_mine(inner, &t, attempt) => t,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(task = %id, "looking whether the takeover of attempt {attempt} was recorded: {e}");
                    return;
                }
            }
        }
    };
    tracing::warn!(
        task = %id,
        "attempt {attempt} of node {holder:?} taken over as the same attempt: its lease expired; resuming it here from its recorded steps"
    );
    crate::dispatch::start_claimed(
        inner,
        Claim {
            tasks: vec![Claimed { task, attempt }],
            next_wakeup: None,
        },
    );
}

/// True when `task` runs `attempt` on this node and no attempt of it runs here yet.
fn is_mine(inner: &Inner, task: &TaskRecord, attempt: u32) -> bool {
    task.state == TaskState::Running
        && task.attempts == attempt
        && task.node.as_deref() == Some(inner.node.as_str())
        && inner.registry().get(task.id).is_none()
}
