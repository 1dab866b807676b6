//! OpenAI chat completions (`POST {base}/chat/completions`), as OpenAI, OpenRouter,
//! vLLM, Ollama and llama.cpp's server speak it: request building, reply parsing,
//! and the provider that joins them.

use reqwest::header::{AUTHORIZATION, HeaderName};
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

/// A provider speaking OpenAI chat completions.
#[derive(Debug)]
pub(crate) struct OpenAiProvider {
    kind: ProviderKind,
    http: HttpTransport,
    model: String,
    prices: PriceTable,
}

impl OpenAiProvider {
    pub fn new(resolved: Resolved) -> Result<Self, LlmError> {
        let provider = resolved.kind.name();
        let mut headers = Vec::new();
        if let Some(key) = &resolved.api_key {
            headers.push((
                AUTHORIZATION,
                http::header_value(provider, "API key", &format!("Bearer {key}"), true)?,
            ));
        }
        if resolved.kind == ProviderKind::OpenRouter {
            // OpenRouter shows this name in its activity pages.
            headers.push((
                HeaderName::from_static("x-title"),
                http::header_value(provider, "title", "meanwhile", false)?,
            ));
        }
        let url = format!("{}/chat/completions", resolved.base_url);
        Ok(OpenAiProvider {
            kind: resolved.kind,
            http: HttpTransport::new(&resolved, url, headers)?,
            model: resolved.model,
            prices: resolved.prices,
        })
    }

    async fn call(&self, request: &Request) -> Result<Response, LlmError> {
        let model = request.model.as_deref().unwrap_or(&self.model);
        let body = request_body(request, model, self.kind);
        let provider = self.kind.name();
        let reply = self
            .http
            .post_json(&body, |bytes| parse_response(provider, bytes))
            .await?;
        let mut response = reply.into_response(model, &self.prices);
        if let Some(schema) = &request.output_schema {
            OutputSchema::new(schema)
                .answer_as_text(&mut response.content, &mut response.stop_reason);
        }
        Ok(response)
    }
}

impl Provider for OpenAiProvider {
    fn kind(&self) -> ProviderKind {
        self.kind
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn complete<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Response, LlmError>> {
        Box::pin(self.call(request))
    }
}

/// The chat completions body for `request`.
///
/// Each tool result becomes its own `tool` message, placed right after the
/// assistant message that asked for it as the format demands; the text of the same
/// user turn follows as a `user` message. Tool call arguments travel as a JSON
/// string. Text blocks of one message are joined into one string, because several
/// local servers accept no array of content parts.
pub(crate) fn request_body(request: &Request, model: &str, kind: ProviderKind) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        let mut texts = Vec::new();
        let mut tool_calls = Vec::new();
        for block in &message.content {
            match (message.role, block) {
                (_, ContentBlock::Text { text }) => {
                    if !text.is_empty() {
                        texts.push(text.as_str());
                    }
                }
                (Role::Assistant, ContentBlock::ToolUse { id, name, input }) => {
                    tool_calls.push(json!({
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments_string(input)},
                    }));
                }
                (
                    Role::User,
                    ContentBlock::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    },
                ) => {
                    // The format has no error flag; say it in the content, as the
                    // model would otherwise take a failure for output.
                    let content = if *is_error {
                        format!("Error: {content}")
                    } else {
                        content.clone()
                    };
                    messages.push(json!({
                        "role": "tool",
                        "tool_call_id": tool_use_id,
                        "content": content,
                    }));
                }
                (role, block) => {
                    // A tool call from the user or a result from the assistant has
                    // no form in this format; the agent loop never builds one.
                    tracing::debug!(?role, ?block, "block with no chat completions form skipped");
                }
            }
        }
        let text = texts.join("\n\n");
        match message.role {
            Role::User => {
                if !text.is_empty() {
                    messages.push(json!({"role": "user", "content": text}));
                }
            }
            Role::Assistant => {
                if text.is_empty() && tool_calls.is_empty() {
                    continue;
                }
                let mut assistant = json!({
                    "role": "assistant",
                    // The format wants content null, not absent, beside tool calls.
                    "content": if text.is_empty() { Value::Null } else { json!(text) },
                });
                if !tool_calls.is_empty() {
                    assistant["tool_calls"] = Value::Array(tool_calls);
                }
                messages.push(assistant);
            }
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    // OpenAI deprecated `max_tokens` and its reasoning models refuse it; the other
    // servers all know `max_tokens`, not all know its replacement.
    let max_tokens_key = match kind {
        ProviderKind::OpenAi => "max_completion_tokens",
        _ => "max_tokens",
    };
    body.insert(max_tokens_key.into(), json!(request.max_tokens));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.input_schema,
                    },
                })
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), json!(temperature));
    }
    // Not `strict`: strict mode refuses schemas with optional properties or without
    // `additionalProperties: false`, which most hand-written schemas are; the answer
    // is validated by the caller either way.
    if let Some(schema) = &request.output_schema {
        body.insert(
            "response_format".into(),
            json!({
                "type": "json_schema",
                "json_schema": {
                    "name": structured::NAME,
                    "schema": OutputSchema::new(schema).schema,
                    "strict": false,
                },
            }),
        );
    }
    Value::Object(body)
}

