//! Agent sessions that keep their conversation in the store (`meanwhile agent
//! --session NAME`): opened by one holder at a time, recorded step by step, listed,
//! and forgotten by hand or by retention.

use super::*;
use meanwhile_core::{AgentSession, NewSessionStep, OpenSession, Step, check_session_name};
use meanwhile_store::{NewAgentSessionStep, OpenAgentSession};

/// The most sessions one listing answers: the bound of every `limit` of the API.
pub const MAX_SESSIONS_LISTED: u32 = meanwhile_core::MAX_NOTIFICATIONS;

impl Runtime {
    /// Opens agent session `name` for a new holder, who alone records its steps
    /// from now on (one that held it before is refused its next step): a fresh open
    /// begins a new conversation, replacing the one it had; else the one it has is
    /// continued. Answers the session, with the holder to record with.
    pub async fn open_agent_session(&self, name: &str, open: OpenSession) -> Result<AgentSession> {
        self.check_open()?;
        check_session_name("session", name)?;
        if open.workspace.trim().is_empty() {
            return Err(Error::Invalid {
                field: "workspace",
                message: "give the directory the agent works in".into(),
            });
        }
        let holder = format!("{:016x}", rand::random::<u64>());
        Ok(self
            .inner
            .store
            .open_agent_session(OpenAgentSession {
                name: name.to_string(),
                fresh: open.fresh,
                workspace: open.workspace,
                holder,
                now: self.inner.now(),
            })
            .await?)
    }

    /// Records the next step of agent session `name`; answers its number.
    pub async fn record_session_step(&self, name: &str, step: NewSessionStep) -> Result<u32> {
        check_session_name("session", name)?;
        let data = serde_json::to_string(&step.data).map_err(|e| Error::Invalid {
            field: "data",
            message: format!("does not serialize: {e}"),
        })?;
        Ok(self
            .inner
            .store
            .record_session_step(NewAgentSessionStep {
                name: name.to_string(),
                holder: step.holder,
                after: step.after,
                kind: step.kind,
                data,
                now: self.inner.now(),
            })
            .await?)
    }

    /// Agent session `name`'s steps, oldest first.
    pub async fn agent_session_steps(&self, name: &str) -> Result<Vec<Step>> {
        check_session_name("session", name)?;
        Ok(self.inner.store.agent_session_steps(name).await?)
    }

    /// One agent session.
    pub async fn agent_session(&self, name: &str) -> Result<AgentSession> {
        check_session_name("session", name)?;
        Ok(self.inner.store.agent_session(name).await?)
    }

    /// Agent sessions that keep a conversation, the last active first; `limit` at
    /// most (1 to [`MAX_SESSIONS_LISTED`]).
    pub async fn agent_sessions(&self, limit: u32) -> Result<Vec<AgentSession>> {
        if limit == 0 || limit > MAX_SESSIONS_LISTED {
            return Err(Error::Invalid {
                field: "limit",
                message: format!("must be 1 to {MAX_SESSIONS_LISTED}"),
            });
        }
        Ok(self.inner.store.agent_sessions(limit).await?)
    }

    /// Removes agent session `name`'s conversation; its notices stay.
    pub async fn forget_agent_session(&self, name: &str) -> Result<()> {
        check_session_name("session", name)?;
        if !self.inner.store.forget_agent_session(name).await? {
            return Err(Error::Store(StoreError::UnknownSession(name.to_string())));
        }
        Ok(())
    }
}
