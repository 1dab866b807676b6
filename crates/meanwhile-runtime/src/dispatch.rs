//! The dispatcher: the one loop that records the ends of attempts and claims new ones.
//!
//! Attempts hand their end to the dispatcher instead of committing it. Each turn of
//! the loop takes every end that has arrived and, in the same store write, claims
//! what the freed slots (and any submit or timer since) allow, then starts the
//! claimed attempts. A finished task's slot is therefore refilled by the commit that
//! records its end: one commit round trip per turn, however many tasks end in it,
//! and nothing sleeps while there is work. Leases are renewed and progress lines
//! recorded by loops of their own.

use crate::attempt;
use crate::engine::{Inner, Settle};
use crate::stop::Active;
use meanwhile_core::{Progress, TaskId, TaskKind};
use meanwhile_store::{Claim, ClaimRequest, Finished, StoreError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Most tasks claimed in one turn; more are claimed on the next turn at once.
const CLAIM_BATCH: u32 = 256;
/// With nothing scheduled, the dispatcher still looks once in a while, so a clock
/// jump or a missed wake-up cannot strand a task.
const IDLE_RECHECK: Duration = Duration::from_secs(30);
/// The pause after a claim failed, before the next try.
const CLAIM_RETRY: Duration = Duration::from_millis(500);

pub(crate) fn start(
    inner: &Arc<Inner>,
    settles: mpsc::UnboundedReceiver<Settle>,
    progress: mpsc::UnboundedReceiver<(TaskId, Progress)>,
) {
    // The receivers outlive a loop that panicked, for the loop made again.
    let settles = Arc::new(tokio::sync::Mutex::new(settles));
    let progress = Arc::new(tokio::sync::Mutex::new(progress));
    inner.spawn_loop("dispatcher", move |inner| {
        let settles = settles.clone();
        async move { dispatch_loop(inner, &mut *settles.lock().await).await }
    });
    inner.spawn_loop("leases", renew_loop);
    inner.spawn_loop("progress", move |inner| {
        let progress = progress.clone();
        async move { progress_loop(inner, &mut *progress.lock().await).await }
    });
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

fn claim_request(inner: &Inner) -> ClaimRequest {
    claim_up_to(inner, CLAIM_BATCH)
}

/// A claim of at most `limit` tasks for this node, now.
fn claim_up_to(inner: &Inner, limit: u32) -> ClaimRequest {
    let now = inner.now();
    ClaimRequest {
        node: inner.node.clone(),
        now,
        lease_until: meanwhile_core::Timestamp(now.0 + inner.config.lease.as_millis() as i64),
        kinds: kinds(inner),
        limit,
        share_since: inner.store.is_shared().then(|| {
            meanwhile_core::Timestamp(now.0 - inner.config.node_silent_after.as_millis() as i64)
        }),
    }
}

async fn dispatch_loop(inner: Arc<Inner>, settles: &mut mpsc::UnboundedReceiver<Settle>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut pending: Vec<Settle> = Vec::new();
    let mut claim_wanted = true;
    let mut next_look = tokio::time::Instant::now();
    loop {
        while let Ok(s) = settles.try_recv() {
            pending.push(s);
        }
        let stopping = inner.is_shutting_down();
        if stopping && pending.is_empty() && inner.in_flight.load(Ordering::SeqCst) == 0 {
            return;
        }
        // Ends free slots: a turn that records ends claims for them too.
        let claim = (claim_wanted || !pending.is_empty()) && !stopping;
        if claim || !pending.is_empty() {
            claim_wanted = false;
            let req = claim.then(|| claim_request(&inner));
            let now = req.as_ref().map(|r| r.now);
            match turn(&inner, std::mem::take(&mut pending), req).await {
                Some(Ok(c)) => {
                    inner.loops.ok("dispatcher");
                    claim_wanted = c.tasks.len() as u32 == CLAIM_BATCH;
                    let wait = match (c.next_wakeup, now) {
                        (Some(t), Some(now)) => Duration::from_millis(now.millis_until(t)),
                        _ => IDLE_RECHECK,
                    };
                    next_look = tokio::time::Instant::now() + wait.min(IDLE_RECHECK);
                    start_claimed(&inner, c);
                }
                Some(Err(e)) => {
                    inner
                        .loops
                        .failed("dispatcher", format_args!("claiming tasks"), &e);
                    next_look = tokio::time::Instant::now() + CLAIM_RETRY;
                }
                None => {}
            }
            continue;
        }
        tokio::select! {
            s = settles.recv() => pending.extend(s),
            _ = inner.wake.notified() => claim_wanted = true,
            _ = tokio::time::sleep_until(next_look) => claim_wanted = true,
            _ = shutdown.changed() => {}
        }
    }
}

/// The claim a submit of `n` tasks makes in its own commit, so that a task
/// submitted to a free slot starts without a second commit: at most `n + 1` tasks,
/// one more than it submits, so that a claim that takes fewer shows that nothing
/// else is runnable (the dispatcher claims the rest); none while the runtime stops.
pub(crate) fn claim_with_submit(inner: &Inner, n: usize) -> Option<ClaimRequest> {
    (!inner.is_shutting_down()).then(|| claim_up_to(inner, (n as u32 + 1).min(CLAIM_BATCH)))
}

/// Starts what a submit claimed. The dispatcher looks again only when the claim may
/// have left runnable tasks behind (it took all it asked for), failed, or found a
/// later run-after time; otherwise there is nothing for it to do, and a submit
/// costs no turn of it.
pub(crate) fn claimed_with_submit(
    inner: &Arc<Inner>,
    asked: u32,
    claim: Result<Claim, StoreError>,
) {
    match claim {
        Ok(c) => {
            let again = c.tasks.len() as u32 >= asked || c.next_wakeup.is_some();
            start_claimed(inner, c);
            if again {
                inner.wake.notify_one();
            }
        }
        Err(e) => {
            // Not the submit's failure: counted as the dispatcher's, which claims
            // again in its next turn.
            inner
                .loops
                .failed("dispatcher", format_args!("claiming with a submit"), &e);
            inner.wake.notify_one();
        }
    }
}

/// One turn: records `ends` and claims in one store write, then settles each end.
/// Returns the claim's outcome, when one was asked for.
async fn turn(
    inner: &Arc<Inner>,
    ends: Vec<Settle>,
    req: Option<ClaimRequest>,
) -> Option<Result<Claim, StoreError>> {
    let asked = req.is_some();
    let records = ends.iter().map(|s| s.end.clone()).collect();
    // Until the write answers, the ends are held where a panic hands them back.
    let mut held = Held(ends, inner.clone());
    let written = match crate::fault::point("dispatcher.turn") {
        Ok(()) => inner.store.settle_and_claim(records, req).await,
        Err(e) => Err(e),
    };
    let ends = std::mem::take(&mut held.0);
    match written {
        Ok(settled) => {
            for (s, r) in ends.into_iter().zip(settled.finished) {
                match r {
                    Ok(fin) => ended(inner, s.kind, s.end.id, fin),
                    Err(e) => retry_later(inner, s, &e),
                }
            }
            settled.claim
        }
        Err(e) => {
            let why = e.to_string();
            for s in ends {
                retry_later(inner, s, &StoreError::CommitFailed(why.clone()));
            }
            asked.then_some(Err(e))
        }
    }
}

/// Ends on their way to the store. Dropped while they are still here, the turn
/// panicked: they go back to the dispatcher, for the loop made again to record.
struct Held(Vec<Settle>, Arc<Inner>);

impl Drop for Held {
    fn drop(&mut self) {
        for s in self.0.drain(..) {
            if let Err(mpsc::error::SendError(s)) = self.1.settles.send(s) {
                attempt::end_of_attempt(&self.1, s.end.id);
            }
        }
    }
}

/// An end is recorded: hooks run, and the attempt is forgotten.
fn ended(inner: &Arc<Inner>, kind: TaskKind, id: TaskId, fin: Option<Finished>) {
    if let Some(fin) = fin {
        attempt::recorded(inner, kind, &fin);
    }
    attempt::end_of_attempt(inner, id);
}

/// An end whose commit failed goes back to the dispatcher after a pause: a task whose
/// end is known must not stay `running`. Only a shutdown stops the tries; the next
/// start then settles the attempt from the supervisors' journal.
fn retry_later(inner: &Arc<Inner>, mut s: Settle, e: &StoreError) {
    s.failures += 1;
    attempt::note_end_failure(inner, &mut s.end, s.failures, e);
    if inner.is_shutting_down() {
        tracing::error!(
            task = %s.end.id,
            "shutting down with the end of attempt {} unrecorded; the next start settles it from the journal",
            s.end.attempt
        );
        attempt::end_of_attempt(inner, s.end.id);
        return;
    }
    let wait = attempt::end_retry_wait(s.failures);
    let inner = inner.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        if let Err(mpsc::error::SendError(s)) = inner.settles.send(s) {
            attempt::end_of_attempt(&inner, s.end.id);
        }
    });
}

