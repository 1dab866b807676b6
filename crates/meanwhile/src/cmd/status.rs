//! `meanwhile status`: is the daemon up, which version, how many tasks in each state.
//! It does not start a daemon: it reports whether one runs.

use super::Ctx;
use crate::{exit, fmt};
use meanwhile_core::{TaskState, Timestamp};
use std::process::ExitCode;

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `status`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = crate::daemon::client(&ctx.home);
    let s = match client.status().await {
        Ok(s) => s,
        Err(e) if e.is_unreachable() => {
            if args.json {
                super::print_json(&serde_json::json!({"running": false, "home": ctx.home}))?;
            } else {
                outln!(
                    "no daemon is running for {} (any command but status starts one)",
                    ctx.home.display()
                );
                outln!("meanwhile {}", env!("CARGO_PKG_VERSION"));
            }
            return Ok(ExitCode::from(exit::UNAVAILABLE));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        super::print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = fmt::now();
    outln!(
        "daemon running: pid {}, version {}, up {}",
        s.pid,
        s.version,
        fmt::ago(Timestamp(s.started_at), now).trim_end_matches(" ago")
    );
    outln!("client version {}", env!("CARGO_PKG_VERSION"));
    outln!("home {} (node {})", s.home, s.node);
    outln!("socket {}", client.target());
    let parts: Vec<String> = TaskState::ALL
        .iter()
        .map(|st| format!("{} {st}", s.counts.get(st.as_str()).copied().unwrap_or(0)))
        .collect();
    outln!("tasks: {}", parts.join(", "));
    for q in &s.queues {
        outln!(
            "queue {}: {} running, {} pending, max {}{}{}{}",
            q.name,
            q.running,
            q.pending,
            q.max_parallel,
            q.per_key
                .map(|n| format!(", {n} per key"))
                .unwrap_or_default(),
            q.rate.map(|r| format!(", rate {r}")).unwrap_or_default(),
            match (q.paused, q.pause_reason) {
                (false, _) => "",
                (true, Some(meanwhile_core::PauseReason::Budget)) => ", paused by its budget",
                (true, _) => ", paused",
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
