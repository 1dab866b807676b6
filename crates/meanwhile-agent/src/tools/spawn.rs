//! `spawn_agent`: a sub-agent submitted as a background task of kind `agent`.

use super::{ToolBox, ToolError, defs, parse_args};
use meanwhile_core::{AgentSpec, TaskSpec};
use serde::Deserialize;
use serde_json::Value;

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

pub(crate) async fn spawn_agent(tb: &ToolBox, args: Value) -> Result<String, ToolError> {
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
    let d = &tb.spawn;
    let root = tb.workspace.root().to_path_buf();
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
        session: Some(tb.session.clone()),
        ..TaskSpec::default()
    };
    let id = tb.backend.submit(spec).await?;
    tb.track(id);
    Ok(format!(
        "Started sub-agent task {id}: {}. It works in the background; its final answer reaches you when it ends \
         (or use background_wait with ids [{id}]; background_output id {id} shows its transcript so far).",
        meanwhile_core::shorten(&a.prompt, 100)
    ))
}
