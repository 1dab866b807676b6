//! Recovery never acts on a pid it cannot prove is its own.

use crate::support::*;
use meanwhile_runtime::core::TaskState;
use meanwhile_runtime::store::{ClaimRequest, NewTask, SqliteStore, Store};
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
    let id = {
        // A runtime that started the task and died.
        let store = SqliteStore::open(&home.database()).unwrap();
        let spec = sh("sleep 300").validate().unwrap();
        let now = meanwhile_runtime::now();
        let r = store.submit(vec![NewTask { spec, now }]).await.unwrap();
        let id = r[0].as_ref().unwrap().id();
        let claim = ClaimRequest {
            node: "gone".into(),
            now,
            lease_until: now,
            kinds: vec![meanwhile_runtime::core::TaskKind::Shell],
            limit: 1,
        };
        assert_eq!(store.claim(claim).await.unwrap().tasks.len(), 1);
        id
    };
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
