//! End hooks: what runs when a task ends, after its end is committed. A task's own
//! `on_end` command, the runtime's `on_end` command, and every [`EndHook`] (the
//! daemon's webhook).
//!
//! The runner reads the event log from a cursor kept in the store, so an end is never
//! missed across restarts: it delivers each `finished` event's hooks, at most
//! [`IN_FLIGHT`] ends at a time, and moves the stored cursor only past ends whose
//! delivery is over. An end being delivered when the runtime stops is delivered again
//! by the next one: at least once, with the event's seq as the delivery id.

use crate::config::{EndHook, TaskEnd};
use crate::engine::Inner;
use meanwhile_core::{Event, EventKind, TaskRecord};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// The event log reader's name in the store.
const CURSOR: &str = "end-hooks";
/// Ends delivered at once; one slow webhook does not hold the others up.
const IN_FLIGHT: usize = 16;
/// Events read from the log at a time.
const PAGE: u32 = 256;
/// Tries of an [`EndHook`] before it is given up, with the pause before each retry
/// doubling from [`FIRST_RETRY`] up to [`MAX_RETRY`]: about ten minutes in all.
const TRIES: u32 = 12;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(120);
/// How often the cursor is saved while ends pass that have no hook.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// The pause after the store failed.
const RETRY_STORE: Duration = Duration::from_secs(1);
/// The most of an end command's output kept for the log when it fails.
const OUTPUT_KEPT: usize = 2048;

pub(crate) fn start(inner: &Arc<Inner>) {
    inner.spawn_loop("hooks", run);
}

/// The seqs of ends being delivered, and the last seq read: the cursor may move to
/// just before the oldest one still being delivered.
#[derive(Default)]
struct Progress {
    delivering: BTreeSet<i64>,
    read: i64,
}

impl Progress {
    fn done_up_to(&self) -> i64 {
        match self.delivering.first() {
            Some(oldest) => oldest - 1,
            None => self.read,
        }
    }
}

async fn run(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    // Subscribed before the cursor is read, so no event falls between the two.
    let mut events = inner.store.subscribe();
    let cursor = loop {
        match inner.store.reader_cursor(CURSOR).await {
            Ok(c) => break c,
            Err(e) => {
                inner.loop_failed("hooks", format_args!("reading the end hooks' cursor"), &e);
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_STORE) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    let mut r = Reader {
        inner: inner.clone(),
        progress: Arc::new(Mutex::new(Progress {
            delivering: BTreeSet::new(),
            read: cursor,
        })),
        slots: Arc::new(Semaphore::new(IN_FLIGHT)),
        next: cursor,
        saved: cursor,
        last_save: tokio::time::Instant::now(),
    };
    // Events come from the broadcast as they are committed; after a gap (a lagging
    // receiver, a restart) they are read from the store from the cursor on.
    let mut behind = true;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if behind {
            let page = match crate::fault::point("hooks.read") {
                Ok(()) => inner.store.events_after(r.next, PAGE).await,
                Err(e) => Err(e),
            };
            match page {
                Ok(page) => {
                    inner.loops.ok("hooks");
                    behind = page.len() as u32 == PAGE;
                    for e in page {
                        match r.take(e, &mut shutdown).await {
                            Took::Taken => {}
                            Took::Again => {
                                behind = true;
                                break;
                            }
                            Took::Shutdown => return,
                        }
                    }
                }
                Err(e) => {
                    inner.loop_failed("hooks", format_args!("reading events for end hooks"), &e);
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_STORE) => {}
                        _ = shutdown.changed() => return,
                    }
                    continue;
                }
            }
            r.save(false).await;
            continue;
        }
        tokio::select! {
            got = events.recv() => match got {
                Ok(e) if e.seq <= r.next => {}
                Ok(e) if e.seq == r.next + 1 => {
                    match r.take(e, &mut shutdown).await {
                        Took::Taken => {}
                        Took::Again => behind = true,
                        Took::Shutdown => return,
                    }
                    r.save(false).await;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => behind = true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            // Quiet: save the last stretch, and what deliveries finished meanwhile.
            _ = tokio::time::sleep(SAVE_EVERY) => r.save(true).await,
            _ = shutdown.changed() => return,
        }
    }
}

/// The reader's state between events.
struct Reader {
    inner: Arc<Inner>,
    progress: Arc<Mutex<Progress>>,
    slots: Arc<Semaphore>,
    /// The last event taken.
    next: i64,
    /// The cursor as stored.
    saved: i64,
    last_save: tokio::time::Instant,
}

/// What became of an event the reader was given.
enum Took {
    /// Its delivery started, or it has nothing to deliver.
    Taken,
    /// Not taken: read it again from the store after a pause.
    Again,
    Shutdown,
}

impl Reader {
    /// Takes one event: starts its delivery when it has hooks.
    async fn take(&mut self, e: Event, shutdown: &mut tokio::sync::watch::Receiver<bool>) -> Took {
        if !wants_hooks(&self.inner, &e) {
            self.next = e.seq;
            lock(&self.progress).read = e.seq;
            return Took::Taken;
        }
        if let Err(err) = crate::fault::point("hooks.take") {
            let seq = e.seq;
            self.inner.loop_failed(
                "hooks",
                format_args!("taking event {seq} for end hooks"),
                &err,
            );
            tokio::select! {
                _ = tokio::time::sleep(RETRY_STORE) => return Took::Again,
                _ = shutdown.changed() => return Took::Shutdown,
            }
        }
        self.next = e.seq;
        let slot = tokio::select! {
            s = self.slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return Took::Shutdown,
            },
            _ = shutdown.changed() => return Took::Shutdown,
        };
        {
            let mut p = lock(&self.progress);
            p.delivering.insert(e.seq);
            p.read = e.seq;
        }
        let (inner, progress) = (self.inner.clone(), self.progress.clone());
        tokio::spawn(async move {
            deliver(&inner, &e).await;
            lock(&progress).delivering.remove(&e.seq);
            drop(slot);
        });
        Took::Taken
    }

    /// Saves the cursor: at most once a second while events pass (so a restart does
    /// not read them all again), or now when `quiet`.
    async fn save(&mut self, quiet: bool) {
        let done = lock(&self.progress).done_up_to();
        if done == self.saved || (!quiet && self.last_save.elapsed() < SAVE_EVERY) {
            return;
        }
        match self.inner.store.set_reader_cursor(CURSOR, done).await {
            Ok(()) => self.saved = done,
            Err(e) => {
                self.inner
                    .loop_failed("hooks", format_args!("saving the end hooks' cursor"), &e)
            }
        }
        self.last_save = tokio::time::Instant::now();
    }
}

