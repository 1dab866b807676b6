//! Helpers: each test runs its own daemon, in-process, on its own home and socket.

use meanwhile_client::Client;
use meanwhile_core::{TaskId, TaskRecord, WaitMode};
use meanwhile_server::{ServerError, Settings};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Daemon {
    pub _dir: tempfile::TempDir,
    pub home: PathBuf,
    pub client: Client,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
}

pub async fn daemon() -> Daemon {
    daemon_with(|_| {}).await
}

pub async fn daemon_with(f: impl FnOnce(&mut Settings)) -> Daemon {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("h");
    let mut s = Settings::new(&home);
    s.stop_tasks = true;
    s.grace = Duration::from_millis(500);
    f(&mut s);
    let home = s.home.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(meanwhile_server::serve(s, async {
        let _ = rx.await;
    }));
    let client = Client::for_home(&home);
    let mut last = None;
    for _ in 0..1200 {
        let st = client.status().await;
        if st.is_ok() {
            return Daemon {
                _dir: dir,
                home,
                client,
                stop: Some(tx),
                handle: Some(handle),
            };
        }
        if handle.is_finished() {
            panic!("the daemon stopped: {:?}", handle.await);
        }
        last = st.err();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon never answered: {last:?}");
}

impl Daemon {
    /// Shuts the daemon down as SIGTERM would, and waits until it has.
    pub async fn shutdown(&mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => h.await.unwrap(),
            None => Ok(()),
        }
    }

    /// Waits until the daemon has stopped of its own accord (a shutdown request).
    pub async fn exited(&mut self) -> Result<(), ServerError> {
        self.handle.take().unwrap().await.unwrap()
    }

    /// Starts the shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) -> JoinHandle<Result<(), ServerError>> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.take().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Waits (generously) for a task to end.
pub async fn finished(c: &Client, id: TaskId) -> TaskRecord {
    let w = c
        .wait(&[id], WaitMode::All, Some(Duration::from_secs(120)))
        .await
        .unwrap();
    assert!(!w.timed_out, "task {id} did not end");
    w.tasks.into_iter().next().unwrap()
}

pub fn sh(cmd: &str) -> meanwhile_core::TaskSpec {
    let mut s = meanwhile_core::TaskSpec::shell(cmd);
    s.cwd = Some(std::env::temp_dir());
    s
}

/// Waits until the task's attempt has started (no event tells a test this directly).
pub async fn eventually_running(c: &Client, id: TaskId) {
    for _ in 0..2400 {
        if c.get(id).await.unwrap().state == meanwhile_core::TaskState::Running {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("task {id} never started");
}

/// Waits until the daemon serves `n` long requests (waits for tasks or output), as
/// its `/metrics` says.
pub async fn waiting_requests(c: &Client, n: u64) {
    let want = format!("meanwhile_requests_waiting {n}\n");
    for _ in 0..2400 {
        if c.metrics().await.unwrap().contains(&want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the daemon never had {n} requests waiting");
}
