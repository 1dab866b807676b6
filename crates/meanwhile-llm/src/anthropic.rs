//! The Anthropic Messages API (`POST {base}/v1/messages`): request building, reply
//! parsing, and the provider that joins them.

use reqwest::header::HeaderName;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::{ProviderKind, Resolved};
use crate::conversation::{ContentBlock, Request, Response, Role, StopReason};
use crate::error::LlmError;
use crate::http::{self, HttpTransport, Parsed};
use crate::price::PriceTable;
use crate::provider::{BoxFuture, Provider};
use crate::structured::{self, OutputSchema};
use crate::usage::Usage;

const PROVIDER: &str = "anthropic";
const API_VERSION: &str = "2023-06-01";

/// A provider speaking the Anthropic Messages API.
#[derive(Debug)]
pub(crate) struct AnthropicProvider {
    http: HttpTransport,
    model: String,
    prices: PriceTable,
}

impl AnthropicProvider {
    pub fn new(resolved: Resolved) -> Result<Self, LlmError> {
        let mut headers = vec![(
            HeaderName::from_static("anthropic-version"),
            http::header_value(PROVIDER, "API version", API_VERSION, false)?,
        )];
        if let Some(key) = &resolved.api_key {
            headers.push((
                HeaderName::from_static("x-api-key"),
                http::header_value(PROVIDER, "API key", key, true)?,
            ));
        }
        let url = format!("{}/v1/messages", resolved.base_url);
        Ok(AnthropicProvider {
            http: HttpTransport::new(&resolved, url, headers)?,
            model: resolved.model,
            prices: resolved.prices,
        })
    }

    async fn call(&self, request: &Request) -> Result<Response, LlmError> {
        let model = request.model.as_deref().unwrap_or(&self.model);
        let reply = self
            .http
            .post_json(&request_body(request, model), parse_response)
            .await?;
        let mut response = reply.into_response(model, &self.prices);
        if let Some(schema) = &request.output_schema {
            OutputSchema::new(schema)
                .answer_as_text(&mut response.content, &mut response.stop_reason);
        }
        Ok(response)
    }
}

impl Provider for AnthropicProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Response, LlmError>> {
        Box::pin(self.call(request))
    }
}

/// The JSON of one neutral block, or `None` for a block the API would refuse and
/// that carries nothing (empty text).
fn block_json(block: &ContentBlock) -> Option<Value> {
    Some(match block {
        ContentBlock::Text { text } if text.is_empty() => return None,
        ContentBlock::Text { text } => json!({"type": "text", "text": text}),
        ContentBlock::ToolUse { id, name, input } => {
            // The API wants an object; arguments a model could not write as JSON
            // are kept as a string in the neutral model and wrapped here.
            let input = match input {
                Value::Object(_) => input.clone(),
                Value::Null => json!({}),
                other => json!({"input": other}),
            };
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
        ContentBlock::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => {
            let mut value = json!({
                "type": "tool_result",
                "tool_use_id": tool_use_id,
                "content": content,
            });
            if *is_error {
                value["is_error"] = json!(true);
            }
            value
        }
    })
}

fn ephemeral_cache() -> Value {
    json!({"type": "ephemeral"})
}

/// The Messages API body for `request`.
///
/// The API wants roles to alternate, so consecutive messages of one role are merged,
/// and it wants a user message's tool results before its text, so they are moved
/// first. With `cache_prompt`, cache breakpoints go on the tools, the system prompt
/// and the last block, so each call reads the prefix the previous one wrote.
pub(crate) fn request_body(request: &Request, model: &str) -> Value {
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for message in &request.messages {
        let mut blocks: Vec<Value> = message.content.iter().filter_map(block_json).collect();
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((role, existing)) if *role == message.role => existing.append(&mut blocks),
            _ => turns.push((message.role, blocks)),
        }
    }
    for (role, blocks) in &mut turns {
        if *role == Role::User {
            // A stable sort keeps the order within results and within the rest.
            blocks.sort_by_key(|block| block["type"] != "tool_result");
        }
    }
    if request.cache_prompt
        && let Some(last) = turns.last_mut().and_then(|(_, blocks)| blocks.last_mut())
    {
        last["cache_control"] = ephemeral_cache();
    }

    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| {
            let role = match role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": blocks})
        })
        .collect();

    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("max_tokens".into(), json!(request.max_tokens));
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        let system = if request.cache_prompt {
            json!([{"type": "text", "text": system, "cache_control": ephemeral_cache()}])
        } else {
            json!(system)
        };
        body.insert("system".into(), system);
    }
    body.insert("messages".into(), Value::Array(messages));
    let mut tools: Vec<Value> = request
        .tools
        .iter()
        .map(|tool| {
            json!({
                "name": tool.name,
                "description": tool.description,
                "input_schema": tool.input_schema,
            })
        })
        .collect();
    // Structured output through a forced call of one more tool, whose input is the
    // answer: every model that calls tools supports it.
    if let Some(schema) = &request.output_schema {
        tools.push(json!({
            "name": structured::NAME,
            "description": structured::DESCRIPTION,
            "input_schema": OutputSchema::new(schema).schema,
        }));
        body.insert(
            "tool_choice".into(),
            json!({"type": "tool", "name": structured::NAME}),
        );
    }
    if !tools.is_empty() {
        if request.cache_prompt
            && let Some(last) = tools.last_mut()
        {
            last["cache_control"] = ephemeral_cache();
        }
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    Value::Object(body)
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: String,
    content: Vec<WireBlock>,
    stop_reason: Option<String>,
    usage: WireUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Blocks this crate does not use (thinking, server tool results, ...).
    #[serde(other)]
    Other,
}

