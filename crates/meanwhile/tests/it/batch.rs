//! `meanwhile batch` and `llm` tasks against a provider speaking the real Anthropic
//! Messages wire format, served by the test on loopback.

use crate::support::{Home, code, fake_anthropic_with, provider_env, stderr, until};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// A Messages API reply with `content`.
fn message(content: Value, stop: &str) -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 20}
    })
}

/// The forced `answer` tool call that structured output asks for.
fn answer(input: Value) -> Value {
    message(
        json!([{"type": "tool_use", "id": "tu_1", "name": "answer", "input": input}]),
        "tool_use",
    )
}

/// The text of the request's first user message.
fn prompt_of(request: &Value) -> String {
    let content = &request["messages"][0]["content"];
    match content {
        Value::String(s) => s.clone(),
        _ => content[0]["text"].as_str().unwrap_or_default().to_string(),
    }
}

fn start(home: &mut Home, url: &str) {
    let env = provider_env(url);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    home.serve(&env);
}

fn results(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_sentiment_batch_answers_every_line_once_through_structured_output() {
    let mut home = Home::new();
    // "stubborn" never gets a valid answer; "moody" gets one on the second ask.
    let (url, seen) = fake_anthropic_with(Duration::ZERO, |req| {
        let prompt = prompt_of(req);
        let asked_again = req["messages"].as_array().map_or(0, Vec::len) > 1;
        if prompt.contains("stubborn") || (prompt.contains("moody") && !asked_again) {
            return answer(json!({"label": "great", "confidence": 2}));
        }
        let label = if prompt.contains("love") {
            "positive"
        } else {
            "negative"
        };
        answer(json!({"label": label, "confidence": 0.9}))
    });
    start(&mut home, &url);
    let input = home.dir.path().join("reviews.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"id": "r1", "text": "I love it"}"#,
            r#"{"id": "r2", "text": "It broke at once"}"#,
            "",
            r#""I love the colour""#,
            r#"{"id": 4, "text": "moody review"}"#,
            r#"{"id": 5, "text": "stubborn review"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = home.dir.path().join("results.jsonl");
    let o = home.run(&[
        "batch",
        input.to_str().unwrap(),
        "--template",
        "sentiment",
        "--out",
        out.to_str().unwrap(),
        "--attempts",
        "1",
        "--json",
    ]);
    assert_eq!(code(&o), 1, "one line fails: {}", stderr(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["lines"], 5);
    assert_eq!(summary["done"], 4);
    assert_eq!(summary["failed"], 1);

    let by_line: BTreeMap<u64, Value> = results(&out)
        .into_iter()
        .map(|r| (r["line"].as_u64().unwrap(), r))
        .collect();
    assert_eq!(by_line.keys().copied().collect::<Vec<_>>(), [1, 2, 4, 5, 6]);
    assert_eq!(by_line[&1]["id"], "r1");
    assert_eq!(by_line[&1]["state"], "succeeded");
    assert_eq!(
        by_line[&1]["result"],
        json!({"label": "positive", "confidence": 0.9})
    );
    assert_eq!(by_line[&2]["result"]["label"], "negative");
    assert!(by_line[&4].get("id").is_none(), "a string line has no id");
    assert_eq!(by_line[&5]["id"], 4);
    assert_eq!(by_line[&5]["result"]["label"], "negative");
    assert_eq!(by_line[&6]["state"], "failed");
    let error = by_line[&6]["error"].as_str().unwrap();
    assert!(error.contains("does not satisfy the schema"), "{error}");
    assert!(by_line[&6].get("result").is_none());
    for r in by_line.values() {
        assert!(r["task"].as_i64().unwrap() > 0);
        assert_eq!(r["cost"], 0.0, "claude-test has no price");
    }
    // What the provider reported, per line: 120 tokens a call, two calls for the
    // lines asked again.
    assert_eq!(by_line[&1]["tokens"], 120);
    assert_eq!(by_line[&5]["tokens"], 240);
    assert_eq!(by_line[&6]["tokens"], 240);
    assert_eq!(summary["tokens"], 120 * 7);

    // Structured output was asked for as a forced tool call, at temperature 0, and
    // an invalid answer was asked again once with the reason.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 7, "5 lines, and one more ask each for two");
    for req in seen.iter() {
        assert_eq!(
            req["tool_choice"],
            json!({"type": "tool", "name": "answer"})
        );
        assert_eq!(req["temperature"], 0.0);
        assert_eq!(req["model"], "claude-test");
    }
    let again = seen
        .iter()
        .find(|r| prompt_of(r).contains("moody") && r["messages"].as_array().unwrap().len() == 3)
        .expect("moody was asked again");
    assert!(
        again
            .to_string()
            .contains("does not satisfy the JSON Schema")
    );

    // The tasks are ordinary tasks of kind llm, with the answer as their result.
    let id = by_line[&1]["task"].to_string();
    let t = home.json(&["show", &id, "--json"]);
    assert_eq!(t["task"]["kind"], "llm");
    assert_eq!(
        t["task"]["result"],
        r#"{"confidence":0.9,"label":"positive"}"#
    );
    assert!(
        t["task"]["labels"][0]
            .as_str()
            .unwrap()
            .starts_with("batch:")
    );
}

#[test]
fn a_batch_killed_at_random_points_resumes_without_losing_or_repeating_a_line() {
    let mut home = Home::new();
    let (url, seen) = fake_anthropic_with(Duration::from_millis(15), |req| {
        message(
            json!([{"type": "text", "text": format!("seen: {}", prompt_of(req))}]),
            "end_turn",
        )
    });
    start(&mut home, &url);
    home.ok(&["queue", "set", "default", "--max-parallel", "4"]);
    const LINES: usize = 120;
    let input = home.dir.path().join("in.jsonl");
    let text: Vec<String> = (1..=LINES)
        .map(|i| json!({"id": i, "body": format!("item-{i}-end")}).to_string())
        .collect();
    std::fs::write(&input, text.join("\n") + "\n").unwrap();
    let out = home.dir.path().join("out.jsonl");
    let args = [
        "batch",
        input.to_str().unwrap(),
        "--prompt",
        "Echo {body}",
        "--out",
        out.to_str().unwrap(),
    ];

    // A cheap generator seeded by the clock: each run of the test kills elsewhere.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut kills = 0;
    let mut finished = false;
    for _ in 0..40 {
        let mut child = home.cmd(&args).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(50 + next() % 400));
        if child.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    if !finished {
        let o = home.run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(kills > 0, "the batch was never killed mid-way");

    // One more run after the end changes nothing and sends nothing.
    let calls = seen.lock().unwrap().len();
    let o = home.run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(seen.lock().unwrap().len(), calls);

    let rows = results(&out);
    assert_eq!(rows.len(), LINES, "each line exactly once");
    let mut lines: Vec<u64> = rows.iter().map(|r| r["line"].as_u64().unwrap()).collect();
    lines.sort();
    assert_eq!(lines, (1..=LINES as u64).collect::<Vec<_>>());
    for r in &rows {
        let n = r["line"].as_u64().unwrap();
        assert_eq!(r["id"], n);
        assert_eq!(r["state"], "succeeded");
        assert_eq!(r["result"], format!("seen: Echo item-{n}-end"));
    }
    // No line's prompt went to the model twice.
    let mut per_prompt: HashMap<String, usize> = HashMap::new();
    for req in seen.lock().unwrap().iter() {
        *per_prompt.entry(prompt_of(req)).or_default() += 1;
    }
    assert_eq!(per_prompt.len(), LINES);
    assert!(
        per_prompt.values().all(|&n| n == 1),
        "a line was sent twice: {:?}",
        per_prompt
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect::<Vec<_>>()
    );
}

#[test]
fn broken_input_is_refused_before_any_line_is_sent() {
    let mut home = Home::new();
    let (url, seen) = fake_anthropic_with(Duration::ZERO, |_| message(json!([]), "end_turn"));
    start(&mut home, &url);
    let dir = home.dir.path();
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"fine\"}\n{not json\n{\"body\": \"no text field\"}\n[1, 2]\n",
    )
    .unwrap();
    let o = home.run(&["batch", input.to_str().unwrap(), "--template", "summarize"]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(err.contains("3 of the lines"), "{err}");
    assert!(err.contains("line 2: not JSON"), "{err}");
    assert!(err.contains("line 3: no field \"text\""), "{err}");
    assert!(err.contains("--field"), "{err}");
    assert!(
        err.contains("line 4: a JSON object or string is needed"),
        "{err}"
    );

    std::fs::write(&input, "{\"text\": \"fine\"}\n").unwrap();
    let o = home.run(&[
        "batch",
        input.to_str().unwrap(),
        "--prompt",
        "{title}: {text}",
    ]);
    assert!(
        stderr(&o).contains("no field \"title\" for {title}"),
        "{}",
        stderr(&o)
    );

    let schema = dir.join("schema.json");
    std::fs::write(&schema, r#"{"type": "no-such-type"}"#).unwrap();
    let o = home.run(&[
        "batch",
        input.to_str().unwrap(),
        "--prompt",
        "{text}",
        "--schema",
        schema.to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("not a valid JSON Schema"),
        "{}",
        stderr(&o)
    );

    let o = home.run(&["batch", input.to_str().unwrap()]);
    assert_eq!(
        code(&o),
        2,
        "clap refuses a batch without --template or --prompt"
    );

    // A prompt that fills to nothing is refused too.
    let o = home.run(&["batch", input.to_str().unwrap(), "--prompt", "   "]);
    assert!(stderr(&o).contains("its prompt is empty"), "{}", stderr(&o));
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the model");
}

#[test]
fn a_spent_budget_holds_the_rest_of_a_batch_until_it_is_raised() {
    let mut home = Home::new();
    let (url, seen) = fake_anthropic_with(Duration::ZERO, |req| {
        message(
            json!([{"type": "text", "text": format!("ok: {}", prompt_of(req))}]),
            "end_turn",
        )
    });
    start(&mut home, &url);
    // 120 tokens a call: the third call spends the budget.
    home.ok(&["queue", "set", "llm", "--max-parallel", "1"]);
    home.ok(&["budget", "set", "llm", "--tokens", "360", "--window", "day"]);
    let input = home.dir.path().join("in.jsonl");
    let lines: Vec<String> = (1..=5)
        .map(|i| json!(format!("line {i}")).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = home.dir.path().join("out.jsonl");
    let args = [
        "batch",
        input.to_str().unwrap(),
        "--prompt",
        "{text}",
        "--queue",
        "llm",
        "--attempts",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    let said = home.dir.path().join("batch.err");
    let mut batch = home
        .cmd(&args)
        .stderr(std::fs::File::create(&said).unwrap())
        .spawn()
        .unwrap();
    until("the budget pauses the queue", || {
        let q = home.json(&["queue", "ls", "--json"]);
        q.as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "llm" && q["pause_reason"] == "budget")
    });
    until("three lines are written", || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() == 3)
    });
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "no call after the budget was spent"
    );
    assert!(
        batch.try_wait().unwrap().is_none(),
        "the batch waits for its lines"
    );
    // It said so at once: what was spent, when the queue resumes, how to raise it.
    until("the batch says the queue is paused", || {
        std::fs::read_to_string(&said)
            .unwrap()
            .contains("is paused")
    });
    let text = std::fs::read_to_string(&said).unwrap();
    assert!(
        text.contains("queue \"llm\" is paused: its budget is spent (360 of 360 tokens this window); it resumes by itself at "),
        "{text}"
    );
    assert!(
        text.contains("meanwhile budget set llm --tokens N"),
        "{text}"
    );
    let budget = &home.json(&["budget", "ls", "--json"])[0];
    assert_eq!(budget["used_tokens"], 360);
    assert_eq!(budget["state"], "exhausted");

    // Raised, the queue resumes and the batch ends with every line.
    home.ok(&["budget", "set", "llm", "--tokens", "100000"]);
    let status = batch.wait().unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&said).unwrap();
    assert_eq!(text.matches("is paused").count(), 1, "said once: {text}");
    assert!(text.contains("queue \"llm\" resumed"), "{text}");
    let rows = results(&out);
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|r| r["state"] == "succeeded" && r["tokens"] == 120)
    );
    assert_eq!(seen.lock().unwrap().len(), 5);
}

#[test]
fn a_prompt_with_escapes_or_from_a_file_reaches_the_model_with_its_new_lines() {
    let mut home = Home::new();
    let (url, seen) = fake_anthropic_with(Duration::ZERO, |_| {
        message(json!([{"type": "text", "text": "fine"}]), "end_turn")
    });
    start(&mut home, &url);
    let input = home.dir.path().join("in.jsonl");
    std::fs::write(&input, r#"{"text": "I love it"}"#).unwrap();
    let o = home.run(&[
        "batch",
        input.to_str().unwrap(),
        "--prompt",
        r"Review: {text}\nSentiment?\tOne word.",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let file = home.dir.path().join("prompt.txt");
    std::fs::write(&file, "From a file: {text}\nas it is: \\n\n").unwrap();
    let o = home.run(&[
        "batch",
        input.to_str().unwrap(),
        "--prompt-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let prompts: Vec<String> = seen.lock().unwrap().iter().map(prompt_of).collect();
    assert_eq!(
        prompts,
        [
            "Review: I love it\nSentiment?\tOne word.",
            "From a file: I love it\nas it is: \\n\n"
        ]
    );
    let o = home.run(&[
        "batch",
        input.to_str().unwrap(),
        "--prompt-file",
        "/nonexistent/prompt.txt",
    ]);
    assert_eq!(code(&o), 66, "{}", stderr(&o));
    assert!(stderr(&o).contains("--prompt-file /nonexistent/prompt.txt"));
}

#[test]
fn run_submits_llm_and_agent_tasks_from_the_command_line() {
    let mut home = Home::new();
    let (url, seen) = fake_anthropic_with(Duration::ZERO, |req| {
        if req["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "answer"))
        {
            answer(json!({"positive": true}))
        } else {
            message(
                json!([{"type": "text", "text": "hello from the agent"}]),
                "end_turn",
            )
        }
    });
    start(&mut home, &url);
    let schema = home.dir.path().join("s.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "properties": {"positive": {"type": "boolean"}}, "required": ["positive"]}"#,
    )
    .unwrap();
    let o = home.run(&[
        "run",
        "--wait",
        "--json",
        "--llm",
        "Is this positive? I love it.",
        "--schema",
        schema.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = serde_json::from_slice::<Value>(&o.stdout).unwrap()["id"].to_string();
    let t: Value = serde_json::from_str(&home.ok(&["show", &id, "--json"])).unwrap();
    let result: Value = serde_json::from_str(t["task"]["result"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!({"positive": true}), "{t}");
    assert_eq!(
        t["task"]["spec"]["llm"]["prompt"],
        "Is this positive? I love it."
    );

    let o = home.run(&["run", "--wait", "--agent", "Say hello."]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let t: Value = serde_json::from_str(&home.ok(&["show", &id, "--json"])).unwrap();
    assert_eq!(t["task"]["spec"]["agent"]["prompt"], "Say hello.", "{t}");
    assert_eq!(t["task"]["state"], "succeeded", "{t}");
    assert_eq!(seen.lock().unwrap().len(), 2);

    // A schema without --llm, or a command with --agent, is a usage error.
    let o = home.run(&["run", "--schema", schema.to_str().unwrap(), "--", "true"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = home.run(&["run", "--agent", "x", "--", "true"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = home.run(&["run", "--llm", "x", "--schema", "/nonexistent.json"]);
    assert_eq!(code(&o), 66, "{}", stderr(&o));
}

#[test]
fn retry_failed_runs_the_failed_lines_again_and_appends_their_new_results() {
    let mut home = Home::new();
    // The model fails "line 2" the first time it is asked, and answers after.
    let asked = std::sync::Mutex::new(HashMap::<String, u32>::new());
    let (url, seen) = fake_anthropic_with(Duration::ZERO, move |req| {
        let prompt = prompt_of(req);
        let mut asked = asked.lock().unwrap();
        let n = asked.entry(prompt.clone()).or_default();
        *n += 1;
        if prompt == "line 2" && *n == 1 {
            return json!({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}});
        }
        message(
            json!([{"type": "text", "text": format!("ok: {prompt}")}]),
            "end_turn",
        )
    });
    start(&mut home, &url);
    let input = home.dir.path().join("in.jsonl");
    let lines: Vec<String> = (1..=3)
        .map(|i| json!(format!("line {i}")).to_string())
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = home.dir.path().join("out.jsonl");
    let mut args = vec![
        "batch",
        input.to_str().unwrap(),
        "--prompt",
        "{text}",
        "--attempts",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = home.run(&args);
    assert_eq!(code(&o), 1, "a line failed: {}", stderr(&o));
    let rows = results(&out);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows.iter().filter(|r| r["state"] == "failed").count(), 1);

    // The same batch again changes nothing; with --retry-failed, line 2 runs again.
    assert_eq!(code(&home.run(&args)), 1);
    assert_eq!(results(&out).len(), 3, "nothing written twice");
    args.push("--retry-failed");
    let o = home.run(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("running 1 failed line(s) again"),
        "{}",
        stderr(&o)
    );
    let rows = results(&out);
    assert_eq!(rows.len(), 4, "the new result appended");
    let last = rows.last().unwrap();
    assert_eq!(
        (last["line"].as_u64(), last["state"].as_str()),
        (Some(2), Some("succeeded"))
    );
    assert_eq!(last["result"], "ok: line 2");
    assert_eq!(
        seen.lock().unwrap().len(),
        4,
        "only the failed line was asked again"
    );
    // Nothing failed now: a second retry runs nothing.
    let o = home.run(&args);
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("nothing to run again"),
        "{}",
        stderr(&o)
    );
    assert_eq!(results(&out).len(), 4);
}
