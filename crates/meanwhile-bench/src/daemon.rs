//! Benchmarks of the daemon and the `meanwhile` command, run as real processes.

use crate::raw;
use meanwhile_client::Client;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{TaskId, TaskSpec, WaitMode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `meanwhile` binary: `MEANWHILE_BIN`, else next to this program.
pub(crate) fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("MEANWHILE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.with_file_name("meanwhile")
}

pub(crate) struct Daemon {
    child: Child,
    pub(crate) client: Client,
}

impl Daemon {
    async fn start(home: &Path) -> Daemon {
        Daemon::start_with(home, &[], &[]).await
    }

    /// `meanwhile serve ARGS` on `home` with `env` added.
    pub(crate) async fn start_with(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let bin = binary();
        assert!(
            bin.exists(),
            "{} not found: build it with `cargo build --release -p meanwhile` or set MEANWHILE_BIN",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .env("MEANWHILE_HOME", home)
            .env("MEANWHILE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("meanwhile serve");
        let client = Client::for_home(home);
        for _ in 0..600 {
            if client.status().await.is_ok() {
                return Daemon { child, client };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the daemon did not answer");
    }

    fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Sets the `default` queue's `max_parallel`.
    pub(crate) async fn max_parallel(&self, n: u32) {
        let change = QueueUpdate {
            max_parallel: Some(n),
            ..QueueUpdate::default()
        };
        self.client
            .set_queue("default", change)
            .await
            .expect("queue");
    }

    pub(crate) fn stop(mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

/// The throughput figure again, submitting through the daemon's API.
pub async fn api_throughput() -> Value {
    let n = crate::task_count(2000);
    let base_rate = raw::spawn_floor(n).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let d = Daemon::start(dir.path()).await;
    d.max_parallel(2).await;
    let start = Instant::now();
    let mut ids: Vec<TaskId> = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(
            d.client
                .submit(&TaskSpec::shell("true"))
                .await
                .expect("submit"),
        );
    }
    let w = d
        .client
        .wait(&ids, WaitMode::All, Some(Duration::from_secs(3600)))
        .await
        .expect("wait");
    let took = start.elapsed();
    assert!(!w.timed_out);
    d.stop();
    let rate = n as f64 / took.as_secs_f64();
    json!({
        "figure": "api_throughput",
        "tasks": n,
        "max_parallel": 2,
        "tasks_per_s": round(rate),
        "baseline": "raw posix_spawn of sh -c true, 2 in flight",
        "baseline_tasks_per_s": round(base_rate),
        "ratio": round3(rate / base_rate),
        "goal": ">= 0.5",
    })
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Times `cmd` runs of a process until its first line of output (or exit).
fn time_first_line(mut make: impl FnMut() -> Command, runs: usize) -> Vec<f64> {
    use std::io::Read;
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let mut child = make()
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut byte = [0u8; 1];
        let mut line = Vec::new();
        while stdout.read(&mut byte).unwrap_or(0) == 1 {
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
        out.push(start.elapsed().as_secs_f64() * 1000.0);
        let _ = child.wait();
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

/// `meanwhile run -- true` from process start until the id is printed.
pub async fn cli_latency() -> Value {
    const RUNS: usize = 200;
    let dir = tempfile::tempdir().expect("temp dir");
    let d = Daemon::start(dir.path()).await;
    let home = dir.path().to_path_buf();
    let bin = binary();
    let base = time_first_line(
        || {
            let mut c = Command::new(&bin);
            c.arg("--version");
            c
        },
        RUNS,
    );
    let runs = time_first_line(
        || {
            let mut c = Command::new(&bin);
            c.args(["run", "--", "true"]).env("MEANWHILE_HOME", &home);
            c
        },
        RUNS,
    );
    d.stop();
    json!({
        "figure": "cli_latency",
        "runs": RUNS,
        "p50_ms": round3(percentile(&runs, 0.5)),
        "p99_ms": round3(percentile(&runs, 0.99)),
        "baseline": "meanwhile --version (process start and exit)",
        "baseline_p50_ms": round3(percentile(&base, 0.5)),
        "goal": "p50 <= 5 ms",
    })
}

async fn seeded_home(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    if n > 0 {
        let store =
            meanwhile_store::SqliteStore::open(&dir.path().join("meanwhile.db")).expect("store");
        store
            .seed_finished(n, meanwhile_runtime::now())
            .await
            .expect("seed");
    }
    dir
}

/// The daemon's RSS with 10,000 and 1,000,000 finished tasks in its store, after it
/// has answered a listing and the status.
pub async fn daemon_rss() -> Value {
    let mut figures = Vec::new();
    for n in [0u64, 10_000, 1_000_000] {
        let dir = seeded_home(n).await;
        let d = Daemon::start(dir.path()).await;
        let _ = d.client.list(&Default::default()).await;
        let _ = d.client.status().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        figures.push(d.rss_kb());
        d.stop();
    }
    json!({
        "figure": "daemon_rss",
        "rss_kib_empty": figures[0],
        "rss_kib_10k": figures[1],
        "rss_kib_1m": figures[2],
        "baseline": "the same daemon with an empty store",
        "goal": "10k <= 25600 KiB, 1m <= 61440 KiB",
    })
}

/// `meanwhile ls` with 1,000,000 tasks in the store.
pub async fn ls_latency() -> Value {
    const RUNS: usize = 30;
    let dir = seeded_home(1_000_000).await;
    let d = Daemon::start(dir.path()).await;
    let home = dir.path().to_path_buf();
    let bin = binary();
    let time_runs = |args: &'static [&'static str]| {
        let mut out = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let start = Instant::now();
            let status = Command::new(&bin)
                .args(args)
                .env("MEANWHILE_HOME", &home)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run");
            assert!(status.success(), "meanwhile {args:?} failed");
            out.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        out.sort_by(|a, b| a.total_cmp(b));
        out
    };
    let base = time_runs(&["--version"]);
    let ls = time_runs(&["ls"]);
    // A text no name holds: the listing reads every name to fill no page.
    let text = time_runs(&["ls", "--text", "no such name"]);
    d.stop();
    json!({
        "figure": "ls_latency",
        "tasks_in_store": 1_000_000,
        "p50_ms": round3(percentile(&ls, 0.5)),
        "p99_ms": round3(percentile(&ls, 0.99)),
        "text_matching_nothing_p50_ms": round3(percentile(&text, 0.5)),
        "baseline": "meanwhile --version",
        "baseline_p50_ms": round3(percentile(&base, 0.5)),
        "goal": "<= 50 ms",
    })
}

/// The dashboard's first page in a real browser with 1,000,000 tasks in the store,
/// against the same page with 100: when its rows are on screen, and its own request
/// for the list beside the same request made directly to the API. It runs the
/// browser tests' script (`crates/meanwhile/tests/browser/dashboard.mjs`, scene
/// `big`).
pub async fn dashboard_first_page() -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let playwright = std::env::var_os("MEANWHILE_PLAYWRIGHT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".playwright/node_modules/playwright-core"));
    let chromium = PathBuf::from("/usr/bin/chromium");
    let skipped = |why: String| json!({"figure": "dashboard_first_page", "skipped": why});
    if !playwright.join("package.json").exists() {
        return skipped(format!(
            "no playwright-core at {} (npm install --prefix .playwright playwright-core, as .ci/run does)",
            playwright.display()
        ));
    }
    if !chromium.exists() {
        return skipped("no /usr/bin/chromium (apt-get install chromium)".into());
    }
    let mut runs = Vec::new();
    for n in [100u64, 1_000_000] {
        match first_page(&root, &playwright, &chromium, n).await {
            Ok(m) => runs.push(m),
            Err(why) => return skipped(why),
        }
    }
    let f = |run: usize, key: &str| round(runs[run][key].as_f64().unwrap_or(f64::NAN));
    json!({
        "figure": "dashboard_first_page",
        "tasks_in_store": 1_000_000,
        "rows_shown_ms": f(1, "rows_shown_ms"),
        "page_list_request_ms": f(1, "page_list_ms"),
        "api_list_request_ms": f(1, "api_ms"),
        "baseline": "the same page with 100 tasks in the store",
        "baseline_rows_shown_ms": f(0, "rows_shown_ms"),
        "baseline_page_list_request_ms": f(0, "page_list_ms"),
        "ratio": round(f(1, "rows_shown_ms") / f(0, "rows_shown_ms")),
        "goal": "as fast with 1,000,000 tasks as with 100 (ratio <= 1.2)",
    })
}

/// One run of the browser scene `big` on a daemon with `n` finished tasks: its figure.
async fn first_page(
    root: &Path,
    playwright: &Path,
    chromium: &Path,
    n: u64,
) -> Result<Value, String> {
    let dir = seeded_home(n).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(dir.path(), &["--listen", &listen], &[]).await;
    let token = std::fs::read_to_string(dir.path().join("token")).expect("the token file");
    let shots = tempfile::tempdir().expect("temp dir");
    let out = Command::new("node")
        .arg(root.join("crates/meanwhile/tests/browser/dashboard.mjs"))
        .env("MW_BASE", format!("http://{listen}"))
        .env("MW_TOKEN", token.trim())
        .env("MW_SHOTS", shots.path())
        .env("MW_SCENE", "big")
        .env("MW_PLAYWRIGHT", playwright)
        .env("MW_CHROMIUM", chromium)
        .stderr(Stdio::inherit())
        .output()
        .expect("node");
    d.stop();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("\"first_page\""))
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .ok_or_else(|| {
            format!(
                "the browser script failed: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
}

pub(crate) fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

pub(crate) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