// Cache counts are absent or null when caching was not involved.
#[derive(Deserialize)]
struct WireUsage {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

/// Reads a Messages API reply.
pub(crate) fn parse_response(body: &[u8]) -> Result<Parsed, LlmError> {
    let value = http::parse_body(PROVIDER, body)?;
    let wire: WireResponse = http::decode(PROVIDER, "Messages API", value)?;
    let content = wire
        .content
        .into_iter()
        .filter_map(|block| match block {
            WireBlock::Text { text } => Some(ContentBlock::Text { text }),
            WireBlock::ToolUse { id, name, input } => {
                Some(ContentBlock::ToolUse { id, name, input })
            }
            WireBlock::Other => None,
        })
        .collect();
    let stop_reason = match wire.stop_reason.as_deref() {
        Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_owned()),
        None => StopReason::Other("none".to_owned()),
    };
    let usage = Usage {
        input_tokens: wire.usage.input_tokens,
        output_tokens: wire.usage.output_tokens,
        cache_creation_input_tokens: wire.usage.cache_creation_input_tokens.unwrap_or(0),
        cache_read_input_tokens: wire.usage.cache_read_input_tokens.unwrap_or(0),
    };
    Ok(Parsed {
        model: wire.model,
        content,
        stop_reason,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Message, ToolDefinition};

    fn conversation() -> Request {
        let mut request = Request::new(
            vec![
                Message::user("list files"),
                Message::new(
                    Role::Assistant,
                    vec![
                        ContentBlock::text("Running ls."),
                        ContentBlock::ToolUse {
                            id: "toolu_1".into(),
                            name: "shell".into(),
                            input: json!({"command": "ls"}),
                        },
                    ],
                ),
                // Text before the result, and a second user message: both must be
                // rearranged for the API.
                Message::new(
                    Role::User,
                    vec![
                        ContentBlock::text("here you go"),
                        ContentBlock::tool_result("toolu_1", "a.txt"),
                    ],
                ),
                Message::new(
                    Role::User,
                    vec![ContentBlock::tool_error("toolu_2", "boom")],
                ),
            ],
            512,
        );
        request.system = Some("be brief".into());
        request.tools = vec![ToolDefinition {
            name: "shell".into(),
            description: "run a command".into(),
            input_schema: json!({"type": "object"}),
        }];
        request.cache_prompt = false;
        request
    }

    #[test]
    fn request_merges_turns_and_puts_tool_results_first() {
        let body = request_body(&conversation(), "claude-haiku-4-5");
        assert_eq!(
            body,
            json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 512,
                "system": "be brief",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "list files"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Running ls."},
                        {"type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"command": "ls"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": true},
                        {"type": "text", "text": "here you go"}
                    ]}
                ],
                "tools": [{"name": "shell", "description": "run a command", "input_schema": {"type": "object"}}]
            })
        );
    }

    #[test]
    fn prompt_caching_marks_tools_system_and_last_block() {
        let mut request = conversation();
        request.cache_prompt = true;
        let body = request_body(&request, "m");
        let cache = json!({"type": "ephemeral"});
        assert_eq!(body["system"][0]["cache_control"], cache);
        assert_eq!(body["tools"][0]["cache_control"], cache);
        assert_eq!(body["messages"][2]["content"][2]["cache_control"], cache);
        assert_eq!(body["messages"][0]["content"][0].get("cache_control"), None);
    }

    #[test]
    fn empty_text_is_dropped_and_raw_arguments_are_wrapped() {
        let request = Request::new(
            vec![
                Message::user(""),
                Message::user("hi"),
                Message::new(
                    Role::Assistant,
                    vec![ContentBlock::ToolUse {
                        id: "t".into(),
                        name: "n".into(),
                        input: json!("{not json"),
                    }],
                ),
            ],
            10,
        );
        let body = request_body(&request, "m");
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["content"].as_array().unwrap().len(), 1);
        assert_eq!(
            messages[1]["content"][0]["input"],
            json!({"input": "{not json"})
        );
    }

    #[test]
    fn reply_blocks_usage_and_stop_reasons_are_read() {
        let parsed = parse_response(
            br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
                "content":[{"type":"thinking","thinking":"hm","signature":"s"},
                           {"type":"text","text":"ok"},
                           {"type":"tool_use","id":"toolu_9","name":"shell","input":{"command":"ls"}}],
                "stop_reason":"tool_use","stop_sequence":null,
                "usage":{"input_tokens":10,"output_tokens":20,"cache_creation_input_tokens":30,"cache_read_input_tokens":null}}"#,
        )
        .unwrap();
        assert_eq!(parsed.model, "claude-sonnet-4-5-20250929");
        assert_eq!(parsed.stop_reason, StopReason::ToolUse);
        assert_eq!(
            parsed.content,
            vec![
                ContentBlock::text("ok"),
                ContentBlock::ToolUse {
                    id: "toolu_9".into(),
                    name: "shell".into(),
                    input: json!({"command": "ls"}),
                }
            ]
        );
        assert_eq!(
            parsed.usage,
            Usage {
                input_tokens: 10,
                output_tokens: 20,
                cache_creation_input_tokens: 30,
                cache_read_input_tokens: 0,
            }
        );
        let check = |wire: &str, expect: StopReason| {
            let body = format!(
                r#"{{"content":[],"stop_reason":"{wire}","usage":{{"input_tokens":1,"output_tokens":1}}}}"#
            );
            assert_eq!(parse_response(body.as_bytes()).unwrap().stop_reason, expect);
        };
        check("end_turn", StopReason::EndTurn);
        check("max_tokens", StopReason::MaxTokens);
        check("stop_sequence", StopReason::Other("stop_sequence".into()));
    }

    #[test]
    fn replies_missing_fields_name_the_field() {
        let err = parse_response(
            br#"{"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("missing field `content`"), "{err}");
        let err = parse_response(br#"{"content":[],"usage":{"output_tokens":1}}"#)
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .ends_with("at `usage`: missing field `input_tokens`"),
            "{err}"
        );
        let err = parse_response(
            br#"{"content":[{"type":"tool_use","name":"x","input":{}}],"usage":{"input_tokens":1,"output_tokens":1}}"#,
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .ends_with("at `content[0]`: missing field `id`"),
            "{err}"
        );
    }

    #[test]
    fn an_output_schema_is_asked_as_a_forced_tool_call() {
        let mut request = Request::new(vec![Message::user("rate it")], 100);
        request.cache_prompt = false;
        request.output_schema =
            Some(json!({"type": "object", "properties": {"x": {"type": "integer"}}}));
        let body = request_body(&request, "m");
        assert_eq!(body["tools"][0]["name"], "answer");
        assert_eq!(
            body["tools"][0]["input_schema"]["properties"]["x"]["type"],
            "integer"
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "tool", "name": "answer"})
        );
    }
}
