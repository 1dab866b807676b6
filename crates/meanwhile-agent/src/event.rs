//! What happens during a run, as events for a UI or a transcript.

use meanwhile_core::Notification;
use meanwhile_llm::{RunUsage, Usage};
use serde::Serialize;
use serde_json::Value;

/// One thing that happened in a run, in order. A UI shows them as they come; the
/// executor of agent tasks writes them to the task's log as its transcript.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentEvent {
    /// A model call is about to be made.
    ModelCall {
        /// Its number in this run, from 1.
        turn: u32,
        /// The run's turn limit, if any.
        max_turns: Option<u32>,
    },
    /// The model said something.
    Text {
        /// What it said.
        text: String,
    },
    /// The model asked for a tool.
    ToolCall {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// Its arguments.
        input: Value,
    },
    /// A tool finished; this text went back to the model.
    ToolResult {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
        /// What the model was given.
        output: String,
        /// Whether it failed.
        is_error: bool,
    },
    /// A background task ended; its notice goes into the next model call.
    Notice {
        /// The notice.
        notification: Notification,
    },
    /// A model call finished and was counted.
    Usage {
        /// Tokens of that call.
        call: Usage,
        /// Its cost in USD.
        cost_usd: f64,
        /// The run's totals so far.
        run: RunUsage,
    },
    /// The run stopped before the next model call because a budget was spent.
    BudgetSpent {
        /// Which, in words.
        reason: String,
    },
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl AgentEvent {
    /// The event as lines of a plain-text transcript.
    pub fn transcript(&self) -> String {
        match self {
            AgentEvent::ModelCall { turn, max_turns } => match max_turns {
                Some(max) => format!("--- turn {turn} of {max}"),
                None => format!("--- turn {turn}"),
            },
            AgentEvent::Text { text } => format!("assistant:\n{}", indent(text)),
            AgentEvent::ToolCall { name, input, .. } => format!("tool call: {name} {input}"),
            AgentEvent::ToolResult {
                name,
                output,
                is_error,
                ..
            } => format!(
                "{} {name}:\n{}",
                if *is_error {
                    "tool error"
                } else {
                    "tool result"
                },
                indent(output)
            ),
            AgentEvent::Notice { notification } => {
                format!("notice:\n{}", indent(&notification.text()))
            }
            AgentEvent::Usage {
                call,
                cost_usd,
                run,
            } => format!(
                "usage: {} in + {} out tokens (${cost_usd:.4}); run: {run}",
                call.total_input_tokens(),
                call.output_tokens
            ),
            AgentEvent::BudgetSpent { reason } => format!("stopped: {reason}"),
        }
    }
}
