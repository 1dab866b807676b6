//! `soak`: the daemon left to run a real mix for a long while, through its HTTP API,
//! sampled every 10 s. What a bounded daemon shows is flat samples: the WAL, the
//! database per task kept, the daemon's memory and descriptors, and the submit latency
//! at the end against the start.

use crate::daemon::{Daemon, percentile, round, round3};
use meanwhile_core::{TaskId, TaskSpec, WaitMode};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Tasks submitted between two waits for all of them to end, so that the store holds
/// a steady backlog rather than one that grows with the submit rate.
const ROUND: usize = 500;
/// The session whose notices are drained every round.
const SESSION: &str = "soak";
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Sample {
    wal: u64,
    db: u64,
    rss_kib: u64,
    fds: u64,
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn sample(home: &Path, pid: u32) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Sample {
        wal: size(&home.join("meanwhile.db-wal")),
        db: size(&home.join("meanwhile.db")),
        rss_kib,
        fds,
    }
}

/// The spec of the `i`th task of the mix: mostly trivial, every tenth prints a few
/// KB, every seventeenth fails.
fn spec(i: usize) -> TaskSpec {
    let command = if i.is_multiple_of(17) {
        "echo failing; exit 3".to_string()
    } else if i.is_multiple_of(10) {
        "head -c 4000 /dev/zero | tr '\\0' x; echo".to_string()
    } else {
        "true".to_string()
    };
    let mut s = TaskSpec::shell(command);
    s.session = Some(SESSION.into());
    s
}

pub async fn soak() -> Value {
    let n: usize = std::env::var("MEANWHILE_SOAK_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().to_path_buf();
    // Retention with a short max age, running often, as weeks of it would; the audit
    // trail's too, or its records (kept a year by default) would be all it measured.
    std::fs::write(
        home.join("config.toml"),
        "[retention]\nmax_age = \"30s\"\ninterval = \"5s\"\nevents_max_age = \"60s\"\naudit_max_age = \"60s\"\n",
    )
    .expect("config.toml");
    let d = Daemon::start_with(&home, &[], &[]).await;
    let pid = d.client.status().await.expect("status").pid;
    d.max_parallel(4).await;
    // An event follower, as a dashboard or an agent's stream would be.
    let followed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let (client, followed, done) = (d.client.clone(), followed.clone(), done.clone());
        tokio::spawn(async move {
            let mut stream = client.events(None).await.expect("event stream");
            while !done.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
                    Ok(Some(Ok(_))) => {
                        followed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => break,
                    Err(_) => {}
                }
            }
        })
    };
    let samples = Arc::new(Mutex::new(vec![sample(&home, pid)]));
    let sampler = {
        let (samples, done, home) = (samples.clone(), done.clone(), home.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                tokio::time::sleep(SAMPLE_EVERY).await;
                let s = sample(&home, pid);
                samples.lock().expect("samples").push(s);
            }
        })
    };
    let start = Instant::now();
    let mut latencies: Vec<f64> = Vec::with_capacity(n);
    let mut notices = 0usize;
    let mut i = 0;
    while i < n {
        let mut ids: Vec<TaskId> = Vec::with_capacity(ROUND);
        for _ in 0..ROUND.min(n - i) {
            let t = Instant::now();
            ids.push(d.client.submit(&spec(i)).await.expect("submit"));
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            i += 1;
        }
        let w = d
            .client
            .wait(&ids, WaitMode::All, Some(Duration::from_secs(3600)))
            .await
            .expect("wait");
        assert!(!w.timed_out);
        loop {
            let got = d
                .client
                .drain_notifications(SESSION, 1000)
                .await
                .expect("drain")
                .len();
            notices += got;
            if got < 1000 {
                break;
            }
        }
    }
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let _ = follower.await;
    let mut all = samples.lock().expect("samples").clone();
    all.push(sample(&home, pid));
    let retained = d
        .client
        .status()
        .await
        .expect("status")
        .counts
        .values()
        .sum::<u64>();
    d.stop();
    let tenth = (latencies.len() / 10).max(1);
    let p99 = |xs: &[f64]| {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.99)
    };
    let first = p99(&latencies[..tenth]);
    let last = p99(&latencies[latencies.len() - tenth..]);
    // Growth from the first sample taken under load to the last.
    let warm = all.get(1).copied().unwrap_or(all[0]);
    let end = *all.last().expect("a sample");
    let max_wal = all.iter().map(|s| s.wal).max().unwrap_or(0);
    json!({
        "figure": "soak",
        "tasks": n,
        "seconds": round(took.as_secs_f64()),
        "samples": all.len(),
        "events_followed": followed.load(Ordering::Relaxed),
        "notices_drained": notices,
        "max_wal_bytes": max_wal,
        "db_bytes": end.db,
        "retained_tasks": retained,
        "db_bytes_per_retained_task": round(end.db as f64 / retained.max(1) as f64),
        "rss_first_kib": warm.rss_kib,
        "rss_growth_kib": end.rss_kib as i64 - warm.rss_kib as i64,
        "fd_growth": end.fds as i64 - warm.fds as i64,
        "submit_p99_first_tenth_ms": round3(first),
        "submit_p99_last_tenth_ms": round3(last),
        "p99_drift": round3(last / first.max(1e-9)),
        "baseline": "the same daemon's first sample under load, and its first tenth of submits",
        "goal": "max_wal_bytes <= 67108864, rss_growth_kib <= 10240, fd_growth 0, p99_drift <= 1.5",
    })
}
