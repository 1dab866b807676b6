//! Agent sessions that outlive their terminal: the interactive `meanwhile agent
//! --session NAME`, killed in the middle of a turn, continued with `--resume` in a
//! new terminal (real pseudo-terminals, through Python's `pty`), against a provider
//! speaking the real Anthropic wire format with scripted replies.

use crate::support::{Home, fifo, lines, message, tool, turn_of, until};
use serde_json::{Value, json};

/// Drives `meanwhile agent` in a pseudo-terminal. `first`: types a prompt and
/// SIGKILLs the agent once `fg.txt` exists (its foreground command is running).
/// `resume`: continues the session, waits for the unfinished turn's answer, asks
/// one more thing and quits.
const DRIVER: &str = r#"
import json, os, pty, select, signal, sys, time
bin, home, url, phase = sys.argv[1:]
env = dict(os.environ, MEANWHILE_HOME=home, TERM="xterm")
args = [bin, "agent", "--provider", "anthropic", "--model", "claude-test", "--api-key", "test-key",
        "--base-url", url, "--session", "shop", "--yes"]
if phase == "resume":
    args.append("--resume")
pid, fd = pty.fork()
if pid == 0:
    os.execve(bin, args, env)
buf = b""
def pump(timeout):
    global buf
    r, _, _ = select.select([fd], [], [], timeout)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        buf += chunk
    return True
def read_until(needle):
    global buf
    end = time.time() + 90
    while time.time() < end:
        if needle in buf:
            at = buf.index(needle) + len(needle)
            seen, buf = buf[:at], buf[at:]
            return seen.decode(errors="replace")
        if not pump(0.5):
            break
    raise SystemExit(f"never saw {needle!r}; got {buf!r}")
obs = {}
if phase == "first":
    obs["start"] = read_until(b"you> ")
    os.write(fd, b"build and test\r")
    end = time.time() + 90
    while not os.path.exists("fg.txt") and time.time() < end:
        pump(0.1)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    obs["before_kill"] = buf.decode(errors="replace")
else:
    obs["resumed"] = read_until(b"Both done.")
    read_until(b"you> ")
    os.write(fd, b"and now?\r")
    obs["next"] = read_until(b"Nothing left.")
    read_until(b"you> ")
    os.write(fd, b"/exit\r")
    obs["end"] = read_until(b"session shop:")
    os.waitpid(pid, 0)
print(json.dumps(obs))
"#;

fn drive(home: &Home, url: &str, phase: &str) -> Value {
    crate::support::drive_terminal(home, DRIVER, &[url, phase])
}

/// The text of a request's first user message.
fn first_said(request: &Value) -> String {
    let content = &request["messages"][0]["content"];
    match content {
        Value::String(s) => s.clone(),
        other => other[0]["text"].as_str().unwrap_or_default().to_string(),
    }
}

