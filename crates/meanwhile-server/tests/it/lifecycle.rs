//! Shutdown: long waits are cut short, in-flight requests finish, and tasks are left
//! running for the next daemon (or stopped, when asked).

use crate::support::*;
use meanwhile_core::{ErrorCode, OutputQuery, TaskState, WaitFor, WaitMode};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_long_waits_and_leaves_tasks_for_the_next_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let h = home.clone();
    let mut d = daemon_with(move |s| {
        s.home = h;
        s.stop_tasks = false;
    })
    .await;
    let c = d.client.clone();
    let id = c.submit(&sh("sleep 1; echo done; exit 3")).await.unwrap();
    eventually_running(&c, id).await;
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.wait(&[id], WaitMode::All, None).await })
    };
    let reader = {
        let c = c.clone();
        tokio::spawn(async move {
            c.output(
                id,
                &OutputQuery {
                    wait: Some(WaitFor::Match("never".into())),
                    timeout: Some(Duration::from_secs(600)),
                    ..Default::default()
                },
            )
            .await
        })
    };
    // Both requests are in the daemon's hands before it is told to shut down.
    waiting_requests(&c, 2).await;
    d.shutdown().await.unwrap();
    for e in [
        waiter.await.unwrap().unwrap_err(),
        reader.await.unwrap().unwrap_err(),
    ] {
        assert_eq!(e.api().map(|a| a.code), Some(ErrorCode::Unavailable), "{e}");
    }
    assert!(c.status().await.unwrap_err().is_unreachable());
    // A new daemon on the same home adopts the task and records its true end.
    let h = home.clone();
    let d2 = daemon_with(move |s| s.home = h).await;
    let t = finished(&d2.client, id).await;
    assert_eq!((t.state, t.exit_code), (TaskState::Failed, Some(3)));
    let out = d2.client.output(id, &OutputQuery::default()).await.unwrap();
    assert_eq!(out.text, "done\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_tasks_mode_stops_them_at_shutdown() {
    let mut d = daemon().await;
    let c = d.client.clone();
    let id = c.submit(&sh("sleep 300")).await.unwrap();
    eventually_running(&c, id).await;
    let done = d.begin_shutdown();
    done.await.unwrap().unwrap();
    let h = d.home.clone();
    let d2 = daemon_with(move |s| s.home = h).await;
    let t = d2.client.get(id).await.unwrap();
    assert_eq!(t.state, TaskState::Cancelled);
}
