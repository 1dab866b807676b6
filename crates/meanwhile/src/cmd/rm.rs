//! `meanwhile rm ID...`: removes finished tasks and their logs.

use super::{Ctx, task_id};
use meanwhile_core::TaskId;
use std::process::ExitCode;

/// Arguments of `rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks (finished ones; stop a running task first). Each is tried, and the
    /// exit code is the worst of theirs.
    #[arg(required = true, value_parser = task_id, add = crate::complete::tasks())]
    pub ids: Vec<TaskId>,
    /// Print `{"removed": [IDS]}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs `rm`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let client = &client;
    // One request per task, so that one refusal says which task and why, and the
    // others are still removed.
    let (removed, code) = super::for_each_task(
        &args.ids,
        args.json,
        |id: &TaskId| format!("{id} removed"),
        |id| async move {
            client.remove(vec![id]).await?;
            Ok(id)
        },
    )
    .await?;
    if args.json {
        super::print_json(&serde_json::json!({ "removed": removed }))?;
    }
    Ok(code)
}
