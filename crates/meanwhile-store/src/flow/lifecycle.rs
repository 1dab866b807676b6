//! A claim and an attempt's end, the two writes every task makes.

use super::{Db, Result, Val};
use crate::cells::Cells;
use crate::sql::ops::lifecycle::*;
use crate::{
    AttemptEnd, Claim, ClaimRequest, Claimed, Finished, StopOutcome, StoreError, TakeOver, policy,
};
use meanwhile_core::{
    EventKind, Progress, TaskId, TaskRecord, TaskState, Timestamp, Transition, transition,
};
use serde_json::json;
use std::collections::HashMap;

/// A queue as a claim sees it: its limits.
pub(crate) struct ClaimQueue {
    pub name: String,
    pub max_parallel: i64,
    pub per_key: Option<i64>,
    /// Starts allowed, and the window's length in milliseconds.
    pub rate: Option<(i64, i64)>,
}

impl ClaimQueue {
    /// A row of `name, max_parallel, per_key, rate_count, rate_window_ms`.
    pub(crate) fn read(r: &impl Cells) -> Result<ClaimQueue> {
        let rate = match (r.cell::<Option<i64>>(3)?, r.cell::<Option<i64>>(4)?) {
            (Some(count), Some(window)) => Some((count, window)),
            _ => None,
        };
        Ok(ClaimQueue {
            name: r.cell(0)?,
            max_parallel: r.cell(1)?,
            per_key: r.cell(2)?,
            rate,
        })
    }
}

/// What a claim reads and counts that each store does its own way.
pub(crate) trait Claims: Db {
    /// The queues a claim may take from, with their limits (PostgreSQL: locked, in
    /// name order, so that what is counted next cannot change under the claim).
    async fn unpaused_queues(&mut self) -> Result<Vec<ClaimQueue>>;
    /// What runs in each queue.
    async fn running_per_queue(&mut self) -> Result<HashMap<String, i64>>;
    /// When the fleet shares the queues (`req.share_since`): how many nodes share
    /// them, and what the claiming node runs in each. `None` on one machine.
    async fn share(&mut self, req: &ClaimRequest) -> Result<Option<(i64, HashMap<String, i64>)>>;
    /// Starts of a rate-limited queue within the window that ends at `now`, after
    /// forgetting those before it.
    async fn rate_used(&mut self, queue: &str, now: Timestamp, window_ms: i64) -> Result<i64>;
    /// Up to `want` runnable tasks of `queue` for `req`, in priority order, passing
    /// over those whose concurrency key is full when the queue has a `per_key` limit.
    async fn pick(&mut self, queue: &ClaimQueue, req: &ClaimRequest, want: i64)
    -> Result<Vec<i64>>;
    /// Counts `n` starts of a rate-limited queue at `now`.
    async fn record_starts(&mut self, queue: &str, now: Timestamp, n: i64) -> Result<()>;
    /// When a rate-limited queue may start another task (see
    /// [`policy::rate_reopens`]).
    async fn rate_reopens(
        &mut self,
        queue: &str,
        window_ms: i64,
        excess: i64,
    ) -> Result<Option<Timestamp>>;
}