fn lock(p: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

fn wants_hooks(inner: &Inner, e: &Event) -> bool {
    if e.kind == EventKind::Alert {
        // An acknowledgement is a person's answer to the sinks, not news for them.
        let told = e.data["change"].as_str() != Some(meanwhile_core::AlertChange::Acked.as_str());
        return told
            && (!inner.config.alert_sinks.is_empty() || !inner.config.alert_commands.is_empty());
    }
    e.kind == EventKind::Finished
        && e.task_id.is_some()
        && (inner.config.on_end.is_some()
            || !inner.config.end_hooks.is_empty()
            || e.data.get("on_end").and_then(|v| v.as_bool()) == Some(true))
}

/// Runs every hook of one end. The task is read as it is now: removed since, its
/// end has nothing to tell.
async fn deliver(inner: &Arc<Inner>, e: &Event) {
    if e.kind == EventKind::Alert {
        return deliver_alert(inner, e).await;
    }
    let Some(id) = e.task_id else { return };
    let task = loop {
        match inner.store.get(id).await {
            Ok(t) => break t,
            Err(meanwhile_store::StoreError::UnknownTask(_)) => return,
            Err(err) => {
                inner.loop_failed(
                    "hooks",
                    format_args!("reading task {id} for its end hooks"),
                    &err,
                );
                tokio::time::sleep(RETRY_STORE).await;
            }
        }
    };
    if !task.state.is_terminal() {
        // Retried by hand since: its next end has its own event.
        return;
    }
    let mut work = Vec::new();
    if let Some(c) = &task.spec.on_end {
        work.push(Box::pin(run_own_command(inner, &task, c.clone()))
            as std::pin::Pin<
                Box<dyn std::future::Future<Output = ()> + Send + '_>,
            >);
    }
    if let Some(c) = &inner.config.on_end {
        work.push(Box::pin(run_command(inner, &task, c.clone(), None)));
    }
    for hook in &inner.config.end_hooks {
        let end = TaskEnd {
            delivery: e.seq,
            task: task.clone(),
        };
        work.push(Box::pin(deliver_to(&inner.loops, hook.clone(), end)));
    }
    futures_util::future::join_all(work).await;
}

/// The loop names under which failed deliveries are counted (`/metrics`,
/// `meanwhile health`).
const END_SINKS: &str = "end-sinks";
const ALERT_SINKS: &str = "alert-sinks";

/// Delivers to one [`EndHook`], trying again with backoff.
async fn deliver_to(loops: &crate::loops::Loops, hook: Arc<dyn EndHook>, end: TaskEnd) {
    let what = format!("the end of task {}", end.task.id);
    with_retries(loops, END_SINKS, &hook.name(), &what, || {
        hook.deliver(end.clone())
    })
    .await;
}

/// Tries `send` until it succeeds, pausing twice as long after each failure, and
/// gives up after [`TRIES`]. Each failed try is counted under the loop `counted`,
/// and a delivery that succeeds ends its failing streak.
async fn with_retries<F, Fut>(
    loops: &crate::loops::Loops,
    counted: &'static str,
    sink: &str,
    what: &str,
    mut send: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut pause = FIRST_RETRY;
    for attempt in 1..=TRIES {
        match send().await {
            Ok(()) => {
                loops.ok(counted);
                return;
            }
            Err(e) => {
                loops.failed(
                    counted,
                    format_args!("{sink} delivering {what} (try {attempt} of {TRIES})"),
                    &e,
                );
                if attempt == TRIES {
                    tracing::error!("{sink} gave up on {what} after {TRIES} tries: {e}");
                } else {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_RETRY);
                }
            }
        }
    }
}