#[test]
fn a_session_killed_mid_turn_goes_on_with_resume_and_hears_what_its_tasks_did() {
    let home = Home::new();
    let dir = home.dir.path().to_path_buf();
    let (fg_marker, bg_marker) = (dir.join("fg.txt"), dir.join("bg.txt"));
    let fg_fifo = fifo(&home, "fg.fifo");
    let bg_fifo = fifo(&home, "bg.fifo");
    let (url, seen) = crate::support::fake_anthropic_with(std::time::Duration::ZERO, |req| {
        if first_said(req) == "hi" {
            return message(json!([{"type": "text", "text": "Hello."}]), "end_turn");
        }
        match turn_of(req) {
            1 => tool(
                "tu_1",
                "background_run",
                json!({"command": "echo bg >> bg.txt; read x < bg.fifo", "name": "tests"}),
            ),
            2 => tool(
                "tu_2",
                "bash",
                json!({"command": "echo fg >> fg.txt; read x < fg.fifo"}),
            ),
            3 => message(json!([{"type": "text", "text": "Both done."}]), "end_turn"),
            4 => message(
                json!([{"type": "text", "text": "Nothing left."}]),
                "end_turn",
            ),
            _ => {
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": "script ran out"}})
            }
        }
    });

    // The terminal goes away while the agent waits for its foreground command.
    let first = drive(&home, &url, "first");
    assert!(
        first["start"].as_str().unwrap().contains("session shop"),
        "{first}"
    );
    let sessions = home.json(&["agent", "--sessions", "--json"]);
    assert_eq!(sessions[0]["name"], "shop", "{sessions}");
    assert_eq!(sessions[0]["title"], "build and test");
    let recorded = sessions[0]["steps"].as_u64().unwrap();
    // Both commands go on under their supervisors, and end while nobody listens.
    std::fs::write(&fg_fifo, "go\n").unwrap();
    std::fs::write(&bg_fifo, "go\n").unwrap();
    until("both commands to end", || {
        let ls = home.json(&["ls", "--json"]);
        let tasks = ls["tasks"].as_array().unwrap();
        tasks.len() == 2 && tasks.iter().all(|t| t["state"] == "succeeded")
    });

    // A new terminal continues the conversation: the unfinished turn goes on
    // without running its command again, and hears how the background task ended.
    let resumed = drive(&home, &url, "resume");
    let text = resumed["resumed"].as_str().unwrap();
    assert!(text.contains("session shop resumed"), "{resumed}");
    assert!(text.contains("you> build and test"), "{resumed}");
    assert!(
        text.contains("going on with the turn that did not finish"),
        "{resumed}"
    );
    assert_eq!(lines(&fg_marker), 1, "the foreground command ran once");
    assert_eq!(lines(&bg_marker), 1, "the background command ran once");
    assert_eq!(
        home.json(&["ls", "--json"])["tasks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let seen = seen.lock().unwrap().clone();
    let turns: Vec<usize> = seen.iter().map(turn_of).collect();
    assert_eq!(turns, [1, 2, 3, 4], "each turn was asked for once");
    let third = seen[2].to_string();
    assert!(
        third.contains("[meanwhile]") && third.contains("(tests) succeeded"),
        "the resumed turn hears the task that ended meanwhile: {third}"
    );
    let fourth = seen[3].to_string();
    for said in ["build and test", "Both done.", "and now?"] {
        assert!(
            fourth.contains(said),
            "the whole conversation goes on: {fourth}"
        );
    }
    let sessions = home.json(&["agent", "--sessions", "--json"]);
    assert!(
        sessions[0]["steps"].as_u64().unwrap() > recorded,
        "{sessions}"
    );

    // Without --resume a new conversation takes the name's place.
    let out = home
        .cmd(&[
            "agent",
            "-p",
            "hi",
            "--session",
            "shop",
            "--provider",
            "anthropic",
            "--model",
            "claude-test",
            "--api-key",
            "test-key",
            "--base-url",
            &url,
        ])
        .env_remove("MEANWHILE_AGENT_SESSION")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a new conversation replaces its earlier one"),
        "{err}"
    );
    let sessions = home.json(&["agent", "--sessions", "--json"]);
    assert_eq!(sessions[0]["title"], "hi", "{sessions}");
    assert_eq!(sessions[0]["steps"], 2, "{sessions}");
    let table = home.ok(&["agent", "--sessions"]);
    assert!(
        table.contains("SESSION") && table.contains("shop"),
        "{table}"
    );

    // Forgotten, it cannot be resumed; the error says where to look.
    home.ok(&["agent", "--forget", "shop"]);
    assert_eq!(home.json(&["agent", "--sessions", "--json"]), json!([]));
    let out = home
        .cmd(&[
            "agent",
            "--session",
            "shop",
            "--resume",
            "-p",
            "x",
            "--provider",
            "anthropic",
            "--api-key",
            "k",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keeps no conversation to continue"), "{err}");
    assert!(err.contains("meanwhile agent --sessions"), "{err}");
}
