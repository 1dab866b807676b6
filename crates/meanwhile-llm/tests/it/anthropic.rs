//! The Anthropic Messages API end to end: a tool round trip, usage and cost.

use meanwhile_llm::{
    ContentBlock, Message, ProviderKind, Request, Role, RunUsage, StopReason, ToolDefinition, Usage,
};
use serde_json::json;

use crate::support::{FakeServer, Reply, config, provider};

fn shell_tool() -> ToolDefinition {
    ToolDefinition {
        name: "shell".into(),
        description: "Run a shell command".into(),
        input_schema: json!({
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"]
        }),
    }
}

#[tokio::test]
async fn tool_use_round_trip() {
    let server = FakeServer::start(vec![
        Reply::json(
            200,
            json!({
                "id": "msg_01", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [
                    {"type": "text", "text": "I'll list the files."},
                    {"type": "tool_use", "id": "toolu_01", "name": "shell", "input": {"command": "ls"}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 100, "output_tokens": 50,
                          "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 0}
            }),
        ),
        Reply::json(
            200,
            json!({
                "id": "msg_02", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": "There is one file: a.txt"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 30, "output_tokens": 10,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2000}
            }),
        ),
    ])
    .await;
    let llm = provider(&config(
        ProviderKind::Anthropic,
        "claude-sonnet-4-5",
        &server.url,
    ));
    let mut request = Request::new(vec![Message::user("What files are here?")], 1024);
    request.system = Some("You are terse.".into());
    request.tools = vec![shell_tool()];
    request.cache_prompt = false;

    let first = llm.complete(&request).await.unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert_eq!(first.attempts, 1);
    let calls: Vec<_> = first.tool_uses().collect();
    assert_eq!(calls, [("toolu_01", "shell", &json!({"command": "ls"}))]);

    request.messages.push(first.to_message());
    request.messages.push(Message::new(
        Role::User,
        vec![ContentBlock::tool_result("toolu_01", "a.txt\n")],
    ));
    // A note from the agent loop in its own user message: it must be merged into
    // the tool result's message, after the result.
    request
        .messages
        .push(Message::user("(task 7 finished meanwhile)"));
    let second = llm.complete(&request).await.unwrap();
    assert_eq!(second.stop_reason, StopReason::EndTurn);
    assert_eq!(second.text(), "There is one file: a.txt");

    let received = server.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.path, "/v1/messages");
        assert_eq!(request.header("x-api-key"), "test-key");
        assert_eq!(request.header("anthropic-version"), "2023-06-01");
        assert_eq!(request.header("content-type"), "application/json");
    }
    assert_eq!(
        received[1].body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": "You are terse.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "What files are here?"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "I'll list the files."},
                    {"type": "tool_use", "id": "toolu_01", "name": "shell", "input": {"command": "ls"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.txt\n"},
                    {"type": "text", "text": "(task 7 finished meanwhile)"}
                ]}
            ],
            "tools": [{
                "name": "shell",
                "description": "Run a shell command",
                "input_schema": {
                    "type": "object",
                    "properties": {"command": {"type": "string"}},
                    "required": ["command"]
                }
            }]
        })
    );

    // Usage and cost: claude-sonnet-4-5 is $3 in, $15 out, $3.75 cache write and
    // $0.30 cache read per million tokens.
    assert_eq!(
        first.usage,
        Usage {
            input_tokens: 100,
            output_tokens: 50,
            cache_creation_input_tokens: 2000,
            cache_read_input_tokens: 0,
        }
    );
    assert_eq!(first.model, "claude-sonnet-4-5-20250929");
    assert_eq!(first.cost.priced_as.as_deref(), Some("claude-sonnet-4-5"));
    let first_usd = (100.0 * 3.0 + 50.0 * 15.0 + 2000.0 * 3.75) / 1e6;
    let second_usd = (30.0 * 3.0 + 10.0 * 15.0 + 2000.0 * 0.3) / 1e6;
    assert!(
        (first.cost.usd - first_usd).abs() < 1e-12,
        "{:?}",
        first.cost
    );
    assert!(
        (second.cost.usd - second_usd).abs() < 1e-12,
        "{:?}",
        second.cost
    );

    let mut run = RunUsage::new();
    run.record(&first);
    run.record(&second);
    assert_eq!(run.calls, 2);
    assert_eq!(run.usage.total_input_tokens(), 4130);
    assert_eq!(run.usage.output_tokens, 60);
    assert!((run.cost_usd - (first_usd + second_usd)).abs() < 1e-12);
    assert!(run.is_fully_priced());
}

#[tokio::test]
async fn prompt_caching_is_requested_by_default() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        json!({
            "model": "claude-haiku-4-5", "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}
        }),
    )])
    .await;
    let llm = provider(&config(
        ProviderKind::Anthropic,
        "claude-haiku-4-5",
        &server.url,
    ));
    let mut request = Request::new(vec![Message::user("hello")], 64);
    request.system = Some("sys".into());
    request.tools = vec![shell_tool()];
    let reply = llm.complete(&request).await.unwrap();
    assert_eq!(reply.text(), "hi");

    let body = &server.received()[0].body;
    let cache = json!({"type": "ephemeral"});
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "sys", "cache_control": cache}])
    );
    assert_eq!(body["tools"][0]["cache_control"], cache);
    assert_eq!(body["messages"][0]["content"][0]["cache_control"], cache);
}

#[tokio::test]
async fn an_unknown_model_costs_nothing_and_says_so() {
    let server = FakeServer::start(vec![Reply::json(
        200,
        json!({
            "model": "claude-future-9", "content": [],
            "stop_reason": "max_tokens", "usage": {"input_tokens": 5, "output_tokens": 7}
        }),
    )])
    .await;
    let llm = provider(&config(
        ProviderKind::Anthropic,
        "claude-future-9",
        &server.url,
    ));
    let reply = llm
        .complete(&Request::new(vec![Message::user("hi")], 7))
        .await
        .unwrap();
    assert_eq!(reply.stop_reason, StopReason::MaxTokens);
    assert_eq!(reply.cost.usd, 0.0);
    assert!(!reply.cost.is_priced());
    let mut run = RunUsage::new();
    run.record(&reply);
    assert!(
        run.to_string().contains("no price known: claude-future-9"),
        "{run}"
    );
}
