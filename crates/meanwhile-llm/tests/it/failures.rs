//! Failures on the wire: what is retried, what is not, and what the error says.

use std::time::Duration;

use meanwhile_llm::{LlmError, Message, ProviderKind, Request};
use serde_json::json;

use crate::support::{FakeServer, Reply, chain, config, provider};

fn request() -> Request {
    Request::new(vec![Message::user("hi")], 16)
}

fn anthropic_ok() -> Reply {
    Reply::json(
        200,
        json!({
            "model": "claude-haiku-4-5", "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}
        }),
    )
}

fn openai_ok() -> Reply {
    Reply::json(
        200,
        json!({"model": "gpt-4.1", "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}),
    )
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

fn openai_error(status: u16, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
    )
}

#[tokio::test]
async fn rate_limit_with_retry_after_then_success() {
    let server = FakeServer::start(vec![
        anthropic_error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your rate limit",
        )
        .header("retry-after", "0"),
        anthropic_ok(),
    ])
    .await;
    let llm = provider(&config(
        ProviderKind::Anthropic,
        "claude-haiku-4-5",
        &server.url,
    ));
    let reply = llm.complete(&request()).await.unwrap();
    assert_eq!(reply.text(), "ok");
    assert_eq!(reply.attempts, 2);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn rate_limit_with_an_http_date_retry_after_then_success() {
    let server = FakeServer::start(vec![
        openai_error(429, "Rate limit reached")
            .header("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT"),
        openai_ok(),
    ])
    .await;
    let llm = provider(&config(ProviderKind::OpenAi, "gpt-4.1", &server.url));
    let reply = llm.complete(&request()).await.unwrap();
    assert_eq!(reply.attempts, 2);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_goes_back_to_the_caller() {
    let server = FakeServer::start(vec![
        openai_error(429, "Rate limit reached").header("retry-after", "120"),
        openai_ok(),
    ])
    .await;
    let llm = provider(&config(ProviderKind::OpenAi, "gpt-4.1", &server.url));
    let err = llm.complete(&request()).await.unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert_eq!(
        err.to_string(),
        "openai answered HTTP 429: Rate limit reached (invalid_request_error)"
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = FakeServer::start(vec![
        Reply::raw(500, "Internal Server Error"),
        anthropic_error(529, "overloaded_error", "Overloaded"),
        anthropic_ok(),
    ])
    .await;
    let llm = provider(&config(
        ProviderKind::Anthropic,
        "claude-haiku-4-5",
        &server.url,
    ));
    let reply = llm.complete(&request()).await.unwrap();
    assert_eq!(reply.attempts, 3);
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_max_attempts() {
    let server = FakeServer::start(vec![
        openai_error(503, "down"),
        openai_error(503, "down"),
        openai_error(503, "still down"),
        openai_ok(),
    ])
    .await;
    let mut config = config(ProviderKind::OpenAi, "gpt-4.1", &server.url);
    config.retry.max_attempts = 3;
    let err = provider(&config).complete(&request()).await.unwrap_err();
    assert_eq!(server.count(), 3);
    assert!(
        matches!(err, LlmError::RetriesExhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(503));
    assert_eq!(
        chain(&err),
        "openai still failing after 3 attempts: openai answered HTTP 503: still down (invalid_request_error)"
    );
}

#[tokio::test]
async fn bad_request_is_not_retried_and_shows_the_providers_message() {
    let server = FakeServer::start(vec![
        anthropic_error(
            400,
            "invalid_request_error",
            "max_tokens: 999999 > 64000, which is the maximum",
        ),
        anthropic_ok(),
    ])
    .await;
    let llm = provider(&config(
        ProviderKind::Anthropic,
        "claude-haiku-4-5",
        &server.url,
    ));
    let err = llm.complete(&request()).await.unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        "anthropic answered HTTP 400: max_tokens: 999999 > 64000, which is the maximum (invalid_request_error)"
    );
}

#[tokio::test]
async fn unauthorized_is_not_retried_and_shows_the_providers_message() {
    let server = FakeServer::start(vec![
        openai_error(401, "Incorrect API key provided: sk-wrong."),
        openai_ok(),
    ])
    .await;
    let llm = provider(&config(ProviderKind::OpenAi, "gpt-4.1", &server.url));
    let err = llm.complete(&request()).await.unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(!err.is_retryable());
    assert_eq!(err.status(), Some(401));
    assert!(
        err.to_string()
            .contains("Incorrect API key provided: sk-wrong."),
        "{err}"
    );

    let server = FakeServer::start(vec![
        anthropic_error(401, "authentication_error", "invalid x-api-key"),
        anthropic_ok(),
    ])
    .await;
    let llm = provider(&config(
        ProviderKind::Anthropic,
        "claude-haiku-4-5",
        &server.url,
    ));
    let err = llm.complete(&request()).await.unwrap_err();
    assert_eq!(server.count(), 1);
    assert_eq!(
        err.to_string(),
        "anthropic answered HTTP 401: invalid x-api-key (authentication_error)"
    );
}

#[tokio::test]
async fn a_malformed_reply_is_a_clear_error() {
    let server = FakeServer::start(vec![
        Reply::raw(200, "<html>502 Bad Gateway</html>"),
        anthropic_ok(),
    ])
    .await;
    let llm = provider(&config(
        ProviderKind::Anthropic,
        "claude-haiku-4-5",
        &server.url,
    ));
    let err = llm.complete(&request()).await.unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.starts_with("malformed reply from anthropic: the body is not valid JSON"),
        "{text}"
    );
    assert!(text.contains("<html>502 Bad Gateway</html>"), "{text}");

    let server = FakeServer::start(vec![Reply::json(
        200,
        json!({"choices": [{"finish_reason": "stop"}]}),
    )])
    .await;
    let llm = provider(&config(ProviderKind::OpenAi, "gpt-4.1", &server.url));
    let err = llm.complete(&request()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::MalformedResponse { provider: "openai", what } if what.contains("missing field `message`")),
        "{err}"
    );
}

#[tokio::test]
async fn a_slow_provider_times_out_and_is_retried() {
    let slow = || anthropic_ok().delayed(Duration::from_secs(30));
    let server = FakeServer::start(vec![slow(), slow(), slow()]).await;
    let mut config = config(ProviderKind::Anthropic, "claude-haiku-4-5", &server.url);
    config.request_timeout = Duration::from_millis(200);
    config.retry.max_attempts = 2;
    let err = provider(&config).complete(&request()).await.unwrap_err();
    assert_eq!(server.count(), 2);
    assert!(err.is_retryable());
    let LlmError::RetriesExhausted { last, .. } = &err else {
        panic!("expected RetriesExhausted, got {err:?}");
    };
    assert!(matches!(**last, LlmError::Timeout { .. }), "{last:?}");
    assert!(
        chain(&err).contains("did not answer within 200ms"),
        "{}",
        chain(&err)
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_a_retryable_connect_error() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut config = config(ProviderKind::OpenAiCompatible, "m", &url);
    config.retry.max_attempts = 1;
    let err = provider(&config).complete(&request()).await.unwrap_err();
    assert!(matches!(err, LlmError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .starts_with("could not reach openai-compatible at http://127.0.0.1:"),
        "{err}"
    );
}

#[tokio::test]
async fn an_upstream_error_inside_a_200_is_retried() {
    // OpenRouter answers 200 with an error body when the model's host is down.
    let server = FakeServer::start(vec![
        Reply::json(
            200,
            json!({"error": {"message": "Provider returned error", "code": 502}}),
        ),
        openai_ok(),
    ])
    .await;
    let llm = provider(&config(
        ProviderKind::OpenRouter,
        "openai/gpt-4.1",
        &server.url,
    ));
    let reply = llm.complete(&request()).await.unwrap();
    assert_eq!(reply.attempts, 2);
    assert_eq!(server.count(), 2);
}
