//! `meanwhile stop ID...`: stops tasks; a pending one never starts.

use super::{Ctx, task_id};
use meanwhile_core::{StopMode, TaskId};
use std::process::ExitCode;

/// Arguments of `stop`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks; each is tried, and the exit code is the worst of theirs.
    #[arg(required = true, value_parser = task_id)]
    pub ids: Vec<TaskId>,
    /// SIGKILL at once instead of SIGTERM, the grace period, then SIGKILL.
    #[arg(long)]
    pub force: bool,
}

/// Runs `stop`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let mode = if args.force {
        StopMode::Force
    } else {
        StopMode::Graceful
    };
    let client = &client;
    super::for_each_task(&args.ids, |id| async move {
        let t = client.stop(id, mode).await?;
        Ok(if t.state.is_terminal() {
            format!("{id} {}", t.state)
        } else {
            format!("{id} stopping")
        })
    })
    .await
}
