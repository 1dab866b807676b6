//! One-shot runs: a prompt in, a final answer out (what `meanwhile agent -p` does).

use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::event::AgentEvent;
use crate::session::{RunOutcome, Session};
use meanwhile_core::Backend;
use std::sync::Arc;

/// Runs `prompt` to its end with `config`'s provider (built from the configuration
/// and the process environment) and tasks on `backend`. Tasks the agent leaves in
/// the background keep running and notify `config.session`.
pub async fn run_prompt(
    config: &AgentConfig,
    backend: Arc<dyn Backend>,
    prompt: &str,
    on_event: &mut (dyn FnMut(&AgentEvent) + Send),
) -> Result<RunOutcome, AgentError> {
    let provider = config.build_provider()?;
    let mut session = Session::new(config, provider, backend)?;
    session.send(prompt, on_event).await
}
