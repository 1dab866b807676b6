//! `meanwhile agent -p` against a provider speaking the real Anthropic Messages wire
//! format with scripted replies, served by this test on loopback.

use crate::support::Home;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// Serves scripted replies in order; records each request body.
pub(crate) fn fake_anthropic(replies: Vec<Value>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let replies = Arc::new(Mutex::new(replies.into_iter()));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            let replies = replies.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    log.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    let reply = replies.lock().unwrap().next().unwrap_or_else(
                        || json!({"type": "error", "error": {"type": "invalid_request_error", "message": "script ran out"}}),
                    );
                    let text = reply.to_string();
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
                        text.len()
                    );
                }
            });
        }
    });
    (url, seen)
}

pub(crate) fn message(content: Value, stop: &str) -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}
    })
}

#[test]
fn one_prompt_runs_a_tool_and_prints_the_answer() {
    let home = Home::new();
    let (url, seen) = fake_anthropic(vec![
        message(
            json!([{"type": "tool_use", "id": "tu_1", "name": "bash", "input": {"command": "echo from-the-tool"}}]),
            "tool_use",
        ),
        message(
            json!([{"type": "text", "text": "The command said hello."}]),
            "end_turn",
        ),
    ]);
    let out = home
        .cmd(&[
            "agent",
            "-p",
            "run echo",
            "--provider",
            "anthropic",
            "--model",
            "claude-test",
            "--api-key",
            "test-key",
            "--base-url",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "The command said hello.\n"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let second = seen[1].to_string();
    assert!(
        second.contains("tool_result") && second.contains("from-the-tool"),
        "{second}"
    );
    // The tool's command ran as a meanwhile task, and its output is kept.
    let ls = home.json(&["ls", "--json"]);
    assert_eq!(ls["tasks"][0]["state"], "succeeded");
}

#[test]
fn without_a_key_it_says_which_variable_to_set() {
    let home = Home::new();
    let out = home
        .cmd(&["agent", "-p", "hello", "--provider", "anthropic"])
        .env_remove("ANTHROPIC_API_KEY")
        .env("MEANWHILE_AGENT_PROVIDER", "anthropic")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("set ANTHROPIC_API_KEY"), "{err}");
}