/// Claims runnable tasks (see `LifecycleStore::claim`): queue by queue, as many as
/// its free slots, this node's share, its rate and the request's limit allow.
pub(crate) async fn claim(db: &mut impl Claims, req: &ClaimRequest) -> Result<Claim> {
    if req.kinds.is_empty() || req.limit == 0 {
        return Ok(Claim {
            tasks: Vec::new(),
            next_wakeup: db.next_wakeup(req.now).await?,
        });
    }
    let queues = db.unpaused_queues().await?;
    let running = db.running_per_queue().await?;
    let share = db.share(req).await?;
    let mut budget = i64::from(req.limit);
    let mut picked = Vec::new();
    let mut wakeup = db.next_wakeup(req.now).await?;
    for queue in queues {
        let mut free =
            (queue.max_parallel - running.get(&queue.name).copied().unwrap_or(0)).min(budget);
        if let Some((nodes, mine)) = &share {
            let my_share = (queue.max_parallel + nodes - 1) / nodes;
            free = free.min(my_share - mine.get(&queue.name).copied().unwrap_or(0));
        }
        if free <= 0 {
            continue;
        }
        let used = match queue.rate {
            None => 0,
            Some((_, window)) => db.rate_used(&queue.name, req.now, window).await?,
        };
        // When the rate rather than the free slots stops this claim, look for one task
        // more: if there is one, the rate holds it back, and the claimer must hear when
        // the window lets it start (an end frees slots, and the claim that follows it
        // covers the other case).
        let (allowed, probe) = policy::claim_room(free, queue.rate, used);
        let mut ids = db.pick(&queue, req, allowed + i64::from(probe)).await?;
        let held_back = ids.len() as i64 > allowed;
        ids.truncate(allowed as usize);
        if let Some((count, window)) = queue.rate {
            if !ids.is_empty() {
                db.record_starts(&queue.name, req.now, ids.len() as i64)
                    .await?;
            }
            if held_back {
                let used = used + ids.len() as i64;
                if let Some(t) = db
                    .rate_reopens(&queue.name, window, used - count + 1)
                    .await?
                {
                    wakeup = Some(wakeup.map_or(t, |w| w.min(t)));
                }
            }
        }
        budget -= ids.len() as i64;
        picked.extend(ids);
        if budget <= 0 {
            break;
        }
    }
    let mut out = Vec::with_capacity(picked.len());
    for id in picked {
        let id = TaskId(id);
        let mut task = db.load_task(id).await?;
        let to = transition(task.state, Transition::Claim)
            .map_err(|source| StoreError::Illegal { id, source })?;
        let attempt = task.attempts + 1;
        let node = req.node.as_str();
        let (now, lease) = (req.now.0, req.lease_until.0);
        let claimed: [Val; 6] = [
            id.0.into(),
            to.as_str().into(),
            attempt.into(),
            now.into(),
            node.into(),
            lease.into(),
        ];
        db.exec(&CLAIM_TASK, &claimed).await?;
        db.exec(
            &NEW_ATTEMPT,
            &[id.0.into(), attempt.into(), node.into(), now.into()],
        )
        .await?;
        db.count_move(&task.queue, task.state, to).await?;
        let data = json!({"attempt": attempt, "node": req.node});
        db.emit(req.now, EventKind::Started, Some(id), data).await?;
        policy::claimed(&mut task, to, attempt, req);
        out.push(Claimed { task, attempt });
    }
    Ok(Claim {
        tasks: out,
        next_wakeup: wakeup,
    })
}

/// Records the end of an attempt, if it is still the task's running one and, when
/// `holder` names a node, that node holds it; then moves the task on: to its next
/// attempt, or to its end, with its `finished` event, its session's notice and the
/// failure of its dependents.
pub(crate) async fn end_attempt(
    db: &mut impl Db,
    end: &AttemptEnd,
    holder: Option<&str>,
) -> Result<Option<Finished>> {
    let id = end.id;
    let (mut task, base, max_attempts) = db.load_task_and_budget(id).await?;
    if task.state != TaskState::Running || task.attempts != end.attempt {
        return Ok(None);
    }
    if holder.is_some() && task.node.as_deref() != holder {
        // Taken over as the same attempt by another node, which records its end.
        return Ok(None);
    }
    let relative = (i64::from(end.attempt) - base).max(1) as u32;
    let to = transition(
        task.state,
        Transition::AttemptEnded {
            outcome: end.outcome,
            attempt: relative,
            max_attempts: max_attempts as u32,
        },
    )
    .map_err(|source| StoreError::Illegal { id, source })?;
    let (code, signal) = (Val::from(end.exit_code), Val::from(end.signal));
    db.exec(
        &END_ATTEMPT,
        &[
            id.0.into(),
            end.attempt.into(),
            end.ended_at.0.into(),
            crate::decode::outcome_name(end.outcome).into(),
            code,
            signal,
            (&end.reason).into(),
            end.peak_rss_kb.into(),
            end.cpu_ms.into(),
            end.pid.into(),
        ],
    )
    .await?;
    let started = task.started_at.unwrap_or(end.ended_at);
    let duration_ms = started.millis_until(end.ended_at);
    let reason = policy::end_reason(end, to, relative);
    if to == TaskState::Pending {
        let retry_reason = policy::retry_reason(end);
        let later = [
            id.0.into(),
            end.retry_at.0.into(),
            code,
            signal,
            retry_reason.as_str().into(),
        ];
        db.exec(&RETRY_LATER, &later).await?;
        task.run_after = Some(end.retry_at);
        task.reason = Some(retry_reason);
    } else {
        let ended = [
            id.0.into(),
            to.as_str().into(),
            end.ended_at.0.into(),
            code,
            signal,
            (&reason).into(),
            (&end.result).into(),
        ];
        db.exec(&END_TASK, &ended).await?;
        task.finished_at = Some(end.ended_at);
        task.reason = reason;
        if end.result.is_some() {
            task.result = end.result.clone();
        }
    }
    db.count_move(&task.queue, task.state, to).await?;
    let data = crate::decode::attempt_ended_data(end, to);
    db.emit(end.ended_at, EventKind::AttemptEnded, Some(id), data)
        .await?;
    policy::ended(&mut task, to, end);
    let mut cascaded = Vec::new();
    if to.is_terminal() {
        let (tail, bytes) = (&end.tail, end.output_bytes);
        finished(db, &task, end.ended_at, duration_ms, tail, bytes).await?;
        cascaded = cascade(db, id, to, end.ended_at).await?;
    }
    Ok(Some(Finished { task, cascaded }))
}