/// Registers the claimed attempts (handing over stops that came first) and starts them.
pub(crate) fn start_claimed(inner: &Arc<Inner>, claim: Claim) {
    if claim.tasks.is_empty() {
        return;
    }
    let mut registry = inner.registry();
    for c in claim.tasks {
        let (stop_tx, stop_rx) = mpsc::unbounded_channel();
        let (size_tx, size_rx) = watch::channel(0u64);
        let pgid = Arc::default();
        registry.register(
            c.task.id,
            Active {
                attempt: c.attempt,
                stop: stop_tx,
                output: size_rx,
                pgid: Arc::clone(&pgid),
            },
        );
        inner.in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(attempt::run(inner.clone(), c, stop_rx, size_tx, pgid));
    }
}

/// Renews this node's leases every third of a lease. An attempt the store no longer
/// counts as this node's was taken over by another node (this one was thought gone):
/// it is killed, and its end cannot be recorded. When renewals fail for most of a
/// lease (the database is out of reach), every attempt is killed before the lease
/// runs out, since another node is about to run the task again (in a fleet only).
/// A renewal under way: when it was asked, and the tasks it renewed.
type Renewal = tokio::task::JoinHandle<(tokio::time::Instant, Result<Vec<TaskId>, StoreError>)>;

async fn renew_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let lease = inner.config.lease;
    let every = lease / 3;
    // Killing comes a sixth of a lease before the lease ends, so that the other
    // nodes, which look only once it has, never run a task while this one does.
    let hold = lease - lease / 6;
    // One machine's store has no other node to take over: nothing to fence.
    let fencing = inner.store.is_shared();
    let mut renewed_at = tokio::time::Instant::now();
    let mut next = renewed_at + every;
    let mut fenced = false;
    // A renewal that does not answer is waited for, not cancelled: a write cut off
    // in the middle would leave its transaction to the server.
    let mut in_flight: Option<Renewal> = None;
    loop {
        let deadline = renewed_at + hold;
        let wake = if fenced { next } else { next.min(deadline) };
        let renewed = tokio::select! {
            r = async { in_flight.as_mut().expect("polled only when some").await }, if in_flight.is_some() => Some(r),
            _ = tokio::time::sleep_until(wake) => None,
            _ = shutdown.changed() => return,
        };
        if let Some(result) = renewed {
            in_flight = None;
            match result {
                Ok((asked, Ok(held))) => {
                    inner.loops.ok("leases");
                    renewed_at = asked;
                    fenced = false;
                    if fencing {
                        check_held(&inner, &held).await;
                    }
                }
                Ok((_, Err(e))) => inner.loop_failed("leases", format_args!("renewing leases"), &e),
                Err(e) => inner
                    .loops
                    .failed("leases", format_args!("renewing leases"), &e),
            }
        }
        let now = tokio::time::Instant::now();
        if fencing && !fenced && now >= renewed_at + hold {
            fenced = true;
            lose_all(&inner, renewed_at.elapsed());
        }
        if in_flight.is_none() && now >= next {
            next = now + every;
            let until = meanwhile_core::Timestamp(inner.now().0 + lease.as_millis() as i64);
            let inner = inner.clone();
            in_flight = Some(tokio::spawn(async move {
                (now, inner.store.renew(&inner.node, until).await)
            }));
        }
    }
}

