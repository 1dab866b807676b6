//! `meanwhile agent -p` against a provider speaking the real Anthropic Messages wire
//! format with scripted replies, served by this test on loopback.

use crate::support::{Home, message};
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

/// `meanwhile agent -p PROMPT --yes` against the scripted provider at `url`.
fn agent_p(home: &Home, url: &str, prompt: &str, extra: &[&str]) -> std::process::Output {
    agent_p_asking(home, url, prompt, &[&["--yes"], extra].concat())
}

/// `meanwhile agent -p PROMPT`, where asking is refusing unless `extra` says more.
fn agent_p_asking(home: &Home, url: &str, prompt: &str, extra: &[&str]) -> std::process::Output {
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

/// Drives the interactive `meanwhile agent` in a real pseudo-terminal (Python's
/// `pty`): types a prompt, then stays at the prompt while the task it started ends.
const INTERACTIVE_DRIVER: &str = r#"
import fcntl, json, os, pty, select, struct, sys, termios, time
bin, home, url, *extra = sys.argv[1:]
env = dict(os.environ, MEANWHILE_HOME=home, TERM="xterm")
pid, fd = pty.fork()
if pid == 0:
    os.execve(bin, [bin, "agent", "--provider", "anthropic", "--model", "claude-test",
                    "--api-key", "test-key", "--base-url", url, "--session", "wake", *extra], env)
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
buf = b""
def read_until(needle):
    global buf
    end = time.time() + 90
    while time.time() < end:
        if needle in buf:
            at = buf.index(needle) + len(needle)
            seen, buf = buf[:at], buf[at:]
            return seen.decode(errors="replace")
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    raise SystemExit(f"never saw {needle!r}; got {buf!r}")
obs = {}
read_until(b"you> ")
os.write(fd, b"start the build\r")
# The agent asks before it runs a command; "a" allows the pattern for the session.
obs["question"] = read_until(b"allow? [y/n/a] ")
os.write(fd, b"maybe\r")
obs["again"] = read_until(b"allow? [y/n/a] ")
os.write(fd, b"a\r")
obs["first"] = read_until(b"The build runs in the background.")
obs["notice"] = read_until(b"succeeded after")
if "--no-wake" not in extra:
    obs["woken"] = read_until(b"The build finished: built.")
else:
    time.sleep(2)
os.write(fd, b"/exit\r")
obs["end"] = read_until(b"session wake:")
os.waitpid(pid, 0)
print(json.dumps(obs))
"#;

fn interactive_agent(home: &Home, url: &str, extra: &[&str]) -> Value {
    crate::support::drive_terminal(home, INTERACTIVE_DRIVER, &[&[url], extra].concat())
}

fn build_in_background() -> Vec<Value> {
    vec![
        message(
            json!([{"type": "tool_use", "id": "tu_1", "name": "background_run",
                    "input": {"command": "sleep 2; echo built", "name": "build"}}]),
            "tool_use",
        ),
        message(
            json!([{"type": "text", "text": "The build runs in the background."}]),
            "end_turn",
        ),
        message(
            json!([{"type": "text", "text": "The build finished: built."}]),
            "end_turn",
        ),
    ]
}

#[test]
fn the_interactive_agent_hears_its_task_end_at_the_prompt_and_wakes() {
    let home = Home::new();
    let (url, seen) = fake_anthropic(build_in_background());
    let obs = interactive_agent(&home, &url, &[]);
    let question = obs["question"].as_str().unwrap();
    assert!(
        question.contains("the agent wants to run background_run: sleep 2; echo built"),
        "{obs}"
    );
    assert!(
        question.contains("[a]lways allow background_run(sleep 2; echo built) this session"),
        "{obs}"
    );
    assert!(obs["again"].as_str().unwrap().contains("answer y, n or a"));
    let notice = obs["notice"].as_str().unwrap();
    assert!(
        notice.contains("[meanwhile] task 1 (build) succeeded after"),
        "{obs}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "the notice gave the model a turn");
    let third = seen[2].to_string();
    assert!(third.contains("task 1 (build) succeeded"), "{third}");
    assert!(
        third.contains("built"),
        "the notice carries the last lines: {third}"
    );
}

#[test]
fn without_wake_the_notice_is_only_printed() {
    let home = Home::new();
    let (url, seen) = fake_anthropic(build_in_background());
    let obs = interactive_agent(&home, &url, &["--no-wake"]);
    assert!(
        obs["notice"]
            .as_str()
            .unwrap()
            .contains("task 1 (build) succeeded")
    );
    assert_eq!(seen.lock().unwrap().len(), 2, "no turn without a prompt");
}

#[test]
fn one_prompt_answers_a_question_its_task_asks_and_reports_the_end() {
    let home = Home::new();
    let (url, seen) = fake_anthropic(vec![
        message(
            json!([{"type": "tool_use", "id": "tu_1", "name": "background_run",
                    "input": {"command": "printf 'Proceed? [y/N] '; read x; sleep 1; echo \"got $x\"", "stdin": true}}]),
            "tool_use",
        ),
        message(json!([{"type": "text", "text": "Started."}]), "end_turn"),
        message(
            json!([{"type": "tool_use", "id": "tu_2", "name": "background_input",
                    "input": {"id": 1, "text": "y", "keys": ["enter"]}}]),
            "tool_use",
        ),
        message(
            json!([{"type": "text", "text": "Answered yes."}]),
            "end_turn",
        ),
        message(
            json!([{"type": "text", "text": "It printed got y."}]),
            "end_turn",
        ),
    ]);
    let out = agent_p(&home, &url, "run the installer", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "Started.\n\nAnswered yes.\n\nIt printed got y.\n");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5);
    let woken = seen[2].to_string();
    assert!(
        woken.contains("is waiting for input: Proceed? [y/N]"),
        "{woken}"
    );
    assert!(seen[3].to_string().contains("Sent 2 bytes to task 1"));
    assert!(seen[4].to_string().contains("succeeded"));
    assert_eq!(home.ok(&["logs", "1"]), "Proceed? [y/N] got y\n");
}

/// A reply calling `tool` with `input`.
fn calls(tool: &str, input: Value) -> Value {
    message(
        json!([{"type": "tool_use", "id": "tu_1", "name": tool, "input": input}]),
        "tool_use",
    )
}

#[test]
fn one_prompt_refuses_what_would_be_asked_and_keeps_its_rules() {
    let home = Home::new();
    let done = message(json!([{"type": "text", "text": "done"}]), "end_turn");
    // Without --yes, a call the defaults leave to asking is refused, and the model
    // is told why; a rule on the command line allows what it matches.
    let (url, seen) = fake_anthropic(vec![
        calls("write_file", json!({"path": "notes.txt", "content": "x"})),
        calls("bash", json!({"command": "echo allowed-ran"})),
        calls(
            "bash",
            json!({"command": "echo allowed-ran; touch sneaked"}),
        ),
        done.clone(),
    ]);
    let out = agent_p_asking(&home, &url, "work", &["--allow", "bash(echo *)"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = seen.lock().unwrap();
    let results: Vec<String> = seen[1..]
        .iter()
        .map(|b| b["messages"].to_string())
        .collect();
    assert!(
        results[0].contains(
            "write_file was not run: by default it needs the person's approval, and nobody can answer here"
        ),
        "{}",
        results[0]
    );
    assert!(!home.dir.path().join("notes.txt").exists());
    assert!(results[1].contains("allowed-ran"), "{}", results[1]);
    assert!(
        results[2].contains("bash was not run"),
        "a part no rule allows is asked, so refused: {}",
        results[2]
    );
    assert!(!home.dir.path().join("sneaked").exists());
    drop(seen);
    // A deny rule holds even with --yes.
    let (url, seen) = fake_anthropic(vec![
        calls("bash", json!({"command": "rm -rf build"})),
        done,
    ]);
    let out = agent_p(&home, &url, "clean", &["--deny", "bash(rm -rf *)"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = seen.lock().unwrap()[1]["messages"].to_string();
    assert!(
        second.contains("the permission rule `bash(rm -rf *)` denies it"),
        "{second}"
    );
    // A pattern that is not one is named before anything runs.
    let out = agent_p_asking(&home, &url, "x", &["--allow", "bash(echo"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permissions.allow: \"bash(echo\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn with_sandbox_every_command_of_the_agent_is_a_sandboxed_task() {
    let home = Home::new();
    let probe = home
        .dir
        .path()
        .parent()
        .unwrap()
        .join(format!("meanwhile-agent-probe-{}", std::process::id()));
    let (url, seen) = fake_anthropic(vec![
        calls(
            "bash",
            json!({"command": format!("echo inside > inside.txt; echo out > {}", probe.display())}),
        ),
        calls(
            "background_run",
            json!({"command": "sleep 0", "sandbox": false}),
        ),
        // A hook would run unconfined, as the daemon's user (issue 24).
        calls(
            "background_run",
            json!({"command": "sleep 0", "on_end": "touch hooked"}),
        ),
        message(json!([{"type": "text", "text": "done"}]), "end_turn"),
    ]);
    let out = agent_p(&home, &url, "write", &["--sandbox", "--no-wait-tasks"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = seen.lock().unwrap();
    let first = seen[1]["messages"].to_string();
    assert!(first.contains("Permission denied"), "{first}");
    assert!(!probe.exists(), "the sandbox let it write outside");
    assert!(home.dir.path().join("inside.txt").exists());
    let second = seen[2]["messages"].to_string();
    assert!(
        second.contains("this session runs every command sandboxed"),
        "{second}"
    );
    let third = seen[3]["messages"].to_string();
    assert!(third.contains("leave on_end out"), "{third}");
    let t = crate::support::show(&home, "1");
    assert_eq!(t["spec"]["sandbox"], true, "{t}");
    assert_eq!(
        home.json(&["ls", "--json"])["tasks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
