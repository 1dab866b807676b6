//! The client used as a `dyn Backend`, as the agent and the MCP server use it.

use meanwhile_client::{Client, ClientError};
use meanwhile_core::{Backend, OutputQuery, StopMode, TaskSpec, TaskState, WaitFor, WaitMode};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_is_a_backend() {
    let d = crate::support::daemon().await;
    let (dir, home, client) = (&d.dir, d.home.clone(), d.client.clone());
    let b: Arc<dyn Backend> = Arc::new(client.clone());
    let mut spec = TaskSpec::shell("echo ready; sleep 300");
    spec.cwd = Some(dir.path().to_path_buf());
    spec.session = Some("s1".into());
    let id = b.submit(spec).await.unwrap();
    let chunk = b
        .read_output(
            id,
            OutputQuery {
                wait: Some(WaitFor::Match("ready".into())),
                timeout: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(chunk.matched.as_deref(), Some("ready"));
    b.stop(id, StopMode::Force).await.unwrap();
    let w = b
        .wait(vec![id], WaitMode::All, Some(Duration::from_secs(120)))
        .await
        .unwrap();
    assert_eq!(w.tasks[0].state, TaskState::Cancelled);
    assert_eq!(b.peek_notifications("s1", 10).await.unwrap().len(), 1);
    assert_eq!(b.drain_notifications("s1", 10).await.unwrap().len(), 1);
    assert!(b.drain_notifications("s1", 10).await.unwrap().is_empty());
    let page = b.list(Default::default()).await.unwrap();
    assert_eq!(page.tasks.len(), 1);
    let e = b.get(meanwhile_core::TaskId(99)).await.unwrap_err();
    assert_eq!(e.code, meanwhile_core::ErrorCode::NotFound);
    let _ = d.stop.send(());
    d.handle.await.unwrap().unwrap();
    // With no daemon, the error says so and how to start one. A fresh client, as a
    // new command would be: the old one's kept-alive connection may still be served
    // (503, shutting down) by a connection task the server has not yet dropped.
    let e = Client::for_home(&home).status().await.unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }));
    assert!(e.to_string().contains("meanwhile serve"), "{e}");
}
