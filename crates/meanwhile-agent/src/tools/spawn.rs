//! `spawn_agent`: a sub-agent submitted as a background task of kind `agent`.

use super::{SpawnDefaults, ToolBox, ToolError, defs, parse_args};
use meanwhile_core::{AgentSpec, Backend, TaskId, TaskSpec};
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    prompt: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    tools: Option<Vec<String>>,
    #[serde(default)]
    max_turns: Option<u32>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_cost_usd: Option<f64>,
    #[serde(default)]
    queue: Option<String>,
}

pub(crate) async fn spawn_agent(
    tb: &ToolBox,
    args: Value,
    key: Option<String>,
) -> Result<String, ToolError> {
    let (id, answer) = submit(
        tb.backend.as_ref(),
        &tb.session,
        tb.workspace.root(),
        &tb.spawn,
        args,
        key,
    )
    .await?;
    tb.track(id);
    Ok(answer)
}

/// Runs `spawn_agent` outside an agent (the MCP server): the sub-agent works in
/// `workspace`, with `provider` and `model` unless the arguments name a model, and its
/// end notifies `session`.
pub async fn call_spawn_agent(
    backend: &dyn Backend,
    session: &str,
    workspace: &Path,
    provider: Option<&str>,
    model: Option<&str>,
    args: Value,
) -> Result<String, ToolError> {
    let defaults = SpawnDefaults {
        provider: provider.map(str::to_string),
        model: model.map(str::to_string),
        ..SpawnDefaults::default()
    };
    let (_, answer) = submit(backend, session, workspace, &defaults, args, None).await?;
    Ok(answer)
}

async fn submit(
    backend: &dyn Backend,
    session: &str,
    root: &Path,
    d: &SpawnDefaults,
    args: Value,
    key: Option<String>,
) -> Result<(TaskId, String), ToolError> {
    let tool = defs::SPAWN_AGENT;
    let a: Args = parse_args(tool, args)?;
    if a.prompt.trim().is_empty() {
        return Err(ToolError::args(tool, "prompt must not be empty"));
    }
    if let Some(tools) = &a.tools {
        for t in tools {
            if !defs::ALL_TOOLS.contains(&t.as_str()) {
                return Err(ToolError::args(
                    tool,
                    format!(
                        "unknown tool {t:?}; the tools are {}",
                        defs::ALL_TOOLS.join(", ")
                    ),
                ));
            }
        }
    }
    let root = root.to_path_buf();
    let spec = TaskSpec {
        agent: Some(AgentSpec {
            prompt: a.prompt.clone(),
            model: a.model.or_else(|| d.model.clone()),
            provider: d.provider.clone(),
            tools: a.tools,
            max_turns: a.max_turns.or(d.budget.max_turns),
            max_tokens: a.max_tokens.or(d.budget.max_tokens),
            max_cost_usd: a.max_cost_usd.or(d.budget.max_cost_usd),
            workspace: Some(root.clone()),
        }),
        cwd: Some(root),
        name: a.name.filter(|n| !n.trim().is_empty()),
        queue: a.queue.or_else(|| d.queue.clone()),
        session: Some(session.to_string()),
        // A sandboxed agent's sub-agents run their commands sandboxed too.
        sandbox: d.sandbox.then_some(true),
        idempotency_key: key,
        ..TaskSpec::default()
    };
    let id = backend.submit(spec).await?;
    Ok((
        id,
        format!(
            "Started sub-agent task {id}: {}. It works in the background; its final answer reaches you when it ends \
         (or use background_wait with ids [{id}]; background_output id {id} shows its transcript so far).",
            meanwhile_core::shorten(&a.prompt, 100)
        ),
    ))
}
