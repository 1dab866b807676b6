//! A runtime opened on a home that an earlier one left with running tasks.

use crate::support::*;
use meanwhile_runtime::core::TaskState;
use meanwhile_runtime::{Runtime, ShutdownMode, WaitMode};
use std::time::Duration;

async fn leave_running(
    dir: &std::path::Path,
    cmds: &[&str],
) -> Vec<meanwhile_runtime::core::TaskId> {
    let mut cfg = config(dir);
    cfg.shutdown_mode = ShutdownMode::LeaveRunning;
    let rt = Runtime::start(cfg, std::future::pending()).await.unwrap();
    let mut ids = Vec::new();
    for c in cmds {
        let id = rt.submit(sh(c)).await.unwrap();
        pid_of(&rt, id).await;
        ids.push(id);
    }
    rt.shutdown().await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_left_running_are_adopted_with_their_true_status_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let ids = leave_running(dir.path(), &["sleep 1; echo done; exit 3"; 3]).await;
    let rt = Runtime::start(config(dir.path()), std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        rt.get(ids[0]).await.unwrap().state,
        TaskState::Running,
        "adopted, not lost"
    );
    let w = rt
        .wait(&ids, WaitMode::All, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    for t in w.tasks {
        assert_eq!(
            (t.state, t.exit_code, t.attempts),
            (TaskState::Failed, Some(3), 1)
        );
        assert_eq!(output(&rt, t.id).await, "done\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_ended_while_no_runtime_ran_get_their_true_status() {
    let dir = tempfile::tempdir().unwrap();
    let ids = leave_running(dir.path(), &["sleep 0.3; echo bye; exit 7"]).await;
    // The supervisor exits once it has journalled the end.
    let home = meanwhile_runtime::Home::new(dir.path().join("home"));
    let (_, sup) = journalled_pids(&home, ids[0], 1);
    eventually("the task to end with no runtime running", || !alive(sup)).await;
    let rt = Runtime::start(config(dir.path()), std::future::pending())
        .await
        .unwrap();
    let t = finished(&rt, ids[0]).await;
    assert_eq!((t.state, t.exit_code), (TaskState::Failed, Some(7)));
    assert_eq!(output(&rt, t.id).await, "bye\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_end_was_not_seen_is_lost_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let ids = leave_running(dir.path(), &["sleep 300"]).await;
    // Kill the supervisor and the task: nobody is left to record the end.
    let home = meanwhile_runtime::Home::new(dir.path().join("home"));
    let (pid, sup) = journalled_pids(&home, ids[0], 1);
    let nums = [pid, sup];
    use rustix::process::{Pid, Signal, kill_process, kill_process_group};
    let _ = kill_process(Pid::from_raw(nums[1]).unwrap(), Signal::KILL);
    let _ = kill_process_group(Pid::from_raw(nums[0]).unwrap(), Signal::KILL);
    eventually("the supervisor to die", || !alive(nums[1])).await;
    let rt = Runtime::start(config(dir.path()), std::future::pending())
        .await
        .unwrap();
    let t = finished(&rt, ids[0]).await;
    assert_eq!(t.state, TaskState::Lost);
    assert!(
        t.reason
            .unwrap()
            .contains("without recording an exit status")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_cannot_share_a_home() {
    let env = runtime().await;
    let second = Runtime::start(config(env.dir.path()), std::future::pending()).await;
    let e = second.err().expect("refused").to_string();
    assert!(e.contains("another meanwhile runtime is using"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_process_never_started_runs_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let home = meanwhile_runtime::Home::new(dir.path().join("home"));
    std::fs::create_dir_all(home.root()).unwrap();
    // A runtime that claimed the task and died before asking for a process.
    let id =
        claimed_by_a_dead_runtime(&home, sh(&format!("echo ran >> {}", marker.display()))).await;
    let rt = Runtime::start(config(dir.path()), std::future::pending())
        .await
        .unwrap();
    let t = finished(&rt, id).await;
    assert_eq!((t.state, t.attempts), (TaskState::Succeeded, 1));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
}
