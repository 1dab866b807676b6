//! `meanwhile nodes`: the nodes sharing the daemon's store, and `nodes rm NAME` to
//! forget one that is gone for good.

use super::Ctx;
use crate::fmt;
use std::process::ExitCode;

/// Arguments of `nodes`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do; list the nodes when absent.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `nodes` can do besides listing.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Forget a node that is gone for good (its node_silent alert resolves); an
    /// alive node is refused.
    Rm {
        /// The node's name.
        name: String,
    },
}

/// Runs `nodes`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    if let Some(Action::Rm { name }) = args.action {
        client.remove_node(&name).await?;
        outln!("forgot node {name}");
        return Ok(ExitCode::SUCCESS);
    }
    let nodes = client.nodes().await?;
    if args.json {
        super::print_json(&nodes)?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = fmt::now();
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.address.clone().unwrap_or_else(|| "-".into()),
                n.version.clone(),
                fmt::ago(n.heartbeat_at, now),
                n.running.to_string(),
                match (n.alive, n.stopped_at) {
                    (true, _) => "alive".into(),
                    (false, Some(_)) => "stopped".into(),
                    (false, None) => "silent".into(),
                },
            ]
        })
        .collect();
    out!(
        "{}",
        fmt::table(
            &[
                "NODE",
                "ADDRESS",
                "VERSION",
                "HEARTBEAT",
                "RUNNING",
                "STATE"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
