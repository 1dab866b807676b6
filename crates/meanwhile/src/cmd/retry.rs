//! `meanwhile retry ID...`: runs finished tasks again.

use super::{Ctx, task_id};
use meanwhile_core::TaskId;
use std::process::ExitCode;

/// Arguments of `retry`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks (finished ones). Each is tried, and the exit code is the worst of
    /// theirs.
    #[arg(required = true, value_parser = task_id, add = crate::complete::tasks())]
    pub ids: Vec<TaskId>,
    /// Print the tasks as JSON, as they are once requeued.
    #[arg(long)]
    pub json: bool,
}

/// Runs `retry`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let client = &client;
    let (tasks, code) = super::for_each_task(
        &args.ids,
        args.json,
        |t: &meanwhile_core::TaskRecord| format!("{} {}", t.id, t.state),
        |id| async move { Ok(client.retry(id).await?) },
    )
    .await?;
    if args.json {
        super::print_json(&tasks)?;
    }
    Ok(code)
}