/// Delivers an alert change to every sink and runs every alert command.
async fn deliver_alert(inner: &Arc<Inner>, e: &Event) {
    let alert: meanwhile_core::Alert = match serde_json::from_value(e.data.clone()) {
        Ok(a) => a,
        Err(err) => {
            tracing::error!("alert event {} does not read as an alert: {err}", e.seq);
            return;
        }
    };
    let what = format!("alert {} ({})", alert.id, alert.message);
    let mut work: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>> =
        Vec::new();
    for sink in &inner.config.alert_sinks {
        let (sink, alert, what) = (sink.clone(), alert.clone(), what.clone());
        work.push(Box::pin(async move {
            with_retries(&inner.loops, ALERT_SINKS, &sink.name(), &what, || {
                sink.deliver(alert.clone())
            })
            .await;
        }));
    }
    for command in &inner.config.alert_commands {
        let vars = [
            ("MEANWHILE_ALERT_ID", alert.id.to_string()),
            ("MEANWHILE_ALERT_KIND", alert.kind.as_str().to_string()),
            (
                "MEANWHILE_ALERT_STATE",
                match alert.state {
                    meanwhile_core::AlertState::Firing => "firing",
                    meanwhile_core::AlertState::Resolved => "resolved",
                }
                .to_string(),
            ),
            ("MEANWHILE_ALERT_MESSAGE", alert.message.clone()),
            ("MEANWHILE_ALERT_NOTICES", alert.notices.to_string()),
            (
                "MEANWHILE_ALERT_TASK",
                alert.task.map(|t| t.to_string()).unwrap_or_default(),
            ),
            (
                "MEANWHILE_ALERT_QUEUE",
                alert.queue.clone().unwrap_or_default(),
            ),
        ];
        let what = what.clone();
        work.push(Box::pin(async move {
            let mut c = tokio::process::Command::new("/bin/sh");
            c.arg("-c").arg(command).current_dir(&inner.default_cwd);
            for (k, v) in &vars {
                c.env(k, v);
            }
            run_to_end(inner, c, command, &what, None).await;
        }));
    }
    futures_util::future::join_all(work).await;
}

/// Runs a task's own `on_end` command as confined as the task itself (sandbox,
/// network, the home hidden, limits), whoever submitted it: the command is the
/// task's, and so is what it may reach. A confinement this machine cannot give
/// means the command does not run.
async fn run_own_command(inner: &Inner, task: &TaskRecord, command: String) {
    let cwd = task
        .spec
        .cwd
        .clone()
        .unwrap_or_else(|| inner.default_cwd.clone());
    let tmp = inner.home.hook_tmp(task.id);
    match crate::attempt::confinement(inner, task, tmp, &cwd) {
        Ok((mut confine, tmp)) => {
            // The daemon cannot tell an end command from any other peer of its
            // socket (it is no task's process), so a confined one is not given the
            // socket: through it, it could start tasks unconfined.
            if let Some(h) = &mut confine.hide {
                h.keep
                    .retain(|p| !p.ends_with(meanwhile_core::http::SOCKET_FILE));
            }
            run_command(inner, task, command, Some((&confine, tmp.as_deref()))).await;
            if let Some(tmp) = tmp
                && let Err(e) = std::fs::remove_dir_all(&tmp)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("could not remove {}: {e}", tmp.display());
            }
        }
        Err(reason) => tracing::error!(
            "the on_end command {command:?} of task {} was not run: {reason}",
            task.id
        ),
    }
}

