//! What an operator steers besides tasks: schedules, budgets, alerts, queues, the
//! audit trail and its pruning, and the named tokens.

use super::*;

impl Runtime {
    /// Adds a schedule: from now on its task is submitted at each time it names (see
    /// [`ScheduleSpec`]). The first time is the next one after now.
    pub async fn add_schedule(&self, mut spec: ScheduleSpec) -> Result<ScheduleInfo> {
        self.check_open()?;
        // Its queue's defaults are kept with the schedule, as with a task.
        self.queue_defaults(&mut spec.task);
        self.inner.secrets.seal_all(&mut spec.task.secrets);
        // A schedule's tasks are started by meanwhile, not by a task: no task may
        // be handed control of them through a spec that names it.
        // (A value no task can have is left for validation to refuse, by name.)
        if spec.task.started_by.is_none_or(|id| id.0 > 0) {
            spec.task.started_by = None;
        }
        let valid = spec.validate()?;
        self.runnable(valid.spec().task.clone().validate()?)?;
        let now = self.inner.now();
        let Some(next) = valid.next_after(now, now) else {
            return Err(Error::Invalid {
                field: "cron",
                message: "the expression matches no time from now on".into(),
            });
        };
        let info = self
            .inner
            .store
            .add_schedule(valid.spec().clone(), Some(next), now)
            .await?;
        self.inner.schedules_changed.notify_one();
        Ok(info)
    }

    /// Sets the budget of a queue (creating the queue if needed): the tokens and
    /// the US dollars its tasks' model calls may use per window, and the alarms that
    /// fire `budget` alerts. With the same kind of window as before, what the current
    /// window used still counts. A budget raised above what was used resumes a queue
    /// it paused at once; one set below it pauses the queue.
    pub async fn set_budget(&self, queue: &str, spec: BudgetSpec) -> Result<BudgetInfo> {
        meanwhile_core::check_queue_name(queue)?;
        let spec = spec.validate()?;
        let b = self
            .inner
            .store
            .set_budget(queue, spec, self.inner.now())
            .await?;
        self.inner.budgets_changed.notify_one();
        self.inner.wake.notify_one();
        Ok(b)
    }

    /// Every budget, by queue, with its window and what was used in it.
    pub async fn budgets(&self) -> Result<Vec<BudgetInfo>> {
        Ok(self.inner.store.budgets().await?)
    }

    /// The budget of one queue.
    pub async fn budget(&self, queue: &str) -> Result<BudgetInfo> {
        Ok(self.inner.store.budget(queue).await?)
    }

