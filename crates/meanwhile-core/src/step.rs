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

/// The most steps one agent session's conversation may hold; past it the session is
/// refused more and a new one must begin. Far above what a context window holds.
pub const MAX_SESSION_STEPS: u32 = 100_000;

/// An agent session whose conversation the store keeps (`meanwhile agent --session
/// NAME`), as `GET /v1/sessions` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AgentSession {
    /// The session's name, which its tasks' notices also go to.
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Identifier"))]
    pub name: String,
    /// The directory its file tools were confined to.
    pub workspace: String,
    /// The first thing said in it, cut to 100 characters; empty before that.
    pub title: String,
    /// Steps recorded.
    pub steps: u32,
    /// When its conversation began.
    pub created_at: Timestamp,
    /// When its last step was recorded (or it was opened).
    pub updated_at: Timestamp,
    /// Who holds it: the one that opened it last, and alone records its steps.
    pub holder: String,
}

/// The body of `POST /v1/sessions/{session}/open`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenSession {
    /// Begin a new conversation, replacing one the name had (true); or continue the
    /// one it has, beginning one if it has none (false).
    #[serde(default)]
    pub fresh: bool,
    /// The workspace the agent works in.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub workspace: String,
}

/// The body of `POST /v1/sessions/{session}/steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSessionStep {
    /// The holder the open answered: a session opened again elsewhere since is
    /// refused to this one.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub holder: String,
    /// The steps the recorder knows of: the step is recorded as number `after + 1`,
    /// and refused when the session has another number of steps.
    #[serde(deserialize_with = "crate::de::int")]
    #[cfg_attr(feature = "schema", schemars(range(max = MAX_SESSION_STEPS)))]
    pub after: u32,
    /// What the step is: 1 to 64 lowercase letters, digits and `_`.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = "^[a-z0-9_]{1,64}$")))]
    pub kind: String,
    /// The step itself.
    pub data: serde_json::Value,
}

/// The number a recorded step got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StepRecorded {
    /// Its number, from 1.
    pub n: u32,
}
