//! The rules of an agent session's recorded conversation, the same on both stores:
//! one holder records at a time, steps are numbered without gaps, and a session
//! holds at most [`MAX_SESSION_STEPS`].

use crate::StoreError;
use meanwhile_core::{AgentSession, MAX_SESSION_STEPS, Step, Timestamp};

/// Idle sessions one prune removes, at most: each may hold many steps.
pub(crate) const IDLE_SLICE: i64 = 50;

/// The longest title kept: the first thing said, cut.
const TITLE_CHARS: usize = 100;

/// Checks that `holder` may record step `after + 1` of session `name`, which holder
/// `held_by` holds with `steps` steps.
pub(crate) fn check_next(
    name: &str,
    held_by: &str,
    steps: u32,
    holder: &str,
    after: u32,
) -> Result<(), StoreError> {
    if held_by != holder {
        return Err(StoreError::Conflict {
            field: "holder",
            message: format!(
                "agent session {name:?} was opened again elsewhere (another `meanwhile agent \
                 --session {name} --resume`): this one records no more; resume it again to \
                 go on from its steps"
            ),
        });
    }
    if steps != after {
        return Err(StoreError::Conflict {
            field: "after",
            message: format!(
                "agent session {name:?} has {steps} steps, not {after}: resume it again to \
                 go on from its steps"
            ),
        });
    }
    if steps >= MAX_SESSION_STEPS {
        return Err(StoreError::Invalid {
            field: "session",
            message: format!(
                "agent session {name:?} holds the most steps a session may, \
                 {MAX_SESSION_STEPS}: begin a new conversation (without --resume)"
            ),
        });
    }
    Ok(())
}

/// The title a step gives a session that has none: the first line of a `user`
/// step's text.
pub(crate) fn title(kind: &str, data: &str) -> Option<String> {
    if kind != "user" {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    let text = v.get("text")?.as_str()?.trim();
    let line = text.lines().next().unwrap_or("");
    Some(line.chars().take(TITLE_CHARS).collect())
}

/// A session's row as the store keeps it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn session(
    name: String,
    workspace: String,
    title: String,
    steps: i64,
    created_at: i64,
    updated_at: i64,
    holder: String,
) -> AgentSession {
    AgentSession {
        name,
        workspace,
        title,
        steps: steps.clamp(0, i64::from(u32::MAX)) as u32,
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
        holder,
    }
}

/// A session's step as the store keeps it (attempt 0: a session has none).
pub(crate) fn step(n: i64, at: i64, kind: String, data: &str) -> Result<Step, StoreError> {
    crate::decode::step(0, n.clamp(0, i64::from(u32::MAX)) as u32, at, kind, data)
}
