//! Alerts that need no person watching: `quarantined` (a task used up its retries),
//! `failures` (a queue's last `alert_after` tasks all failed) and `stalled` (a task
//! with a `stall` time printed nothing for that long; `stall_action = stop` also
//! stops it). Each fires once when its cause appears and resolves once when the
//! cause clears; the store keeps at most one firing alert per cause, and commits an
//! `alert` event with each change, which the hook runner delivers to the sinks.
//!
//! A firing alert no one acknowledged is told to the sinks again every
//! `alert_repeat`; an acknowledgement (`meanwhile alerts ack`) silences that until
//! it runs out or the alert resolves.
//!
//! The first two follow the event log from a cursor kept in the store (so an end
//! recorded while this loop was behind, or at start, is not missed); stalls are
//! looked for once a second among this node's running tasks.

use crate::engine::Inner;
use meanwhile_core::{
    AlertKind, Event, EventKind, StallAction, StopMode, TaskId, TaskRecord, TaskState, Timestamp,
};
use meanwhile_store::{NewAlert, StopOutcome, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The event log reader's name in the store.
const CURSOR: &str = "alerts";
/// How often running tasks are looked at for stalls.
const STALL_LOOK: Duration = Duration::from_secs(1);
/// Events read from the store at a time when behind.
const PAGE: u32 = 256;

/// The loops' names, for their errors and health.
const FOLLOWER: &str = "alerts";
const STALLS: &str = "stalls";
const REMINDERS: &str = "reminders";
/// How often firing alerts are looked at for reminders and acknowledgements that
/// ran out.
const REMIND_LOOK: Duration = Duration::from_secs(5);

pub(crate) fn start(inner: &Arc<Inner>) {
    inner.spawn_loop(FOLLOWER, follow);
    inner.spawn_loop(STALLS, stalls);
    inner.spawn_loop(REMINDERS, reminders);
}

/// Reminds the sinks of alerts that still fire: every `alert_repeat` while no one
/// acknowledged them, and at once when an acknowledgement runs out. The store picks
/// each due alert once (its update is conditional), so in a fleet one node reminds.
async fn reminders(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut clock = inner.config.clock.looker(REMINDERS);
    loop {
        let now = clock.now();
        let reminded = inner
            .store
            .repeat_alerts(inner.config.alert_repeat, now)
            .await;
        clock.looked();
        match reminded {
            Ok(reminded) => {
                inner.loops.ok(REMINDERS);
                for a in reminded {
                    tracing::warn!("alert {} still fires: {}", a.id, a.message);
                }
            }
            Err(e) => failed(&inner, REMINDERS, format_args!("reminding of alerts"), &e),
        }
        tokio::select! {
            _ = clock.sleep(REMIND_LOOK) => {}
            _ = shutdown.changed() => return,
        }
    }
}

fn subject(id: TaskId) -> String {
    format!("task:{id}")
}

fn queue_subject(queue: &str) -> String {
    format!("queue:{queue}")
}

/// Logs a failed alert write of loop `name`; the next event or look tries again.
fn failed(inner: &Inner, name: &'static str, what: std::fmt::Arguments<'_>, e: &StoreError) {
    inner.loop_failed(name, what, e);
}

/// A store call of the follower that failed, and what it was doing: the event it
/// was taking is taken again, so the cursor never passes an event whose alert was
/// not recorded.
struct Failed {
    what: String,
    error: StoreError,
}

fn doing(what: impl Into<String>) -> impl FnOnce(StoreError) -> Failed {
    let what = what.into();
    move |error| Failed { what, error }
}

/// What the follower keeps between events.
struct Follower {
    inner: Arc<Inner>,
    /// Queues with a failures alert, and their `alert_after`.
    watched: HashMap<String, u32>,
    /// Tasks with a firing `quarantined` alert.
    quarantined: HashSet<TaskId>,
}

async fn follow(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut events = inner.store.subscribe();
    let mut f = Follower {
        inner: inner.clone(),
        watched: HashMap::new(),
        quarantined: HashSet::new(),
    };
    let mut next = loop {
        let start = async {
            f.load().await?;
            inner.store.reader_cursor(CURSOR).await
        };
        match start.await {
            Ok(c) => break c,
            Err(e) => {
                failed(&inner, FOLLOWER, format_args!("starting the alerts"), &e);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    let mut saved = next;
    let mut last_save = tokio::time::Instant::now();
    let mut behind = true;
    loop {
        if *shutdown.borrow() {
            return;
        }
        // Saved at most once a second while events pass, and when the log goes quiet,
        // so a restart does not take old ends again (a resolved alert would fire anew).
        if next != saved && last_save.elapsed() >= Duration::from_secs(1) {
            match inner.store.set_reader_cursor(CURSOR, next).await {
                Ok(()) => saved = next,
                Err(e) => failed(
                    &inner,
                    FOLLOWER,
                    format_args!("saving the alerts' cursor"),
                    &e,
                ),
            }
            last_save = tokio::time::Instant::now();
        }
        if behind {
            let read = inner
                .store
                .events_after(next, PAGE)
                .await
                .map_err(doing("reading events for alerts"));
            let taken = match read {
                Ok(page) => {
                    behind = page.len() as u32 == PAGE;
                    let mut taken = Ok(());
                    for e in page {
                        taken = f.take(&e).await;
                        if taken.is_err() {
                            break;
                        }
                        next = e.seq;
                    }
                    taken
                }
                Err(e) => Err(e),
            };
            if let Err(e) = taken {
                failed(&inner, FOLLOWER, format_args!("{}", e.what), &e.error);
                // Read again from the event that failed, after a pause.
                behind = true;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => return,
                }
            } else {
                inner.loops.ok(FOLLOWER);
            }
            continue;
        }
        tokio::select! {
            got = events.recv() => match got {
                Ok(e) if e.seq <= next => {}
                Ok(e) if e.seq == next + 1 => match f.take(&e).await {
                    Ok(()) => next = e.seq,
                    Err(failure) => {
                        failed(&inner, FOLLOWER, format_args!("{}", failure.what), &failure.error);
                        behind = true;
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                },
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => behind = true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            // Quiet for a second: save where the follower is.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if next != saved {
                    match inner.store.set_reader_cursor(CURSOR, next).await {
                        Ok(()) => saved = next,
                        Err(e) => failed(&inner, FOLLOWER, format_args!("saving the alerts' cursor"), &e),
                    }
                    last_save = tokio::time::Instant::now();
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

impl Follower {
    /// Reads the queues' settings and the firing `quarantined` alerts.
    async fn load(&mut self) -> Result<(), StoreError> {
        self.watched = self
            .inner
            .store
            .queues()
            .await?
            .into_iter()
            .filter_map(|q| Some((q.name, q.alert_after?)))
            .collect();
        self.quarantined = self
            .inner
            .store
            .alerts(false, 10_000)
            .await?
            .into_iter()
            .filter(|a| a.kind == AlertKind::Quarantined)
            .filter_map(|a| a.task)
            .collect();
        Ok(())
    }

    /// Records the alerts `e` fires or resolves. An error leaves the event to be
    /// taken again (firing and resolving are idempotent: one alert per cause).
    async fn take(&mut self, e: &Event) -> Result<(), Failed> {
        crate::fault::point("alerts.take").map_err(doing("taking an event for alerts"))?;
        let now = self.inner.now();
        match e.kind {
            EventKind::Queue => {
                let name = e.data["name"].as_str().unwrap_or_default().to_string();
                match e.data["alert_after"].as_u64() {
                    Some(n) => {
                        self.watched.insert(name, n as u32);
                    }
                    None => {
                        if self.watched.remove(&name).is_some() {
                            self.resolve(
                                AlertKind::Failures,
                                &queue_subject(&name),
                                format!("queue {name} no longer alerts on failures"),
                                now,
                            )
                            .await?;
                        }
                    }
                }
            }
            EventKind::Finished => {
                let Some(id) = e.task_id else { return Ok(()) };
                let state = e.data["state"].as_str().and_then(TaskState::parse);
                if state != Some(TaskState::Quarantined) && self.watched.is_empty() {
                    return Ok(());
                }
                let task = match self.inner.store.get(id).await {
                    Ok(t) => t,
                    // Removed since: nothing to alert on.
                    Err(StoreError::UnknownTask(_)) => return Ok(()),
                    Err(e) => return Err(doing(format!("reading task {id} for alerts"))(e)),
                };
                if task.state == TaskState::Quarantined {
                    let message = format!(
                        "task {} ({}) is quarantined after {} attempt(s){}",
                        task.id,
                        task.name,
                        task.attempts,
                        task.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    );
                    self.fire(
                        AlertKind::Quarantined,
                        subject(id),
                        message,
                        Some(&task),
                        now,
                    )
                    .await?;
                    self.quarantined.insert(id);
                }
                self.failures(&task, now).await?;
            }
            EventKind::Retried | EventKind::Removed => {
                // A retry names its task; a removal lists the ids it removed.
                let ids: Vec<TaskId> = match e.task_id {
                    Some(id) => vec![id],
                    None => e.data["ids"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_i64().map(TaskId))
                        .collect(),
                };
                let how = if e.kind == EventKind::Retried {
                    "was retried"
                } else {
                    "was removed"
                };
                for id in ids {
                    if self.quarantined.remove(&id) {
                        self.resolve(
                            AlertKind::Quarantined,
                            &subject(id),
                            format!("task {id} {how}"),
                            now,
                        )
                        .await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The failures alert of the task's queue: fires when its last `alert_after`
    /// ends all failed, resolves when one succeeded.
    async fn failures(&mut self, task: &TaskRecord, now: Timestamp) -> Result<(), Failed> {
        let Some(&n) = self.watched.get(&task.queue) else {
            return Ok(());
        };
        let q = &task.queue;
        if task.state == TaskState::Succeeded {
            self.resolve(
                AlertKind::Failures,
                &queue_subject(q),
                format!("queue {q}: task {} succeeded", task.id),
                now,
            )
            .await?;
            return Ok(());
        }
        let ends = self
            .inner
            .store
            .last_ends(q, n)
            .await
            .map_err(doing(format!("reading queue {q}'s last ends")))?;
        if ends.len() as u32 == n && ends.iter().all(|(_, s)| *s != TaskState::Succeeded) {
            let ids: Vec<String> = ends.iter().rev().map(|(id, _)| id.to_string()).collect();
            let message = format!(
                "queue {q}: the last {n} task(s) failed ({})",
                ids.join(", ")
            );
            self.fire(
                AlertKind::Failures,
                queue_subject(q),
                message,
                Some(task),
                now,
            )
            .await?;
        }
        Ok(())
    }

    async fn fire(
        &self,
        kind: AlertKind,
        subject: String,
        message: String,
        task: Option<&TaskRecord>,
        now: Timestamp,
    ) -> Result<(), Failed> {
        fire(&self.inner, kind, subject, message, task, now)
            .await
            .map_err(doing(format!("firing a {} alert", kind.as_str())))
    }

    async fn resolve(
        &self,
        kind: AlertKind,
        subject: &str,
        message: String,
        now: Timestamp,
    ) -> Result<(), Failed> {
        self.inner
            .store
            .resolve_alert(kind, subject, &message, now)
            .await
            .map(drop)
            .map_err(doing(format!("resolving a {} alert", kind.as_str())))
    }
}

async fn fire(
    inner: &Inner,
    kind: AlertKind,
    subject: String,
    message: String,
    task: Option<&TaskRecord>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let alert = NewAlert {
        kind,
        subject,
        message,
        task: task.filter(|_| kind != AlertKind::Failures).map(|t| t.id),
        queue: task.map(|t| t.queue.clone()),
    };
    if let Some(a) = inner.store.fire_alert(alert, now).await? {
        tracing::warn!("alert: {}", a.message);
    }
    Ok(())
}

/// When a running task last printed, on the runtime's clock, given its log's size
/// and when that was first seen (`seen`, kept between looks): at the look that saw
/// the log grow; at first sight, the log's modification time, or the task's start.
/// Measured by looks rather than by the file's time alone, so a clock moved forward
/// (a test's) counts as quiet time.
fn last_output(
    inner: &Inner,
    t: &TaskRecord,
    now: Timestamp,
    seen: &mut HashMap<TaskId, (u64, Timestamp)>,
) -> Timestamp {
    let started = t.started_at.unwrap_or(t.created_at);
    let meta = std::fs::metadata(inner.home.log(t.id)).ok();
    let size = meta.as_ref().map_or(0, |m| m.len());
    match seen.get(&t.id) {
        Some(&(known, at)) if known == size => at,
        Some(_) => {
            seen.insert(t.id, (size, now));
            now
        }
        None => {
            let written = meta
                .and_then(|m| m.modified().ok())
                .map(|m| inner.config.clock.shift(Timestamp::from(m)));
            let at = written.map_or(started, |w| w.max(started));
            seen.insert(t.id, (size, at));
            at
        }
    }
}

/// Looks at this node's running tasks with a `stall` time once a second.
async fn stalls(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    // Tasks with a firing stalled alert, and when it fired.
    let mut stalled: HashMap<TaskId, Timestamp> = HashMap::new();
    // Each watched task's log size, and when it was first seen at that size.
    let mut printed: HashMap<TaskId, (u64, Timestamp)> = HashMap::new();
    let mut clock = inner.config.clock.looker(STALLS);
    loop {
        clock.looked();
        tokio::select! {
            _ = clock.sleep(STALL_LOOK) => {}
            _ = shutdown.changed() => return,
        }
        let now = clock.now();
        let running = match inner.store.running(Some(&inner.node), None).await {
            Ok(r) => r,
            Err(e) => {
                failed(
                    &inner,
                    STALLS,
                    format_args!("looking for stalled tasks"),
                    &e,
                );
                continue;
            }
        };
        inner.loops.ok(STALLS);
        let mut still = HashSet::new();
        for (t, _) in &running {
            let Some(stall) = t.spec.stall else { continue };
            still.insert(t.id);
            let last = last_output(&inner, t, now, &mut printed);
            let quiet = Duration::from_millis(last.millis_until(now));
            match stalled.get(&t.id) {
                None if quiet >= stall => {
                    let stop = t.spec.stall_action == Some(StallAction::Stop);
                    let message = format!(
                        "task {} ({}) printed nothing for {}{}",
                        t.id,
                        t.name,
                        meanwhile_core::format_duration(quiet),
                        if stop { "; stopping it" } else { "" }
                    );
                    if let Err(e) = fire(
                        &inner,
                        AlertKind::Stalled,
                        subject(t.id),
                        message,
                        Some(t),
                        now,
                    )
                    .await
                    {
                        // Fired on the next look.
                        failed(&inner, STALLS, format_args!("firing a stalled alert"), &e);
                        continue;
                    }
                    stalled.insert(t.id, now);
                    if stop {
                        stop_stalled(&inner, t).await;
                    }
                }
                Some(&fired) if last > fired => {
                    resolve_stall(&inner, t.id, "printed again", now).await;
                    stalled.remove(&t.id);
                }
                _ => {}
            }
        }
        printed.retain(|id, _| still.contains(id));
        // Ended (or moved away): the stall is over.
        let gone: Vec<TaskId> = stalled
            .keys()
            .filter(|id| !still.contains(id))
            .copied()
            .collect();
        for id in gone {
            resolve_stall(&inner, id, "ended", now).await;
            stalled.remove(&id);
        }
    }
}

async fn resolve_stall(inner: &Inner, id: TaskId, how: &str, now: Timestamp) {
    let message = format!("task {id} {how}");
    if let Err(e) = inner
        .store
        .resolve_alert(AlertKind::Stalled, &subject(id), &message, now)
        .await
    {
        failed(inner, STALLS, format_args!("resolving a stalled alert"), &e);
    }
}

/// Stops a stalled task as `meanwhile stop` does.
async fn stop_stalled(inner: &Inner, t: &TaskRecord) {
    match inner.store.request_stop(t.id, inner.now(), false).await {
        Ok(StopOutcome::Stopping(task)) => {
            if task.node.as_deref() == Some(inner.node.as_str()) {
                inner
                    .registry()
                    .stop(t.id, task.attempts, StopMode::Graceful);
            }
        }
        Ok(StopOutcome::Cancelled(_)) => {}
        Err(e) => failed(
            inner,
            STALLS,
            format_args!("stopping stalled task {}", t.id),
            &e,
        ),
    }
}
