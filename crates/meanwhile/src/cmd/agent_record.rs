//! An agent session's conversation kept in the daemon's store, step by step, so
//! that `meanwhile agent --session NAME --resume` continues it after a closed
//! terminal, a killed process or a reboot.

use meanwhile_agent::{GateFuture, StepLog};
use meanwhile_client::Client;
use meanwhile_core::{AgentSession, ApiError, ErrorCode, NewSessionStep, OpenSession, Step};
use std::sync::Arc;

/// The step log of a session run from the terminal: its steps go to the daemon.
#[derive(Clone)]
pub struct Record(Arc<Inner>);

struct Inner {
    client: Client,
    name: String,
    workspace: String,
    /// The holder this process opened the session as, and the steps it knows of;
    /// `None` until the first step of a fresh conversation opens it. A lock, so that
    /// steps are recorded one at a time, in order.
    held: tokio::sync::Mutex<Option<(String, u32)>>,
}

impl Record {
    /// A record of a new conversation under `name`, which replaces the one the name
    /// had at its first step (and not before: quitting first keeps the old one).
    pub fn fresh(client: Client, name: &str, workspace: &str) -> Record {
        Record(Arc::new(Inner {
            client,
            name: name.to_string(),
            workspace: workspace.to_string(),
            held: tokio::sync::Mutex::new(None),
        }))
    }

    /// Opens session `name` to continue its conversation: answers the record, the
    /// session and its steps. Another process that held it records no more.
    pub async fn resume(
        client: Client,
        info: &AgentSession,
    ) -> anyhow::Result<(Record, AgentSession, Vec<Step>)> {
        let open = OpenSession {
            fresh: false,
            workspace: info.workspace.clone(),
        };
        let opened = client
            .open_agent_session(&info.name, &open)
            .await
            .map_err(|e| anyhow::anyhow!("opening session {}: {e}", info.name))?;
        let steps = client
            .agent_session_steps(&info.name)
            .await
            .map_err(|e| anyhow::anyhow!("reading session {}: {e}", info.name))?;
        let after = steps.last().map_or(0, |s| s.n);
        let record = Record(Arc::new(Inner {
            client,
            name: info.name.clone(),
            workspace: info.workspace.clone(),
            held: tokio::sync::Mutex::new(Some((opened.holder.clone(), after))),
        }));
        Ok((record, opened, steps))
    }
}

impl StepLog for Record {
    fn record(
        &self,
        kind: &'static str,
        data: serde_json::Value,
        _usage: Option<(u64, f64)>,
    ) -> GateFuture<'_, Result<(), ApiError>> {
        let inner = self.0.clone();
        // On a task of its own: a turn cancelled while a step is on its way does
        // not drop it halfway, so the count of steps stays true for the next one.
        let write = tokio::spawn(async move {
            let mut held = inner.held.lock().await;
            let (holder, after) = match held.take() {
                Some(h) => held.insert(h),
                None => {
                    let open = OpenSession {
                        fresh: true,
                        workspace: inner.workspace.clone(),
                    };
                    let opened = inner.client.open_agent_session(&inner.name, &open).await?;
                    held.insert((opened.holder, 0))
                }
            };
            let step = NewSessionStep {
                holder: holder.clone(),
                after: *after,
                kind: kind.to_string(),
                data,
            };
            *after = inner.client.record_session_step(&inner.name, &step).await?;
            Ok(())
        });
        Box::pin(async move {
            write.await.unwrap_or_else(|e| {
                Err(ApiError::new(
                    ErrorCode::Internal,
                    format!("recording a step of the session failed: {e}"),
                ))
            })
        })
    }
}

/// Prints the agent sessions that keep a conversation.
pub async fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let sessions = client
        .agent_sessions(1000)
        .await
        .map_err(|e| anyhow::anyhow!("listing the agent sessions: {e}"))?;
    if json {
        return super::print_json(&sessions);
    }
    if sessions.is_empty() {
        errln!("no agent session keeps a conversation yet (meanwhile agent --session NAME)");
        return Ok(());
    }
    let now = crate::fmt::now();
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.steps.to_string(),
                crate::fmt::ago(s.updated_at, now),
                s.workspace.clone(),
                s.title.clone(),
            ]
        })
        .collect();
    out!(
        "{}",
        crate::fmt::table(
            &["SESSION", "STEPS", "ACTIVE", "WORKSPACE", "FIRST MESSAGE"],
            &rows
        )
    );
    Ok(())
}
