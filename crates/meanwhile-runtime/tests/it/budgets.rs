//! Budgets through the runtime's library API: what a task that calls a model does
//! with its context (`budget_gate` before each call, `record_usage` after it), and
//! the queue a spent budget pauses and a raised one resumes.

use crate::support::*;
use meanwhile_runtime::core::http::QueueUpdate;
use meanwhile_runtime::core::{
    AlertKind, BudgetSpec, BudgetState, PauseReason, TaskSpec, TaskState,
};
use meanwhile_runtime::{ErrorCode, Runtime};

fn in_queue(queue: &str) -> TaskSpec {
    TaskSpec {
        queue: Some(queue.into()),
        ..TaskSpec::default()
    }
}

async fn queue(rt: &Runtime, name: &str) -> meanwhile_runtime::core::QueueInfo {
    rt.queues()
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.name == name)
        .unwrap()
}

/// A task that "calls a model" of 30 tokens at a time, as an executor does: the
/// gate first, the usage after; it fails with the gate's reason.
async fn model_task(rt: &Runtime, queue: &str) -> meanwhile_runtime::core::TaskRecord {
    let id = rt
        .submit_fn(in_queue(queue), |ctx| async move {
            assert_eq!(ctx.queue(), "llm");
            let calls: Result<(), String> = async {
                loop {
                    ctx.budget_gate().await?;
                    ctx.println("model call");
                    ctx.record_usage(30, 0.001).await;
                }
            }
            .await;
            calls
        })
        .await
        .unwrap();
    finished(rt, id).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stops_at_the_gate_once_its_queues_budget_is_spent() {
    let env = runtime().await;
    let rt = &env.rt;
    let b = rt
        .set_budget(
            "llm",
            BudgetSpec {
                tokens: Some(100),
                ..BudgetSpec::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(b.state, BudgetState::Ok);

    // 30, 60, 90, 120 tokens: the fourth call spends the budget, the fifth never
    // starts.
    let t = model_task(rt, "llm").await;
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!((t.tokens, t.model_calls), (120, 4));
    let reason = t.reason.unwrap();
    assert!(
        reason.starts_with("queue \"llm\" is over its budget: 120 of 100 tokens used this day"),
        "{reason}"
    );
    assert_eq!(output(rt, t.id).await.lines().count(), 4);

    let q = queue(rt, "llm").await;
    assert_eq!(q.pause_reason, Some(PauseReason::Budget));
    let alerts: Vec<_> = rt
        .alerts(false, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == AlertKind::Budget)
        .collect();
    assert_eq!(alerts.len(), 3);

    // A resume by hand is refused; a raise resumes the queue.
    let e = rt
        .set_queue(
            "llm",
            QueueUpdate {
                paused: Some(false),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("paused"));
    assert_eq!(
        meanwhile_runtime::ApiError::from(e).code,
        ErrorCode::Conflict
    );
    rt.set_budget(
        "llm",
        BudgetSpec {
            tokens: Some(1000),
            ..BudgetSpec::default()
        },
    )
    .await
    .unwrap();
    assert!(!queue(rt, "llm").await.paused);
    assert_eq!(rt.budget("llm").await.unwrap().used_tokens, 120);
    rt.remove_budget("llm").await.unwrap();
    assert!(rt.budgets().await.unwrap().is_empty());
    let e = rt.budget("llm").await.unwrap_err();
    assert_eq!(
        meanwhile_runtime::ApiError::from(e).code,
        ErrorCode::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_without_a_budget_passes_the_gate_and_keeps_its_usage() {
    let env = runtime().await;
    let rt = &env.rt;
    let id = rt
        .submit_fn(TaskSpec::default(), |ctx| async move {
            for _ in 0..3 {
                ctx.budget_gate().await?;
                ctx.record_usage(7, 0.5).await;
            }
            // A cost that is not a number is counted as nothing.
            ctx.record_usage(1, f64::NAN).await;
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    let t = finished(rt, id).await;
    assert_eq!(t.state, TaskState::Succeeded);
    assert_eq!((t.tokens, t.model_calls, t.cost_usd), (22, 4, 1.5));
    // Bad budgets are refused naming the field.
    let e = rt
        .set_budget("llm", BudgetSpec::default())
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("tokens"));
    let e = rt
        .set_budget(
            "a b",
            BudgetSpec {
                tokens: Some(1),
                ..BudgetSpec::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("queue"));
}
