//! `meanwhile rm ID...`: removes finished tasks and their logs.

use super::{Ctx, task_id};
use meanwhile_core::TaskId;
use std::process::ExitCode;

/// Arguments of `rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks (finished ones; stop a running task first).
    #[arg(required = true, value_parser = task_id)]
    pub ids: Vec<TaskId>,
}

/// Runs `rm`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let removed = ctx.client()?.remove(args.ids).await?;
    outln!("removed {} task(s)", removed.len());
    Ok(ExitCode::SUCCESS)
}
