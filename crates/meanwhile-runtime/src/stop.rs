//! Stopping a task, in one place: the registry of attempts running on this node, the
//! delivery of a stop request to one of them, and the escalation from SIGTERM to
//! SIGKILL. Nothing else in the runtime signals a task's processes.
//!
//! A stop reaches a running attempt through its registry entry. The attempt is told
//! first, so that when the signal ends the task it already knows it was stopped
//! (`cancelled`, not `failed`); then, if its process is started, the process group is
//! signalled at once, so that a caller that exits right after asking does not leave
//! the task running. The attempt's own loop then arms the kill after the grace period.
//!
//! A task is claimed in a store commit and registered right after it, by the
//! dispatcher or by the submit that claimed it. A stop whose store write commits in
//! between finds the task `running` but not registered yet: it is kept as an early
//! stop for that attempt and handed over at registration, so no lock is held across
//! a commit. A stop that finds the process not started yet cannot signal it; its
//! caller waits until the attempt has taken the request in (see [`Taken`]).

use meanwhile_core::{StopMode, TaskId};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// A stop request, as an attempt receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StopRequest {
    pub mode: StopMode,
    /// The process group was signalled already (the attempt must not signal again:
    /// some programs take a second SIGTERM as "quit without cleaning up").
    pub signalled: bool,
    /// Set when this node lost its lease on the attempt: the attempt is `lost`,
    /// for this reason, rather than cancelled.
    pub lost: Option<String>,
    /// Dropped once the attempt has taken the request in (or ended without it).
    pub taken: Taken,
}

/// Held by a stop request that could not signal a process (none was started yet):
/// its caller waits until every copy is dropped, that is until the attempt took the
/// request in, and carried it out, or ended. So a caller that exits right after a
/// stop returns does not leave behind a process that was being started.
#[derive(Clone, Default)]
pub(crate) struct Taken(Option<Arc<oneshot::Sender<()>>>);

impl Taken {
    /// A handle for a request, and what resolves once it is dropped.
    fn watched() -> (Taken, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Taken(Some(Arc::new(tx))), rx)
    }
}

impl std::fmt::Debug for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Taken(watched)"
        } else {
            "Taken"
        })
    }
}

/// Two requests are the same whoever waits for them.
impl PartialEq for Taken {
    fn eq(&self, _: &Taken) -> bool {
        true
    }
}

impl Eq for Taken {}

/// An attempt running on this node.
pub(crate) struct Active {
    pub attempt: u32,
    pub stop: mpsc::UnboundedSender<StopRequest>,
    pub output: watch::Receiver<u64>,
    /// The process group once the attempt's process is started (0 before, and for
    /// in-process attempts), so a stop can signal it at once.
    pub pgid: Arc<AtomicI32>,
}

/// How long an early stop waits for its attempt to be registered. Registration
/// follows the claim's commit within one turn of the dispatcher; an entry this old
/// belongs to an attempt that ended before the stop looked.
const EARLY_STOP_TTL: Duration = Duration::from_secs(60);

/// The attempts running on this node, and stops that arrived before their attempt.
#[derive(Default)]
pub(crate) struct Registry {
    running: HashMap<TaskId, Active>,
    early: HashMap<(TaskId, u32), (StopMode, Instant)>,
}

impl Registry {
    /// Registers a claimed attempt; a stop that arrived first is delivered now.
    pub fn register(&mut self, id: TaskId, active: Active) {
        if let Some((mode, _)) = self.early.remove(&(id, active.attempt)) {
            // Its caller has returned already: nobody waits for it to be taken in.
            let _ = deliver(&active, mode);
        }
        self.running.insert(id, active);
    }

    pub fn remove(&mut self, id: TaskId) {
        self.running.remove(&id);
    }

    pub fn get(&self, id: TaskId) -> Option<&Active> {
        self.running.get(&id)
    }

    /// The process group (the main process) of each attempt whose process has
    /// started here, by task.
    pub fn process_groups(&self) -> Vec<(TaskId, i32)> {
        self.running
            .iter()
            .map(|(&id, a)| (id, a.pgid.load(Ordering::SeqCst)))
            .filter(|&(_, pgid)| pgid > 0)
            .collect()
    }

    /// The attempts running here, by task.
    pub fn attempts(&self) -> Vec<(TaskId, u32)> {
        self.running
            .iter()
            .map(|(&id, a)| (id, a.attempt))
            .collect()
    }

    /// Kills the attempt of `id` at once, because this node no longer holds its
    /// lease: it ends `lost`, for `reason`.
    pub fn lose(&mut self, id: TaskId, reason: String) {
        if let Some(a) = self.running.get(&id) {
            let _ = send(a, StopMode::Force, Some(reason));
        }
    }

    /// Stops `attempt` of task `id`, now if it is registered, else at registration.
    /// When its process could not be signalled (not started yet), answers what
    /// resolves once the attempt has taken the stop in: wait for it, outside the
    /// registry's lock, before saying the stop was delivered.
    pub fn stop(
        &mut self,
        id: TaskId,
        attempt: u32,
        mode: StopMode,
    ) -> Option<oneshot::Receiver<()>> {
        match self.running.get(&id) {
            Some(a) if a.attempt == attempt => deliver(a, mode),
            // Not registered yet, or its previous attempt still is (its end and this
            // attempt's claim were committed together and are being handed over).
            _ => {
                let now = Instant::now();
                self.early
                    .retain(|_, (_, at)| now.duration_since(*at) < EARLY_STOP_TTL);
                self.early.insert((id, attempt), (mode, now));
                None
            }
        }
    }
}

