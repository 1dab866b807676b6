//! Stopping and timeouts: whole process trees, grace periods, no orphans.

use crate::support::*;
use meanwhile_runtime::StopMode;
use meanwhile_runtime::core::TaskState;
use meanwhile_runtime::core::http::QueueUpdate;
use std::time::Duration;

const STUBBORN: &str = r#"trap "" TERM; sleep 300 & sleep 300 & wait"#;

async fn supervisor_of(env: &Env, id: meanwhile_runtime::core::TaskId) -> i32 {
    journalled_pids(env.rt.home(), id, 1).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_tree_that_ignores_sigterm_leaves_no_process() {
    let env = runtime().await;
    let id = env.rt.submit(sh(STUBBORN)).await.unwrap();
    let pgid = pid_of(&env.rt, id).await;
    eventually("the shell and both sleeps", || {
        group_members(pgid).len() == 3
    })
    .await;
    let supervisor = supervisor_of(&env, id).await;
    assert!(alive(supervisor));
    env.rt.stop(id, StopMode::Graceful).await.unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Cancelled);
    assert_eq!(t.signal, Some(9), "TERM was ignored, so KILL ended it");
    assert_eq!(
        group_members(pgid),
        Vec::<i32>::new(),
        "no process of the tree is left"
    );
    // Its supervisor went back to the pool, holding nothing of the task, or is gone.
    eventually("the supervisor to be idle or gone", || {
        !alive(supervisor)
            || std::fs::read(format!("/proc/{supervisor}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"meanwhile-supervise idle"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_lets_a_task_clean_up() {
    let env = runtime().await;
    let id = env
        .rt
        .submit(sh(
            r#"trap 'echo cleaning up; exit 0' TERM; echo ready; sleep 300 & wait"#,
        ))
        .await
        .unwrap();
    output_matches(&env.rt, id, "ready").await;
    env.rt.stop(id, StopMode::Graceful).await.unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Cancelled);
    assert!(output(&env.rt, id).await.contains("cleaning up"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_skips_the_grace_period() {
    let env = runtime().await;
    let mut spec = sh(STUBBORN);
    spec.grace = Some(Duration::from_secs(600));
    let id = env.rt.submit(spec).await.unwrap();
    let pgid = pid_of(&env.rt, id).await;
    eventually("the tree", || group_members(pgid).len() == 3).await;
    env.rt.stop(id, StopMode::Force).await.unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!((t.state, t.signal), (TaskState::Cancelled, Some(9)));
    assert!(group_members(pgid).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_stops_the_tree_and_says_timed_out() {
    let env = runtime().await;
    let mut spec = sh(STUBBORN);
    spec.timeout = Some(Duration::from_millis(300));
    spec.session = Some("t".into());
    let t = run(&env.rt, spec).await;
    assert_eq!(t.state, TaskState::TimedOut);
    assert_eq!(t.reason.as_deref(), Some("timed out after 300ms"));
    let pgid = env.rt.attempts(t.id).await.unwrap()[0].pid.unwrap();
    assert!(group_members(pgid).is_empty());
    let n = env.rt.drain_notifications("t", 10).await.unwrap();
    assert!(n[0].text().contains("timed out"), "{}", n[0].text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_leftovers_die_with_the_main_process() {
    let env = runtime().await;
    let t = run(&env.rt, sh("sleep 300 & echo started")).await;
    assert_eq!(t.state, TaskState::Succeeded);
    let pgid = env.rt.attempts(t.id).await.unwrap()[0].pid.unwrap();
    eventually("the leftover sleep to be killed", || {
        group_members(pgid).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_pending_task_never_starts_it() {
    let env = runtime().await;
    env.rt
        .set_queue(
            "held",
            QueueUpdate {
                max_parallel: Some(1),
                paused: Some(true),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
    let marker = env.dir.path().join("started");
    let mut spec = sh(&format!("touch {}", marker.display()));
    spec.queue = Some("held".into());
    let id = env.rt.submit(spec).await.unwrap();
    let t = env.rt.stop(id, StopMode::Graceful).await.unwrap();
    assert_eq!(t.state, TaskState::Cancelled);
    env.rt
        .set_queue(
            "held",
            QueueUpdate {
                paused: Some(false),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
    // A task submitted afterwards to the same one-slot queue has run: the cancelled
    // one, older, would have been claimed first.
    let mut later = sh("true");
    later.queue = Some("held".into());
    run(&env.rt, later).await;
    assert!(!marker.exists());
    assert_eq!(env.rt.attempts(id).await.unwrap().len(), 0);
    let e = env.rt.stop(id, StopMode::Graceful).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("a cancelled task cannot be cancelled"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_running_tasks_by_default() {
    let env = runtime().await;
    let id = env.rt.submit(sh(STUBBORN)).await.unwrap();
    let pgid = pid_of(&env.rt, id).await;
    eventually("the tree", || group_members(pgid).len() == 3).await;
    env.rt.shutdown().await;
    assert!(group_members(pgid).is_empty());
    assert_eq!(env.rt.get(id).await.unwrap().state, TaskState::Cancelled);
    assert!(
        env.rt.submit(sh("true")).await.is_err(),
        "no submits after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_mode_overrides_the_configured_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.shutdown_mode = meanwhile_runtime::ShutdownMode::LeaveRunning;
    let rt = meanwhile_runtime::Runtime::start(cfg, std::future::pending())
        .await
        .unwrap();
    let id = rt.submit(sh("sleep 300")).await.unwrap();
    let pgid = pid_of(&rt, id).await;
    rt.shutdown_with(meanwhile_runtime::ShutdownMode::StopTasks)
        .await;
    assert!(group_members(pgid).is_empty(), "stopped, not left running");
    assert_eq!(rt.get(id).await.unwrap().state, TaskState::Cancelled);
}

/// Regression: a stop was only carried out when the attempt's watcher next ran, so a
/// program that stopped a task and exited at once left the task running.
#[test]
fn a_forced_stop_is_delivered_before_stop_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (pgid, supervisor) = {
        let tokio_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        tokio_rt.block_on(async {
            let rt = meanwhile_runtime::Runtime::start(config(dir.path()), std::future::pending())
                .await
                .unwrap();
            let id = rt.submit(sh("sleep 300")).await.unwrap();
            let pgid = pid_of(&rt, id).await;
            let supervisor = journalled_pids(rt.home(), id, 1).1;
            rt.stop(id, StopMode::Force).await.unwrap();
            (pgid, supervisor)
        })
        // The Tokio runtime, and the meanwhile runtime's tasks with it, end here.
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !group_members(pgid).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        group_members(pgid).is_empty(),
        "the task outlived its forced stop"
    );
    while alive(supervisor) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(supervisor));
}

/// Stops spread over the moments right after a submit (pending, being claimed,
/// registered, starting) all end the task cancelled; none runs on. The narrow
/// window between a claim's commit and the attempt's registration is rarely hit
/// here: the hand-over of a stop that falls into it is tested directly in
/// `stop.rs`'s unit tests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_racing_the_claim_are_never_lost() {
    let env = runtime().await;
    let mut ids = Vec::new();
    for i in 0..60u64 {
        let id = env.rt.submit(sh("sleep 300")).await.unwrap();
        // Spread the stops over the window between submit, claim and registration.
        tokio::time::sleep(Duration::from_micros(40 * i)).await;
        env.rt.stop(id, StopMode::Graceful).await.unwrap();
        ids.push(id);
    }
    for id in ids {
        let t = finished(&env.rt, id).await;
        assert_eq!(t.state, TaskState::Cancelled, "task {id}");
    }
}
