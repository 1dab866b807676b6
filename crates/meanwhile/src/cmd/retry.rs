//! `meanwhile retry ID...`: runs finished tasks again.

use super::{Ctx, task_id};
use meanwhile_core::TaskId;
use std::process::ExitCode;

/// Arguments of `retry`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks (finished ones). Each is tried, and the exit code is the worst of
    /// theirs.
    #[arg(required = true, value_parser = task_id)]
    pub ids: Vec<TaskId>,
}

/// Runs `retry`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let client = &client;
    super::for_each_task(&args.ids, |id| async move {
        let t = client.retry(id).await?;
        Ok(format!("{} {}", t.id, t.state))
    })
    .await
}
