//! Helpers: finding the Python client and the meanwhile binary, a home per test,
//! a daemon per HTTP test, and running a scenario script.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The version of the official Python MCP SDK the tests speak with.
const MCP_SDK: &str = "mcp==2.3.0";

/// The Python with the `mcp` SDK: `$MEANWHILE_MCP_PYTHON` (set by `.ci/run`), else
/// the repository's `.venv-mcp`, made on first use (from PyPI) so that a plain
/// `cargo nextest run --workspace` works on a fresh machine.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("MEANWHILE_MCP_PYTHON").map(PathBuf::from) {
        assert!(
            path.exists(),
            "MEANWHILE_MCP_PYTHON is {}, which does not exist",
            path.display()
        );
        return path;
    }
    let path = workspace().join(".venv-mcp/bin/python");
    let has_sdk = Command::new(&path)
        .args(["-c", "import mcp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_sdk,
        "the MCP tests need the official Python MCP SDK ({MCP_SDK}) in .venv-mcp: run \
         scripts/test, which installs it, or set MEANWHILE_MCP_PYTHON to a python that has it"
    );
    path
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `meanwhile` binary: `$MEANWHILE_BIN`, else the one built next to this test
/// (`cargo test --workspace` and `cargo nextest run --workspace` build it).
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
        "the MCP tests run the real meanwhile binary, and {} does not exist: build it with \
         `cargo build -p meanwhile` (or set MEANWHILE_BIN)",
        path.display()
    );
    path
}

/// A test's own home and project directory; stops the daemons it started.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        // Short: the daemon's socket path must fit in sun_path.
        let dir = tempfile::Builder::new()
            .prefix("mwmcp")
            .tempdir_in("/tmp")
            .expect("a temp dir");
        std::fs::create_dir(dir.path().join("home")).unwrap();
        std::fs::create_dir(dir.path().join("project")).unwrap();
        Home { dir }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    /// The settings every script gets.
    pub fn stdio_config(&self) -> Value {
        json!({
            "transport": "stdio",
            "bin": meanwhile_bin(),
            "home": self.home(),
            "cwd": self.project(),
        })
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // `meanwhile mcp` started a daemon for this home; it outlives its clients on
        // purpose, so the test ends it: the processes whose environment names it.
        let want = format!("MEANWHILE_HOME={}", self.home().display());
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if !cmdline.split(|b| *b == 0).any(|a| a == b"serve") {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
                terminate(pid);
            }
        }
    }
}

fn terminate(pid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

/// The audit trail's records of task `id` in `home`, from its daemon.
pub fn audit_of(home: &Home, id: i64) -> Vec<Value> {
    let out = Command::new(meanwhile_bin())
        .args(["audit", "--json", "--task", &id.to_string()])
        .env("MEANWHILE_HOME", home.home())
        .env_remove("MEANWHILE_URL")
        .stdin(Stdio::null())
        .output()
        .expect("running meanwhile audit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("audit --json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Who the audit trail says submitted task `id`.
pub fn submitter(home: &Home, id: i64) -> String {
    let records = audit_of(home, id);
    records
        .iter()
        .find(|r| r["action"] == "submitted")
        .and_then(|r| r["who"].as_str())
        .unwrap_or_else(|| panic!("no submit of task {id} in {records:?}"))
        .to_string()
}

/// A daemon on its own home, socket and TCP port, stopped when dropped.
pub struct Daemon {
    child: Child,
    pub url: String,
    pub token: String,
}

impl Daemon {
    pub fn start(home: &Home) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(meanwhile_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("MEANWHILE_HOME", home.home())
            .current_dir(home.home())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting meanwhile serve");
        let mut daemon = Daemon {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
            token: String::new(),
        };
        let begun = Instant::now();
        loop {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up && let Ok(t) = std::fs::read_to_string(home.home().join("token")) {
                daemon.token = t.trim().to_string();
                return daemon;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("the daemon exited at start: {status}");
            }
            assert!(
                begun.elapsed() < Duration::from_secs(60),
                "the daemon did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn config(&self, home: &Home) -> Value {
        json!({
            "transport": "http",
            "url": self.url,
            "token": self.token,
            "home": home.home(),
            "cwd": home.project(),
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        terminate(self.child.id() as i32);
        let _ = self.child.wait();
    }
}

/// Runs the scenario `script` (in tests/py) with `config` and returns what it
/// reported. A script that fails fails the test with its output.
pub fn scenario(script: &str, config: &Value) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let out = Command::new(python())
        .arg(dir.join(script))
        .arg(config.to_string())
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("running the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("{script} reported no JSON ({e}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    })
}

/// The text of `v` (a string).
pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}
