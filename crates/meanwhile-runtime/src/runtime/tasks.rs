//! Tasks: submitting them (commands, batches, closures), reading, stopping,
//! retrying and removing them, the tasks a process belongs to, progress, the
//! notices of a session, the event log, and waiting for ends.

use super::*;

impl Runtime {
    /// What a shell task submitted now would trip over at its start, said at once:
    /// `command not found: NAME` when its program is on no directory of its `PATH`.
    pub fn start_warning(&self, spec: &TaskSpec) -> Option<String> {
        crate::attempt::missing_program(&self.inner.base_env, &self.inner.default_cwd, spec)
    }

    /// Submits a task; returns its id at once (the id of the earlier task when the
    /// idempotency key is known).
    pub async fn submit(&self, spec: TaskSpec) -> Result<TaskId> {
        let mut r = self.submit_batch(vec![spec]).await?;
        r.pop().unwrap_or(Err(Error::ShutDown))
    }

    /// Submits many tasks in one transaction; one result per spec, in order. A
    /// submit from inside a running task (see [`Runtime::task_of_process`]) is
    /// recorded as started by it and confined at least as tightly as it is.
    pub async fn submit_batch(&self, specs: Vec<TaskSpec>) -> Result<Vec<Result<TaskId>>> {
        self.check_open()?;
        let now = self.inner.now();
        let caller = calling_task();
        let parent = match caller {
            Some(p) => Some(self.inner.store.get(p).await?),
            None => None,
        };
        let mut results: Vec<Option<Result<TaskId>>> = Vec::with_capacity(specs.len());
        let mut valid = Vec::new();
        let mut slots = Vec::new();
        let mut keyed: Vec<Option<TaskSpec>> = Vec::new();
        for mut spec in specs {
            self.queue_defaults(&mut spec);
            self.inner.secrets.seal_all(&mut spec.secrets);
            // A value no task can have is left for validation to refuse, by name.
            if spec.started_by.is_none_or(|id| id.0 > 0) {
                spec.started_by = caller;
            }
            if let Some(parent) = &parent
                && let Err(why) = spec.confine_within(&parent.spec, &self.inner.default_cwd)
            {
                results.push(Some(Err(Error::Confined(format!(
                    "refused: task {} is confined, and {why}",
                    parent.id
                )))));
                continue;
            }
            match spec
                .validate()
                .map_err(Error::from)
                .and_then(|v| self.runnable(v))
            {
                Ok(v) => {
                    slots.push(results.len());
                    results.push(None);
                    // Kept to tell a resend from another spec under the same key.
                    keyed.push(v.spec().idempotency_key.is_some().then(|| v.spec().clone()));
                    valid.push(NewTask::new(v, now));
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !valid.is_empty() {
            let req = crate::dispatch::claim_with_submit(&self.inner, valid.len());
            let asked = req.as_ref().map_or(0, |r| r.limit);
            let stored = self
                .inner
                .store
                .submit_and_claim(valid, req)
                .await
                .map_err(|e| self.disk_full(e))?;
            match stored.claim {
                Some(claim) => crate::dispatch::claimed_with_submit(&self.inner, asked, claim),
                None => self.inner.wake.notify_one(),
            }
            for ((slot, r), sent) in slots.into_iter().zip(stored.submitted).zip(keyed) {
                results[slot] = Some(match (r, sent) {
                    (Ok(Submitted::Existing(id)), Some(sent)) => {
                        self.same_spec_or_conflict(id, &sent).await
                    }
                    (r, _) => r.map(Submitted::id).map_err(Error::from),
                });
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::ShutDown)))
            .collect())
    }

    /// Runs an async closure as a background task with the full lifecycle (queue,
    /// timeout, retries, stop, wait, notifications). `spec` gives everything but the
    /// command; the closure is called once per attempt.
    pub async fn submit_fn<F, Fut, E>(&self, spec: TaskSpec, f: F) -> Result<TaskId>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let mut r = self.submit_fn_batch(vec![(spec, f)]).await?;
        r.pop().ok_or(Error::ShutDown)?
    }

