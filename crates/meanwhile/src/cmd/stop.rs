//! `meanwhile stop ID...`: stops tasks; a pending one never starts.

use super::{Ctx, task_id};
use meanwhile_core::{StopMode, TaskId};
use std::process::ExitCode;

/// Arguments of `stop`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks; each is tried, and the exit code is the worst of theirs.
    #[arg(required = true, value_parser = task_id, add = crate::complete::tasks())]
    pub ids: Vec<TaskId>,
    /// SIGKILL at once instead of SIGTERM, the grace period, then SIGKILL.
    #[arg(long)]
    pub force: bool,
    /// Print the tasks as JSON, as they are once the stop is under way.
    #[arg(long)]
    pub json: bool,
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
    let (tasks, code) = super::for_each_task(
        &args.ids,
        args.json,
        |t: &meanwhile_core::TaskRecord| {
            if t.state.is_terminal() {
                format!("{} {}", t.id, t.state)
            } else {
                format!("{} stopping", t.id)
            }
        },
        |id| async move { Ok(client.stop(id, mode).await?) },
    )
    .await?;
    if args.json {
        super::print_json(&tasks)?;
    }
    Ok(code)
}
