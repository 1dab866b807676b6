//! Completion notices reach the model before its next call, exactly once, in a
//! conversation that stays valid for each wire format; slow `bash` commands move to
//! the background.

use crate::support::*;
use meanwhile_agent::{RunStop, Session};
use meanwhile_core::{TaskId, TaskState};
use meanwhile_llm::ProviderKind;
use serde_json::json;
use std::time::Duration;

async fn notice_reaches_the_next_call_once(kind: ProviderKind) {
    let env = runtime().await;
    std::fs::write(env.workspace().join("a.txt"), "alpha\n").unwrap();
    let fake = FakeProvider::start(kind, |c: &Call| match c.index {
        0 => tool("background_run", json!({"command": "echo bg-finished"})),
        1 => {
            let id = c.task_ids()[0];
            tool(
                "background_wait",
                json!({"ids": [id], "timeout_seconds": 170}),
            )
        }
        2 => tool("read_file", json!({"path": "a.txt"})),
        _ => text("done"),
    })
    .await;
    let events = Events::default();
    let mut session = Session::new(
        &fake.config(&env.workspace()),
        fake.config(&env.workspace()).build_provider().unwrap(),
        env.backend.clone(),
    )
    .unwrap();
    let outcome = session.send("go", &mut events.sink()).await.unwrap();
    assert_eq!(outcome.stop, RunStop::Answered);
    assert_eq!(outcome.answer, "done");
    assert_eq!(outcome.turns, 4);

    let calls = fake.calls();
    assert_eq!(calls.len(), 4);
    let id = calls[1].task_ids()[0];
    let task = finished(&env.rt, TaskId(id)).await;
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    let notice = format!("task {id} (echo bg-finished) succeeded");
    let seen: Vec<usize> = calls.iter().map(|c| c.count(&notice)).collect();
    // Absent before the task ended, then in the request right after, and from there on
    // only as that one message of the history: never repeated, never lost.
    assert_eq!(seen, [0, 0, 1, 1], "{notice}");
    assert!(calls[2].text().contains("bg-finished"));
    for c in &calls {
        c.assert_well_formed();
    }
    assert_eq!(events.notices(), [id]);
    // The notice went with the results of the tool calls, not as a user turn of its own.
    assert!(
        calls[2]
            .results_text()
            .contains(&format!("task {id} (echo bg-finished): succeeded"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_notice_reaches_the_next_anthropic_call_exactly_once() {
    notice_reaches_the_next_call_once(ProviderKind::Anthropic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_notice_reaches_the_next_openai_call_exactly_once() {
    notice_reaches_the_next_call_once(ProviderKind::OpenAi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_bash_moves_to_the_background_and_its_notice_arrives_in_the_next_message() {
    let env = runtime().await;
    let fake = FakeProvider::start(ProviderKind::Anthropic, |c: &Call| match c.index {
        0 => tools(vec![
            ("bash", json!({"command": "echo quick"})),
            ("bash", json!({"command": "sleep 3; echo slow-done"})),
        ]),
        1 => text("it is running in the background"),
        _ => text("it finished"),
    })
    .await;
    let mut config = fake.config(&env.workspace());
    config.bash_background_after = Duration::from_secs(1);
    let mut session = Session::new(
        &config,
        config.build_provider().unwrap(),
        env.backend.clone(),
    )
    .unwrap();
    let events = Events::default();
    let first = session.send("run them", &mut events.sink()).await.unwrap();
    assert_eq!(first.answer, "it is running in the background");

    let calls = fake.calls();
    let results = calls[1].tool_results();
    assert_eq!(results[0], ("exit code 0\nquick\n".to_string(), false));
    assert!(
        results[1].0.contains("continues in the background as task"),
        "{}",
        results[1].0
    );
    let slow = *calls[1].task_ids().last().unwrap();
    let task = finished(&env.rt, TaskId(slow)).await;
    assert_eq!(task.state, TaskState::Succeeded, "{task:?}");
    assert!(output(&env.rt, TaskId(slow)).await.contains("slow-done"));

    // The next message's model call hears how it ended; the quick command, whose end
    // the model already saw, is not reported again.
    let second = session.send("and now?", &mut events.sink()).await.unwrap();
    assert_eq!(second.answer, "it finished");
    let last = &fake.calls()[2];
    last.assert_well_formed();
    assert_eq!(
        last.count(&format!("task {slow} (sleep 3; echo slow-done) succeeded")),
        1
    );
    assert_eq!(last.count("(echo quick) succeeded"), 0);
    assert_eq!(events.notices(), [slow]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_session_of_the_same_name_receives_the_notices_of_an_earlier_one() {
    let env = runtime().await;
    let fake = FakeProvider::start(ProviderKind::OpenAi, |c: &Call| match c.index {
        0 => tool(
            "background_run",
            json!({"command": "sleep 1; echo left-running"}),
        ),
        1 => text("started it"),
        _ => text("heard about it"),
    })
    .await;
    let config = fake.config(&env.workspace());
    let mut first = Session::new(
        &config,
        config.build_provider().unwrap(),
        env.backend.clone(),
    )
    .unwrap();
    first.send("start", &mut |_| {}).await.unwrap();
    let id = fake.calls()[1].task_ids()[0];
    drop(first);
    finished(&env.rt, TaskId(id)).await;

    let mut second = Session::new(
        &config,
        config.build_provider().unwrap(),
        env.backend.clone(),
    )
    .unwrap();
    let out = second.send("anything new?", &mut |_| {}).await.unwrap();
    assert_eq!(out.answer, "heard about it");
    assert_eq!(
        fake.calls()[2].count(&format!("task {id} (sleep 1; echo left-running) succeeded")),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_turn_stops_its_foreground_command_and_keeps_the_conversation_valid() {
    let env = runtime().await;
    let fake = FakeProvider::start(ProviderKind::Anthropic, |c: &Call| match c.index {
        0 => tool("bash", json!({"command": "sleep 300"})),
        _ => text("ok, stopped"),
    })
    .await;
    let mut config = fake.config(&env.workspace());
    config.bash_background_after = Duration::from_secs(600);
    let mut session = Session::new(
        &config,
        config.build_provider().unwrap(),
        env.backend.clone(),
    )
    .unwrap();
    let rt = env.rt.clone();
    let cancel = async move {
        // Cancel once the command is running, as a user's Ctrl-C would.
        loop {
            let page = rt.list(Default::default()).await.unwrap();
            if page.tasks.iter().any(|t| t.state == TaskState::Running) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let out = session
        .send_until("sleep", &mut |_| {}, cancel)
        .await
        .unwrap();
    assert_eq!(out.stop, RunStop::Cancelled);
    let started = session.started_tasks();
    assert_eq!(started.len(), 1);
    let task = finished(&env.rt, started[0]).await;
    assert_eq!(task.state, TaskState::Cancelled);

    let next = session.send("what happened?", &mut |_| {}).await.unwrap();
    assert_eq!(next.answer, "ok, stopped");
    let call = &fake.calls()[1];
    call.assert_well_formed();
    assert!(
        call.results_text().contains("cancelled the turn"),
        "{}",
        call.text()
    );
}
