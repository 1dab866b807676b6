//! What goes wrong: rate limits, malformed replies, paths that leave the workspace,
//! budgets, bad tool arguments.

use crate::support::*;
use meanwhile_agent::{AgentError, AgentExecutor, BudgetExceeded, RunStop, Session, run_prompt};
use meanwhile_core::{AgentSpec, TaskKind, TaskSpec, TaskState};
use meanwhile_llm::ProviderKind;
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_is_retried_and_the_run_goes_on() {
    let env = runtime().await;
    let fake = FakeProvider::start(ProviderKind::Anthropic, |c: &Call| match c.index {
        0 => Turn::Http(
            429,
            vec![
                ("retry-after", "0".into()),
                ("content-type", "application/json".into()),
            ],
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
                .to_string(),
        ),
        _ => text("hello after the rate limit"),
    })
    .await;
    let out = run_prompt(
        &fake.config(&env.workspace()),
        env.backend.clone(),
        "hi",
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(out.answer, "hello after the rate limit");
    assert_eq!(out.stop, RunStop::Answered);
    assert_eq!(out.usage.calls, 1);
    assert_eq!(out.usage.usage.input_tokens, 100);
    assert_eq!(fake.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_reply_gives_a_clear_error() {
    let env = runtime().await;
    for kind in [ProviderKind::Anthropic, ProviderKind::OpenAi] {
        let fake = FakeProvider::start(kind, |_: &Call| {
            Turn::Http(
                200,
                vec![("content-type", "application/json".into())],
                r#"{"id": "x", "surprise": true}"#.into(),
            )
        })
        .await;
        let err = run_prompt(
            &fake.config(&env.workspace()),
            env.backend.clone(),
            "hi",
            &mut |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                AgentError::Model {
                    retryable: false,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("malformed reply from {}", kind.name())),
            "{msg}"
        );
        assert_eq!(fake.count(), 1, "a malformed reply is not retried");
    }

    // An agent task fails with the same reason.
    let fake = FakeProvider::start(ProviderKind::Anthropic, |_: &Call| {
        Turn::Http(
            200,
            vec![("content-type", "application/json".into())],
            "not json".into(),
        )
    })
    .await;
    env.rt.register_executor(
        TaskKind::Agent,
        Arc::new(AgentExecutor::new(fake.config(&env.workspace()))),
    );
    let id = env
        .rt
        .submit(TaskSpec {
            agent: Some(AgentSpec {
                prompt: "hi".into(),
                ..AgentSpec::default()
            }),
            cwd: Some(env.workspace()),
            ..TaskSpec::default()
        })
        .await
        .unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Failed);
    let reason = t.reason.unwrap_or_default();
    assert!(
        reason.contains("malformed reply from anthropic"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_leave_the_workspace_are_refused() {
    let env = runtime().await;
    let ws = env.workspace();
    let secret = env.dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret\n").unwrap();
    std::os::unix::fs::symlink(&secret, ws.join("leak")).unwrap();
    std::os::unix::fs::symlink(env.dir.path(), ws.join("parent")).unwrap();
    let abs = secret.display().to_string();
    let fake = FakeProvider::start(ProviderKind::Anthropic, move |c: &Call| match c.index {
        0 => tools(vec![
            ("read_file", json!({"path": "../secret.txt"})),
            ("read_file", json!({"path": abs})),
            ("read_file", json!({"path": "leak"})),
            (
                "write_file",
                json!({"path": "parent/evil.txt", "content": "x"}),
            ),
            (
                "edit_file",
                json!({"path": "leak", "old_text": "top", "new_text": "no"}),
            ),
            ("write_file", json!({"path": "../evil.txt", "content": "x"})),
            ("read_file", json!({"paht": "a.txt"})),
            ("no_such_tool", json!({})),
        ]),
        _ => text("refused, as expected"),
    })
    .await;
    let out = run_prompt(
        &fake.config(&ws),
        env.backend.clone(),
        "escape",
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(out.answer, "refused, as expected");
    let results = fake.calls()[1].tool_results();
    let want = [
        "contains `..`, which is refused",
        "is outside the workspace",
        "symlink that leads out of the workspace",
        "symlink that leads out of the workspace",
        "symlink that leads out of the workspace",
        "contains `..`, which is refused",
        "bad arguments for read_file: unknown field `paht`",
        "unknown tool \"no_such_tool\"; the tools you can use are: bash, read_file",
    ];
    assert_eq!(results.len(), want.len());
    for ((text, is_error), want) in results.iter().zip(want) {
        assert!(is_error, "{text}");
        assert!(text.contains(want), "want {want:?} in {text:?}");
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "top secret\n");
    assert!(!env.dir.path().join("evil.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_stop_the_run_before_the_next_model_call() {
    let env = runtime().await;
    std::fs::write(env.workspace().join("a.txt"), "a\n").unwrap();
    for (kind, max_turns, max_tokens, calls) in [
        (ProviderKind::Anthropic, Some(3), None, 3),
        (ProviderKind::OpenAi, None, Some(200), 2),
    ] {
        let fake =
            FakeProvider::start(kind, |_: &Call| tool("read_file", json!({"path": "a.txt"}))).await;
        let mut config = fake.config(&env.workspace());
        config.budget.max_turns = max_turns;
        config.budget.max_tokens = max_tokens;
        let events = Events::default();
        let mut session = Session::new(
            &config,
            config.build_provider().unwrap(),
            env.backend.clone(),
        )
        .unwrap();
        let out = session
            .send("loop for ever", &mut events.sink())
            .await
            .unwrap();
        let RunStop::Budget { exceeded } = &out.stop else {
            panic!("{out:?}")
        };
        match exceeded {
            BudgetExceeded::Turns { used, max } => assert_eq!((*used, *max), (3, 3)),
            BudgetExceeded::Tokens { used, max } => assert_eq!((*used, *max), (240, 200)),
            other => panic!("{other:?}"),
        }
        assert_eq!(fake.count(), calls);
        assert_eq!(out.turns, calls as u32);
        assert_eq!(out.usage.calls, calls as u64);
        assert!(
            out.stop.to_string().contains("budget is spent"),
            "{}",
            out.stop
        );
        assert!(
            events
                .all()
                .iter()
                .any(|e| matches!(e, meanwhile_agent::AgentEvent::BudgetSpent { .. }))
        );
    }
}

/// The executor asks the queue's budget before each model call and charges each
/// call's usage to it: the call that spends it is the last one, and the task fails
/// with the gate's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_task_stops_at_its_queues_spent_budget() {
    let env = runtime().await;
    std::fs::write(env.workspace().join("a.txt"), "a\n").unwrap();
    let fake = FakeProvider::start(ProviderKind::Anthropic, |_: &Call| {
        tool("read_file", json!({"path": "a.txt"}))
    })
    .await;
    env.rt.register_executor(
        TaskKind::Agent,
        Arc::new(AgentExecutor::new(fake.config(&env.workspace()))),
    );
    env.rt
        .set_budget(
            "llm",
            meanwhile_core::BudgetSpec {
                tokens: Some(300),
                ..meanwhile_core::BudgetSpec::default()
            },
        )
        .await
        .unwrap();
    let id = env
        .rt
        .submit(TaskSpec {
            agent: Some(AgentSpec {
                prompt: "loop for ever".into(),
                ..AgentSpec::default()
            }),
            queue: Some("llm".into()),
            cwd: Some(env.workspace()),
            ..TaskSpec::default()
        })
        .await
        .unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Failed);
    // 120 tokens a call: 120, 240, 360; the fourth call never starts.
    assert_eq!(fake.count(), 3);
    assert_eq!((t.tokens, t.model_calls), (360, 3));
    let reason = t.reason.unwrap_or_default();
    assert!(
        reason.starts_with("queue \"llm\" is over its budget: 360 of 300 tokens used this day"),
        "{reason}"
    );
    assert!(
        output(&env.rt, id)
            .await
            .contains("stopped: queue \"llm\" is over its budget")
    );
}