/// Runs an end command with `sh -c` in the task's directory, with the task's
/// variables and the three that describe its end; confined as `confine` says
/// (with its temporary directory), or not at all.
async fn run_command(
    inner: &Inner,
    task: &TaskRecord,
    command: String,
    confine: Option<(&crate::sandbox::Confine, Option<&std::path::Path>)>,
) {
    let mut c = tokio::process::Command::new("/bin/sh");
    c.arg("-c")
        .arg(&command)
        .current_dir(task.spec.cwd.as_ref().unwrap_or(&inner.default_cwd))
        .envs(task.spec.env.iter())
        .env("MEANWHILE_TASK_ID", task.id.to_string())
        .env("MEANWHILE_TASK_NAME", &task.name)
        .env("MEANWHILE_TASK_STATE", task.state.as_str())
        .env(
            "MEANWHILE_EXIT_CODE",
            task.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        );
    if let Some((_, Some(tmp))) = confine
        && !task.spec.env.contains_key("TMPDIR")
    {
        c.env("TMPDIR", tmp);
    }
    let what = format!("the end of task {}", task.id);
    run_to_end(inner, c, &command, &what, confine.map(|(c, _)| c)).await;
}

/// Runs a hook's command (no stdin, output kept for the log), killed after the
/// hook timeout; confined as `confine` says, in a process group of its own.
async fn run_to_end(
    inner: &Inner,
    mut c: tokio::process::Command,
    command: &str,
    what: &str,
    confine: Option<&crate::sandbox::Confine>,
) {
    c.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(confine) = confine {
        let prepared = match crate::sandbox::Prepared::new(confine) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(
                    "hook command {command:?} for {what} was not run: it could not be confined: {e}"
                );
                return;
            }
        };
        c.process_group(0);
        // SAFETY: `apply` makes system calls only and allocates nothing, as the
        // child of this multi-threaded process requires; what it uses was made
        // before the fork.
        unsafe {
            c.pre_exec(move || prepared.apply().map_err(|(_, e)| e));
        }
    }
    let child = match c.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("hook command {command:?} for {what} could not start: {e}");
            return;
        }
    };
    // Memory and process limits are watched from here, over the command's tree.
    let watch = match (confine, child.id()) {
        (Some(confine), Some(pid)) if confine.watched() => {
            match crate::sandbox::Watch::over(confine, pid as i32, pid as i32) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(
                        "hook command {command:?} for {what} is not watched over its limits, so it was killed: {e}"
                    );
                    // Dropping the child kills it.
                    return;
                }
            }
        }
        _ => None,
    };
    let timeout = inner.config.hook_timeout;
    let ended = tokio::time::timeout(timeout, child.wait_with_output()).await;
    if let Some(over) = watch.and_then(crate::sandbox::Watch::finish) {
        tracing::warn!(
            "hook command {command:?} for {what} was killed: {}",
            over.reason()
        );
        return;
    }
    match ended {
        Ok(Ok(out)) if out.status.success() => {
            tracing::debug!("hook command {command:?} for {what} ran");
        }
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
            if text.trim().is_empty() {
                text = String::from_utf8_lossy(&out.stdout).into_owned();
            }
            let text = meanwhile_core::shorten(&text, OUTPUT_KEPT);
            tracing::warn!(
                "hook command {command:?} for {what} failed ({}): {text}",
                out.status
            );
        }
        Ok(Err(e)) => tracing::error!("hook command {command:?} for {what}: {e}"),
        // Dropping the child killed it.
        Err(_) => tracing::warn!(
            "hook command {command:?} for {what} was killed after {}",
            meanwhile_core::format_duration_exact(timeout)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A sink that fails its first tries is counted as a failing loop, then not, once
    /// a delivery goes through; the pauses run on the test's own clock.
    #[tokio::test(start_paused = true)]
    async fn failed_deliveries_are_counted_and_a_success_ends_the_streak() {
        let loops = crate::loops::Loops::default();
        let tries = AtomicU32::new(0);
        with_retries(&loops, ALERT_SINKS, "sink", "alert 1", || {
            let n = tries.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Err(format!("answered 500 ({n})"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(tries.load(Ordering::SeqCst), 4);
        let health = loops.snapshot();
        let sinks = health.iter().find(|l| l.name == ALERT_SINKS).unwrap();
        assert_eq!(sinks.errors, 3);
        assert!(!sinks.failing, "delivered at last: {sinks:?}");
        assert!(
            sinks
                .last_error
                .as_deref()
                .unwrap()
                .contains("answered 500 (2)"),
            "{sinks:?}"
        );
    }
}
