//! Budgets through the real daemon: an agent task in a queue with a token budget,
//! run against a provider speaking the real Anthropic Messages wire format, fires
//! each alarm once, pauses its queue and stops at its next model call; raising the
//! budget resumes the queue. (Windows rolling over are tested in the store, with
//! explicit clock readings.)

use crate::agent::fake_anthropic;
use crate::support::{Home, code, message, stderr, until};
use serde_json::{Value, json};

/// A reply that asks for a tool and reports `input + output` tokens.
fn tool_call(i: usize, input: u64, output: u64) -> Value {
    let mut m = message(
        json!([{"type": "tool_use", "id": format!("tu_{i}"), "name": "read_file", "input": {"path": format!("missing-{i}.txt")}}]),
        "tool_use",
    );
    m["usage"] = json!({"input_tokens": input, "output_tokens": output});
    m
}

fn budget_alerts(home: &Home, all: bool) -> Vec<Value> {
    let args: &[&str] = if all {
        &["alerts", "--all", "--json"]
    } else {
        &["alerts", "--json"]
    };
    let mut alerts: Vec<Value> = home
        .json(args)
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "budget")
        .cloned()
        .collect();
    alerts.sort_by_key(|a| a["id"].as_i64());
    alerts
}

fn queue(home: &Home, name: &str) -> Value {
    home.json(&["queue", "ls", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .cloned()
        .unwrap()
}

#[test]
fn a_budget_fires_each_alarm_once_pauses_its_queue_and_stops_the_agent() {
    let mut home = Home::new();
    // Each reply costs 20 tokens and asks for another tool call: the fifth call
    // spends the 100-token budget, and no sixth call may start.
    let (url, seen) = fake_anthropic((0..10).map(|i| tool_call(i, 15, 5)).collect());
    // The alerts go to the sinks, as every alert does.
    let sink = home.dir.path().join("alerts.txt");
    std::fs::create_dir_all(&home.home).unwrap();
    std::fs::write(
        home.home.join("config.toml"),
        format!(
            "[[alerts.sinks]]\ncommand = 'echo \"$MEANWHILE_ALERT_KIND $MEANWHILE_ALERT_STATE $MEANWHILE_ALERT_QUEUE\" >> {}'\n",
            sink.display()
        ),
    )
    .unwrap();
    let sunk = |state: &str| {
        std::fs::read_to_string(&sink)
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == format!("budget {state} llm"))
            .count()
    };
    home.serve(&[
        ("MEANWHILE_AGENT_PROVIDER", "anthropic"),
        ("MEANWHILE_AGENT_MODEL", "claude-test"),
        ("ANTHROPIC_API_KEY", "test-key"),
        ("ANTHROPIC_BASE_URL", &url),
    ]);
    let set = home.json(&[
        "budget",
        "set",
        "llm",
        "--tokens",
        "100",
        "--alarms",
        "50,80,100",
        "--json",
    ]);
    assert_eq!(set[0]["state"], "ok");
    assert_eq!(set[0]["window"], "day");
    home.ok(&[
        "schedule",
        "add",
        "job",
        "--every",
        "1d",
        "-q",
        "llm",
        "--agent",
        "read the files",
    ]);
    let id = home.ok(&["schedule", "run", "job"]).trim().to_string();

    let mut task = Value::Null;
    until("the agent task ends", || {
        task = home.json(&["show", &id, "--json"])["task"].clone();
        task["state"] == "failed"
    });
    // The provider saw exactly the calls the budget allowed: none started after it
    // was spent.
    assert_eq!(seen.lock().unwrap().len(), 5);
    let reason = task["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "queue \"llm\" is over its budget: 100 of 100 tokens used this day (from "
        ) && reason.contains("T00:00:00Z); it resumes at "),
        "{reason}"
    );
    assert_eq!(task["tokens"], 100);
    assert_eq!(task["model_calls"], 5);
    let shown = home.ok(&["show", &id]);
    assert!(
        shown.contains("usage     5 model calls, 100 tokens, $0.00"),
        "{shown}"
    );
    let log = home.ok(&["logs", &id]);
    assert!(
        log.contains("stopped: queue \"llm\" is over its budget"),
        "{log}"
    );

    // Each alarm fired once, and they fire still.
    let alerts = budget_alerts(&home, true);
    let messages: Vec<&str> = alerts
        .iter()
        .map(|a| a["message"].as_str().unwrap())
        .collect();
    assert_eq!(alerts.len(), 3, "{alerts:#?}");
    for (a, pct) in alerts.iter().zip([50, 80, 100]) {
        assert_eq!(a["state"], "firing");
        assert_eq!(a["queue"], "llm");
        let m = a["message"].as_str().unwrap();
        assert!(
            m.starts_with(&format!("queue \"llm\" reached {pct}% of its budget: ")),
            "{messages:#?}"
        );
    }
    assert!(
        messages[2].contains("100 of 100 tokens used this day")
            && messages[2].contains("the queue is paused until"),
        "{}",
        messages[2]
    );
    let health = home.run(&["health"]);
    assert_eq!(code(&health), 1);
    until("the sink hears of the three alarms", || sunk("firing") == 3);

    // The queue is paused by its budget, and says so.
    let q = queue(&home, "llm");
    assert_eq!(
        (q["paused"].clone(), q["pause_reason"].clone()),
        (json!(true), json!("budget"))
    );
    let table = home.ok(&["queue", "ls"]);
    assert!(table.contains("paused (budget)"), "{table}");
    let b = &home.json(&["budget", "ls", "--json"])[0];
    assert_eq!(b["state"], "exhausted");
    assert_eq!(
        (b["used_tokens"].clone(), b["model_calls"].clone()),
        (json!(100), json!(5))
    );
    assert_eq!(b["alarms_fired"], json!([50, 80, 100]));
    let table = home.ok(&["budget"]);
    assert!(
        table.contains("100 tokens (100%)")
            && table.contains("exhausted")
            && table.contains("50!,80!,100!"),
        "{table}"
    );

    // A resume by hand is refused while the budget is spent.
    let resume = home.run(&["queue", "resume", "llm"]);
    assert_eq!(code(&resume), 4, "{}", stderr(&resume));
    let err = stderr(&resume);
    assert!(
        err.contains("is over its budget") && err.contains("'meanwhile budget set llm --tokens N'"),
        "{err}"
    );
    assert_eq!(queue(&home, "llm")["paused"], true);

    // Raised: the queue resumes at once and the alerts resolve.
    let raised = home.json(&["budget", "set", "llm", "--tokens", "1000", "--json"]);
    assert_eq!(raised[0]["state"], "ok");
    assert_eq!(
        raised[0]["used_tokens"], 100,
        "the window's usage still counts"
    );
    assert_eq!(raised[0]["alarms"], json!([50, 80, 100]), "alarms kept");
    let q = queue(&home, "llm");
    assert_eq!(
        (q["paused"].clone(), q["pause_reason"].clone()),
        (json!(false), Value::Null)
    );
    assert!(budget_alerts(&home, false).is_empty());
    let all = budget_alerts(&home, true);
    assert_eq!(all.len(), 3, "each alarm fired once: {all:#?}");
    assert!(all.iter().all(|a| a["state"] == "resolved"));
    assert_eq!(code(&home.run(&["health"])), 0);
    until("the sink hears them resolve", || sunk("resolved") == 3);
    assert_eq!(sunk("firing"), 3, "each alarm was told once");

    // Each change is in the audit trail.
    let audit = home.json(&["audit", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "budget_set").count(),
        2,
        "{actions:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "alert_firing").count(),
        3,
        "{actions:?}"
    );

    home.ok(&["budget", "rm", "llm"]);
    assert_eq!(
        home.ok(&["budget"]),
        "no budgets (see 'meanwhile budget set --help')\n"
    );
}

