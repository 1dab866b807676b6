//! The step record of a task that can resume: what an in-process task (an agent's
//! model responses and tool calls) recorded as each step completed, in the store,
//! so that the next daemon continues the same attempt from its last step instead of
//! starting over.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// The most bytes one step's data may take, as JSON. A model's response or a tool's
/// result past it is refused with this limit named; the agent keeps its tool results
/// far below it.
pub const MAX_STEP_BYTES: usize = 4 << 20;

/// One recorded step of an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Step {
    /// The attempt it belongs to (a retry starts a new record).
    pub attempt: u32,
    /// Its number within the attempt, from 1, without gaps.
    pub n: u32,
    /// When it was recorded.
    pub at: Timestamp,
    /// What it is, as the task's executor names it. The agent's: `model` (a model's
    /// response with its usage and cost), `tool_start` (a tool call about to run, with
    /// its idempotency key), `tool_result`, `notices` (what was put before a model
    /// call).
    pub kind: String,
    /// The step itself, as the executor wrote it.
    pub data: serde_json::Value,
}

/// The steps of a task, oldest first, as `GET /v1/tasks/{id}/transcript` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Transcript {
    /// The task.
    pub task_id: crate::TaskId,
    /// Every recorded step of every attempt, by attempt then number.
    pub steps: Vec<Step>,
}