    /// Removes the budget of a queue: its alerts resolve, and a queue it paused
    /// resumes.
    pub async fn remove_budget(&self, queue: &str) -> Result<()> {
        self.inner
            .store
            .remove_budget(queue, self.inner.now())
            .await?;
        self.inner.budgets_changed.notify_one();
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Alerts, newest first: the firing ones, or all (at most `limit`).
    pub async fn alerts(&self, all: bool, limit: u32) -> Result<Vec<meanwhile_core::Alert>> {
        Ok(self.inner.store.alerts(all, limit).await?)
    }

    /// Acknowledges firing alert `id` for `hold` (until it resolves without one):
    /// the sinks hear no reminder of it meanwhile, and health does not count it. The
    /// audit trail records who did it.
    pub async fn ack_alert(
        &self,
        id: i64,
        hold: Option<Duration>,
    ) -> Result<meanwhile_core::Alert> {
        if hold.is_some_and(|d| d.is_zero()) {
            return Err(Error::Invalid {
                field: "for",
                message: "must be longer than 0s (leave it out to hold until the alert resolves)"
                    .into(),
            });
        }
        let now = self.inner.now();
        let until = hold.map(|d| now.plus(d));
        Ok(self.inner.store.ack_alert(id, until, now).await?)
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        Ok(self.inner.store.schedules().await?)
    }

    /// One schedule.
    pub async fn schedule(&self, name: &str) -> Result<ScheduleInfo> {
        Ok(self.inner.store.schedule(name).await?)
    }

    /// Removes a schedule; the tasks it submitted stay.
    pub async fn remove_schedule(&self, name: &str) -> Result<()> {
        self.inner.store.remove_schedule(name).await?;
        self.inner.schedules_changed.notify_one();
        Ok(())
    }

    /// Pauses a schedule (it fires nothing), or resumes it from the next time after
    /// now; the times passed while paused are not missed, they are skipped.
    pub async fn pause_schedule(&self, name: &str, paused: bool) -> Result<ScheduleInfo> {
        let s = self.inner.store.schedule(name).await?;
        let next = if paused {
            None
        } else {
            s.spec
                .validate()?
                .next_after(self.inner.now(), s.created_at)
        };
        let info = self.inner.store.pause_schedule(name, paused, next).await?;
        self.inner.schedules_changed.notify_one();
        Ok(info)
    }

    /// Fires a schedule now, by hand: its task is submitted at once, and its next
    /// time stays as it was. Returns the task's id.
    pub async fn run_schedule(&self, name: &str) -> Result<TaskId> {
        self.check_open()?;
        let s = self.inner.store.schedule(name).await?;
        let valid = s.spec.validate()?;
        let now = self.inner.now();
        let spec = self.runnable(valid.task_for(now, true).validate()?)?;
        let fired = self
            .inner
            .store
            .fire_schedule(ScheduleFiring {
                name: name.to_string(),
                due: None,
                fire: Some(now),
                task: Some(NewTask::new(spec, now)),
                missed: 0,
                late: false,
                next: None,
            })
            .await?;
        self.inner.wake.notify_one();
        match fired.and_then(|f| f.task) {
            Some(t) => Ok(t.id()),
            None => Err(Error::Store(StoreError::UnknownSchedule(name.to_string()))),
        }
    }

    /// Removes old events and what removed tasks left behind, one bounded slice per
    /// call (see [`meanwhile_store::PruneRequest`]).
    pub async fn prune(
        &self,
        req: meanwhile_store::PruneRequest,
    ) -> Result<meanwhile_store::Pruned> {
        Ok(self.inner.store.prune(req).await?)
    }

    /// A page of the audit trail, oldest first.
    pub async fn audit(&self, filter: AuditFilter) -> Result<AuditPage> {
        Ok(self.inner.store.audit(filter).await?)
    }

    /// Checks the audit trail's hash chain and its checkpoint (signed with `key`).
    pub async fn verify_audit(&self, key: AuditKey) -> Result<AuditVerdict> {
        Ok(self.inner.store.verify_audit(key).await?)
    }

    /// Removes audit records committed before `before`, one bounded slice per
    /// call, behind a checkpoint signed with `key`; returns how many.
    pub async fn prune_audit(&self, before: Timestamp, key: AuditKey) -> Result<u64> {
        Ok(self.inner.store.prune_audit(before, key).await?)
    }

    /// The named API tokens with their hashes.
    pub async fn tokens(&self) -> Result<Vec<StoredToken>> {
        Ok(self.inner.store.tokens().await?)
    }

    /// Adds a named API token by its hash.
    pub async fn add_token(&self, name: &str, hash: &str) -> Result<TokenInfo> {
        meanwhile_core::check_token_name(name).map_err(|e| Error::Invalid {
            field: "name",
            message: e.message,
        })?;
        Ok(self
            .inner
            .store
            .add_token(name, hash, self.inner.now())
            .await?)
    }

    /// Removes a named API token.
    pub async fn remove_token(&self, name: &str) -> Result<()> {
        Ok(self.inner.store.remove_token(name).await?)
    }

    /// Removes a queue that has no pending or running task and no budget (see
    /// [`meanwhile_store::QueueStore::remove_queue`]).
    pub async fn remove_queue(&self, name: &str) -> Result<()> {
        self.check_open()?;
        meanwhile_core::check_queue_name(name)?;
        self.inner.store.remove_queue(name).await?;
        Ok(())
    }

    /// All queues with their counts.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        Ok(self.inner.store.queues().await?)
    }

    /// Creates or changes a queue: its parallelism, paused or not, its limit per
    /// concurrency key and its rate limit (the fields of `change` that are given; a
    /// limit given as `Some(None)` is removed). Resuming a queue whose budget is
    /// spent is refused (a conflict on `paused`): raise or remove the budget, or wait
    /// for its next window.
    pub async fn set_queue(&self, name: &str, change: QueueUpdate) -> Result<QueueInfo> {
        meanwhile_core::check_queue_name(name)?;
        let q = self.inner.store.set_queue(name, change).await?;
        self.inner.wake.notify_one();
        Ok(q)
    }
}
