//! A request is never applied twice: a connection that breaks after a request was
//! written is resent only when resending is harmless.

use hyper::Method;
use meanwhile_client::Client;
use meanwhile_core::TaskSpec;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Forwards connections from `listen` to the daemon at `daemon`; while `cut` is set,
/// the next answer the daemon sends is dropped together with the connection, as a
/// network fault after the daemon acted on the request would.
fn proxy(listen: &Path, daemon: &Path, cut: Arc<AtomicBool>) {
    let listener = UnixListener::bind(listen).unwrap();
    let daemon = daemon.to_path_buf();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let daemon = daemon.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                let mut server = UnixStream::connect(&daemon).await.unwrap();
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = tokio::io::copy(&mut cr, &mut sw);
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = sr.read(&mut buf).await?;
                        if n == 0 || cut.swap(false, Ordering::SeqCst) {
                            return Ok::<_, std::io::Error>(());
                        }
                        cw.write_all(&buf[..n]).await?;
                    }
                };
                // Whichever side ends first ends the connection, both ways.
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_connection_never_doubles_a_request() {
    let d = crate::support::daemon().await;
    let (dir, home, direct) = (&d.dir, &d.home, &d.client);
    let cut = Arc::new(AtomicBool::new(false));
    let proxied = dir.path().join("proxy.sock");
    proxy(&proxied, &home.join("meanwhile.sock"), cut.clone());
    let client = Client::unix(&proxied);
    let mut spec = TaskSpec::shell("true");
    spec.cwd = Some(dir.path().to_path_buf());

    // A submit: the daemon creates the task, its answer is lost with the kept-alive
    // connection, the client sends it again with the same idempotency key of its
    // own, and gets the same task.
    client.status().await.unwrap();
    cut.store(true, Ordering::SeqCst);
    let id = client.submit(&spec).await.unwrap();
    assert!(!cut.load(Ordering::SeqCst), "the answer was cut");
    let page = direct.list(&Default::default()).await.unwrap();
    assert_eq!(page.tasks.len(), 1, "one task: {:?}", page.tasks);
    assert_eq!(page.tasks[0].id, id);

    // A request that is not safe to repeat fails instead of being sent again.
    client.status().await.unwrap();
    cut.store(true, Ordering::SeqCst);
    let body = serde_json::to_vec(&spec).unwrap();
    let err = client
        .raw(Method::POST, "/v1/tasks", Some(body))
        .await
        .unwrap_err();
    assert!(!cut.load(Ordering::SeqCst), "the answer was cut");
    assert!(
        err.to_string().contains("closed") || err.to_string().contains("connection"),
        "{err}"
    );
    let page = direct.list(&Default::default()).await.unwrap();
    assert_eq!(
        page.tasks.len(),
        2,
        "applied once, not resent: {:?}",
        page.tasks
    );

    let _ = d.stop.send(());
    d.handle.await.unwrap().unwrap();
}
