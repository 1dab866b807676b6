//! Helpers: a runtime in a temp home per test, and a scripted provider — a real HTTP
//! server speaking the Anthropic Messages or OpenAI chat-completions wire format,
//! whose replies a test computes from each request.

#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use meanwhile_agent::{AgentConfig, AgentEvent};
use meanwhile_core::{Backend, TaskId, TaskRecord, WaitMode};
use meanwhile_llm::{ProviderKind, RetryConfig};
use meanwhile_runtime::{Runtime, RuntimeConfig};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub rt: Runtime,
    pub backend: Arc<dyn Backend>,
}

impl Env {
    pub fn workspace(&self) -> std::path::PathBuf {
        self.dir.path().join("ws")
    }
}

pub async fn runtime() -> Env {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ws")).unwrap();
    let mut c = RuntimeConfig::new(dir.path().join("home"));
    c.grace = Duration::from_millis(500);
    c.default_cwd = Some(dir.path().join("ws"));
    let rt = Runtime::start(c, std::future::pending()).await.unwrap();
    let backend: Arc<dyn Backend> = Arc::new(rt.clone());
    Env { dir, rt, backend }
}

/// Waits (generously: the machines are slow and busy) for a task to end.
pub async fn finished(rt: &Runtime, id: TaskId) -> TaskRecord {
    let w = rt
        .wait(&[id], WaitMode::All, Some(Duration::from_secs(180)))
        .await
        .unwrap();
    assert!(!w.timed_out, "task {id} did not end: {:?}", w.tasks[0]);
    w.tasks.into_iter().next().unwrap()
}

pub async fn output(rt: &Runtime, id: TaskId) -> String {
    rt.read_output(id, Default::default()).await.unwrap().text
}

