//! The runtime as a [`Backend`], for itself and acting for one actor.

use super::*;

impl Runtime {
    /// A [`Backend`] over this runtime whose changes are recorded in the audit
    /// trail as made by `actor` (what a server does for the client it serves).
    pub fn acting_as(&self, actor: Actor) -> Acting {
        Acting {
            rt: self.clone(),
            actor,
        }
    }
}

impl Backend for Runtime {
    fn submit(&self, spec: TaskSpec) -> BackendFuture<'_, TaskId> {
        Box::pin(async move { Ok(Runtime::submit(self, spec).await?) })
    }

    fn get(&self, id: TaskId) -> BackendFuture<'_, TaskRecord> {
        Box::pin(async move { Ok(Runtime::get(self, id).await?) })
    }

    fn list(&self, filter: ListFilter) -> BackendFuture<'_, Page> {
        Box::pin(async move { Ok(Runtime::list(self, filter).await?) })
    }

    fn read_output(&self, id: TaskId, query: OutputQuery) -> BackendFuture<'_, OutputChunk> {
        Box::pin(async move { Ok(Runtime::read_output(self, id, query).await?) })
    }

    fn stop(&self, id: TaskId, mode: StopMode) -> BackendFuture<'_, TaskRecord> {
        Box::pin(async move { Ok(Runtime::stop(self, id, mode).await?) })
    }

    fn send_input(&self, id: TaskId, input: TaskInput) -> BackendFuture<'_, InputSent> {
        Box::pin(async move { Ok(Runtime::send_input(self, id, input).await?) })
    }

    fn wait(
        &self,
        ids: Vec<TaskId>,
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> BackendFuture<'_, WaitOutcome> {
        Box::pin(async move { Ok(Runtime::wait(self, &ids, mode, timeout).await?) })
    }

    fn drain_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        let session = session.to_string();
        Box::pin(async move { Ok(Runtime::drain_notifications(self, &session, limit).await?) })
    }

    fn peek_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        let session = session.to_string();
        Box::pin(async move { Ok(Runtime::peek_notifications(self, &session, limit).await?) })
    }

    fn acting_as(&self, actor: Actor) -> Option<Arc<dyn Backend>> {
        Some(Arc::new(Runtime::acting_as(self, actor)))
    }
}

/// A runtime serving one actor: its [`Backend`] calls are recorded in the audit
/// trail as that actor's (see [`Runtime::acting_as`]).
#[derive(Clone)]
pub struct Acting {
    rt: Runtime,
    actor: Actor,
}

impl Acting {
    fn run<'a, T: Send + 'a>(
        &'a self,
        f: impl Future<Output = std::result::Result<T, ApiError>> + Send + 'a,
    ) -> BackendFuture<'a, T> {
        Box::pin(meanwhile_store::acting(self.actor.clone(), f))
    }
}

impl Backend for Acting {
    fn submit(&self, spec: TaskSpec) -> BackendFuture<'_, TaskId> {
        self.run(Backend::submit(&self.rt, spec))
    }

    fn get(&self, id: TaskId) -> BackendFuture<'_, TaskRecord> {
        Backend::get(&self.rt, id)
    }

    fn list(&self, filter: ListFilter) -> BackendFuture<'_, Page> {
        Backend::list(&self.rt, filter)
    }

    fn read_output(&self, id: TaskId, query: OutputQuery) -> BackendFuture<'_, OutputChunk> {
        Backend::read_output(&self.rt, id, query)
    }

    fn stop(&self, id: TaskId, mode: StopMode) -> BackendFuture<'_, TaskRecord> {
        self.run(Backend::stop(&self.rt, id, mode))
    }

    fn send_input(&self, id: TaskId, input: TaskInput) -> BackendFuture<'_, InputSent> {
        self.run(Backend::send_input(&self.rt, id, input))
    }

    fn wait(
        &self,
        ids: Vec<TaskId>,
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> BackendFuture<'_, WaitOutcome> {
        Backend::wait(&self.rt, ids, mode, timeout)
    }

    fn drain_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        self.run(Backend::drain_notifications(&self.rt, session, limit))
    }

    fn peek_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        Backend::peek_notifications(&self.rt, session, limit)
    }

    fn acting_as(&self, actor: Actor) -> Option<Arc<dyn Backend>> {
        Some(Arc::new(self.rt.acting_as(actor)))
    }
}
