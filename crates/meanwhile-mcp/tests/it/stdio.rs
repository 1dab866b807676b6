//! Over stdio: the real `meanwhile mcp`, which starts the daemon of its home.

use crate::support::{Home, scenario, submitter, text};
use serde_json::Value;

/// What every transport must show of the tool surface (see tests/py/flow.py).
pub fn check_flow(obs: &Value) {
    let tools: Vec<&str> = obs["tools"].as_array().unwrap().iter().map(text).collect();
    assert_eq!(
        tools,
        [
            "background_run",
            "background_output",
            "background_input",
            "background_stop",
            "background_list",
            "background_wait",
            "background_notifications"
        ],
        "spawn_agent is offered only with a provider"
    );
    assert_eq!(obs["required"]["background_output"][0], "id");
    assert_eq!(obs["templates"][0], "meanwhile://tasks/{id}/output");
    assert!(text(&obs["run"]["text"]).starts_with("Started task "));

    // Incremental reads: each answer holds only what is new since its cursor.
    assert_eq!(obs["first"], "first\n");
    assert!(text(&obs["match"]["text"]).contains("[matched line: ready on port 7]"));
    assert_eq!(obs["match_body"], "ready on port 7\n");
    assert_eq!(obs["empty_body"], "(no output in this range)");
    assert_eq!(obs["resource_before"], "first\nready on port 7\n");
    assert!(obs["updates"].as_u64().unwrap() >= 1, "{obs}");
    assert_eq!(obs["resource_after"], "first\nready on port 7\nlast\n");

    // The end is told once: in the result after it happened, never again.
    assert!(text(&obs["wait"]["text"]).contains("failed with exit code 3"));
    assert_eq!(obs["notices_for_task"], 1, "{obs}");
    assert!(
        text(&obs["notifications_after"]["text"]).starts_with("No new notices"),
        "{obs}"
    );

    // Stopping a task ends its whole process tree.
    assert_eq!(obs["tree_before"], 2);
    assert!(text(&obs["tree_wait"]["text"]).contains("cancelled"));
    assert_eq!(obs["tree_after"], 0);

    let bad = &obs["bad"];
    for (case, says) in [
        ("unknown_task", "unknown task 999999"),
        ("bad_regex", "grep: not a valid regex"),
        ("bad_wait_regex", "not a valid regex"),
        (
            "wrong_type",
            "task ids are positive integers like 7, got \"abc\"",
        ),
        ("wrong_ids", "expected a sequence"),
        ("command_type", "expected a string"),
        ("unknown_field", "unknown field `everything`"),
        ("stop_unknown", "unknown task 999999"),
    ] {
        assert_eq!(bad[case]["is_error"], true, "{case}: {}", bad[case]);
        assert!(
            text(&bad[case]["text"]).contains(says),
            "{case}: {}",
            bad[case]
        );
    }
    assert!(
        text(&bad["unknown_tool"])
            .starts_with("unknown tool \"rm_rf\"; the tools are background_run")
    );
    assert!(text(&bad["unknown_tool2"]).starts_with("unknown tool \"bash\""));
    assert!(text(&bad["unknown_resource"]).contains("unknown task 999999"));
    // Resource not found, naming the URI asked for, as the specification shows
    // (-32002 up to revision 2025-11-25, invalid params after).
    let e = &bad["unknown_resource_error"];
    assert!(e["code"] == -32002 || e["code"] == -32602, "{e}");
    assert_eq!(e["data"]["uri"], "meanwhile://tasks/999999/output", "{e}");
    // Only what is served is declared: no prompts.
    let caps: Vec<&str> = obs["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert!(!caps.contains(&"prompts"), "{caps:?}");
    assert!(
        caps.contains(&"tools") && caps.contains(&"resources"),
        "{caps:?}"
    );
    assert!(text(&bad["foreign_resource"]).contains("meanwhile://tasks/7/output"));
    assert_eq!(obs["still_serving"]["is_error"], false);
}

#[test]
fn tools_output_notices_and_errors_over_stdio() {
    let home = Home::new();
    let mut cfg = home.stdio_config();
    cfg["session"] = "flow".into();
    let obs = scenario("flow.py", &cfg);
    assert_eq!(obs["protocol"], "2026-07-28");
    check_flow(&obs);
    // The audit trail names the `meanwhile mcp` process on the socket and its session.
    let who = submitter(&home, obs["id"].as_i64().unwrap());
    assert!(
        who.starts_with("uid ") && who.ends_with("(meanwhile) session flow"),
        "{who}"
    );
}

#[test]
fn the_initialize_lifecycle_works_too_over_stdio() {
    let home = Home::new();
    let mut cfg = home.stdio_config();
    cfg["session"] = "legacy".into();
    cfg["mode"] = "legacy".into();
    let obs = scenario("flow.py", &cfg);
    assert_eq!(obs["protocol"], "2025-11-25");
    check_flow(&obs);
}

#[test]
fn a_notice_reaches_the_next_server_after_a_restart_exactly_once() {
    let home = Home::new();
    let obs = scenario("restart.py", &home.stdio_config());
    assert_eq!(obs["first_count"], 1, "{obs}");
    assert_eq!(obs["second_count"], 0, "{obs}");
    // The default session comes from the directory: the second server lists the
    // task the first one started.
    let id = obs["id"].as_i64().unwrap();
    assert!(text(&obs["first"]["text"]).starts_with(&format!("task {id} (")));
}

#[test]
fn mcp_tasks_round_trip_over_stdio() {
    let home = Home::new();
    let mut cfg = home.stdio_config();
    cfg["session"] = "tasks".into();
    check_tasks(&scenario("tasks.py", &cfg));
}

/// What the tasks extension must show (see tests/py/tasks.py).
pub fn check_tasks(obs: &Value) {
    assert_eq!(obs["handle_type"], "TaskHandle", "{obs}");
    assert_eq!(obs["handle"]["status"], "working");
    assert!(text(&obs["handle"]["id"]).starts_with("wait-all-"));
    assert_eq!(obs["first_get"], "working");
    assert_eq!(
        obs["statuses"].as_array().unwrap().last().unwrap(),
        "completed"
    );
    assert!(text(&obs["result"]["text"]).contains("succeeded with exit code 0"));
    assert_eq!(obs["result"]["notices"].as_array().unwrap().len(), 1);
    assert_eq!(
        obs["cancel_statuses"].as_array().unwrap().last().unwrap(),
        "cancelled"
    );
    assert!(text(&obs["after_cancel"]["text"]).contains("cancelled"));
    assert!(text(&obs["bogus"]).contains("unknown task \"no-such-task\""));
    assert_eq!(obs["unknown_wait"]["is_error"], true);
    // A client without the extension gets the plain tool.
    assert!(text(&obs["plain"]["text"]).contains("succeeded with exit code 0"));
}

#[test]
fn an_interactive_task_is_answered_and_a_server_awaited_through_mcp() {
    let home = Home::new();
    let obs = scenario("interactive.py", &home.stdio_config());
    let ready = text(&obs["ready"]["text"]);
    assert!(
        ready.contains("[waiting for input at: >>> (answer with background_input)]"),
        "{obs}"
    );
    assert!(text(&obs["sent"]["text"]).starts_with("Sent 11 bytes to task "));
    assert!(text(&obs["answer"]).contains("42"), "{obs}");
    assert_eq!(obs["bad_key"]["is_error"], true, "{obs}");
    assert!(text(&obs["bad_key"]["text"]).contains("f13"), "{obs}");
    assert!(text(&obs["end"]["text"]).contains("succeeded"), "{obs}");
    let up = text(&obs["listening"]["text"]);
    assert!(up.contains("[listening on http://127.0.0.1:"), "{obs}");
    assert!(
        text(&obs["listed"]["text"]).contains("; listening on http://127.0.0.1:"),
        "{obs}"
    );
    assert_eq!(obs["no_input"]["is_error"], true, "{obs}");
    assert!(
        text(&obs["no_input"]["text"]).contains("takes no input"),
        "{obs}"
    );
}

#[test]
fn background_run_confines_a_task_through_mcp() {
    let home = Home::new();
    let obs = scenario("confined.py", &home.stdio_config());
    assert!(text(&obs["sandboxed"]["text"]).contains("failed"), "{obs}");
    assert!(
        text(&obs["sandboxed_output"]["text"]).contains("Permission denied"),
        "{obs}"
    );
    assert_eq!(obs["escaped"], false, "{obs}");
    assert!(
        text(&obs["hog"]["text"]).contains("memory limit 64M exceeded"),
        "{obs}"
    );
    assert_eq!(obs["bad_memory"]["is_error"], true, "{obs}");
    assert!(
        text(&obs["bad_memory"]["text"]).contains("\"lots\" is not a size"),
        "{obs}"
    );
}
