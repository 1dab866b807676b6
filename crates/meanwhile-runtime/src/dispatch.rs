//! The dispatcher: claims runnable tasks when woken (submit, exit, timer, queue
//! change), starts their attempts, renews leases, and records progress lines.

use crate::attempt;
use crate::runtime::{Active, Inner};
use meanwhile_core::{Progress, TaskId, TaskKind};
use meanwhile_store::ClaimRequest;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Most tasks claimed in one go; more are claimed on the next turn at once.
const CLAIM_BATCH: u32 = 64;
/// With nothing scheduled, the dispatcher still looks once in a while, so a clock
/// jump or a missed wake-up cannot strand a task.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

pub(crate) fn start(inner: &Arc<Inner>, progress: mpsc::UnboundedReceiver<(TaskId, Progress)>) {
    tokio::spawn(dispatch_loop(inner.clone()));
    tokio::spawn(renew_loop(inner.clone()));
    tokio::spawn(progress_loop(inner.clone(), progress));
}

fn kinds(inner: &Inner) -> Vec<TaskKind> {
    let mut kinds = vec![TaskKind::Shell, TaskKind::Function];
    if let Ok(e) = inner.executors.read() {
        kinds.extend(
            e.keys()
                .copied()
                .filter(|k| !kinds.contains(k))
                .collect::<Vec<_>>(),
        );
    }
    kinds
}

async fn dispatch_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        if inner.is_shutting_down() {
            return;
        }
        let now = crate::now();
        let lease_until = meanwhile_core::Timestamp(now.0 + inner.config.lease.as_millis() as i64);
        // Hold the table of active attempts across the claim, so that a stop request
        // for a task being claimed finds it registered.
        let mut active = inner.active.lock().await;
        let claimed = inner
            .store
            .claim(ClaimRequest {
                node: inner.node.clone(),
                now,
                lease_until,
                kinds: kinds(&inner),
                limit: CLAIM_BATCH,
            })
            .await;
        let claim = match claimed {
            Ok(c) => c,
            Err(e) => {
                drop(active);
                tracing::error!("claiming tasks failed: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let full = claim.tasks.len() as u32 == CLAIM_BATCH;
        for c in claim.tasks {
            let (stop_tx, stop_rx) = mpsc::unbounded_channel();
            let (size_tx, size_rx) = watch::channel(0u64);
            active.insert(
                c.task.id,
                Active {
                    stop: stop_tx,
                    output: size_rx,
                    pgid: Default::default(),
                },
            );
            inner.in_flight.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(attempt::run(inner.clone(), c, stop_rx, size_tx));
        }
        drop(active);
        if full {
            continue;
        }
        let sleep = match claim.next_wakeup {
            Some(t) => Duration::from_millis(now.millis_until(t)).min(IDLE_RECHECK),
            None => IDLE_RECHECK,
        };
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn renew_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let every = inner.config.lease / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let until =
            meanwhile_core::Timestamp(crate::now().0 + inner.config.lease.as_millis() as i64);
        if let Err(e) = inner.store.renew(&inner.node, until).await {
            inner.write_failed(format_args!("renewing leases"), &e);
        }
    }
}

async fn progress_loop(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<(TaskId, Progress)>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let (id, p) = tokio::select! {
            Some(item) = rx.recv() => item,
            _ = shutdown.changed() => return,
            else => return,
        };
        if let Err(e) = inner.store.set_progress(id, p).await {
            inner.write_failed(format_args!("recording the progress of task {id}"), &e);
        }
    }
}
