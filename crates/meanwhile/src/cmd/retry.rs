//! `meanwhile retry ID`: runs a finished task again.

use super::{Ctx, task_id};
use meanwhile_core::TaskId;
use std::process::ExitCode;

/// Arguments of `retry`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task.
    #[arg(value_parser = task_id)]
    pub id: TaskId,
}

/// Runs `retry`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let t = ctx.client()?.retry(args.id).await?;
    outln!("{} {}", t.id, t.state);
    Ok(ExitCode::SUCCESS)
}