/// Arguments as the format carries them: a JSON string. Raw text kept from a model
/// that wrote invalid JSON goes back as it was written.
fn arguments_string(input: &Value) -> String {
    match input {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    }
}

/// Arguments read back: JSON when they parse (some servers send an object rather
/// than a string), else the raw text as a JSON string.
fn arguments_value(arguments: Option<Value>) -> Value {
    match arguments {
        None | Some(Value::Null) => json!({}),
        Some(Value::String(text)) if text.trim().is_empty() => json!({}),
        Some(Value::String(text)) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
        Some(other) => other,
    }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    model: String,
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    // Some local servers leave the id out; one is made up so results can refer to it.
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    arguments: Option<Value>,
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<WirePromptDetails>,
}

#[derive(Deserialize)]
struct WirePromptDetails {
    cached_tokens: Option<u64>,
}

/// Reads a chat completions reply.
pub(crate) fn parse_response(provider: &'static str, body: &[u8]) -> Result<Parsed, LlmError> {
    let value = http::parse_body(provider, body)?;
    // OpenRouter reports some upstream failures as HTTP 200 with an error body.
    if value.get("choices").is_none() && value.get("error").is_some() {
        let status = value
            .pointer("/error/code")
            .and_then(Value::as_u64)
            .and_then(|code| u16::try_from(code).ok())
            .filter(|code| (400..=599).contains(code))
            .unwrap_or(502);
        return Err(LlmError::Api {
            provider,
            status,
            message: http::error_message(body, None),
            retry_after: None,
        });
    }
    let wire: WireResponse = http::decode(provider, "chat completions", value)?;
    let Some(choice) = wire.choices.into_iter().next() else {
        return Err(LlmError::MalformedResponse {
            provider,
            what: "the reply has an empty `choices` list".to_owned(),
        });
    };

    let mut content = Vec::new();
    if let Some(text) = choice.message.content.filter(|text| !text.is_empty()) {
        content.push(ContentBlock::Text { text });
    }
    let calls = choice.message.tool_calls.unwrap_or_default();
    let has_calls = !calls.is_empty();
    for (index, call) in calls.into_iter().enumerate() {
        content.push(ContentBlock::ToolUse {
            id: call
                .id
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| format!("call_{index}")),
            name: call.function.name,
            input: arguments_value(call.function.arguments),
        });
    }

    let stop_reason = match choice.finish_reason.as_deref() {
        // Some servers (Ollama among them) say `stop` even when they return tool
        // calls; the calls are what the agent loop must act on.
        _ if has_calls => StopReason::ToolUse,
        Some("stop") | None => StopReason::EndTurn,
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_owned()),
    };

    let usage = wire.usage.map_or_else(Usage::default, |usage| {
        let prompt = usage.prompt_tokens.unwrap_or(0);
        let cached = usage
            .prompt_tokens_details
            .and_then(|details| details.cached_tokens)
            .unwrap_or(0)
            .min(prompt);
        Usage {
            // Cached tokens are part of the prompt count here but a separate field
            // in the neutral model, priced at the cache-read rate.
            input_tokens: prompt - cached,
            output_tokens: usage.completion_tokens.unwrap_or(0),
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: cached,
        }
    });

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

    #[test]
    fn tool_results_become_tool_messages_and_arguments_strings() {
        let mut request = Request::new(
            vec![
                Message::user("list files"),
                Message::new(
                    Role::Assistant,
                    vec![
                        ContentBlock::ToolUse {
                            id: "call_1".into(),
                            name: "shell".into(),
                            input: json!({"command": "ls"}),
                        },
                        ContentBlock::ToolUse {
                            id: "call_2".into(),
                            name: "shell".into(),
                            input: json!("{broken"),
                        },
                    ],
                ),
                Message::new(
                    Role::User,
                    vec![
                        ContentBlock::text("and then?"),
                        ContentBlock::tool_result("call_1", "a.txt"),
                        ContentBlock::tool_error("call_2", "bad arguments"),
                    ],
                ),
            ],
            256,
        );
        request.system = Some("be brief".into());
        request.temperature = Some(0.5);
        request.tools = vec![ToolDefinition {
            name: "shell".into(),
            description: "run a command".into(),
            input_schema: json!({"type": "object"}),
        }];
        let body = request_body(&request, "gpt-4.1", ProviderKind::OpenAi);
        assert_eq!(
            body,
            json!({
                "model": "gpt-4.1",
                "max_completion_tokens": 256,
                "temperature": 0.5,
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "list files"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "shell", "arguments": "{\"command\":\"ls\"}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "shell", "arguments": "{broken"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
                    {"role": "tool", "tool_call_id": "call_2", "content": "Error: bad arguments"},
                    {"role": "user", "content": "and then?"}
                ],
                "tools": [{"type": "function", "function": {
                    "name": "shell", "description": "run a command", "parameters": {"type": "object"}
                }}]
            })
        );
        let local = request_body(&request, "qwen3", ProviderKind::OpenAiCompatible);
        assert_eq!(local["max_tokens"], 256);
        assert_eq!(local.get("max_completion_tokens"), None);
    }

    #[test]
    fn replies_with_tool_calls_and_cached_usage_are_read() {
        let parsed = parse_response(
            "openai",
            br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06",
                "choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,
                  "tool_calls":[{"id":"call_a","type":"function","function":{"name":"shell","arguments":"{\"command\":\"ls\"}"}},
                                {"type":"function","function":{"name":"shell","arguments":"not json"}}]}}],
                "usage":{"prompt_tokens":1000,"completion_tokens":50,"total_tokens":1050,
                         "prompt_tokens_details":{"cached_tokens":800}}}"#,
        )
        .unwrap();
        assert_eq!(parsed.model, "gpt-4o-2024-08-06");
        assert_eq!(parsed.stop_reason, StopReason::ToolUse);
        assert_eq!(
            parsed.content,
            vec![
                ContentBlock::ToolUse {
                    id: "call_a".into(),
                    name: "shell".into(),
                    input: json!({"command": "ls"}),
                },
                ContentBlock::ToolUse {
                    id: "call_1".into(),
                    name: "shell".into(),
                    input: json!("not json"),
                },
            ]
        );
        assert_eq!(
            parsed.usage,
            Usage {
                input_tokens: 200,
                output_tokens: 50,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 800,
            }
        );
    }

    #[test]
    fn finish_reasons_map_and_tool_calls_win_over_stop() {
        let check = |finish: &str, calls: &str, expect: StopReason| {
            let body = format!(
                r#"{{"choices":[{{"finish_reason":{finish},"message":{{"content":"x","tool_calls":{calls}}}}}]}}"#
            );
            let parsed = parse_response("openai-compatible", body.as_bytes()).unwrap();
            assert_eq!(parsed.stop_reason, expect, "{body}");
            assert_eq!(parsed.usage, Usage::default());
        };
        check(r#""stop""#, "null", StopReason::EndTurn);
        check("null", "[]", StopReason::EndTurn);
        check(r#""length""#, "null", StopReason::MaxTokens);
        check(
            r#""content_filter""#,
            "null",
            StopReason::Other("content_filter".into()),
        );
        check(
            r#""stop""#,
            r#"[{"id":"c","function":{"name":"f","arguments":{"a":1}}}]"#,
            StopReason::ToolUse,
        );
    }

    #[test]
    fn bad_replies_say_what_is_wrong() {
        let err = parse_response("openai", br#"{"id":"x"}"#).err().unwrap();
        assert!(err.to_string().contains("missing field `choices`"), "{err}");
        let err = parse_response("openai", br#"{"choices":[]}"#)
            .err()
            .unwrap();
        assert!(err.to_string().contains("empty `choices`"), "{err}");
        let err = parse_response(
            "openrouter",
            br#"{"error":{"message":"upstream overloaded","code":503}}"#,
        )
        .err()
        .unwrap();
        assert_eq!(err.status(), Some(503));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("upstream overloaded"), "{err}");
    }

    #[test]
    fn an_output_schema_is_asked_as_a_json_schema_response_format() {
        let mut request = Request::new(vec![Message::user("list them")], 100);
        request.output_schema = Some(json!({"type": "array"}));
        let body = request_body(&request, "m", ProviderKind::OpenAi);
        let format = &body["response_format"];
        assert_eq!(format["type"], "json_schema");
        assert_eq!(format["json_schema"]["name"], "answer");
        assert_eq!(
            format["json_schema"]["schema"]["properties"]["answer"]["type"],
            "array"
        );
    }
}
