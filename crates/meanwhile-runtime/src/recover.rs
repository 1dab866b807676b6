//! Recovery at open: tasks that an earlier process left `running` on this home are
//! adopted if still running, recorded with their true status if they ended, and
//! recorded `lost` (then retried by policy) if their end cannot be known. An
//! in-process attempt whose executor can resume (the agent's) is run again as the
//! same attempt, and continues from the steps it recorded.
//!
//! A supervisor is adopted only if the live process with its pid started when the
//! journal says it did; only then is it (and its task's process group, whose start
//! time is checked too) registered as ours, to be waited on and signalled. A pid
//! the journal names that is now another process (reused, or after a reboot) is
//! never waited on or signalled: the attempt is settled from the journal's `E`
//! line, or recorded `lost`.

use crate::attempt::{self, Ended};
use crate::engine::Inner;
use crate::spawn::{self, Proven, Spawned};
use crate::stop::Active;
use meanwhile_core::{TaskKind, TaskRecord, Timestamp};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, watch};

pub(crate) async fn recover(inner: &Arc<Inner>) -> crate::Result<()> {
    // Only one runtime can hold this home, so every running task in a SQLite store
    // belongs to a process that is gone. In a fleet, only this node's are: the
    // journal in this home knows them. Its leases are renewed first, so that no
    // other node takes them over while they are looked at.
    let running = if inner.store.is_shared() {
        let until = Timestamp(inner.now().0 + inner.config.lease.as_millis() as i64);
        inner.store.renew(&inner.node, until).await?;
        inner.store.running(Some(&inner.node), None).await?
    } else {
        inner.store.running(None, Some(Timestamp(i64::MAX))).await?
    };
    for (task, attempt) in running {
        let n = attempt.number;
        if task.kind != TaskKind::Shell {
            if inner.resumable(task.kind) {
                tracing::info!(task = %task.id, "resuming attempt {n} from its recorded steps");
                crate::dispatch::start_claimed(
                    inner,
                    meanwhile_store::Claim {
                        tasks: vec![meanwhile_store::Claimed { task, attempt: n }],
                        next_wakeup: None,
                    },
                );
                continue;
            }
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
        // No record yet: the start is given up in the journal (an `A` line) before
        // its claim is, so that a supervisor still holding it (its spawner gone)
        // runs nothing; one that journalled it first is followed.
        let started = match started {
            Some(s) => Some(s),
            None => match crate::journal::abandon(&inner.home.journal(), task.id.0, n) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(task = %task.id, "giving up an unstarted attempt in the journal: {e}");
                    continue;
                }
            },
        };
        let supervisor = started.map(|p| Proven {
            pid: p.supervisor,
            start: p.supervisor_start,
        });
        let alive = supervisor.filter(|&s| spawn::is_same_process(s));
        match (started, alive) {
            (Some(p), Some(sup)) => {
                // Journals from before task start times were recorded: the task is
                // still the supervisor's child (it has not reaped it), so its pid is
                // its own.
                let task_start = if p.pid_start != 0 {
                    p.pid_start
                } else if crate::sys::parent_of(p.pid) == Some(p.supervisor) {
                    spawn::start_time(p.pid).unwrap_or(0)
                } else {
                    0
                };
                spawn::register(
                    sup,
                    Proven {
                        pid: p.pid,
                        start: task_start,
                    },
                );
                adopt(inner, task, n, p.pid, p.supervisor).await
            }
            (Some(p), None) => {
                // The supervisor is gone (or its pid is another process's, which is
                // therefore not registered and neither waited on nor signalled): it
                // journalled the end if it saw it.
                let spawned = Spawned {
                    supervisor: p.supervisor,
                    pid: p.pid,
                };
                let (_tx, rx) = mpsc::unbounded_channel();
                if let Some(ended) = attempt::supervise(inner, &task, n, spawned, None, rx).await {
                    attempt::finish(inner, &task, n, ended).await;
                }
            }
            (None, _) => {
                // A supervisor journals an attempt before its program runs, a
                // spawner whose runtime died waits for the starts it handed over to
                // be journalled (and the previous spawner was waited for at start),
                // and the start is given up above. No record means no program was
                // started, or will be, so the claim is given back and the attempt
                // does not count.
                if let Err(e) = inner.store.release(task.id, n, inner.now()).await {
                    tracing::error!(task = %task.id, "releasing an unstarted attempt: {e}");
                }
            }
        }
    }
    if inner.store.is_shared() {
        kill_orphans(inner);
    }
    Ok(())
}

/// Kills the processes of attempts this node started that are no longer its own:
/// while it was down, another node took them over when their lease expired, and
/// runs the task again. Only processes whose start times match the journal's.
fn kill_orphans(inner: &Inner) {
    let unended = {
        let mut journal = inner.journal.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = journal.refresh() {
            tracing::warn!("reading the supervisors' journal: {e}");
        }
        journal.unended()
    };
    let ours: Vec<(meanwhile_core::TaskId, u32)> = inner.registry().attempts();
    for (id, n, p) in unended {
        if ours.contains(&(id, n)) {
            continue;
        }
        let supervisor = Proven {
            pid: p.supervisor,
            start: p.supervisor_start,
        };
        let task = Proven {
            pid: p.pid,
            start: p.pid_start,
        };
        if !spawn::is_same_process(supervisor) || !spawn::is_same_process(task) {
            continue;
        }
        tracing::warn!(
            task = %id,
            "attempt {n} was taken over by another node while this one was down; killing its processes (pid {})",
            p.pid
        );
        spawn::register(supervisor, task);
        spawn::signal_group(p.pid, libc::SIGKILL);
    }
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
            .watch(
                task.id,
                &log_path,
                offset,
                attempt::max_output(&inner, &task),
                size_tx,
            )
            .ok();
        let spawned = Spawned { supervisor, pid };
        let ended = attempt::supervise(&inner, &task, attempt, spawned, None, stop_rx).await;
        drop(guard);
        match ended {
            Some(ended) => attempt::settle(&inner, &task, attempt, ended),
            None => attempt::end_of_attempt(&inner, task.id),
        }
    });
}
