//! Slow work in the background while the agent keeps working.

use crate::support::*;
use meanwhile_agent::{RunStop, Session};
use meanwhile_core::{TaskId, TaskState};
use meanwhile_llm::ProviderKind;
use serde_json::json;

fn started_ids(c: &Call) -> Vec<i64> {
    let re = regex::Regex::new(r"Started task (\d+)").unwrap();
    let mut ids: Vec<i64> = re
        .captures_iter(&c.text())
        .map(|m| m[1].parse().unwrap())
        .collect();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_background_sleeps_end_in_order_while_the_agent_writes_a_file() {
    let env = runtime().await;
    let fake = FakeProvider::start(ProviderKind::Anthropic, |c: &Call| match c.index {
        0 => tools(vec![
            (
                "background_run",
                json!({"command": "sleep 2; echo two", "name": "sleep-2"}),
            ),
            (
                "background_run",
                json!({"command": "sleep 4; echo four", "name": "sleep-4"}),
            ),
            (
                "background_run",
                json!({"command": "sleep 6; echo six", "name": "sleep-6"}),
            ),
        ]),
        1 => tool(
            "write_file",
            json!({"path": "notes/plan.md", "content": "written while the sleeps run\n"}),
        ),
        2 => tool("background_list", json!({})),
        3 => tool(
            "background_wait",
            json!({"ids": started_ids(c), "timeout_seconds": 170}),
        ),
        _ => text("all three are done"),
    })
    .await;
    let config = fake.config(&env.workspace());
    let mut session = Session::new(
        &config,
        config.build_provider().unwrap(),
        env.backend.clone(),
    )
    .unwrap();
    let events = Events::default();
    let out = session
        .send("sleep thrice", &mut events.sink())
        .await
        .unwrap();
    assert_eq!(out.stop, RunStop::Answered);
    assert_eq!(out.answer, "all three are done");

    let calls = fake.calls();
    assert_eq!(calls.len(), 5);
    let ids = started_ids(&calls[1]);
    assert_eq!(ids.len(), 3);
    let written = env.workspace().join("notes/plan.md");
    assert_eq!(
        std::fs::read_to_string(&written).unwrap(),
        "written while the sleeps run\n"
    );
    let mtime = std::fs::metadata(&written)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;

    let mut tasks = Vec::new();
    for (id, word) in ids.iter().zip(["two", "four", "six"]) {
        let t = finished(&env.rt, TaskId(*id)).await;
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        assert_eq!(output(&env.rt, TaskId(*id)).await, format!("{word}\n"));
        tasks.push(t);
    }
    // They ran side by side and ended in the order of their sleeps, and the file was
    // written while the longest one was still running.
    let ends: Vec<i64> = tasks.iter().map(|t| t.finished_at.unwrap().0).collect();
    assert!(ends[0] <= ends[1] && ends[1] <= ends[2], "{ends:?}");
    assert!(
        mtime < ends[2],
        "file written at {mtime}, last sleep ended at {}",
        ends[2]
    );
    assert!(calls[3].results_text().contains("sleep-6"));

    // Each completion notice reached the model once: in the last request every one is
    // there exactly once, and each was delivered as an event once.
    let last = &calls[4];
    last.assert_well_formed();
    for (id, name) in ids.iter().zip(["sleep-2", "sleep-4", "sleep-6"]) {
        assert_eq!(
            last.count(&format!("task {id} ({name}) succeeded")),
            1,
            "{id}"
        );
    }
    let mut noticed = events.notices();
    noticed.sort();
    assert_eq!(noticed, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tests_run_in_the_background_while_the_agent_edits_code() {
    let env = runtime().await;
    let ws = env.workspace();
    std::fs::write(
        ws.join("run_tests.sh"),
        "sleep 2\necho 'running 3 tests'\necho 'test result: ok. 3 passed'\n",
    )
    .unwrap();
    std::fs::write(ws.join("lib.txt"), "fn answer() -> u32 { 41 }\n").unwrap();
    let fake = FakeProvider::start(ProviderKind::OpenAi, |c: &Call| {
        let heard = c.text().contains("(tests) succeeded");
        match c.index {
            0 => tool(
                "background_run",
                json!({"command": "sh run_tests.sh", "name": "tests"}),
            ),
            1 => tool("read_file", json!({"path": "lib.txt"})),
            2 => tool(
                "edit_file",
                json!({"path": "lib.txt", "old_text": "41", "new_text": "42"}),
            ),
            _ if heard => text("tests passed (3) and the answer is fixed"),
            // Nothing left to do but wait for the notice: do a little work meanwhile.
            _ => tool("bash", json!({"command": "sleep 1; cat lib.txt"})),
        }
    })
    .await;
    let config = fake.config(&ws);
    let events = Events::default();
    let out = meanwhile_agent::run_prompt(
        &config,
        env.backend.clone(),
        "fix and test",
        &mut events.sink(),
    )
    .await
    .unwrap();
    assert_eq!(out.answer, "tests passed (3) and the answer is fixed");
    assert_eq!(
        std::fs::read_to_string(ws.join("lib.txt")).unwrap(),
        "fn answer() -> u32 { 42 }\n"
    );
    let calls = fake.calls();
    assert!(
        calls[2]
            .results_text()
            .contains("     1\tfn answer() -> u32 { 41 }")
    );
    assert!(calls[3].results_text().contains("Edited lib.txt"));
    let test_id = calls[1].task_ids()[0];
    let first_heard = calls
        .iter()
        .position(|c| c.text().contains("(tests) succeeded"))
        .unwrap();
    for c in &calls[first_heard..] {
        assert_eq!(c.count(&format!("task {test_id} (tests) succeeded")), 1);
        assert_eq!(c.count("test result: ok. 3 passed"), 1);
        c.assert_well_formed();
    }
    assert_eq!(events.notices(), [test_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_run_takes_a_concurrency_key_an_end_hook_and_a_stall_limit() {
    let env = runtime().await;
    let answer = meanwhile_agent::call_background_tool(
        env.backend.as_ref(),
        None,
        "background_run",
        json!({
            "command": "true",
            "concurrency_key": "customer-42",
            "on_end": "echo ended",
            "stall_seconds": 90,
            "stall_action": "stop"
        }),
    )
    .await
    .unwrap();
    let id: i64 = regex::Regex::new(r"Started task (\d+)")
        .unwrap()
        .captures(&answer)
        .unwrap()[1]
        .parse()
        .unwrap();
    let t = env.backend.get(TaskId(id)).await.unwrap();
    assert_eq!(t.concurrency_key.as_deref(), Some("customer-42"));
    assert_eq!(t.spec.on_end.as_deref(), Some("echo ended"));
    assert_eq!(t.spec.stall, Some(std::time::Duration::from_secs(90)));
    assert_eq!(t.spec.stall_action, Some(meanwhile_core::StallAction::Stop));

    let e = meanwhile_agent::call_background_tool(
        env.backend.as_ref(),
        None,
        "background_run",
        json!({"command": "true", "stall_action": "pause"}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("stall_action"), "{e}");
}
