//! `meanwhile logs ID`: prints a task's output; `-f` follows it until the task ends.

use super::{Ctx, task_id};
use meanwhile_client::Client;
use meanwhile_core::{OutputQuery, TaskId, TaskRecord, WaitFor};
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task.
    #[arg(value_parser = task_id, add = crate::complete::tasks())]
    pub id: TaskId,
    /// Keep printing output as it comes until the task ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, short = 'n')]
    pub tail: Option<usize>,
    /// Only lines matching this regex.
    #[arg(long, short = 'g')]
    pub grep: Option<String>,
    /// Start at this byte offset (a cursor printed by --json).
    #[arg(long)]
    pub since: Option<u64>,
    /// Keep at most this many bytes (head and tail).
    #[arg(long)]
    pub max_bytes: Option<usize>,
    /// Remove colours and other ANSI escapes.
    #[arg(long)]
    pub strip_ansi: bool,
    /// Print the answer as JSON (text, cursor, state, exit code).
    #[arg(long)]
    pub json: bool,
}

/// Runs `logs`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let query = OutputQuery {
        since: args.since,
        tail: args.tail,
        grep: args.grep.clone(),
        max_bytes: args.max_bytes,
        strip_ansi: args.strip_ansi,
        wait: None,
        timeout: None,
    };
    if args.json {
        let chunk = client.output(args.id, &query).await?;
        super::print_json(&chunk)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.follow {
        return super::interruptible(&[args.id], async {
            let t = follow(&client, args.id, query).await?;
            super::say_why(&t);
            Ok(ExitCode::SUCCESS)
        })
        .await;
    }
    let mut q = query;
    loop {
        let chunk = client.output(args.id, &q).await?;
        crate::out::bytes(chunk.text.as_bytes())?;
        if !chunk.more || q.tail.is_some() || q.max_bytes.is_some() {
            break;
        }
        q.since = Some(chunk.cursor);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the output from `query` on as it comes, until the task ends; returns the
/// task as it ended.
pub async fn follow(client: &Client, id: TaskId, query: OutputQuery) -> anyhow::Result<TaskRecord> {
    let mut q = query;
    // The first read honours --tail; later reads take everything after the cursor.
    loop {
        let chunk = client.output(id, &q).await?;
        crate::out::bytes(chunk.text.as_bytes())?;
        q.since = Some(chunk.cursor);
        q.tail = None;
        q.max_bytes = None;
        if chunk.state.is_terminal() && !chunk.more {
            return Ok(client.get(id).await?);
        }
        if !chunk.more {
            // Block in the daemon until there is more output or the task ends.
            q.wait = Some(WaitFor::Output);
            q.timeout = Some(Duration::from_secs(60));
        }
    }
}