fn signal_for(mode: StopMode) -> i32 {
    match mode {
        StopMode::Force => libc::SIGKILL,
        StopMode::Graceful => libc::SIGTERM,
    }
}

/// Tells the attempt, then signals its process group if it has one; otherwise
/// answers what resolves once the attempt has taken the request in.
fn deliver(a: &Active, mode: StopMode) -> Option<oneshot::Receiver<()>> {
    send(a, mode, None)
}

fn send(a: &Active, mode: StopMode, lost: Option<String>) -> Option<oneshot::Receiver<()>> {
    let pgid = a.pgid.load(Ordering::SeqCst);
    let signalled = pgid > 0;
    let (taken, waiting) = if signalled {
        (Taken::default(), None)
    } else {
        let (taken, rx) = Taken::watched();
        (taken, Some(rx))
    };
    let sent = a.stop.send(StopRequest {
        mode,
        signalled,
        lost,
        taken,
    });
    if signalled {
        crate::spawn::signal_group(pgid, signal_for(mode));
    }
    // Not sent: the attempt has ended, and there is nothing to wait for.
    waiting.filter(|_| sent.is_ok())
}

/// An attempt's way from its first stop signal to SIGKILL.
pub(crate) struct Escalation {
    pgid: i32,
    kill_at: Option<Instant>,
}

impl Escalation {
    pub fn new(pgid: i32) -> Escalation {
        Escalation {
            pgid,
            kill_at: None,
        }
    }

    /// Starts stopping (a request, or a timeout when `request` is `None`): SIGTERM
    /// unless sent already, and SIGKILL after `grace`; at once with no grace or a
    /// forced stop. A second graceful stop does not push the kill further out.
    pub fn begin(&mut self, request: Option<&StopRequest>, grace: Duration) {
        let mode = request.map_or(StopMode::Graceful, |r| r.mode);
        let signalled = request.is_some_and(|r| r.signalled);
        if mode == StopMode::Force || grace.is_zero() {
            if !(signalled && mode == StopMode::Force) {
                crate::spawn::signal_group(self.pgid, libc::SIGKILL);
            }
            self.kill_at = None;
            return;
        }
        if !signalled {
            crate::spawn::signal_group(self.pgid, libc::SIGTERM);
        }
        self.kill_at.get_or_insert_with(|| Instant::now() + grace);
    }

    /// Resolves when the grace period is over (never when no kill is due).
    pub async fn due(&self) {
        match self.kill_at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    pub fn is_due(&self) -> bool {
        self.kill_at.is_some()
    }

    /// The grace period is over: SIGKILL.
    pub fn kill(&mut self) {
        crate::spawn::signal_group(self.pgid, libc::SIGKILL);
        self.kill_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(attempt: u32) -> (Active, mpsc::UnboundedReceiver<StopRequest>) {
        let (stop, rx) = mpsc::unbounded_channel();
        let output = watch::channel(0).1;
        let pgid = Arc::default();
        (
            Active {
                attempt,
                stop,
                output,
                pgid,
            },
            rx,
        )
    }

    #[test]
    fn a_stop_before_registration_is_delivered_at_registration() {
        let mut r = Registry::default();
        r.stop(TaskId(1), 1, StopMode::Force);
        let (a, mut rx) = active(1);
        r.register(TaskId(1), a);
        assert_eq!(
            rx.try_recv().ok(),
            Some(StopRequest {
                mode: StopMode::Force,
                signalled: false,
                lost: None,
                taken: Taken::default(),
            })
        );
    }

    #[test]
    fn an_early_stop_reaches_only_its_own_attempt() {
        let mut r = Registry::default();
        let (a, mut rx1) = active(1);
        r.register(TaskId(1), a);
        // Attempt 2 was claimed in the commit that recorded attempt 1's end, and is
        // stopped before the hand-over.
        r.stop(TaskId(1), 2, StopMode::Graceful);
        assert!(rx1.try_recv().is_err(), "attempt 1 is not stopped");
        r.remove(TaskId(1));
        let (a, mut rx2) = active(2);
        r.register(TaskId(1), a);
        assert_eq!(
            rx2.try_recv().map(|s| s.mode).ok(),
            Some(StopMode::Graceful)
        );
        // A later attempt does not inherit it.
        r.remove(TaskId(1));
        let (a, mut rx3) = active(3);
        r.register(TaskId(1), a);
        assert!(rx3.try_recv().is_err());
    }

    /// A stop that finds the attempt's process not started yet cannot signal it:
    /// its caller is answered what resolves once the attempt has taken the request
    /// in, and not before. One that could signal has nothing to wait for.
    #[test]
    fn a_stop_before_the_process_starts_is_waited_for_until_taken_in() {
        let mut r = Registry::default();
        let (a, mut rx) = active(1);
        let pgid = a.pgid.clone();
        r.register(TaskId(1), a);
        let mut taken = r
            .stop(TaskId(1), 1, StopMode::Force)
            .expect("something to wait for");
        assert!(taken.try_recv().is_err(), "not taken in yet");
        let request = rx.try_recv().unwrap();
        assert!(!request.signalled);
        assert!(taken.try_recv().is_err(), "held by the attempt");
        drop(request);
        assert_eq!(taken.try_recv(), Err(oneshot::error::TryRecvError::Closed));

        pgid.store(i32::MAX, Ordering::SeqCst); // no such group: the signal goes nowhere
        assert!(r.stop(TaskId(1), 1, StopMode::Graceful).is_none());
        assert!(rx.try_recv().unwrap().signalled);
        // An attempt that ended (its receiver gone) has nothing to wait for either.
        pgid.store(0, Ordering::SeqCst);
        drop(rx);
        assert!(r.stop(TaskId(1), 1, StopMode::Force).is_none());
    }
}
