//! Helpers: a home per test, the real binary, and the daemon as a child process.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_meanwhile");

pub struct Home {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub daemon: Option<Child>,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("h");
        Home {
            dir,
            home,
            daemon: None,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("MEANWHILE_HOME", &self.home)
            .env_remove("MEANWHILE_URL")
            .env_remove("MEANWHILE_SESSION")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "meanwhile {args:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Starts `meanwhile serve` as a child, with `env`, and waits until it answers.
    pub fn serve(&mut self, env: &[(&str, &str)]) {
        self.serve_with(env, |_| {});
    }

    /// [`Home::serve`], with the daemon's command changed by `prepare` first.
    pub fn serve_with(&mut self, env: &[(&str, &str)], prepare: impl FnOnce(&mut Command)) {
        let log = std::fs::File::create(self.dir.path().join("serve.log")).unwrap();
        let mut c = self.cmd(&["serve"]);
        c.envs(env.iter().copied()).stderr(log);
        prepare(&mut c);
        self.daemon = Some(c.spawn().unwrap());
        for _ in 0..1200 {
            if self.run(&["status"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the daemon never answered");
    }

    /// Kills the daemon started by [`Home::serve`] with SIGKILL, as a crash would.
    pub fn kill_daemon(&mut self) {
        let mut child = self.daemon.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    /// The daemon's pid, from `status`.
    pub fn daemon_pid(&self) -> Option<i32> {
        let o = self.run(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    /// Moves the clock of the daemon (started with `MEANWHILE_TEST_CLOCK`) forward
    /// by `by`, once its timed loops have looked at the new time; its answer
    /// (`now`, `ahead_ms`, `settled`).
    pub fn advance(&self, by: &str) -> serde_json::Value {
        let moved = self.json(&["daemon", "clock", "--advance", by, "--json"]);
        assert_eq!(moved["settled"], true, "{moved}");
        moved
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        // Stop whatever daemon serves this home, and its tasks with it: a test leaves
        // nothing running.
        if let Some(pid) = self.daemon_pid() {
            let page = self.run(&["ls", "--json", "--state", "running,pending"]);
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&page.stdout) {
                for t in v["tasks"].as_array().into_iter().flatten() {
                    let id = t["id"].to_string();
                    let _ = self.run(&["stop", "--force", &id]);
                }
            }
            signal(pid, rustix::process::Signal::TERM);
        }
        if let Some(mut c) = self.daemon.take() {
            let _ = c.wait();
        }
    }
}

/// The task `id`, as `show --json` has it.
pub fn show(h: &Home, id: &str) -> serde_json::Value {
    h.json(&["show", id, "--json"])["task"].clone()
}

/// Waits for the task to end; the task then (`wait` exits with its exit code).
pub fn wait_end(h: &Home, id: &str) -> serde_json::Value {
    let o = h.run(&["wait", id, "--timeout", "2m", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["tasks"][0].clone()
}

/// Runs SQL on the home's database file directly, as tampering would (with no
/// daemon running).
pub fn sql(home: &Home, statement: &str) {
    let conn = rusqlite::Connection::open(home.home.join("meanwhile.db")).unwrap();
    conn.execute_batch(statement).unwrap();
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls until `done` holds; panics naming `what` after a generous bound (a failure
/// bound, not a measure of speed).
/// Polls `done` until it holds. No deadline of its own: nextest's slow-timeout
/// (`.config/nextest.toml`) ends a test that hangs, and this says on stderr every
/// 30 s what it still waits for.
pub fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    let mut said = Duration::ZERO;
    while !done() {
        if start.elapsed() >= said + Duration::from_secs(30) {
            said = start.elapsed();
            eprintln!("still waiting after {}s for: {what}", said.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A provider on loopback speaking the Anthropic Messages wire format, each reply
/// made by `respond` from the request's body; the bodies it got, in order. Each
/// call takes at least `delay`, as a real model's would.
pub fn fake_anthropic_with(
    delay: Duration,
    respond: impl Fn(&serde_json::Value) -> serde_json::Value + Send + Sync + 'static,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let respond = Arc::new(respond);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let log = log.clone();
            let respond = respond.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let request: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    std::thread::sleep(delay);
                    let reply = respond(&request).to_string();
                    log.lock().unwrap().push(request);
                    let ok = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if ok.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// The environment that points a daemon's agent and llm tasks at `url`.
pub fn provider_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MEANWHILE_AGENT_PROVIDER", "anthropic".into()),
        ("MEANWHILE_AGENT_MODEL", "claude-test".into()),
        ("ANTHROPIC_API_KEY", "test-key".into()),
        ("ANTHROPIC_BASE_URL", url.into()),
    ]
}

/// A scripted reply of the Anthropic Messages API: `content` blocks, the stop reason,
/// and 15 tokens of usage.
pub fn message(content: serde_json::Value, stop: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5}
    })
}

/// A scripted reply that calls tool `name` with `input`, as call `id`.
pub fn tool(id: &str, name: &str, input: serde_json::Value) -> serde_json::Value {
    message(
        serde_json::json!([{"type": "tool_use", "id": id, "name": name, "input": input}]),
        "tool_use",
    )
}

/// The turn a request to the model asks for: the model's answers already in it,
/// plus one.
pub fn turn_of(request: &serde_json::Value) -> usize {
    request["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == "assistant").count())
        .unwrap_or(0)
        + 1
}

/// The lines of a marker file (none when it does not exist yet).
pub fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Lets the agents of `home`'s daemon run every command: nobody can be asked in a
/// daemon.
pub fn allow_every_command(home: &Home) {
    std::fs::create_dir_all(&home.home).unwrap();
    std::fs::write(
        home.home.join("config.toml"),
        "[agent.permissions]\nallow = [\"*\"]\n",
    )
    .unwrap();
}

/// A TCP port free at the moment.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The browser tests' driver: the `playwright-core` package in
/// `$MEANWHILE_PLAYWRIGHT` (set by `scripts/test`), else in the repository's
/// `.playwright/`, which `scripts/test` fills.
pub fn playwright() -> PathBuf {
    if let Some(path) = std::env::var_os("MEANWHILE_PLAYWRIGHT").map(PathBuf::from) {
        assert!(
            path.join("package.json").exists(),
            "MEANWHILE_PLAYWRIGHT is {}, which holds no package.json",
            path.display()
        );
        return path;
    }
    let dir = workspace().join(".playwright/node_modules/playwright-core");
    assert!(
        dir.join("package.json").exists(),
        "the browser tests need {PLAYWRIGHT} in .playwright: run scripts/test, which installs \
         it, or set MEANWHILE_PLAYWRIGHT to the package's directory"
    );
    dir
}

/// The version of the browser driver.
pub const PLAYWRIGHT: &str = "playwright-core@1.65.2";

/// The browser: `$MEANWHILE_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("MEANWHILE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "no browser at {}: run scripts/test, which installs Debian's chromium, or set MEANWHILE_CHROMIUM",
        path.display()
    );
    path
}

/// Sends `sig` to process `pid`; one that is gone is no error.
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// A FIFO in the test's directory, for a task to block on until the test writes.
pub fn fifo(h: &Home, name: &str) -> PathBuf {
    let p = h.dir.path().join(name);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    p
}

/// The repository's root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace directory")
}

/// Runs a tool's test suite (or a step before it) against the binary under test, in
/// the repository's root and with no `MEANWHILE_*` setting of the caller's; fails
/// with what it printed.
pub fn run_suite(what: &str, cmd: &mut Command) {
    run_tool(what, cmd.env("MEANWHILE_BIN", BIN));
}

/// Runs a tool in the repository's root with no `MEANWHILE_HOME`, `_URL`, `_TOKEN` or
/// `_SESSION` of the test process's environment (those `cmd` sets are kept;
/// `MEANWHILE_BIN` is the caller's to set or remove); fails with what it printed, and
/// answers its standard output.
pub fn run_tool(what: &str, cmd: &mut Command) -> String {
    for key in [
        "MEANWHILE_HOME",
        "MEANWHILE_URL",
        "MEANWHILE_TOKEN",
        "MEANWHILE_SESSION",
    ] {
        if !cmd.get_envs().any(|(k, _)| k == key) {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .current_dir(workspace())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `script`, a Python program that drives `meanwhile` in a pseudo-terminal, with
/// the binary, the home and `args`, in the test's directory; answers the JSON its
/// last line prints.
pub fn drive_terminal(home: &Home, script: &str, args: &[&str]) -> serde_json::Value {
    let path = home.dir.path().join("terminal_driver.py");
    std::fs::write(&path, script).unwrap();
    let o = Command::new("python3")
        .arg(&path)
        .args([BIN, home.home.to_str().unwrap()])
        .args(args)
        .current_dir(home.dir.path())
        .env_remove("MEANWHILE_URL")
        .env_remove("MEANWHILE_AGENT_SESSION")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(stdout.trim_end().lines().last().unwrap()).unwrap()
}
