//! Sub-agents: agent tasks in parallel within their queue's limit, and stopping one.

use crate::support::*;
use meanwhile_agent::{AgentExecutor, Session};
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{AgentSpec, ListFilter, TaskKind, TaskSpec, TaskState};
use meanwhile_llm::ProviderKind;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_agents_run_in_parallel_within_max_parallel() {
    let env = runtime().await;
    env.rt
        .set_queue(
            "agents",
            QueueUpdate {
                max_parallel: Some(2),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
    let fake = FakeProvider::start(ProviderKind::Anthropic, |c: &Call| {
        let prompt = c.prompt();
        let first = c.body["messages"].as_array().unwrap().len() == 1;
        if let Some(k) = prompt.strip_prefix("sub-agent job ") {
            return if first {
                tool("bash", json!({"command": format!("sleep 2; echo job-{k}")}))
            } else {
                text(&format!("answer-{k}"))
            };
        }
        if first {
            return tools(
                (1..=3)
                    .map(|k| {
                        (
                            "spawn_agent",
                            json!({"prompt": format!("sub-agent job {k}"), "name": format!("job-{k}"), "queue": "agents"}),
                        )
                    })
                    .collect(),
            );
        }
        if c.results_text().contains("Started sub-agent") {
            return tool(
                "background_wait",
                json!({"ids": c.task_ids(), "timeout_seconds": 170}),
            );
        }
        text("parent done")
    })
    .await;
    let config = fake.config(&env.workspace());
    env.rt.register_executor(
        TaskKind::Agent,
        Arc::new(AgentExecutor::new(config.clone())),
    );
    let mut parent = Session::new(
        &config,
        config.build_provider().unwrap(),
        env.backend.clone(),
    )
    .unwrap();
    let out = parent.send("parent", &mut |_| {}).await.unwrap();
    assert_eq!(out.answer, "parent done");

    let subs = parent.started_tasks();
    assert_eq!(subs.len(), 3);
    let mut spans = Vec::new();
    for (i, id) in subs.iter().enumerate() {
        let t = finished(&env.rt, *id).await;
        let k = i + 1;
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        assert_eq!(t.queue, "agents");
        assert_eq!(t.result.as_deref(), Some(format!("answer-{k}").as_str()));
        let transcript = output(&env.rt, *id).await;
        assert!(transcript.contains(&format!("job-{k}")), "{transcript}");
        assert!(
            transcript.contains(&format!("final answer:\nanswer-{k}")),
            "{transcript}"
        );
        spans.push((t.started_at.unwrap().0, t.finished_at.unwrap().0));
    }
    // At most two at once, and two did run at once.
    let most = spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(most, 2, "{spans:?}");
    let wait_result = fake
        .calls()
        .iter()
        .map(|c| c.results_text())
        .find(|r| r.contains("final answer of task"))
        .unwrap();
    for k in 1..=3 {
        assert!(
            wait_result.contains(&format!("answer-{k}")),
            "{wait_result}"
        );
    }
}

async fn session_tasks(env: &Env, session: &str) -> Vec<meanwhile_core::TaskRecord> {
    env.rt
        .list(ListFilter {
            session: Some(session.to_string()),
            ..ListFilter::default()
        })
        .await
        .unwrap()
        .tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_an_agent_task_stops_its_model_call_and_its_processes() {
    let env = runtime().await;
    let fake = FakeProvider::start(ProviderKind::OpenAi, |c: &Call| {
        let first = c.body["messages"].as_array().unwrap().len() <= 2;
        match (c.prompt().as_str(), first) {
            // One agent leaves a process in the background and then thinks for ever.
            ("hang in the model", true) => tool(
                "background_run",
                json!({"command": "sleep 300", "name": "bg-sleep"}),
            ),
            ("hang in the model", false) => Turn::Hang,
            // The other waits on a command in the foreground.
            (_, _) => tool("bash", json!({"command": "sleep 301"})),
        }
    })
    .await;
    let mut config = fake.config(&env.workspace());
    config.bash_background_after = Duration::from_secs(600);
    env.rt
        .register_executor(TaskKind::Agent, Arc::new(AgentExecutor::new(config)));

    for prompt in ["hang in the model", "hang in bash"] {
        let spec = TaskSpec {
            agent: Some(AgentSpec {
                prompt: prompt.into(),
                max_turns: Some(10),
                ..AgentSpec::default()
            }),
            cwd: Some(env.workspace()),
            ..TaskSpec::default()
        };
        let before = fake.count();
        let id = env.rt.submit(spec).await.unwrap();
        let session = format!("agent-task-{id}");
        let want_calls = if prompt == "hang in the model" { 2 } else { 1 };
        for _ in 0..3600 {
            let running = session_tasks(&env, &session)
                .await
                .iter()
                .any(|t| t.state == TaskState::Running);
            let progressed = env.rt.get(id).await.unwrap().progress.is_some();
            if running && progressed && fake.count() >= before + want_calls {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let agent = env.rt.get(id).await.unwrap();
        assert_eq!(agent.state, TaskState::Running, "{agent:?}");
        assert!(agent.progress.is_some(), "progress is reported: {agent:?}");

        env.rt
            .stop(id, meanwhile_core::StopMode::Graceful)
            .await
            .unwrap();
        let agent = finished(&env.rt, id).await;
        assert_eq!(agent.state, TaskState::Cancelled);
        let children = session_tasks(&env, &session).await;
        assert_eq!(children.len(), 1, "{prompt}: {children:?}");
        let child = finished(&env.rt, children[0].id).await;
        assert_eq!(child.state, TaskState::Cancelled, "{prompt}: {child:?}");
        let transcript = output(&env.rt, id).await;
        assert!(transcript.contains("tool call:"), "{transcript}");
        // The hung model call was abandoned, not answered: no further request came.
        assert_eq!(fake.count(), before + want_calls, "{prompt}");
    }
}
