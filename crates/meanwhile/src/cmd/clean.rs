//! `meanwhile clean`: removes finished tasks by age or count, with their logs.

use super::{Ctx, duration};
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `clean`. With neither option, every finished task is removed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only tasks that finished longer ago than this (`7d`, `12h`).
    #[arg(long, value_parser = duration)]
    pub older_than: Option<Duration>,
    /// Keep the newest N finished tasks.
    #[arg(long)]
    pub keep_last: Option<u64>,
    /// Print `{"removed": [IDS]}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs `clean`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let removed = ctx.client()?.clean(args.older_than, args.keep_last).await?;
    if args.json {
        super::print_json(&serde_json::json!({ "removed": removed }))?;
    } else {
        outln!("removed {} finished task(s)", removed.len());
    }
    Ok(ExitCode::SUCCESS)
}
