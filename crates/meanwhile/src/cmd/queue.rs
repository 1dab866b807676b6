//! `meanwhile queue`: list queues; create or change one; pause and resume.

use super::Ctx;
use crate::fmt;
use std::process::ExitCode;

/// Arguments of `queue`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do; lists the queues when absent.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Print as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A queue action.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List the queues with their limits and counts.
    Ls,
    /// Create a queue or change its parallelism.
    #[command(visible_alias = "create")]
    Set {
        /// The queue.
        name: String,
        /// How many of its tasks may run at once.
        #[arg(long, short = 'j')]
        max_parallel: Option<u32>,
    },
    /// Start nothing new from the queue (running tasks go on).
    Pause {
        /// The queue.
        name: String,
    },
    /// Start tasks from the queue again.
    Resume {
        /// The queue.
        name: String,
    },
}

/// Runs `queue`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let changed = match args.action.unwrap_or(Action::Ls) {
        Action::Ls => None,
        Action::Set { name, max_parallel } => {
            Some(client.set_queue(&name, max_parallel, None).await?)
        }
        Action::Pause { name } => Some(client.set_queue(&name, None, Some(true)).await?),
        Action::Resume { name } => Some(client.set_queue(&name, None, Some(false)).await?),
    };
    let queues = match changed {
        Some(q) => vec![q],
        None => client.queues().await?,
    };
    if args.json {
        super::print_json(&queues)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            vec![
                q.name.clone(),
                q.max_parallel.to_string(),
                q.running.to_string(),
                q.pending.to_string(),
                if q.paused { "paused" } else { "active" }.to_string(),
            ]
        })
        .collect();
    out!(
        "{}",
        fmt::table(&["QUEUE", "MAX", "RUNNING", "PENDING", "STATE"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}
