//! Helpers: each test runs its own daemon, in-process, on its own home and socket.

use meanwhile_client::Client;
use meanwhile_core::{TaskId, TaskRecord, WaitMode};
use meanwhile_server::{ServerError, Settings};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// The repository's root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `install` once across the parallel test processes (under a lock file in the
/// repository), unless `ready` says the tool is there already.
/// The schemathesis version the contract test runs.
pub const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// The `schemathesis` command: `$MEANWHILE_SCHEMATHESIS` (set by `scripts/test`),
/// else the repository's `.venv-schemathesis`, which `scripts/test` makes.
pub fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("MEANWHILE_SCHEMATHESIS").map(PathBuf::from) {
        assert!(
            path.exists(),
            "MEANWHILE_SCHEMATHESIS is {}, which does not exist",
            path.display()
        );
        return path;
    }
    let bin = workspace().join(".venv-schemathesis/bin/schemathesis");
    let version = SCHEMATHESIS.split("==").nth(1).unwrap_or_default();
    let ready = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(version));
    assert!(
        ready,
        "the contract test needs {SCHEMATHESIS} in .venv-schemathesis: run scripts/test, which \
         installs it, or set MEANWHILE_SCHEMATHESIS to a schemathesis command"
    );
    bin
}

/// The MCP conformance suite's version (0.1.13 is the last that runs on Node.js 20).
pub const CONFORMANCE: &str = "@modelcontextprotocol/conformance@0.1.13";

/// The directory of the installed MCP conformance suite: `$MEANWHILE_MCP_CONFORMANCE`
/// (set by `scripts/test`), else `.mcp-conformance/` in the repository, which
/// `scripts/test` fills.
pub fn conformance() -> PathBuf {
    if let Some(path) = std::env::var_os("MEANWHILE_MCP_CONFORMANCE").map(PathBuf::from) {
        assert!(
            path.join("dist/index.js").exists(),
            "MEANWHILE_MCP_CONFORMANCE is {}, which holds no dist/index.js",
            path.display()
        );
        return path;
    }
    let dir = workspace().join(".mcp-conformance/node_modules/@modelcontextprotocol/conformance");
    let version = CONFORMANCE.rsplit('@').next().unwrap_or_default();
    let ready = std::fs::read_to_string(dir.join("package.json"))
        .is_ok_and(|p| p.contains(&format!("\"version\": \"{version}\"")));
    assert!(
        ready,
        "the MCP conformance test needs {CONFORMANCE} (and Node.js 20) in .mcp-conformance: run \
         scripts/test, which installs it, or set MEANWHILE_MCP_CONFORMANCE to the package's \
         directory"
    );
    dir
}

/// The `meanwhile` binary: `$MEANWHILE_BIN`, else the one built next to this test
/// (`cargo nextest run --workspace` builds it).
pub fn meanwhile_bin() -> PathBuf {
    let path = std::env::var_os("MEANWHILE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("the test's own path");
            // target/<profile>/deps/it-<hash> -> target/<profile>/meanwhile
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("meanwhile"))
                .expect("the target directory")
        });
    assert!(
        path.exists(),
        "this test runs the real meanwhile binary, and {} does not exist: build it with \
         `cargo build -p meanwhile` (or set MEANWHILE_BIN)",
        path.display()
    );
    path
}

/// A free TCP port on 127.0.0.1 (free when asked; the daemon binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `meanwhile serve` as its own process, on its own home and TCP port; stopped
/// (SIGTERM) when dropped.
pub struct Served {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub token: String,
}

impl Served {
    /// Starts it with these extra environment variables, and waits until it answers.
    pub fn start(env: &[(&str, &str)]) -> Served {
        let dir = tempfile::Builder::new()
            .prefix("mwsrv")
            .tempdir_in("/tmp")
            .expect("a temp dir");
        let home = dir.path().join("home");
        let port = free_port();
        let child = Command::new(meanwhile_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("MEANWHILE_HOME", &home)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting meanwhile serve");
        let mut served = Served {
            child,
            dir,
            port,
            token: String::new(),
        };
        // The token file is written before the listeners open, so a daemon that
        // accepts a connection has it.
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && let Ok(t) = std::fs::read_to_string(home.join("token"))
            {
                served.token = t.trim().to_string();
                return served;
            }
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("the daemon exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) on `stream` and returns the
/// answer's status and body.
pub fn http1(mut stream: impl std::io::Read + std::io::Write, request: &str) -> (u16, String) {
    stream.write_all(request.as_bytes()).expect("sending");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("reading");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