    /// Submits many function tasks in one commit; one result per item, in order (an
    /// invalid spec fails alone, naming its field). Concurrent callers do not wait
    /// for each other: no lock is held across the commit.
    pub async fn submit_fn_batch<F, Fut, E>(
        &self,
        items: Vec<(TaskSpec, F)>,
    ) -> Result<Vec<Result<TaskId>>>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.check_open()?;
        let mut results: Vec<Option<Result<TaskId>>> = Vec::with_capacity(items.len());
        let mut valid = Vec::new();
        let mut fns = Vec::new();
        let now = self.inner.now();
        for (mut spec, f) in items {
            self.inner.secrets.seal_all(&mut spec.secrets);
            let v = match spec.validate() {
                Ok(v) if matches!(v.work(), meanwhile_core::Work::Function) => v,
                Ok(_) => {
                    results.push(Some(Err(Error::Invalid {
                        field: "command",
                        message: "a function task's spec must not name a command, argv or agent"
                            .into(),
                    })));
                    continue;
                }
                Err(e) => {
                    results.push(Some(Err(e.into())));
                    continue;
                }
            };
            let f: TaskFn = Arc::new(move |ctx: TaskContext| -> TaskFuture {
                let fut = f(ctx);
                Box::pin(async move { fut.await.map(|()| None).map_err(|e| e.to_string()) })
            });
            results.push(None);
            // A closure lives in this process: in a fleet, no other node may claim it.
            valid.push(NewTask {
                spec: v,
                now,
                owner: self
                    .inner
                    .store
                    .is_shared()
                    .then(|| self.inner.node.clone()),
            });
            fns.push(f);
        }
        if valid.is_empty() {
            return Ok(results.into_iter().flatten().collect());
        }
        // Until the closures are registered, an attempt that claims one of these
        // tasks waits for them instead of calling the closure lost.
        let submitting = self.inner.functions.submitting();
        let stored = self.inner.store.submit(valid).await?;
        let mut register = Vec::new();
        let mut stored = stored.into_iter().zip(fns);
        for slot in results.iter_mut().filter(|r| r.is_none()) {
            let Some((r, f)) = stored.next() else {
                *slot = Some(Err(Error::ShutDown));
                continue;
            };
            *slot = Some(match r {
                Ok(Submitted::Created(id)) => {
                    register.push((id, f));
                    Ok(id)
                }
                Ok(Submitted::Existing(id)) => Ok(id),
                Err(e) => Err(e.into()),
            });
        }
        self.inner.functions.register(register);
        drop(submitting);
        self.inner.wake.notify_one();
        Ok(results.into_iter().flatten().collect())
    }

    /// Registers the executor for a kind of in-process task (the agent registers
    /// `agent`); the dispatcher then claims tasks of that kind.
    pub fn register_executor(&self, kind: TaskKind, executor: Arc<dyn Executor>) {
        if let Ok(mut e) = self.inner.executors.write() {
            e.insert(kind, executor);
        }
        self.inner.wake.notify_one();
    }

    /// True when an executor for `kind` is registered on this runtime.
    pub fn has_executor(&self, kind: TaskKind) -> bool {
        self.inner
            .executors
            .read()
            .map(|e| e.contains_key(&kind))
            .unwrap_or(false)
    }

    /// Calls `hook` after each task that succeeds, once its end is committed.
    pub fn on_complete(&self, hook: impl Fn(&TaskRecord) + Send + Sync + 'static) {
        if let Ok(mut h) = self.inner.on_complete.write() {
            h.push(Arc::new(hook));
        }
    }

    /// Calls `hook` after each task that fails, times out, is quarantined or lost.
    pub fn on_error(&self, hook: impl Fn(&TaskRecord) + Send + Sync + 'static) {
        if let Ok(mut h) = self.inner.on_error.write() {
            h.push(Arc::new(hook));
        }
    }

    /// One task.
    pub async fn get(&self, id: TaskId) -> Result<TaskRecord> {
        Ok(self.inner.store.get(id).await?)
    }

    /// A page of tasks, newest first. `limit` is at most
    /// [`MAX_LIST_LIMIT`](meanwhile_core::MAX_LIST_LIMIT).
    pub async fn list(&self, filter: ListFilter) -> Result<Page> {
        filter.check()?;
        Ok(self.inner.store.list(filter).await?)
    }

    /// A task's attempts, oldest first.
    pub async fn attempts(&self, id: TaskId) -> Result<Vec<Attempt>> {
        Ok(self.inner.store.attempts(id).await?)
    }

    /// The steps a task recorded (an agent task's model responses and tool calls),
    /// of every attempt, oldest first; empty for a task that records none.
    pub async fn transcript(&self, id: TaskId) -> Result<meanwhile_core::Transcript> {
        self.inner.store.get(id).await?;
        let steps = self.inner.store.steps(id, None).await?;
        Ok(meanwhile_core::Transcript { task_id: id, steps })
    }

    /// Stops a task: a pending one is cancelled and never starts; a running one gets
    /// SIGTERM, the grace period and SIGKILL (or SIGKILL at once with `Force`), and
    /// ends `cancelled`. Returns the task as it is once the stop is under way.
    pub async fn stop(&self, id: TaskId, mode: StopMode) -> Result<TaskRecord> {
        self.check_started_by_caller(id, "stop").await?;
        let force = mode == StopMode::Force;
        match self
            .inner
            .store
            .request_stop(id, self.inner.now(), force)
            .await?
        {
            StopOutcome::Cancelled(fin) => {
                self.inner.functions.remove(id);
                for t in std::iter::once(&fin.task).chain(&fin.cascaded) {
                    self.inner.run_hooks(t);
                }
                Ok(fin.task)
            }
            StopOutcome::Stopping(task) => {
                // A task running on another node is stopped by that node, which
                // hears of the `stop_requested` event (see `fleet`).
                if task.node.as_deref() == Some(self.inner.node.as_str()) {
                    let taken = self.inner.registry().stop(id, task.attempts, mode);
                    // Its process was being started: the attempt signals it once it
                    // has, and the stop is delivered when it has taken it in.
                    if let Some(taken) = taken {
                        let _ = taken.await;
                    }
                }
                Ok(task)
            }
        }
    }

    /// Puts a finished task back to pending with a fresh retry budget.
    pub async fn retry(&self, id: TaskId) -> Result<TaskRecord> {
        self.check_started_by_caller(id, "retry").await?;
        let t = self.inner.store.retry(id, self.inner.now()).await?;
        self.inner.wake.notify_one();
        Ok(t)
    }

    /// Removes finished tasks and their logs.
    pub async fn remove(&self, ids: Vec<TaskId>) -> Result<Vec<TaskId>> {
        for &id in &ids {
            self.check_started_by_caller(id, "remove").await?;
        }
        let removed = self.inner.store.remove(ids).await?;
        self.remove_dirs(&removed);
        Ok(removed)
    }

    /// Removes finished tasks by age or count, with their logs.
    pub async fn clean(&self, req: CleanRequest) -> Result<Vec<TaskId>> {
        let removed = self.inner.store.clean(req).await?;
        self.remove_dirs(&removed);
        Ok(removed)
    }

    /// The running task whose process tree `pid` belongs to, if any: the walk up
    /// its parents meets the task's main process, or its supervisor (the
    /// subreaper that orphans of the tree are handed to). What a daemon asks of
    /// the peer of its socket, so that a request from inside a task acts with
    /// that task's confinement.
    pub fn task_of_process(&self, pid: i32) -> Option<TaskId> {
        let mut roots = HashMap::new();
        for (id, pgid) in self.inner.registry().process_groups() {
            roots.insert(pgid, id);
            if let Some(supervisor) = crate::procfs::parent_of(pgid) {
                roots.insert(supervisor, id);
            }
        }
        let mut at = pid;
        // A chain of parents ends at pid 1; the bound only guards against a loop
        // seen through pids reused while walking.
        for _ in 0..4096 {
            if let Some(&id) = roots.get(&at) {
                return Some(id);
            }
            match crate::procfs::parent_of(at) {
                Some(p) if p > 1 => at = p,
                _ => return None,
            }
        }
        None
    }

    /// Refuses a change to task `id` asked from inside a task that did not start it.
    pub(super) async fn check_started_by_caller(&self, id: TaskId, what: &str) -> Result<()> {
        let Some(caller) = calling_task() else {
            return Ok(());
        };
        if self.inner.store.get(id).await?.spec.started_by == Some(caller) {
            return Ok(());
        }
        Err(Error::Confined(format!(
            "refused: from inside task {caller}, only the tasks it started may be asked to {what}, and task {id} is not one of them"
        )))
    }

    fn remove_dirs(&self, ids: &[TaskId]) {
        for id in ids {
            let dir = self.inner.home.task_dir(*id);
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
        }
    }

    /// Records progress for a running task (what a task does with the
    /// `MEANWHILE_TASK_ID` it finds in its environment).
    pub async fn report_progress(
        &self,
        id: TaskId,
        percent: Option<f32>,
        message: impl Into<String>,
    ) -> Result<()> {
        let p = Progress::new(percent.map(f64::from), message, self.inner.now())?;
        Ok(self.inner.write_progress(id, p).await?)
    }

    /// Returns the session's undelivered notifications, oldest first, and marks them
    /// delivered: each is returned exactly once, also across restarts.
    pub async fn drain_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        meanwhile_core::check_notification_limit(limit)?;
        Ok(self.inner.store.drain_notifications(session, limit).await?)
    }

    /// The session's undelivered notifications, without marking them.
    pub async fn peek_notifications(&self, session: &str, limit: u32) -> Result<Vec<Notification>> {
        meanwhile_core::check_notification_limit(limit)?;
        Ok(self.inner.store.peek_notifications(session, limit).await?)
    }

    /// Events as they are committed.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.store.subscribe()
    }

    /// Events after `seq` from the durable log.
    pub async fn events_after(&self, seq: i64, limit: u32) -> Result<Vec<Event>> {
        Ok(self.inner.store.events_after(seq, limit).await?)
    }

    /// Waits until any or all of `ids` have ended, or `timeout` passes.
    pub async fn wait(
        &self,
        ids: &[TaskId],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome> {
        if ids.is_empty() {
            return Err(Error::Invalid {
                field: "ids",
                message: "name at least one task to wait for".into(),
            });
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        // Subscribe before reading, so no end between the read and the wait is missed.
        let mut events = self.subscribe();
        let mut tasks = Vec::with_capacity(ids.len());
        for id in ids {
            tasks.push(self.get(*id).await?);
        }
        let wanted: std::collections::HashSet<TaskId> = ids.iter().copied().collect();
        loop {
            let done = match mode {
                WaitMode::Any => tasks.iter().any(|t| t.state.is_terminal()),
                WaitMode::All => tasks.iter().all(|t| t.state.is_terminal()),
            };
            if done {
                return Ok(WaitOutcome {
                    tasks,
                    timed_out: false,
                });
            }
            // Re-read only the tasks an event names (all of them if events were lost).
            let next = async {
                loop {
                    match events.recv().await {
                        Ok(e) if matches!(e.kind, EventKind::Finished | EventKind::Retried) => {
                            if let Some(id) = e.task_id.filter(|id| wanted.contains(id)) {
                                return Some(id);
                            }
                        }
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return None,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            let changed = match deadline {
                Some(d) => match tokio::time::timeout_at(d, next).await {
                    Ok(c) => c,
                    Err(_) => {
                        return Ok(WaitOutcome {
                            tasks,
                            timed_out: true,
                        });
                    }
                },
                None => next.await,
            };
            for (i, id) in ids.iter().enumerate() {
                if changed.is_none_or(|c| c == *id) {
                    tasks[i] = self.get(*id).await?;
                }
            }
        }
    }
}

/// The task from inside which the request being served was made, as the server
/// named its actor.
fn calling_task() -> Option<TaskId> {
    match meanwhile_store::current_actor() {
        Actor::Socket { task, .. } => task,
        _ => None,
    }
}
