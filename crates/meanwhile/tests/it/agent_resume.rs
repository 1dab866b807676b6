//! Agent tasks that survive their daemon: SIGKILL at each kind of step boundary, and
//! the task goes on from its recorded steps, against a provider speaking the real
//! Anthropic wire format with scripted replies.

use crate::support::{
    Home, allow_every_command, fifo, lines, message, provider_env, tool, turn_of, until,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The kinds of the steps recorded for task `id`, read from the store's file.
fn step_kinds(home: &Home, id: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        home.home.join("meanwhile.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT kind FROM steps WHERE task_id = ?1 ORDER BY attempt, n")
        .unwrap();
    stmt.query_map([id.parse::<i64>().unwrap()], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The id of the task the last `background_run` result names.
fn started_task(request: &Value) -> String {
    let text = request["messages"].to_string();
    let at = text.rfind("Started task ").expect("a started task") + "Started task ".len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

fn serve(home: &mut Home, url: &str) {
    let env = provider_env(url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    home.serve(&env);
}

#[test]
fn an_agent_task_resumes_from_its_steps_after_each_kind_of_sigkill() {
    let mut home = Home::new();
    let dir = home.dir.path().to_path_buf();
    let (fg_marker, bg_marker, last_marker) =
        (dir.join("fg.txt"), dir.join("bg.txt"), dir.join("last.txt"));
    let fg_fifo = fifo(&home, "fg.fifo");
    let bg_fifo = fifo(&home, "bg.fifo");
    assert_eq!(fg_fifo.parent(), Some(dir.as_path()));
    // Turn 4's request is held until the test lets it go: the daemon dies while that
    // model call is in flight.
    let hold = Arc::new(AtomicBool::new(true));
    let held = hold.clone();
    let asked = Arc::new(AtomicBool::new(false));
    let asking = asked.clone();
    // Paths relative to the workspace (the task's working directory), which the
    // agent's permission rules let it write without asking.
    let fg = "echo fg >> fg.txt; read x < fg.fifo".to_string();
    let bg = "echo bg >> bg.txt; read x < bg.fifo".to_string();
    let last = "echo last >> last.txt".to_string();
    let (url, seen) = crate::support::fake_anthropic_with(std::time::Duration::ZERO, move |req| {
        match turn_of(req) {
            1 => tool("tu_1", "bash", json!({"command": fg})),
            2 => tool("tu_2", "background_run", json!({"command": bg})),
            3 => tool(
                "tu_3",
                "background_output",
                json!({"id": started_task(req).parse::<u64>().unwrap(), "wait": "exit"}),
            ),
            4 => {
                asking.store(true, Ordering::SeqCst);
                while held.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                tool("tu_4", "bash", json!({"command": last}))
            }
            5 => message(
                json!([{"type": "text", "text": "All four done."}]),
                "end_turn",
            ),
            _ => {
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": "script ran out"}})
            }
        }
    });
    allow_every_command(&home);
    serve(&mut home, &url);
    let id = home
        .ok(&["run", "--agent", "Run the four commands."])
        .trim()
        .to_string();

    // 1. During a foreground tool call: the command runs, the agent waits for it.
    until("the foreground command to start", || lines(&fg_marker) == 1);
    assert_eq!(step_kinds(&home, &id), ["user", "model", "tool_start"]);
    home.kill_daemon();
    serve(&mut home, &url);
    // The command kept running under its supervisor; the resumed agent follows it
    // (found by its idempotency key) rather than running it again.
    std::fs::write(&fg_fifo, "go\n").unwrap();

    // 2. While the agent waits for a background task.
    until("the agent to wait for its background task", || {
        let kinds = step_kinds(&home, &id);
        lines(&bg_marker) == 1
            && kinds.iter().filter(|k| *k == "model").count() == 3
            && kinds.last().map(String::as_str) == Some("tool_start")
    });
    home.kill_daemon();
    serve(&mut home, &url);
    std::fs::write(&bg_fifo, "go\n").unwrap();

    // 3. While a model call is in flight (after the last response was recorded).
    until("the fourth model call", || asked.load(Ordering::SeqCst));
    home.kill_daemon();
    hold.store(false, Ordering::SeqCst);
    serve(&mut home, &url);

    let mut task = Value::Null;
    until("the agent task to end", || {
        task = home.json(&["show", &id, "--json"])["task"].clone();
        task["state"] != "running" && task["state"] != "pending"
    });
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["result"], "All four done.", "{task}");
    assert_eq!(task["attempts"], 1, "resuming is not a new attempt: {task}");
    // Each command ran once.
    assert_eq!(
        (lines(&fg_marker), lines(&bg_marker), lines(&last_marker)),
        (1, 1, 1)
    );
    // Each turn's request reached the provider once, but the one in flight at the
    // third kill, which was made again once.
    let seen = seen.lock().unwrap();
    let per_turn: Vec<usize> = (1..=5)
        .map(|t| seen.iter().filter(|r| turn_of(r) == t).count())
        .collect();
    assert_eq!(per_turn, [1, 1, 1, 2, 1], "requests per turn");
    // Usage counted once per recorded response (the lost call never answered).
    assert_eq!(task["model_calls"], 5, "{task}");
    assert_eq!(task["tokens"], 5 * 15, "{task}");

    // The record over HTTP: every step, in order, the model's responses with their
    // usage, each tool call's start with its key and its result.
    let transcript = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(
            meanwhile_client::Client::for_home(&home.home)
                .transcript(meanwhile_core::TaskId(id.parse().unwrap())),
        )
        .unwrap();
    let steps = &transcript.steps;
    assert!(steps.iter().all(|s| s.attempt == 1));
    assert!(steps.iter().enumerate().all(|(i, s)| s.n as usize == i + 1));
    let models: Vec<_> = steps.iter().filter(|s| s.kind == "model").collect();
    assert_eq!(models.len(), 5);
    assert_eq!(models[0].data["usage"]["output_tokens"], 5);
    let keys: Vec<&str> = steps
        .iter()
        .filter(|s| s.kind == "tool_start")
        .filter_map(|s| s.data["key"].as_str())
        .collect();
    // tu_1 and tu_3 were in flight at a kill: started twice, with the same key.
    let task_key = format!("agent-task-{id}/tu_1");
    assert_eq!(
        keys.iter().filter(|k| **k == task_key).count(),
        2,
        "{keys:?}"
    );
    assert_eq!(
        steps.iter().filter(|s| s.kind == "tool_result").count(),
        4,
        "one result per call"
    );
    // The record is visible in `show`'s summary, and the log tells of each resume.
    let text = home.ok(&["show", &id]);
    assert!(
        text.contains("steps     ") && text.contains("5 turns") && text.contains("answered"),
        "{text}"
    );
    let logs = home.ok(&["logs", &id]);
    assert_eq!(
        logs.matches("resumed attempt 1 on node ").count(),
        3,
        "{logs}"
    );
}

/// The daemon dies right after a model response is committed, before its tool call
/// starts (a fault point ends the process there): the next daemon runs the call
/// without asking the model again. It dies too, right after recording the notice of a
/// background task that ended while no daemon ran; the notice still reaches the model
/// exactly once.
#[test]
fn an_agent_task_resumes_from_a_model_response_its_daemon_died_after() {
    let mut home = Home::new();
    let dir = home.dir.path().to_path_buf();
    let (bg_marker, fg_marker) = (dir.join("bg.txt"), dir.join("fg.txt"));
    let bg_fifo = fifo(&home, "bg.fifo");
    let (url, seen) = crate::support::fake_anthropic_with(std::time::Duration::ZERO, |req| {
        match turn_of(req) {
            1 => tool(
                "tu_1",
                "background_run",
                json!({"command": "read x < bg.fifo; echo bg >> bg.txt", "name": "early"}),
            ),
            2 => tool("tu_2", "bash", json!({"command": "echo fg >> fg.txt"})),
            3 => message(json!([{"type": "text", "text": "Done."}]), "end_turn"),
            _ => {
                json!({"type": "error", "error": {"type": "invalid_request_error", "message": "script ran out"}})
            }
        }
    });
    allow_every_command(&home);
    // Steps: user, model, tool_start, tool_result, model: the daemon ends as the
    // second model response commits.
    let mut env = provider_env(&url);
    env.push(("MEANWHILE_FAULTS", "steps.recorded=exit@4".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    home.serve(&env);
    let id = home
        .ok(&["run", "--agent", "Start one, then run one."])
        .trim()
        .to_string();
    let status = home.daemon.take().unwrap().wait().unwrap();
    assert_eq!(status.code(), Some(86), "the fault point ended the daemon");
    assert_eq!(
        step_kinds(&home, &id),
        ["user", "model", "tool_start", "tool_result", "model"]
    );
    assert_eq!(
        lines(&fg_marker),
        0,
        "the call after the response has not run"
    );
    // The background task ends while no daemon runs; its supervisor keeps its end.
    std::fs::write(&bg_fifo, "go\n").unwrap();
    until("the background command to end", || lines(&bg_marker) == 1);
    // The next daemon dies too, as the notice of that end is recorded (the third
    // step it records), before it is marked delivered.
    let mut env = provider_env(&url);
    env.push(("MEANWHILE_FAULTS", "steps.recorded=exit@2".into()));
    // It resumes the task before it listens, so it may never answer: it is only
    // waited for.
    let status = home
        .cmd(&["serve"])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(86), "the fault point ended the daemon");
    assert_eq!(
        step_kinds(&home, &id)[5..],
        ["tool_start", "tool_result", "notices"]
    );
    serve(&mut home, &url);
    until("the task to end", || {
        home.json(&["show", &id, "--json"])["task"]["state"] != "running"
    });
    let t = home.json(&["show", &id, "--json"])["task"].clone();
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["attempts"], 1);
    assert_eq!(t["result"], "Done.");
    assert_eq!((lines(&bg_marker), lines(&fg_marker)), (1, 1));
    let seen = seen.lock().unwrap().clone();
    let turns: Vec<usize> = seen.iter().map(turn_of).collect();
    assert_eq!(turns, [1, 2, 3], "no recorded response was asked for again");
    let heard: usize = seen
        .iter()
        .map(|r| r.to_string().matches("(early) succeeded").count())
        .sum();
    assert_eq!(heard, 1, "the background task's end reached the model once");
    assert_eq!(t["model_calls"], 3);
    assert_eq!(
        home.json(&[
            "notifications",
            "--session",
            &format!("agent-task-{id}"),
            "--json"
        ]),
        json!([]),
        "and it was marked delivered"
    );
}
