//! `meanwhile agent -p` against a provider speaking the real Anthropic Messages wire
//! format with scripted replies, served by this test on loopback.

use crate::support::Home;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// Serves scripted replies in order; records each request body.
pub(crate) fn fake_anthropic(replies: Vec<Value>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let replies = Mutex::new(replies.into_iter());
    crate::support::fake_anthropic_with(std::time::Duration::ZERO, move |_| {
        replies.lock().unwrap().next().unwrap_or_else(
            || json!({"type": "error", "error": {"type": "invalid_request_error", "message": "script ran out"}}),
        )
    })
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
    let out = agent_p(&home, &url, "run echo", &[]);
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

const BOTH: &str = "run the tests in the background, fix the lint meanwhile, then report both";

/// The three replies of a run that starts tests in the background, answers, and is
/// woken when they end.
fn background_then_report() -> Vec<Value> {
    vec![
        message(
            json!([{"type": "tool_use", "id": "tu_1", "name": "background_run",
                    "input": {"command": "sleep 1; echo tests-passed"}}]),
            "tool_use",
        ),
        message(
            json!([{"type": "text", "text": "The tests run in the background; the lint is fixed."}]),
            "end_turn",
        ),
        message(
            json!([{"type": "text", "text": "The tests passed too."}]),
            "end_turn",
        ),
    ]
}

/// `meanwhile agent -p PROMPT` against the scripted provider at `url`.
fn agent_p(home: &Home, url: &str, prompt: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "agent",
        "-p",
        prompt,
        "--provider",
        "anthropic",
        "--model",
        "claude-test",
        "--api-key",
        "test-key",
        "--base-url",
        url,
    ];
    args.extend_from_slice(extra);
    home.cmd(&args).output().unwrap()
}

#[test]
fn one_prompt_waits_for_the_tasks_it_started_and_reports_them() {
    let home = Home::new();
    let (url, seen) = fake_anthropic(background_then_report());
    let out = agent_p(&home, &url, BOTH, &[]);
    assert!(
        out.status.success(),
        "agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "The tests run in the background; the lint is fixed.\n\nThe tests passed too.\n"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    // The third call is the wake-up: the model hears how the task ended.
    let woken = seen[2].to_string();
    assert!(
        woken.contains("succeeded") && woken.contains("tests-passed"),
        "{woken}"
    );
}

#[test]
fn with_no_wait_tasks_one_prompt_ends_at_its_first_answer() {
    let home = Home::new();
    let (url, seen) = fake_anthropic(background_then_report());
    let out = agent_p(&home, &url, BOTH, &["--no-wait-tasks"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "The tests run in the background; the lint is fixed.\n"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}
