//! OpenAI chat completions end to end: a tool round trip, usage and cost, and the
//! variants for OpenRouter and keyless local servers.

use meanwhile_llm::{
    ContentBlock, Message, ModelPrice, PriceTable, ProviderKind, Request, Role, StopReason,
    ToolDefinition, Usage,
};
use serde_json::json;

use crate::support::{FakeServer, Reply, config, provider};

fn completion(model: &str, message: serde_json::Value, finish: &str) -> serde_json::Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 40, "total_tokens": 1240,
                  "prompt_tokens_details": {"cached_tokens": 1000}}
    })
}

#[tokio::test]
async fn tool_use_round_trip() {
    let server = FakeServer::start(vec![
        Reply::json(
            200,
            completion(
                "gpt-4o-mini-2024-07-18",
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_abc", "type": "function",
                     "function": {"name": "read_file", "arguments": "{\"path\":\"src/main.rs\"}"}},
                    {"id": "call_def", "type": "function",
                     "function": {"name": "shell", "arguments": "{\"command\":\"cargo test\"}"}}
                ]}),
                "tool_calls",
            ),
        ),
        Reply::json(
            200,
            completion(
                "gpt-4o-mini-2024-07-18",
                json!({"role": "assistant", "content": "Tests fail: see above."}),
                "stop",
            ),
        ),
    ])
    .await;
    let llm = provider(&config(
        ProviderKind::OpenAi,
        "gpt-4o-mini",
        &format!("{}/v1", server.url),
    ));
    let mut request = Request::new(vec![Message::user("Why do the tests fail?")], 2048);
    request.system = Some("You are a coding agent.".into());
    request.tools = vec![
        ToolDefinition {
            name: "read_file".into(),
            description: "Read a file".into(),
            input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        },
        ToolDefinition {
            name: "shell".into(),
            description: "Run a command".into(),
            input_schema: json!({"type": "object", "properties": {"command": {"type": "string"}}}),
        },
    ];

    let first = llm.complete(&request).await.unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert_eq!(
        first.content,
        vec![
            ContentBlock::ToolUse {
                id: "call_abc".into(),
                name: "read_file".into(),
                input: json!({"path": "src/main.rs"}),
            },
            ContentBlock::ToolUse {
                id: "call_def".into(),
                name: "shell".into(),
                input: json!({"command": "cargo test"}),
            },
        ]
    );

    request.messages.push(first.to_message());
    request.messages.push(Message::new(
        Role::User,
        vec![
            ContentBlock::tool_result("call_abc", "fn main() {}"),
            ContentBlock::tool_error("call_def", "exit 101"),
            ContentBlock::text("Task 3 finished meanwhile."),
        ],
    ));
    let second = llm.complete(&request).await.unwrap();
    assert_eq!(second.stop_reason, StopReason::EndTurn);
    assert_eq!(second.text(), "Tests fail: see above.");

    let received = server.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(request.header("authorization"), "Bearer test-key");
    }
    assert_eq!(
        received[1].body,
        json!({
            "model": "gpt-4o-mini",
            "max_completion_tokens": 2048,
            "messages": [
                {"role": "system", "content": "You are a coding agent."},
                {"role": "user", "content": "Why do the tests fail?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_abc", "type": "function",
                     "function": {"name": "read_file", "arguments": "{\"path\":\"src/main.rs\"}"}},
                    {"id": "call_def", "type": "function",
                     "function": {"name": "shell", "arguments": "{\"command\":\"cargo test\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_abc", "content": "fn main() {}"},
                {"role": "tool", "tool_call_id": "call_def", "content": "Error: exit 101"},
                {"role": "user", "content": "Task 3 finished meanwhile."}
            ],
            "tools": [
                {"type": "function", "function": {"name": "read_file", "description": "Read a file",
                  "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "shell", "description": "Run a command",
                  "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}
            ]
        })
    );

    // Cached prompt tokens are moved out of the input count and priced as cache
    // reads: gpt-4o-mini is $0.15 in, $0.60 out, $0.075 cached per million.
    assert_eq!(
        second.usage,
        Usage {
            input_tokens: 200,
            output_tokens: 40,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 1000,
        }
    );
    assert_eq!(second.cost.priced_as.as_deref(), Some("gpt-4o-mini"));
    let usd = (200.0 * 0.15 + 40.0 * 0.6 + 1000.0 * 0.075) / 1e6;
    assert!((second.cost.usd - usd).abs() < 1e-12, "{:?}", second.cost);
}

#[tokio::test]
async fn a_local_server_needs_no_key_and_gets_max_tokens() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        json!({"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}),
    )])
    .await;
    let mut config = config(
        ProviderKind::OpenAiCompatible,
        "qwen3-coder",
        &format!("{}/v1/", server.url),
    );
    config.api_key = None;
    let mut prices = PriceTable::empty();
    prices.insert("qwen3-coder", ModelPrice::new(0.0, 0.0, 0.0, 0.0));
    config.prices = prices;
    let llm = provider(&config);
    let reply = llm
        .complete(&Request::new(vec![Message::user("hello")], 100))
        .await
        .unwrap();
    assert_eq!(reply.text(), "hi");
    // No model in the reply: the one asked for is reported, and priced.
    assert_eq!(reply.model, "qwen3-coder");
    assert!(reply.cost.is_priced());
    assert_eq!(reply.usage, Usage::default());

    let received = &server.received()[0];
    assert_eq!(received.path, "/v1/chat/completions");
    assert_eq!(received.header("authorization"), "");
    assert_eq!(received.body["max_tokens"], 100);
}

#[tokio::test]
async fn openrouter_prices_vendor_prefixed_models() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        completion(
            "openai/gpt-4.1",
            json!({"role": "assistant", "content": "ok"}),
            "stop",
        ),
    )])
    .await;
    let llm = provider(&config(
        ProviderKind::OpenRouter,
        "openai/gpt-4.1",
        &server.url,
    ));
    let mut request = Request::new(vec![Message::user("hi")], 10);
    request.model = Some("openai/gpt-4.1".into());
    let reply = llm.complete(&request).await.unwrap();
    assert_eq!(reply.cost.priced_as.as_deref(), Some("gpt-4.1"));
    let received = &server.received()[0];
    assert_eq!(received.header("authorization"), "Bearer test-key");
    assert_eq!(received.body["model"], "openai/gpt-4.1");
    assert_eq!(received.body["max_tokens"], 10);
}
