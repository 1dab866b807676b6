//! The MCP tools: the agent's background tools as MCP tools, plus
//! `background_notifications`, and how one call runs.

use crate::config::SpawnAgent;
use crate::notices;
use meanwhile_agent::tools::defs;
use meanwhile_agent::{ToolError, call_background_tool, call_spawn_agent};
use meanwhile_core::Backend;
use rmcp::model::{ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

/// Reads (and marks delivered) the session's completion notices.
pub const BACKGROUND_NOTIFICATIONS: &str = "background_notifications";

/// Most notices `background_notifications` returns at once.
const MAX_NOTICES: u32 = 100;

/// The tools offered, in order: `spawn_agent` only with `spawn`.
pub(crate) fn list(spawn: bool) -> Vec<Tool> {
    let mut names: Vec<&str> = defs::BACKGROUND_TOOLS.to_vec();
    if spawn {
        names.push(defs::SPAWN_AGENT);
    }
    let mut tools: Vec<Tool> = names
        .into_iter()
        .filter_map(defs::definition)
        .map(|d| {
            let annotations = annotations(&d.name);
            Tool::new(d.name, d.description, Arc::new(object(d.input_schema)))
                .with_annotations(annotations)
        })
        .collect();
    tools.push(
        Tool::new(
            BACKGROUND_NOTIFICATIONS,
            "Read how background tasks of this session ended (state, exit code, last lines), \
             each notice once. You rarely need it: unread notices are added to the result of \
             every other meanwhile tool anyway. Call it when you want to check for endings \
             without doing anything else.",
            Arc::new(object(json!({
                "type": "object",
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_NOTICES, "description": "Most notices to return (default 20)."}
                },
                "additionalProperties": false,
            }))),
        )
        .with_annotations(ToolAnnotations::new().read_only(false).open_world(false)),
    );
    tools
}

fn object(v: Value) -> JsonObject {
    match v {
        Value::Object(o) => o,
        // Every definition's schema is an object (the agent's tests hold it so).
        _ => JsonObject::new(),
    }
}

/// Hints for clients that show or gate tool calls.
fn annotations(name: &str) -> ToolAnnotations {
    let a = ToolAnnotations::new().open_world(false);
    match name {
        defs::BACKGROUND_OUTPUT | defs::BACKGROUND_LIST | defs::BACKGROUND_WAIT => {
            a.read_only(true)
        }
        defs::BACKGROUND_STOP => a.read_only(false).destructive(true).idempotent(true),
        _ => a.read_only(false).destructive(false),
    }
}

/// Whether `name` is a tool this server offers.
pub(crate) fn exists(name: &str, spawn: bool) -> bool {
    defs::BACKGROUND_TOOLS.contains(&name)
        || name == BACKGROUND_NOTIFICATIONS
        || (spawn && name == defs::SPAWN_AGENT)
}

/// The names of the tools offered, for messages.
pub(crate) fn names(spawn: bool) -> String {
    list(spawn)
        .iter()
        .map(|t| t.name.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a call produced: the text, and whether it is an error the model should read.
pub(crate) struct Outcome {
    pub text: String,
    pub is_error: bool,
}

/// Runs the tool `name` (which [`exists`]) for `session`; `background_run` runs in
/// `cwd` unless told otherwise.
pub(crate) async fn call(
    backend: &dyn Backend,
    session: &str,
    spawn: Option<&SpawnAgent>,
    cwd: Option<&Path>,
    name: &str,
    mut args: Value,
) -> Outcome {
    if name == defs::BACKGROUND_RUN
        && let (Some(base), Value::Object(o)) = (cwd, &mut args)
    {
        // The backend runs commands where it was started (the daemon's home), but
        // the agent means its own project; a relative cwd is relative to it too.
        let dir = match o.get("cwd") {
            None | Some(Value::Null) => Some(base.to_path_buf()),
            Some(Value::String(d)) => Some(base.join(d)),
            // Left for the tool to refuse with its own message.
            Some(_) => None,
        };
        if let Some(dir) = dir {
            o.insert("cwd".into(), Value::String(dir.display().to_string()));
        }
    }
    let result = match (name, spawn) {
        (BACKGROUND_NOTIFICATIONS, _) => notifications(backend, session, args).await,
        (defs::SPAWN_AGENT, Some(s)) => {
            call_spawn_agent(
                backend,
                session,
                &s.workspace,
                s.provider.as_deref(),
                s.model.as_deref(),
                args,
            )
            .await
        }
        _ => call_background_tool(backend, Some(session), name, args).await,
    };
    match result {
        Ok(text) => Outcome {
            text,
            is_error: false,
        },
        Err(e) => Outcome {
            text: e.to_string(),
            is_error: true,
        },
    }
}

async fn notifications(
    backend: &dyn Backend,
    session: &str,
    args: Value,
) -> Result<String, ToolError> {
    let bad = |message: String| ToolError::InvalidArguments {
        tool: BACKGROUND_NOTIFICATIONS.to_string(),
        message,
    };
    let limit = match args {
        Value::Null => None,
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| k.as_str() != "limit") {
                return Err(bad(format!("unknown field `{k}`, expected `limit`")));
            }
            match o.get("limit") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64() {
                    Some(n) if (1..=u64::from(MAX_NOTICES)).contains(&n) => Some(n as u32),
                    _ => {
                        return Err(bad(format!(
                            "limit must be a whole number from 1 to {MAX_NOTICES}, got {v}"
                        )));
                    }
                },
            }
        }
        other => return Err(bad(format!("they must be a JSON object, got {other}"))),
    };
    let limit = limit.unwrap_or(20);
    let got = backend.drain_notifications(session, limit).await?;
    if got.is_empty() {
        return Ok(format!(
            "No new notices for session {session}: no background task of it has ended since the last notice was read."
        ));
    }
    Ok(notices::text(&got, got.len() as u32 >= limit))
}

/// The content of a tool result: the answer, then the notices not seen yet.
pub(crate) fn content(text: String, notices: Option<String>) -> Vec<ContentBlock> {
    let mut blocks = vec![ContentBlock::text(text)];
    if let Some(n) = notices {
        blocks.push(ContentBlock::text(n));
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_are_the_agents_with_spawn_agent_only_when_enabled() {
        let plain: Vec<String> = list(false).iter().map(|t| t.name.to_string()).collect();
        assert_eq!(plain.len(), 7);
        assert!(!plain.iter().any(|n| n == defs::SPAWN_AGENT));
        assert!(!exists(defs::SPAWN_AGENT, false));
        assert!(
            !exists(defs::BASH, true),
            "the agent's own shell is not offered"
        );
        let with = list(true);
        let spawn = with.iter().find(|t| t.name == defs::SPAWN_AGENT).unwrap();
        let def = defs::definition(defs::SPAWN_AGENT).unwrap();
        assert_eq!(spawn.description.as_deref(), Some(def.description.as_str()));
        assert_eq!(
            Value::Object((*spawn.input_schema).clone()),
            def.input_schema
        );
        assert!(exists(BACKGROUND_NOTIFICATIONS, false));
    }
}
