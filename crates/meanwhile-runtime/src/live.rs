//! What this node's running process tasks are seen doing, recorded in the store:
//! whether an interactive task waits for input (its supervisor says so, through the
//! input socket's stream of states), and which sockets a task's processes listen on
//! (a look at `/proc` once a second, which walks the tasks' processes only when the
//! machine's set of listening sockets changed).
//!
//! A change is committed with [`LifecycleStore::set_live`], which writes the events and the
//! session's notices; a failed write is tried again at the next look.

use crate::input::{Follow, InputError};
use crate::output::strip_ansi;
use crate::procfs;
use meanwhile_core::{LiveState, TaskId, TaskRecord, prompt_line};
use meanwhile_store::{LiveUpdate, Store};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How often the listening sockets are looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How much of the log's end is read for a prompt and a notice's last lines.
const TAIL_BYTES: u64 = 4096;
/// Lines of output a waiting-for-input notice shows.
const NOTICE_LINES: usize = 10;

struct Tracked {
    attempt: u32,
    supervisor: i32,
    pid: i32,
    log: PathBuf,
    /// The task's secrets, masked in its prompt and notices.
    mask: crate::output::Mask,
    seen: LiveState,
    recorded: LiveState,
    follower: Option<tokio::task::JoinHandle<()>>,
}

struct LiveInner {
    store: Arc<dyn Store>,
    secrets: crate::sealed::SecretsKey,
    clock: Arc<crate::Clock>,
    tasks: Mutex<HashMap<TaskId, Tracked>>,
    changed: Notify,
}

/// The tracker; clones share it.
#[derive(Clone)]
pub(crate) struct Live {
    inner: Arc<LiveInner>,
}

/// Tracks one attempt until dropped.
pub(crate) struct LiveGuard {
    live: Live,
    id: TaskId,
    attempt: u32,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut tasks = self.live.tasks();
        if tasks
            .get(&self.id)
            .is_some_and(|t| t.attempt == self.attempt)
            && let Some(t) = tasks.remove(&self.id)
            && let Some(f) = t.follower
        {
            f.abort();
        }
    }
}