#[test]
fn bad_budgets_are_refused_naming_what_to_fix() {
    let home = Home::new();
    let refused = |args: &[&str], exit: i32, expect: &str| {
        let o = home.run(args);
        assert_eq!(code(&o), exit, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{args:?}: {}", stderr(&o));
    };
    refused(
        &["budget", "set", "llm"],
        2,
        "give a limit: --tokens N, --cost USD or both (see 'meanwhile budget set --help')",
    );
    refused(
        &["budget", "set", "llm", "--tokens", "0"],
        2,
        "tokens must be a whole number from 1 to",
    );
    refused(
        &["budget", "set", "llm", "--cost=-3"],
        2,
        "cost must be a number of US dollars above 0",
    );
    refused(
        &["budget", "set", "llm", "--tokens", "5", "--window", "week"],
        2,
        "window must be hour, day, month or total, got \"week\"",
    );
    refused(
        &[
            "budget", "set", "llm", "--tokens", "5", "--alarms", "50,150",
        ],
        2,
        "alarms must be percentages from 1 to 100",
    );
    refused(
        &["budget", "set", "llm", "--tokens", "5", "--alarms", "80,80"],
        2,
        "alarms: 80% is given twice",
    );
    refused(
        &["budget", "set", "a b", "--tokens", "5"],
        2,
        "queue: \"a b\" may only contain",
    );
    refused(
        &["budget", "rm", "llm"],
        3,
        "no budget is set on queue \"llm\" (see 'meanwhile budget ls')",
    );
    // A limit removed leaves the other; removing the last is refused.
    home.ok(&["budget", "set", "llm", "--cost", "2.5", "--window", "month"]);
    let b = home.json(&["budget", "set", "llm", "--tokens", "10", "--json"]);
    assert_eq!(
        (b[0]["tokens"].clone(), b[0]["cost_usd"].clone()),
        (json!(10), json!(2.5))
    );
    assert_eq!(b[0]["window"], "month");
    let b = home.json(&["budget", "set", "llm", "--cost", "none", "--json"]);
    assert_eq!(
        (b[0]["tokens"].clone(), b[0].get("cost_usd")),
        (json!(10), None)
    );
    refused(
        &["budget", "set", "llm", "--tokens", "none"],
        2,
        "give a limit",
    );
}

#[test]
fn a_budget_in_config_toml_is_set_at_start_as_the_configs_change() {
    let mut home = Home::new();
    std::fs::create_dir_all(&home.home).unwrap();
    std::fs::write(
        home.home.join("config.toml"),
        "[queues.llm]\nmax_parallel = 2\nbudget = { cost_usd = 2.5, window = \"month\", alarms = [90, 100] }\n",
    )
    .unwrap();
    home.serve(&[]);
    let b = &home.json(&["budget", "ls", "--json"])[0];
    assert_eq!(b["queue"], "llm");
    assert_eq!(b["cost_usd"], 2.5);
    assert_eq!(b["window"], "month");
    assert_eq!(b["alarms"], json!([90, 100]));
    assert!(b["window_start"].as_i64().unwrap() <= b["window_end"].as_i64().unwrap());
    let audit = home.json(&["audit", "--json"]);
    let set = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "budget_set")
        .unwrap();
    assert_eq!(set["who"], "config (config.toml)");
    assert_eq!(set["subject"], "budget llm");
}
