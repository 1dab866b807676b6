//! `meanwhile wait ID...`: waits for tasks to end, with a progress line while waiting
//! on several; exits with the task's exit code when waiting on one.

use super::{Ctx, duration, task_id};
use crate::exit;
use meanwhile_core::{TaskId, TaskRecord, TaskState, WaitMode};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Arguments of `wait`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks.
    #[arg(required = true, value_parser = task_id)]
    pub ids: Vec<TaskId>,
    /// Return as soon as one of them has ended.
    #[arg(long)]
    pub any: bool,
    /// Give up after this long (exit code 124).
    #[arg(long, short = 't', value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Print the tasks as JSON when done.
    #[arg(long)]
    pub json: bool,
}

/// Runs `wait`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let deadline = args.timeout.map(|t| Instant::now() + t);
    let progress = args.ids.len() > 1 && !args.json && std::io::stderr().is_terminal();
    let mut tasks: Vec<Option<TaskRecord>> = vec![None; args.ids.len()];
    let mut timed_out = false;
    loop {
        let pending: Vec<TaskId> = args
            .ids
            .iter()
            .zip(&tasks)
            .filter(|(_, t)| !t.as_ref().is_some_and(|t| t.state.is_terminal()))
            .map(|(id, _)| *id)
            .collect();
        let done_any = tasks.iter().flatten().any(|t| t.state.is_terminal());
        if pending.is_empty() || (args.any && done_any) {
            break;
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // Any mode answers at each end, so the progress line moves as tasks finish.
        let w = client.wait(&pending, WaitMode::Any, left).await?;
        for t in w.tasks {
            if let Some(i) = args.ids.iter().position(|id| *id == t.id) {
                tasks[i] = Some(t);
            }
        }
        if progress {
            let done = tasks.iter().flatten().filter(|t| t.state.is_terminal());
            let ok = done
                .clone()
                .filter(|t| t.state == TaskState::Succeeded)
                .count();
            let n = done.count();
            crate::out::err(format_args!(
                "\r{n}/{} done ({ok} succeeded, {} not)   ",
                args.ids.len(),
                n - ok
            ));
        }
        if w.timed_out {
            timed_out = true;
            break;
        }
    }
    if progress {
        errln!("");
    }
    // Fill in tasks never returned by a wait (the loop ended early for --any).
    let mut all = Vec::with_capacity(tasks.len());
    for (id, t) in args.ids.iter().zip(tasks) {
        all.push(match t {
            Some(t) => t,
            None => client.get(*id).await?,
        });
    }
    if args.json {
        super::print_json(&serde_json::json!({ "tasks": all, "timed_out": timed_out }))?;
    } else if all.len() > 1 {
        for t in &all {
            outln!("{} {} {} {}", t.id, t.state.symbol(), t.state, t.name);
        }
    }
    if timed_out {
        errln!("meanwhile: gave up waiting after the timeout");
        return Ok(ExitCode::from(exit::TIMED_OUT));
    }
    if all.len() == 1 {
        return Ok(exit::task_exit(&all[0]));
    }
    if args.any {
        let first = all.iter().find(|t| t.state.is_terminal());
        return Ok(first.map(exit::task_exit).unwrap_or(ExitCode::FAILURE));
    }
    let all_ok = all.iter().all(|t| t.state == TaskState::Succeeded);
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