/// Records the process id of a running attempt.
pub(crate) async fn set_pid(db: &mut impl Db, id: TaskId, attempt: u32, pid: i32) -> Result<()> {
    db.exec(&SET_PID, &[id.0.into(), attempt.into(), pid.into()])
        .await?;
    Ok(())
}

/// Records the end of an attempt whose node let its lease expire, if it still has
/// (the row is locked first, so a renewal that came meanwhile wins).
pub(crate) async fn rescue(
    db: &mut impl Db,
    end: &AttemptEnd,
    now: Timestamp,
) -> Result<Option<Finished>> {
    match db.running_hold(end.id, end.attempt).await? {
        // Another node's attempt: the expired lease, not the node, is the check.
        Some((_, Some(until))) if until < now.0 => end_attempt(db, end, None).await,
        _ => Ok(None),
    }
}

/// Moves an attempt whose node let its lease expire to another node as the same
/// attempt, if it still has (the row is locked first, as for [`rescue`]).
pub(crate) async fn take_over(db: &mut impl Db, to: &TakeOver) -> Result<Option<TaskRecord>> {
    let from = match db.running_hold(to.id, to.attempt).await? {
        Some((from, Some(until))) if until < to.now.0 => from,
        _ => return Ok(None),
    };
    let (id, node) = (to.id.0, to.node.as_str());
    let task = [id.into(), node.into(), to.lease_until.0.into()];
    db.exec(&HAND_OVER_TASK, &task).await?;
    db.exec(
        &HAND_OVER_ATTEMPT,
        &[id.into(), to.attempt.into(), node.into()],
    )
    .await?;
    let data = crate::decode::taken_over_data(to, from.as_deref());
    db.emit(to.now, EventKind::Started, Some(to.id), data)
        .await?;
    db.load_task(to.id).await.map(Some)
}

/// Gives back the claim of a running task whose attempt never started a process.
pub(crate) async fn release(
    db: &mut impl Db,
    id: TaskId,
    attempt: u32,
    now: Timestamp,
) -> Result<Option<TaskRecord>> {
    let task = db.lock_task(id).await?;
    if task.state != TaskState::Running || task.attempts != attempt {
        return Ok(None);
    }
    let to = transition(task.state, Transition::Release)
        .map_err(|source| StoreError::Illegal { id, source })?;
    db.exec(&RELEASE_TASK, &[id.0.into(), to.as_str().into()])
        .await?;
    db.exec(&FORGET_ATTEMPT, &[id.0.into(), attempt.into()])
        .await?;
    db.count_move(&task.queue, task.state, to).await?;
    let data = json!({"attempt": attempt});
    db.emit(now, EventKind::Released, Some(id), data).await?;
    db.load_task(id).await.map(Some)
}

/// Cancels a pending task, or flags a running one for its node to stop.
pub(crate) async fn request_stop(
    db: &mut impl Db,
    id: TaskId,
    now: Timestamp,
    force: bool,
) -> Result<StopOutcome> {
    let task = db.lock_task(id).await?;
    if task.state == TaskState::Running {
        db.exec(&FLAG_STOP, &[id.0.into()]).await?;
        let data = json!({"force": force});
        db.emit(now, EventKind::StopRequested, Some(id), data)
            .await?;
        return Ok(StopOutcome::Stopping(db.load_task(id).await?));
    }
    let from = task.state;
    let to = transition(from, Transition::Cancel)
        .map_err(|source| StoreError::Illegal { id, source })?;
    let why = "cancelled before it started";
    let cancelled = [id.0.into(), to.as_str().into(), now.0.into(), why.into()];
    db.exec(&END_UNRUN, &cancelled).await?;
    db.count_move(&task.queue, from, to).await?;
    let task = db.load_task(id).await?;
    finished(db, &task, now, 0, "", 0).await?;
    let cascaded = cascade(db, id, to, now).await?;
    Ok(StopOutcome::Cancelled(Finished { task, cascaded }))
}

