//! The provider-neutral conversation model: requests, messages, content blocks and replies.
//!
//! These types describe a conversation the way the agent loop thinks of it. Each wire
//! format module converts them to and from its own JSON, so nothing here knows a
//! provider. They are serde types so that a caller can persist a conversation as is.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::usage::{Cost, RunUsage, Usage};

/// Who wrote a message. System prompts are not messages: see [`Request::system`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The user, or the agent loop speaking for its tools.
    User,
    /// The model.
    Assistant,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Plain text.
    Text {
        /// The text itself.
        text: String,
    },
    /// The model asks for a tool to be run. Only in assistant messages.
    ToolUse {
        /// Identifier chosen by the provider; the matching result must quote it.
        id: String,
        /// Name of the tool, as given in a [`ToolDefinition`].
        name: String,
        /// Arguments as JSON. When a model produced arguments that are not valid
        /// JSON (small local models do), this is a JSON string holding the raw text,
        /// so the caller can tell the model what went wrong.
        input: Value,
    },
    /// The outcome of a tool run. Only in user messages.
    ToolResult {
        /// The `id` of the [`ContentBlock::ToolUse`] this answers.
        tool_use_id: String,
        /// What the tool printed or returned, as text.
        content: String,
        /// Whether the tool failed; the model sees this and can react.
        #[serde(default)]
        is_error: bool,
    },
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text { text: text.into() }
    }

    /// A successful tool result.
    pub fn tool_result(tool_use_id: impl Into<String>, content: impl Into<String>) -> Self {
        ContentBlock::ToolResult {
            tool_use_id: tool_use_id.into(),
            content: content.into(),
            is_error: false,
        }
    }

    /// A failed tool result.
    pub fn tool_error(tool_use_id: impl Into<String>, content: impl Into<String>) -> Self {
        ContentBlock::ToolResult {
            tool_use_id: tool_use_id.into(),
            content: content.into(),
            is_error: true,
        }
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// What it says, in order.
    pub content: Vec<ContentBlock>,
}

impl Message {
    /// A user message holding one text block.
    pub fn user(text: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: vec![ContentBlock::text(text)],
        }
    }

    /// An assistant message holding one text block.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: vec![ContentBlock::text(text)],
        }
    }

    /// A message with the given role and blocks.
    pub fn new(role: Role, content: Vec<ContentBlock>) -> Self {
        Message { role, content }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Name the model uses to call it.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its input (an object schema).
    pub input_schema: Value,
}

/// Everything needed for one model call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Model to use; `None` means the model the provider was configured with.
    #[serde(default)]
    pub model: Option<String>,
    /// System prompt, if any.
    #[serde(default)]
    pub system: Option<String>,
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Vec<ToolDefinition>,
    /// Upper bound on the tokens the model may produce in its reply.
    pub max_tokens: u32,
    /// Sampling temperature; `None` leaves the provider's default (some models,
    /// such as OpenAI's reasoning models, reject any other value). An `f64` so
    /// that 0.7 goes on the wire as 0.7, not 0.699999988.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Ask the provider to cache the prompt prefix where caching must be requested
    /// explicitly (Anthropic). An agent loop resends a growing prefix on every call,
    /// so this is on by default; providers that cache automatically ignore it.
    #[serde(default = "default_true")]
    pub cache_prompt: bool,
    /// Ask for a reply that is one JSON value matching this JSON Schema, as the
    /// provider's structured output: a forced tool call for Anthropic,
    /// `response_format: json_schema` for OpenAI-compatible servers. The reply's text
    /// is then that JSON. Ask for it with no other tools: the model must answer,
    /// not act. Providers make a good attempt, not a promise: validate the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

fn default_true() -> bool {
    true
}

impl Request {
    /// A request with the given messages and token limit, the provider's model, no
    /// system prompt, no tools and prompt caching on.
    pub fn new(messages: Vec<Message>, max_tokens: u32) -> Self {
        Request {
            model: None,
            system: None,
            messages,
            tools: Vec::new(),
            max_tokens,
            temperature: None,
            cache_prompt: true,
            output_schema: None,
        }
    }
}

/// Why the model stopped producing output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its turn.
    EndTurn,
    /// It wants tools run; the reply holds [`ContentBlock::ToolUse`] blocks.
    ToolUse,
    /// It hit `max_tokens`; the reply is cut short.
    MaxTokens,
    /// Anything else, as the provider named it (`stop_sequence`, `content_filter`,
    /// `refusal`, ...).
    Other(String),
}

impl RunUsage {
    /// Adds one call's reply.
    pub fn record(&mut self, response: &Response) {
        self.add(&response.usage, &response.cost);
    }
}

/// The model's reply to one [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The model that answered, as the provider reported it (it may be a dated
    /// variant of the one asked for).
    pub model: String,
    /// What the model said, in order.
    pub content: Vec<ContentBlock>,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Tokens used by this call.
    pub usage: Usage,
    /// What this call cost, from the provider's price table.
    pub cost: Cost,
    /// How many HTTP attempts the call took (1 when nothing was retried).
    pub attempts: u32,
}

impl Response {
    /// The text blocks joined by newlines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|block| match block {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n")
    }

    /// The tool calls the model asked for, as `(id, name, input)`.
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|block| match block {
            ContentBlock::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }

    /// The reply as an assistant message, ready to append to the conversation.
    pub fn to_message(&self) -> Message {
        Message::new(Role::Assistant, self.content.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_serialize_with_a_type_tag() {
        let block = ContentBlock::tool_error("t1", "boom");
        let value = serde_json::to_value(&block).unwrap();
        assert_eq!(
            value,
            json!({"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": true})
        );
        let back: ContentBlock = serde_json::from_value(value).unwrap();
        assert_eq!(back, block);
    }

    #[test]
    fn usage_adds_up_and_totals_every_kind_of_input() {
        let mut sum = Usage::default();
        sum += Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_creation_input_tokens: 100,
            cache_read_input_tokens: 1000,
        };
        sum += Usage {
            input_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(sum.input_tokens, 11);
        assert_eq!(sum.total_input_tokens(), 1111);
        assert_eq!(sum.total_tokens(), 1116);
    }

    #[test]
    fn a_persisted_request_without_optional_fields_loads() {
        let request: Request = serde_json::from_value(json!({
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_tokens": 100
        }))
        .unwrap();
        assert_eq!(request, Request::new(vec![Message::user("hi")], 100));
    }
}