/// Kills every attempt of this node: its leases could not be renewed.
fn lose_all(inner: &Inner, since: Duration) {
    let mut registry = inner.registry();
    let attempts = registry.attempts();
    if attempts.is_empty() {
        return;
    }
    tracing::error!(
        "no lease renewal for {since:?}: killing {} attempts, which other nodes take over",
        attempts.len()
    );
    for (id, _) in attempts {
        registry.lose(
            id,
            format!(
                "node {:?} could not renew its lease for {} (its database was out of reach), so another node runs the task",
                inner.node,
                meanwhile_core::format_duration(since)
            ),
        );
    }
}

/// Kills the attempts running here that the store says are no longer this node's.
async fn check_held(inner: &Arc<Inner>, held: &[TaskId]) {
    let ours = inner.registry().attempts();
    for (id, n) in ours {
        if held.contains(&id) {
            continue;
        }
        // Claimed after the renewal looked, or ended meanwhile: the store decides.
        let t = match inner.store.get(id).await {
            Ok(t) => t,
            Err(e) => {
                // Asked again after the next renewal.
                tracing::warn!(task = %id, "checking whether this node still holds the task: {e}");
                continue;
            }
        };
        let still = t.state == meanwhile_core::TaskState::Running
            && t.attempts == n
            && t.node.as_deref() == Some(inner.node.as_str());
        if !still {
            inner.registry().lose(
                id,
                format!(
                    "node {:?} lost its lease on this attempt to another node",
                    inner.node
                ),
            );
        }
    }
}

async fn progress_loop(inner: Arc<Inner>, rx: &mut mpsc::UnboundedReceiver<(TaskId, Progress)>) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let (id, p) = tokio::select! {
            Some(item) = rx.recv() => item,
            _ = shutdown.changed() => return,
            else => return,
        };
        if let Err(e) = inner.write_progress(id, p).await {
            inner.loop_failed(
                "progress",
                format_args!("recording the progress of task {id}"),
                &e,
            );
        }
    }
}
