//! Async closures as background tasks: same lifecycle as processes.

use crate::support::*;
use meanwhile_runtime::StopMode;
use meanwhile_runtime::core::http::QueueUpdate;
use meanwhile_runtime::core::{RetryPolicy, TaskSpec, TaskState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_runs_writes_output_and_notifies() {
    let env = runtime().await;
    let spec = TaskSpec {
        name: Some("summarise".into()),
        session: Some("py".into()),
        ..TaskSpec::default()
    };
    let id = env
        .rt
        .submit_fn(spec, |ctx| async move {
            ctx.println("working");
            ctx.progress(Some(50.0), "half way").await.unwrap();
            // The same rule as for every reporter.
            let refused = ctx.progress(Some(140.0), "too far").await.unwrap_err();
            assert_eq!(refused.field(), Some("percent"));
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Succeeded);
    assert_eq!(output(&env.rt, id).await, "working\n");
    let n = env.rt.drain_notifications("py", 10).await.unwrap();
    assert!(
        n[0].text()
            .starts_with(&format!("task {id} (summarise) succeeded"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_closure_is_retried_then_quarantined() {
    let env = runtime().await;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let spec = TaskSpec {
        retry: RetryPolicy {
            max_attempts: 2,
            backoff: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        ..TaskSpec::default()
    };
    let id = env
        .rt
        .submit_fn(spec, move |_ctx| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>("upstream said no")
            }
        })
        .await
        .unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Quarantined);
    assert!(t.reason.unwrap().contains("upstream said no"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closures_are_stopped_and_timed_out_by_dropping_them() {
    let env = runtime().await;
    let id = env
        .rt
        .submit_fn(TaskSpec::default(), |_ctx| async move {
            tokio::time::sleep(Duration::from_secs(300)).await;
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    pid_free_running(&env, id).await;
    env.rt.stop(id, StopMode::Graceful).await.unwrap();
    assert_eq!(finished(&env.rt, id).await.state, TaskState::Cancelled);

    let spec = TaskSpec {
        timeout: Some(Duration::from_millis(200)),
        ..TaskSpec::default()
    };
    let id = env
        .rt
        .submit_fn(spec, |_ctx| async move {
            tokio::time::sleep(Duration::from_secs(300)).await;
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    assert_eq!(finished(&env.rt, id).await.state, TaskState::TimedOut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_closure_fails_its_task_not_the_runtime() {
    let env = runtime().await;
    let id = env
        .rt
        .submit_fn(TaskSpec::default(), |_ctx| async move {
            if true {
                panic!("bad state");
            }
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Failed);
    assert!(t.reason.unwrap().contains("panicked: bad state"));
    assert_eq!(run(&env.rt, sh("true")).await.state, TaskState::Succeeded);
}

async fn pid_free_running(env: &Env, id: meanwhile_runtime::core::TaskId) {
    for _ in 0..2400 {
        if env.rt.get(id).await.unwrap().state == TaskState::Running {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("task {id} never started");
}

/// Submitters no longer wait for each other's commits (the closure registry was
/// locked across them): many at once, each closure runs once, none is called lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_and_batched_closure_submits_all_run_once() {
    let env = runtime().await;
    env.rt
        .set_queue(
            "default",
            QueueUpdate {
                max_parallel: Some(8),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let mut submitters = Vec::new();
    for _ in 0..8 {
        let rt = env.rt.clone();
        let runs = runs.clone();
        submitters.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..25 {
                let runs = runs.clone();
                ids.push(
                    rt.submit_fn(TaskSpec::default(), move |_| {
                        let runs = runs.clone();
                        async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            Ok::<(), String>(())
                        }
                    })
                    .await
                    .unwrap(),
                );
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for s in submitters {
        ids.extend(s.await.unwrap());
    }
    // A batch: the invalid item fails alone, naming its field.
    let bad = TaskSpec {
        queue: Some("no spaces allowed".into()),
        ..TaskSpec::default()
    };
    let batch: Vec<_> = [TaskSpec::default(), bad, TaskSpec::default()]
        .into_iter()
        .map(|s| {
            let runs = runs.clone();
            (s, move |_: meanwhile_runtime::TaskContext| {
                let runs = runs.clone();
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                }
            })
        })
        .collect();
    let r = env.rt.submit_fn_batch(batch).await.unwrap();
    assert_eq!(r.len(), 3);
    assert!(
        r[1].as_ref().unwrap_err().to_string().contains("queue"),
        "{:?}",
        r[1]
    );
    ids.push(*r[0].as_ref().unwrap());
    ids.push(*r[2].as_ref().unwrap());
    let w = env
        .rt
        .wait(
            &ids,
            meanwhile_runtime::WaitMode::All,
            Some(Duration::from_secs(120)),
        )
        .await
        .unwrap();
    assert!(!w.timed_out);
    for t in &w.tasks {
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 202);
}
