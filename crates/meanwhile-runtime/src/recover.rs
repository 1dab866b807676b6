//! Recovery at open: tasks that an earlier process left `running` on this home are
//! adopted if still running, recorded with their true status if they ended, and
//! recorded `lost` (then retried by policy) if their end cannot be known.

use crate::attempt::{self, Ended};
use crate::engine::Inner;
use crate::spawn::{self, Spawned};
use crate::stop::Active;
use meanwhile_core::{TaskKind, TaskRecord, Timestamp};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, watch};

pub(crate) async fn recover(inner: &Arc<Inner>) -> crate::Result<()> {
    // Only one runtime can hold this home, so every running task in a SQLite store
    // belongs to a process that is gone.
    let running = inner.store.running(None, Some(Timestamp(i64::MAX))).await?;
    for (task, attempt) in running {
        let n = attempt.number;
        if task.kind != TaskKind::Shell {
            attempt::finish(
                inner,
                &task,
                n,
                Ended::lost("the process running this in-process task exited"),
            )
            .await;
            continue;
        }
        let started = {
            let mut journal = inner.journal.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = journal.refresh() {
                tracing::warn!("reading the supervisors' journal: {e}");
            }
            journal.started(task.id, n)
        };
        let alive = started.filter(|p| spawn::start_time(p.supervisor) == Some(p.supervisor_start));
        match (started, alive) {
            (Some(p), Some(_)) => adopt(inner, task, n, p.pid, p.supervisor).await,
            (Some(p), None) => {
                // The supervisor is gone: it journalled the end if it saw it.
                let spawned = Spawned {
                    supervisor: p.supervisor,
                    pid: p.pid,
                };
                let (_tx, rx) = mpsc::unbounded_channel();
                if let Some(ended) = attempt::supervise(inner, &task, n, spawned, rx).await {
                    attempt::finish(inner, &task, n, ended).await;
                }
            }
            (None, _) => {
                // The spawner journals an attempt before it takes another request,
                // and it finishes a request even when the runtime died meanwhile (the
                // previous spawner was waited for at start). No record means the
                // runtime died before asking: no process was started, so the claim
                // is given back and the attempt does not count.
                if let Err(e) = inner.store.release(task.id, n, crate::now()).await {
                    tracing::error!(task = %task.id, "releasing an unstarted attempt: {e}");
                }
            }
        }
    }
    Ok(())
}

/// Takes over a task whose supervisor is still running: registers it as active and
/// waits on the supervisor through a pidfd, as if this runtime had started it.
async fn adopt(inner: &Arc<Inner>, task: TaskRecord, attempt: u32, pid: i32, supervisor: i32) {
    let (stop_tx, stop_rx) = mpsc::unbounded_channel();
    let (size_tx, size_rx) = watch::channel(0u64);
    inner.registry().register(
        task.id,
        Active {
            attempt,
            stop: stop_tx,
            output: size_rx,
            pgid: std::sync::Arc::new(pid.into()),
        },
    );
    inner.in_flight.fetch_add(1, Ordering::SeqCst);
    let inner = inner.clone();
    tokio::spawn(async move {
        let log_path = inner.home.log(task.id);
        let offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let guard = inner
            .watcher
            .watch(task.id, &log_path, offset, size_tx)
            .ok();
        let spawned = Spawned { supervisor, pid };
        let ended = attempt::supervise(&inner, &task, attempt, spawned, stop_rx).await;
        drop(guard);
        match ended {
            Some(ended) => attempt::settle(&inner, &task, attempt, ended),
            None => attempt::end_of_attempt(&inner, task.id),
        }
    });
}
