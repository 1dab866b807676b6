//! A scripted LLM provider: a real HTTP server on 127.0.0.1 that records every
//! request and answers each with the next scripted reply.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use meanwhile_llm::{LlmError, Provider, ProviderConfig, ProviderKind, RetryConfig};
use serde_json::Value;

/// One scripted answer.
#[derive(Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Option<Duration>,
}

impl Reply {
    /// An answer with a JSON body.
    pub fn json(status: u16, body: Value) -> Self {
        Reply::raw(status, &body.to_string())
    }

    /// An answer with any body.
    pub fn raw(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.to_owned(),
            delay: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// Holds the answer back for `delay`, to provoke a client timeout.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Received {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Default)]
struct State {
    replies: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
}

/// A running scripted server; it stops with the test's runtime.
pub struct FakeServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<State>,
}

impl FakeServer {
    /// Starts a server that answers with `replies`, in order.
    pub async fn start(replies: Vec<Reply>) -> FakeServer {
        let state = Arc::new(State {
            replies: Mutex::new(replies.into()),
            received: Mutex::default(),
        });
        let handler_state = Arc::clone(&state);
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&handler_state);
            async move { answer(&state, uri, headers, body).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeServer { url, state }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }
}

async fn answer(state: &State, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let next = state.replies.lock().unwrap().pop_front();
    let Some(reply) = next else {
        return (StatusCode::IM_A_TEAPOT, "no scripted reply left").into_response();
    };
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let mut response = reply.body.into_response();
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

/// A configuration for tests: a key, fast retries, a short timeout.
pub fn config(kind: ProviderKind, model: &str, base_url: &str) -> ProviderConfig {
    let mut config = ProviderConfig::new(kind, model);
    config.base_url = Some(base_url.to_owned());
    config.api_key = Some("test-key".to_owned());
    config.request_timeout = Duration::from_secs(10);
    config.retry = RetryConfig {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(5),
    };
    config
}

/// Builds a provider with an empty environment, so the machine's own variables
/// never leak into a test.
pub fn provider(config: &ProviderConfig) -> Arc<dyn Provider> {
    meanwhile_llm::from_config_with_env(config, |_| None).unwrap()
}

/// An error and all its causes, as a user would see them.
pub fn chain(err: &LlmError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