impl Live {
    /// Starts the loop that records changes; it ends at shutdown.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        loops: Arc<crate::loops::Loops>,
        shutdown: watch::Receiver<bool>,
        secrets: crate::sealed::SecretsKey,
        clock: Arc<crate::Clock>,
    ) -> Live {
        let live = Live {
            inner: Arc::new(LiveInner {
                store,
                secrets,
                clock,
                tasks: Mutex::default(),
                changed: Notify::new(),
            }),
        };
        let l = live.clone();
        let down = shutdown.clone();
        crate::loops::supervise(loops, "live", shutdown, move || {
            let (l, mut down) = (l.clone(), down.clone());
            async move {
                tokio::select! {
                    _ = l.run() => {}
                    _ = down.wait_for(|&s| s) => {}
                }
            }
        });
        live
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<TaskId, Tracked>> {
        self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tracks the running attempt of `task` (started now, or adopted with what the
    /// store records of it), whose supervisor is `supervisor` and main process `pid`;
    /// an interactive one is followed through `socket`.
    pub(crate) fn track(
        &self,
        task: &TaskRecord,
        attempt: u32,
        supervisor: i32,
        pid: i32,
        log: &Path,
        socket: Option<PathBuf>,
    ) -> LiveGuard {
        let recorded = LiveState {
            waiting_since: task.waiting_since,
            prompt: task.prompt.clone(),
            listening: task.listening.clone(),
        };
        let follower = socket.map(|socket| {
            let live = self.clone();
            let id = task.id;
            tokio::spawn(async move { live.follow(id, attempt, &socket).await })
        });
        let was_idle = {
            let mut tasks = self.tasks();
            let was_idle = tasks.is_empty();
            tasks.insert(
                task.id,
                Tracked {
                    attempt,
                    supervisor,
                    pid,
                    log: log.to_path_buf(),
                    mask: crate::output::Mask::of(task, &self.inner.secrets),
                    seen: recorded.clone(),
                    recorded,
                    follower,
                },
            );
            was_idle
        };
        // An idle loop starts looking; a busy one finds the attempt at its next look,
        // so a start costs no wake-up.
        if was_idle {
            self.inner.changed.notify_one();
        }
        LiveGuard {
            live: self.clone(),
            id: task.id,
            attempt,
        }
    }

    /// Follows an interactive attempt's states from its supervisor.
    async fn follow(&self, id: TaskId, attempt: u32, socket: &Path) {
        let mut states = match Follow::open(socket).await {
            Ok(s) => s,
            Err(InputError::Gone) => return, // the supervisor ended: so does the attempt
            Err(e) => {
                tracing::warn!(task = %id, "not following whether the task waits for input: {e:?}");
                return;
            }
        };
        while let Some(waiting) = states.next().await {
            let (log, mask) = match self.tasks().get(&id) {
                Some(t) if t.attempt == attempt => (t.log.clone(), t.mask.clone()),
                _ => return,
            };
            let prompt = if waiting {
                prompt_line(&mask.apply_str(&log_tail(&log).0))
            } else {
                None
            };
            let mut tasks = self.tasks();
            let Some(t) = tasks.get_mut(&id).filter(|t| t.attempt == attempt) else {
                return;
            };
            t.seen.waiting_since = match (waiting, t.seen.waiting_since) {
                (true, Some(since)) => Some(since),
                (true, None) => Some(self.inner.clock.now()),
                (false, _) => None,
            };
            t.seen.prompt = prompt;
            drop(tasks);
            self.inner.changed.notify_one();
        }
    }

    async fn run(&self) {
        let mut sockets_seen: HashSet<u64> = HashSet::new();
        let mut next_look = tokio::time::Instant::now();
        loop {
            let idle = self.tasks().is_empty();
            if idle {
                self.inner.changed.notified().await;
            } else {
                tokio::select! {
                    _ = self.inner.changed.notified() => {}
                    _ = tokio::time::sleep_until(next_look) => {}
                }
            }
            if tokio::time::Instant::now() >= next_look {
                next_look = tokio::time::Instant::now() + LOOK_EVERY;
                let live = self.clone();
                let seen = std::mem::take(&mut sockets_seen);
                sockets_seen = match tokio::task::spawn_blocking(move || {
                    live.look_for_listeners(seen)
                })
                .await
                {
                    Ok(now) => now,
                    Err(e) => {
                        tracing::warn!("looking for listening sockets failed: {e}");
                        HashSet::new()
                    }
                };
            }
            self.record().await;
        }
    }

    /// Which sockets each tracked attempt's processes listen on. The processes are
    /// walked only when the machine's listening sockets differ from `before`, or
    /// an attempt was never looked at; returns the sockets now.
    fn look_for_listeners(&self, before: HashSet<u64>) -> HashSet<u64> {
        let sockets = procfs::listening_sockets();
        let now: HashSet<u64> = sockets.keys().copied().collect();
        if now == before {
            return now;
        }
        let attempts: Vec<(TaskId, i32, i32)> = self
            .tasks()
            .iter()
            .map(|(&id, t)| (id, t.supervisor, t.pid))
            .collect();
        if attempts.is_empty() {
            return before; // look again once there is an attempt to look for
        }
        let all = procfs::all_processes();
        let found: Vec<(TaskId, Vec<meanwhile_core::Listener>)> = attempts
            .into_iter()
            .map(|(id, supervisor, pid)| {
                let mut pids = procfs::descendants(&all, supervisor);
                pids.push(pid);
                let inodes = pids.into_iter().flat_map(procfs::socket_inodes);
                (id, procfs::listeners_of(inodes, &sockets))
            })
            .collect();
        let mut tasks = self.tasks();
        for (id, listening) in found {
            if let Some(t) = tasks.get_mut(&id) {
                t.seen.listening = listening;
            }
        }
        now
    }

    /// Commits what changed since it was last recorded.
    async fn record(&self) {
        let changed: Vec<_> = self
            .tasks()
            .iter()
            .filter(|(_, t)| t.seen != t.recorded)
            .map(|(&id, t)| (id, t.attempt, t.seen.clone(), t.log.clone(), t.mask.clone()))
            .collect();
        for (id, attempt, live, log, mask) in changed {
            let (plain, size) = log_tail(&log);
            let plain = mask.apply_str(&plain);
            let lines: Vec<&str> = plain.lines().collect();
            let tail = lines[lines.len().saturating_sub(NOTICE_LINES)..].join("\n");
            let update = LiveUpdate {
                id,
                attempt,
                live: live.clone(),
                tail,
                output_bytes: size,
                now: self.inner.clock.now(),
            };
            match self.inner.store.set_live(update).await {
                Ok(()) => {
                    if let Some(t) = self.tasks().get_mut(&id).filter(|t| t.attempt == attempt) {
                        t.recorded = live;
                    }
                }
                Err(e) if e.is_database_failure() => {
                    tracing::warn!(task = %id, "recording what the task is doing failed: {e}");
                }
                Err(e) => tracing::debug!(task = %id, "recording what the task is doing: {e}"),
            }
        }
    }
}

/// The end of a log without its escape sequences, and the log's size.
fn log_tail(path: &Path) -> (String, u64) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (String::new(), 0);
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = size.saturating_sub(TAIL_BYTES);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.take(TAIL_BYTES).read_to_end(&mut buf).is_err() {
        return (String::new(), size);
    }
    let mut text = String::from_utf8_lossy(&strip_ansi(&buf)).into_owned();
    if from > 0 {
        // The first line is cut; leave it out.
        text = text
            .split_once('\n')
            .map(|(_, r)| r.to_string())
            .unwrap_or_default();
    }
    (text, size)
}
