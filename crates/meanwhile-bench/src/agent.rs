//! How soon an agent task goes on after its daemon dies: a provider on loopback
//! speaking the Anthropic Messages wire format holds the task's model call, the daemon
//! is killed (SIGKILL) and started again, and the figure is the time from the new
//! daemon's start to the resumed task's repeated call reaching the provider.

use crate::daemon::{binary, percentile, round};
use meanwhile_client::Client;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Restarts measured.
const RESTARTS: usize = 20;

/// A provider whose first answer calls a tool and which then never answers: each
/// request after the first is held (its arrival time kept) until the process ends.
fn holding_provider() -> (String, Arc<Mutex<Vec<Instant>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let Ok(copy) = stream.try_clone() else { return };
                let mut reader = BufReader::new(copy);
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
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let answered = request["messages"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["role"] == "assistant"));
                    if answered {
                        seen.lock().expect("arrivals").push(Instant::now());
                        // Held: the daemon is killed while it waits.
                        std::thread::sleep(Duration::from_secs(3600));
                        return;
                    }
                    let reply = json!({
                        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-bench",
                        "content": [{"type": "tool_use", "id": "tu_1", "name": "bash", "input": {"command": "true"}}],
                        "stop_reason": "tool_use", "stop_sequence": null,
                        "usage": {"input_tokens": 10, "output_tokens": 5}
                    })
                    .to_string();
                    let written = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if written.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, arrivals)
}

fn serve(home: &Path, url: &str) -> Child {
    Command::new(binary())
        .arg("serve")
        .env("MEANWHILE_HOME", home)
        .env("MEANWHILE_LOG", "warn")
        .env("MEANWHILE_AGENT_PROVIDER", "anthropic")
        .env("MEANWHILE_AGENT_MODEL", "claude-bench")
        .env("ANTHROPIC_API_KEY", "bench-key")
        .env("ANTHROPIC_BASE_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("meanwhile serve")
}

/// Polls until `done` holds, every millisecond; the time it took.
async fn until(started: Instant, what: &str, mut done: impl AsyncFnMut() -> bool) -> Duration {
    for _ in 0..60_000 {
        if done().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{what} did not happen within a minute");
}

/// The `agent_resume` figure: p50 over [`RESTARTS`] restarts.
pub async fn agent_resume() -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(
        home.join("config.toml"),
        "[agent.permissions]\nallow = [\"*\"]\n",
    )
    .expect("config.toml");
    let (url, arrivals) = holding_provider();
    let client = Client::for_home(&home);
    let mut daemon = serve(&home, &url);
    let t = Instant::now();
    until(t, "the daemon's answer", async || {
        client.status().await.is_ok()
    })
    .await;
    let spec = meanwhile_core::TaskSpec {
        agent: Some(meanwhile_core::AgentSpec {
            prompt: "Run true, then wait.".into(),
            ..Default::default()
        }),
        cwd: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    client.submit(&spec).await.expect("submit the agent task");
    let count = || arrivals.lock().expect("arrivals").len();
    until(t, "the agent's second model call", async || count() == 1).await;
    let (mut starts, mut resumes) = (Vec::new(), Vec::new());
    for i in 0..RESTARTS {
        let _ = daemon.kill();
        let _ = daemon.wait();
        let started = Instant::now();
        daemon = serve(&home, &url);
        let ready = until(started, "the restarted daemon's answer", async || {
            client.status().await.is_ok()
        })
        .await;
        until(started, "the resumed model call", async || count() == i + 2).await;
        // The provider's own clock of the arrival, not the poll's.
        let at = arrivals.lock().expect("arrivals")[i + 1];
        starts.push(ready.as_secs_f64() * 1000.0);
        resumes.push(at.duration_since(started).as_secs_f64() * 1000.0);
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    starts.sort_by(f64::total_cmp);
    resumes.sort_by(f64::total_cmp);
    json!({
        "figure": "agent_resume",
        "restarts": RESTARTS,
        "baseline": "the restarted daemon's own start: from its spawn until its API answers",
        "baseline_p50_ms": round(percentile(&starts, 0.5)),
        "p50_ms": round(percentile(&resumes, 0.5)),
        "p90_ms": round(percentile(&resumes, 0.9)),
        "what": "from the restarted daemon's spawn to the resumed agent task's next model call at the provider",
    })
}
