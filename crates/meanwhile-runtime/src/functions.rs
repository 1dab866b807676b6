//! The closures of function tasks, by task id. A submit registers its closure after
//! the task is committed, holding no lock across the commit, so concurrent submitters
//! do not queue behind each other; an attempt that finds no closure yet waits for
//! the submits in flight before it concludes that the closure is gone.

use meanwhile_core::{TaskContext, TaskFuture, TaskId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A function task's closure, called once per attempt.
pub(crate) type TaskFn = Arc<dyn Fn(TaskContext) -> TaskFuture + Send + Sync>;

/// The registry.
#[derive(Default)]
pub(crate) struct Functions {
    state: Mutex<State>,
    registered: Notify,
}

#[derive(Default)]
struct State {
    by_task: HashMap<TaskId, TaskFn>,
    /// Submits between their commit and their registration.
    submitting: usize,
}

/// A submit in flight: dropped (after registering, or on failure) it lets waiting
/// attempts decide.
pub(crate) struct Submitting<'a>(&'a Functions);

impl Drop for Submitting<'_> {
    fn drop(&mut self) {
        self.0.lock().submitting -= 1;
        self.0.registered.notify_waiters();
    }
}

impl Functions {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it: each change
        // is one insert, remove or counter step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a submit in flight, before its commit.
    pub(crate) fn submitting(&self) -> Submitting<'_> {
        self.lock().submitting += 1;
        Submitting(self)
    }

    /// Registers the closures of committed tasks.
    pub(crate) fn register(&self, items: impl IntoIterator<Item = (TaskId, TaskFn)>) {
        self.lock().by_task.extend(items);
    }

    /// The closure of `id`; `None` when no submit of this process registered it (the
    /// task was submitted by a process that has exited).
    pub(crate) async fn get(&self, id: TaskId) -> Option<TaskFn> {
        loop {
            let notified = self.registered.notified();
            tokio::pin!(notified);
            // Registered before the check, so a registration right after it wakes us.
            notified.as_mut().enable();
            {
                let s = self.lock();
                if let Some(f) = s.by_task.get(&id) {
                    return Some(f.clone());
                }
                if s.submitting == 0 {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Forgets the closure of a task that has ended for good.
    pub(crate) fn remove(&self, id: TaskId) {
        self.lock().by_task.remove(&id);
    }
}
