//! `meanwhile rm ID...`: removes finished tasks and their logs.

use super::{Ctx, task_id};
use meanwhile_core::TaskId;
use std::process::ExitCode;

/// Arguments of `rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks (finished ones; stop a running task first). Each is tried, and the
    /// exit code is the worst of theirs.
    #[arg(required = true, value_parser = task_id)]
    pub ids: Vec<TaskId>,
}

/// Runs `rm`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let client = &client;
    // One request per task, so that one refusal says which task and why, and the
    // others are still removed.
    super::for_each_task(&args.ids, |id| async move {
        client.remove(vec![id]).await?;
        Ok(format!("{id} removed"))
    })
    .await
}
