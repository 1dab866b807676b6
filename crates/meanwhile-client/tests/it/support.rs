//! Helpers: each test runs its own daemon, in-process, on its own home and socket.

use meanwhile_client::Client;
use meanwhile_server::{ServerError, Settings};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub client: Client,
    pub stop: oneshot::Sender<()>,
    pub handle: JoinHandle<Result<(), ServerError>>,
}

/// Starts a daemon (stopping its tasks at shutdown) and waits until it answers.
pub async fn daemon() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let mut s = Settings::new(&home);
    s.stop_tasks = true;
    let (stop, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(meanwhile_server::serve(s, async {
        let _ = rx.await;
    }));
    let client = Client::for_home(&home);
    for _ in 0..1200 {
        if client.status().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Daemon {
        dir,
        home,
        client,
        stop,
        handle,
    }
}