/// Polls `f` until it is true. No deadline of its own: nextest's slow-timeout ends a
/// test that hangs, and this says on stderr every 30 s what it still waits for.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut f: impl FnMut() -> F,
) {
    let start = std::time::Instant::now();
    let mut said = Duration::ZERO;
    while !f().await {
        if start.elapsed() >= said + Duration::from_secs(30) {
            said = start.elapsed();
            eprintln!("still waiting after {}s for: {what}", said.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A request as the fake provider received it.
#[derive(Debug, Clone)]
pub struct Call {
    /// 0 for the first request.
    pub index: usize,
    pub kind: ProviderKind,
    pub body: Value,
}

impl Call {
    /// The whole body as text, for `contains` checks.
    pub fn text(&self) -> String {
        self.body.to_string()
    }

    /// How often `needle` occurs in the body.
    pub fn count(&self, needle: &str) -> usize {
        self.text().matches(needle).count()
    }

    /// The first user message's text: the prompt.
    pub fn prompt(&self) -> String {
        let messages = self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for m in messages {
            if m["role"] == "user" {
                return match &m["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(blocks) => blocks
                        .iter()
                        .filter_map(|b| b["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
            }
        }
        String::new()
    }

    /// The results of the tools asked for in the previous reply, in order, with
    /// whether each is an error.
    pub fn tool_results(&self) -> Vec<(String, bool)> {
        let messages = self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        match self.kind {
            ProviderKind::Anthropic => {
                let Some(last) = messages.last() else {
                    return vec![];
                };
                last["content"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter(|b| b["type"] == "tool_result")
                    .map(|b| {
                        (
                            b["content"].as_str().unwrap_or("").to_string(),
                            b["is_error"] == true,
                        )
                    })
                    .collect()
            }
            _ => {
                let start = messages
                    .iter()
                    .rposition(|m| m["role"] == "assistant")
                    .map(|i| i + 1)
                    .unwrap_or(messages.len());
                messages[start..]
                    .iter()
                    .filter(|m| m["role"] == "tool")
                    .map(|m| {
                        let c = m["content"].as_str().unwrap_or("").to_string();
                        let err = c.starts_with("Error: ");
                        (c, err)
                    })
                    .collect()
            }
        }
    }

    /// The text of the tool results, joined.
    pub fn results_text(&self) -> String {
        self.tool_results()
            .into_iter()
            .map(|(t, _)| t)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Task ids named as `task N` in the last tool results.
    pub fn task_ids(&self) -> Vec<i64> {
        let re = regex::Regex::new(r"task (\d+)").unwrap();
        let mut ids: Vec<i64> = re
            .captures_iter(&self.results_text())
            .map(|c| c[1].parse().unwrap())
            .collect();
        ids.dedup();
        ids
    }

    /// Checks that the conversation is valid for its wire format: roles alternate
    /// (Anthropic), every tool call is answered right after it and no result is
    /// orphaned.
    pub fn assert_well_formed(&self) {
        let messages = self.body["messages"].as_array().unwrap();
        match self.kind {
            ProviderKind::Anthropic => {
                for pair in messages.windows(2) {
                    assert_ne!(
                        pair[0]["role"],
                        pair[1]["role"],
                        "two turns of one role: {}",
                        self.text()
                    );
                }
                for (i, m) in messages.iter().enumerate() {
                    let blocks = m["content"].as_array().unwrap();
                    let uses: Vec<&str> = blocks
                        .iter()
                        .filter(|b| b["type"] == "tool_use")
                        .map(|b| b["id"].as_str().unwrap())
                        .collect();
                    if !uses.is_empty() {
                        let next = &messages[i + 1]["content"].as_array().unwrap();
                        let results: Vec<&str> = next
                            .iter()
                            .take_while(|b| b["type"] == "tool_result")
                            .map(|b| b["tool_use_id"].as_str().unwrap())
                            .collect();
                        assert_eq!(results, uses, "results must come first, in order");
                    }
                    if m["role"] == "user" {
                        for b in blocks.iter().filter(|b| b["type"] == "tool_result") {
                            let prev = &messages[i - 1]["content"];
                            assert!(
                                prev.to_string()
                                    .contains(b["tool_use_id"].as_str().unwrap()),
                                "orphaned result"
                            );
                        }
                    }
                }
            }
            _ => {
                for (i, m) in messages.iter().enumerate() {
                    if let Some(calls) = m["tool_calls"].as_array() {
                        let ids: Vec<&str> =
                            calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
                        let answered: Vec<&str> = messages[i + 1..]
                            .iter()
                            .take_while(|m| m["role"] == "tool")
                            .map(|m| m["tool_call_id"].as_str().unwrap())
                            .collect();
                        assert_eq!(answered, ids, "each call answered right after it");
                    }
                    if m["role"] == "tool" {
                        let prev = &messages[i - 1];
                        assert!(
                            prev["role"] == "tool" || prev["tool_calls"].is_array(),
                            "orphaned tool message"
                        );
                    }
                }
            }
        }
    }
}

/// What the scripted model says.
#[derive(Debug, Clone)]
pub enum Turn {
    /// A final answer.
    Text(String),
    /// Some text (maybe empty) and tool calls `(name, input)`.
    Tools(String, Vec<(String, Value)>),
    /// A raw HTTP answer.
    Http(u16, Vec<(&'static str, String)>, String),
    /// An answer held back for a long time (a model call in flight).
    Hang,
}

pub fn text(s: &str) -> Turn {
    Turn::Text(s.to_string())
}

pub fn tool(name: &str, input: Value) -> Turn {
    Turn::Tools(String::new(), vec![(name.to_string(), input)])
}

pub fn tools(calls: Vec<(&str, Value)>) -> Turn {
    Turn::Tools(
        String::new(),
        calls.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
    )
}

type Script = dyn Fn(&Call) -> Turn + Send + Sync;

struct State {
    kind: ProviderKind,
    script: Box<Script>,
    calls: Mutex<Vec<Call>>,
    next: AtomicUsize,
    ids: AtomicUsize,
}

/// A scripted provider on 127.0.0.1.
pub struct FakeProvider {
    pub url: String,
    pub kind: ProviderKind,
    state: Arc<State>,
}

impl FakeProvider {
    pub async fn start(
        kind: ProviderKind,
        script: impl Fn(&Call) -> Turn + Send + Sync + 'static,
    ) -> FakeProvider {
        let state = Arc::new(State {
            kind,
            script: Box::new(script),
            calls: Mutex::default(),
            next: AtomicUsize::new(0),
            ids: AtomicUsize::new(0),
        });
        let s = state.clone();
        let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
            let s = s.clone();
            async move { answer(&s, uri, body).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeProvider { url, kind, state }
    }

    /// Every request so far, in order of arrival.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.calls.lock().unwrap().len()
    }

    /// An agent configuration that talks to this server.
    pub fn config(&self, workspace: &std::path::Path) -> AgentConfig {
        let mut c = AgentConfig::new(self.kind, "test-model", workspace);
        c.base_url = Some(match self.kind {
            ProviderKind::Anthropic => self.url.clone(),
            _ => format!("{}/v1", self.url),
        });
        c.api_key = Some("test-key".into());
        c.session = "test".into();
        // These tests are about what tools do; the permission rules have their own.
        c.yes = true;
        c.request_timeout = Duration::from_secs(120);
        c.retry = RetryConfig {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        };
        c
    }
}

async fn answer(state: &State, uri: Uri, body: Bytes) -> Response {
    let expected = match state.kind {
        ProviderKind::Anthropic => "/v1/messages",
        _ => "/v1/chat/completions",
    };
    if uri.path() != expected {
        return (StatusCode::NOT_FOUND, format!("no route {}", uri.path())).into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let index = state.next.fetch_add(1, Ordering::SeqCst);
    let call = Call {
        index,
        kind: state.kind,
        body,
    };
    state.calls.lock().unwrap().push(call.clone());
    let turn = (state.script)(&call);
    let id = state.ids.fetch_add(1, Ordering::SeqCst);
    match turn {
        Turn::Http(status, headers, body) => {
            let mut r = body.into_response();
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
        Turn::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Turn::Text(t) => json_reply(reply_body(state.kind, id, &t, &[])),
        Turn::Tools(t, calls) => json_reply(reply_body(state.kind, id, &t, &calls)),
    }
}

fn json_reply(v: Value) -> Response {
    let mut r = v.to_string().into_response();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// A reply in the wire format, 100 input and 20 output tokens.
fn reply_body(kind: ProviderKind, n: usize, text: &str, calls: &[(String, Value)]) -> Value {
    match kind {
        ProviderKind::Anthropic => {
            let mut content = Vec::new();
            if !text.is_empty() {
                content.push(json!({"type": "text", "text": text}));
            }
            for (i, (name, input)) in calls.iter().enumerate() {
                content.push(json!({"type": "tool_use", "id": format!("toolu_{n}_{i}"), "name": name, "input": input}));
            }
            json!({
                "id": format!("msg_{n}"), "type": "message", "role": "assistant",
                "model": "test-model", "content": content,
                "stop_reason": if calls.is_empty() { "end_turn" } else { "tool_use" },
                "stop_sequence": null,
                "usage": {"input_tokens": 100, "output_tokens": 20}
            })
        }
        _ => {
            let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                message["tool_calls"] = calls
                    .iter()
                    .enumerate()
                    .map(|(i, (name, input))| {
                        json!({"id": format!("call_{n}_{i}"), "type": "function",
                               "function": {"name": name, "arguments": input.to_string()}})
                    })
                    .collect();
            }
            json!({
                "id": format!("chatcmpl-{n}"), "object": "chat.completion", "model": "test-model",
                "choices": [{"index": 0, "message": message,
                             "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" }}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
            })
        }
    }
}

/// Collects events for checks.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<AgentEvent>>>);

impl Events {
    pub fn sink(&self) -> impl FnMut(&AgentEvent) + Send + use<> {
        let events = self.0.clone();
        move |e: &AgentEvent| events.lock().unwrap().push(e.clone())
    }

    pub fn all(&self) -> Vec<AgentEvent> {
        self.0.lock().unwrap().clone()
    }

    pub fn notices(&self) -> Vec<i64> {
        self.all()
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Notice { notification } => Some(notification.task_id.0),
                _ => None,
            })
            .collect()
    }
}
