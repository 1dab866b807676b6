//! Recovery never acts on a pid it cannot prove is its own.

use crate::support::*;
use meanwhile_runtime::core::TaskState;
use meanwhile_runtime::{Runtime, StopMode};
use std::os::unix::process::CommandExt;

/// A journal from another boot (or a pid since reused) names a live process that
/// is not ours, as both the task's process and its supervisor: the attempt is
/// recorded `lost`, and neither a stop nor recovery signals that process or its
/// group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journalled_pid_that_is_now_another_process_is_never_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let home = meanwhile_runtime::Home::new(dir.path().join("home"));
    std::fs::create_dir_all(home.root()).unwrap();
    let mut stranger = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = stranger.id() as i32;
    // A runtime that started the task and died.
    let id = claimed_by_a_dead_runtime(&home, sh("sleep 300")).await;
    // Its journal names the stranger's pid, with start times that are not its own.
    std::fs::write(home.journal(), format!("S {id} 1 {pid} {pid} 1 1\n")).unwrap();
    let rt = Runtime::start(config(dir.path()), std::future::pending())
        .await
        .unwrap();
    // Settled at open already, in which case the stop is refused; either way no
    // signal may go out.
    let _ = rt.stop(id, StopMode::Force).await;
    let t = finished(&rt, id).await;
    assert_eq!(t.state, TaskState::Lost);
    assert!(alive(pid), "the stranger was killed");
    assert_eq!(stranger.try_wait().unwrap(), None, "the stranger ended");
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

/// Leaves `sleep 300` running under a runtime that shut down, optionally rewrites
/// its journal into the older format (no task start time), reopens the home and
/// stops the adopted task: the stop reaches it.
async fn stop_after_adoption(old_format: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.shutdown_mode = meanwhile_runtime::ShutdownMode::LeaveRunning;
    let rt = Runtime::start(cfg, std::future::pending()).await.unwrap();
    let id = rt.submit(sh("sleep 300")).await.unwrap();
    let pid = pid_of(&rt, id).await;
    rt.shutdown().await;
    drop(rt);
    let home = meanwhile_runtime::Home::new(dir.path().join("home"));
    if old_format {
        let text = std::fs::read_to_string(home.journal()).unwrap();
        let old: String = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                if f[0] == "S" {
                    f[..6].join(" ")
                } else {
                    l.to_string()
                }
            })
            .map(|l| l + "\n")
            .collect();
        assert_ne!(old, text);
        std::fs::write(home.journal(), old).unwrap();
    }
    let rt = Runtime::start(config(dir.path()), std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        rt.get(id).await.unwrap().state,
        TaskState::Running,
        "adopted"
    );
    rt.stop(id, StopMode::Force).await.unwrap();
    let t = finished(&rt, id).await;
    assert_eq!((t.state, t.signal), (TaskState::Cancelled, Some(9)));
    assert!(!alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reaches_an_adopted_task() {
    stop_after_adoption(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_reaches_a_task_adopted_from_an_older_journal() {
    stop_after_adoption(true).await;
}
