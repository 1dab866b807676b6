//! meanwhile's benchmarks. Each prints one JSON line per figure, with the baseline it
//! was measured against in the same run, so the ratio means something on any machine.
//!
//! `meanwhile-bench [NAME...]` runs the named benchmarks (all when none is named):
//! throughput, seed_manager_throughput (the seed-style Python manager beside it, run
//! with the system `python3`), submit_scaling, big_output, notify_latency, closure_throughput (the
//! engine, in-process), and
//! api_throughput, cli_latency, daemon_rss, ls_latency (the daemon and the `meanwhile`
//! binary, which must be built: `cargo build --release -p meanwhile`),
//! dashboard_first_page (also Node.js, `/usr/bin/chromium` and the tests'
//! playwright-core, in `.playwright/` or `MEANWHILE_PLAYWRIGHT`), and
//! fleet_throughput, claim_latency, closure_throughput_postgres (nodes on a throwaway
//! PostgreSQL server of their own; PostgreSQL must be installed), and write_cost
//! (statements, WAL pages and WAL bytes per task: a closure, a shell task through the
//! runtime, and through the daemon), and agent_resume (the daemon killed 20 times
//! under an agent task whose model call a provider on loopback holds: from each
//! restart to the resumed task's next call, beside the daemon's own start).
//!
//! soak (also the daemon: a real mix of N tasks through its API, sampled every 10 s;
//! `MEANWHILE_SOAK_TASKS=N`, 200,000 by default; not run unless named).
//!
//! `MEANWHILE_BENCH_TASKS=N` shrinks a figure's task count for a quick look, and
//! `MEANWHILE_BENCH_PARALLEL=2` runs closure_throughput at those limits only.

mod agent;
mod cost;
mod daemon;
mod engine;
mod fleet;
mod raw;
mod soak;

use serde_json::Value;

/// How many tasks a figure uses: `default`, or `MEANWHILE_BENCH_TASKS` for a quick look.
fn task_count(default: usize) -> usize {
    std::env::var("MEANWHILE_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn emit(figure: Value) {
    println!("{figure}");
}

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let all = [
        "throughput",
        "seed_manager_throughput",
        "sandbox_cost",
        "submit_scaling",
        "big_output",
        "notify_latency",
        "closure_throughput",
        "api_throughput",
        "cli_latency",
        "daemon_rss",
        "ls_latency",
        "dashboard_first_page",
        "fleet_throughput",
        "claim_latency",
        "closure_throughput_postgres",
        "write_cost",
        "agent_resume",
        "soak",
    ];
    for n in &names {
        if !all.contains(&n.as_str()) {
            eprintln!("unknown benchmark {n:?}; choose from {}", all.join(", "));
            std::process::exit(2);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let want = |n: &str| names.is_empty() || names.iter().any(|x| x == n);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        if want("throughput") {
            emit(engine::throughput().await);
        }
        if want("seed_manager_throughput") {
            emit(engine::seed_manager_throughput().await);
        }
        if want("sandbox_cost") {
            emit(engine::sandbox_cost().await);
        }
        if want("submit_scaling") {
            emit(engine::submit_scaling().await);
        }
        if want("big_output") {
            emit(engine::big_output().await);
        }
        if want("notify_latency") {
            emit(engine::notify_latency().await);
        }
        if want("closure_throughput") {
            emit(engine::closure_throughput().await);
        }
        if want("api_throughput") {
            emit(daemon::api_throughput().await);
        }
        if want("cli_latency") {
            emit(daemon::cli_latency().await);
        }
        if want("daemon_rss") {
            emit(daemon::daemon_rss().await);
        }
        if want("ls_latency") {
            emit(daemon::ls_latency().await);
        }
        if want("dashboard_first_page") {
            emit(daemon::dashboard_first_page().await);
        }
        if want("fleet_throughput") {
            emit(fleet::fleet_throughput().await);
        }
        if want("claim_latency") {
            emit(fleet::claim_latency().await);
        }
        if want("closure_throughput_postgres") {
            emit(engine::closure_throughput_postgres().await);
        }
        if want("write_cost") {
            emit(cost::write_cost().await);
        }
        if want("agent_resume") {
            emit(agent::agent_resume().await);
        }
        // Minutes long: only when named.
        if names.iter().any(|x| x == "soak") {
            emit(soak::soak().await);
        }
    });
}