/// Puts a finished task back to pending, with a fresh retry budget.
pub(crate) async fn retry(db: &mut impl Db, id: TaskId, now: Timestamp) -> Result<TaskRecord> {
    let task = db.lock_task(id).await?;
    let to = transition(task.state, Transition::Retry)
        .map_err(|source| StoreError::Illegal { id, source })?;
    // Its queue may have been removed since it ended.
    db.ensure_queue(&task.queue).await?;
    db.exec(&RETRY_TASK, &[id.0.into(), to.as_str().into()])
        .await?;
    db.count_move(&task.queue, task.state, to).await?;
    let data = json!({"from": task.state});
    db.emit(now, EventKind::Retried, Some(id), data).await?;
    db.load_task(id).await
}

/// Records progress a running task reported.
pub(crate) async fn set_progress(db: &mut impl Db, id: TaskId, progress: &Progress) -> Result<()> {
    let body =
        serde_json::to_string(progress).map_err(|e| crate::decode::corrupt("progress", e))?;
    let changed = db
        .exec(&SET_PROGRESS, &[id.0.into(), body.as_str().into()])
        .await?;
    if changed == 0 {
        let task = db.load_task(id).await?;
        return Err(StoreError::Conflict {
            field: "progress",
            message: format!("task {id} is {}, not running", task.state),
        });
    }
    let data = serde_json::to_value(progress).unwrap_or_default();
    db.emit(progress.at, EventKind::Progress, Some(id), data)
        .await
}

/// The `finished` event of a task that ended and, when it names a session, the
/// session's notice.
pub(crate) async fn finished(
    db: &mut impl Db,
    task: &TaskRecord,
    now: Timestamp,
    duration_ms: u64,
    tail: &str,
    output_bytes: u64,
) -> Result<()> {
    let data = crate::decode::finished_data(task);
    db.emit(now, EventKind::Finished, Some(task.id), data)
        .await?;
    if let Some(session) = &task.session {
        let body = policy::notification_body(task, session, now, duration_ms, tail, output_bytes)?;
        db.notify(session, task.id, body).await?;
    }
    Ok(())
}

/// The pending dependents of a task, in id order.
async fn dependents(db: &mut impl Db, id: TaskId) -> Result<Vec<TaskId>> {
    db.query(&PENDING_DEPENDENTS, &[id.0.into()], |r| {
        Ok(TaskId(r.cell(0)?))
    })
    .await
}

/// Fails the pending dependents of a task that ended in `state`, if that is not a
/// success, and theirs in turn.
pub(crate) async fn cascade(
    db: &mut impl Db,
    id: TaskId,
    state: TaskState,
    now: Timestamp,
) -> Result<Vec<TaskRecord>> {
    let mut out = Vec::new();
    if state != TaskState::Succeeded {
        for dependent in dependents(db, id).await? {
            out.extend(fail_for_dependency(db, dependent, id, state, now).await?);
        }
    }
    Ok(out)
}

/// Fails a pending task whose dependency `dep` ended in `dep_state` without
/// succeeding, then its own dependents, and so on, depth first.
pub(crate) async fn fail_for_dependency(
    db: &mut impl Db,
    id: TaskId,
    dep: TaskId,
    dep_state: TaskState,
    now: Timestamp,
) -> Result<Vec<TaskRecord>> {
    // Iterative, not recursive: an async fn cannot call itself without a box.
    let mut out = Vec::new();
    let mut todo = vec![(id, dep, dep_state)];
    while let Some((id, dep, dep_state)) = todo.pop() {
        let task = db.lock_task(id).await?;
        let to = transition(task.state, Transition::DependencyFailed)
            .map_err(|source| StoreError::Illegal { id, source })?;
        let reason = policy::dependency_reason(dep, dep_state);
        let failed = [
            id.0.into(),
            to.as_str().into(),
            reason.as_str().into(),
            now.0.into(),
        ];
        db.exec(&FAIL_FOR_DEPENDENCY, &failed).await?;
        db.count_move(&task.queue, task.state, to).await?;
        let task = db.load_task(id).await?;
        finished(db, &task, now, 0, "", 0).await?;
        out.push(task);
        let next = dependents(db, id).await?;
        todo.extend(next.into_iter().rev().map(|d| (d, id, to)));
    }
    Ok(out)
}

/// Records what a running task is seen doing (see `LifecycleStore::set_live`).
pub(crate) async fn set_live(db: &mut impl Db, update: &crate::LiveUpdate) -> Result<()> {
    let id = update.id;
    let task = db.load_task(id).await?;
    let Some(changes) = policy::live_changes(&task, update)? else {
        return Ok(());
    };
    db.exec(&SET_LIVE, &[id.0.into(), (&changes.column).into()])
        .await?;
    for (kind, data) in changes.events {
        db.emit(update.now, kind, Some(id), data).await?;
    }
    if let Some(session) = &task.session {
        for body in changes.notices {
            db.notify(session, id, body).await?;
        }
    }
    Ok(())
}
