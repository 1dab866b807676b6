//! `meanwhile wait ID...`: waits for tasks to end, with a progress bar per task on a
//! terminal; exits with the task's exit code when waiting on one. With `--until
//! listening` or `--until input`, waits for running tasks to listen on a socket or
//! to wait for input instead.

use super::{Ctx, duration, task_id};
use crate::bars::Bars;
use crate::exit;
use meanwhile_client::Client;
use meanwhile_core::{OutputQuery, TaskId, TaskRecord, TaskState, WaitFor, WaitMode};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;
use tokio::time::Instant;

/// Arguments of `wait`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tasks.
    #[arg(required = true, value_parser = task_id, add = crate::complete::tasks())]
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
    /// No progress bars and no list of how the tasks ended: only the exit code.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// What to wait for: `end` (the default), `listening` (the task's processes
    /// listen on a socket, such as a dev server ready for requests; prints where)
    /// or `input` (it waits at a prompt; prints the prompt). Exits 1 when a task
    /// ends first, 124 on timeout.
    #[arg(long, value_name = "end|listening|input", default_value = "end", value_parser = until)]
    pub until: Until,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The tasks end.
    End,
    /// They listen on a socket.
    Listening,
    /// They wait for input.
    Input,
}

fn until(s: &str) -> Result<Until, String> {
    match s {
        "end" | "exit" => Ok(Until::End),
        "listening" => Ok(Until::Listening),
        "input" => Ok(Until::Input),
        _ => Err(format!("expected end, listening or input, got {s:?}")),
    }
}

/// Runs `wait`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let ids = args.ids.clone();
    super::interruptible(&ids, wait(ctx, args)).await
}

async fn wait(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let deadline = args.timeout.map(|t| Instant::now() + t);
    if args.until != Until::End {
        return until_seen(&client, &args, deadline).await;
    }
    // Bars only for a person at a terminal: not for scripts, pipes or files.
    let bars = !args.quiet
        && !args.json
        && std::io::stderr().is_terminal()
        && std::io::stdout().is_terminal();
    let (tasks, timed_out) = if bars {
        with_bars(&client, &args, deadline).await?
    } else {
        plain(&client, &args, deadline).await?
    };
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
    } else if all.len() > 1 && !args.quiet && !bars {
        for t in &all {
            outln!("{} {} {} {}", t.id, t.state.symbol(), t.state, t.name);
        }
    }
    if timed_out {
        errln!("meanwhile: gave up waiting after the timeout");
        return Ok(ExitCode::from(exit::TIMED_OUT));
    }
    if all.len() == 1 {
        if !args.json {
            super::say_why(&all[0]);
        }
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

/// How long one output wait asks for at most, when the wait has no timeout.
const ONE_WAIT: Duration = Duration::from_secs(300);

/// How a wait for one task to listen or to wait for input ended.
enum Seen {
    /// It does, as this answer shows.
    Yes(meanwhile_core::OutputChunk),
    /// It ended first, in this state.
    Ended(TaskState),
    /// The timeout passed first.
    TimedOut,
}

/// Waits until task `id` listens or waits for input (`wait`), through the output
/// API's `wait=listening` / `wait=input`.
async fn wait_one(
    client: Client,
    id: TaskId,
    wait: WaitFor,
    deadline: Option<Instant>,
) -> anyhow::Result<(TaskId, Seen)> {
    loop {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => ONE_WAIT,
        };
        let query = OutputQuery {
            tail: Some(0),
            wait: Some(wait.clone()),
            timeout: Some(left.min(ONE_WAIT)),
            ..OutputQuery::default()
        };
        let c = client.output(id, &query).await?;
        let met = match wait {
            WaitFor::Listening => !c.listening.is_empty(),
            _ => c.waiting_for_input,
        };
        if met {
            return Ok((id, Seen::Yes(c)));
        }
        if c.state.is_terminal() {
            return Ok((id, Seen::Ended(c.state)));
        }
        if c.timed_out && deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok((id, Seen::TimedOut));
        }
    }
}

/// Waits until every task (or one, with `--any`) listens or waits for input.
async fn until_seen(
    client: &Client,
    args: &Args,
    deadline: Option<Instant>,
) -> anyhow::Result<ExitCode> {
    let wait = match args.until {
        Until::Listening => WaitFor::Listening,
        _ => WaitFor::Input,
    };
    let mut waits = tokio::task::JoinSet::new();
    for &id in &args.ids {
        waits.spawn(wait_one(client.clone(), id, wait.clone(), deadline));
    }
    let (mut seen, mut ended, mut timed_out) = (0, 0, false);
    while let Some(r) = waits.join_next().await {
        let (id, outcome) = r??;
        let say = !args.quiet && !args.json;
        match outcome {
            Seen::Yes(c) => {
                seen += 1;
                if say && !c.listening.is_empty() && wait == WaitFor::Listening {
                    let places: Vec<&str> = c.listening.iter().map(|l| l.reach()).collect();
                    outln!("{id} listening on {}", places.join(" "));
                } else if say {
                    let prompt = c.prompt.as_deref().unwrap_or("(no prompt shown)");
                    outln!("{id} waiting for input: {prompt}");
                }
                if args.any {
                    break;
                }
            }
            Seen::Ended(state) => {
                ended += 1;
                if say {
                    errln!("meanwhile: task {id} ended {state} first");
                }
            }
            Seen::TimedOut => timed_out = true,
        }
    }
    waits.abort_all();
    if args.json {
        let mut tasks = Vec::new();
        for id in &args.ids {
            tasks.push(client.get(*id).await?);
        }
        super::print_json(
            &serde_json::json!({ "tasks": tasks, "timed_out": timed_out && seen == 0 }),
        )?;
    }
    let ok = if args.any {
        seen > 0
    } else {
        ended == 0 && !timed_out
    };
    if ok {
        return Ok(ExitCode::SUCCESS);
    }
    if timed_out {
        errln!("meanwhile: gave up waiting after the timeout");
        return Ok(ExitCode::from(exit::TIMED_OUT));
    }
    Ok(ExitCode::FAILURE)
}

/// Whether waiting is over: every task ended, or one did with `--any`.
fn done(tasks: &[Option<TaskRecord>], any: bool) -> bool {
    let ended = |t: &Option<TaskRecord>| t.as_ref().is_some_and(|t| t.state.is_terminal());
    if any {
        tasks.iter().any(ended)
    } else {
        tasks.iter().all(ended)
    }
}

/// Waits with the daemon's wait call; the tasks as last seen, and whether the
/// timeout passed.
async fn plain(
    client: &Client,
    args: &Args,
    deadline: Option<Instant>,
) -> anyhow::Result<(Vec<Option<TaskRecord>>, bool)> {
    let mut tasks: Vec<Option<TaskRecord>> = vec![None; args.ids.len()];
    while !done(&tasks, args.any) {
        let pending: Vec<TaskId> = args
            .ids
            .iter()
            .zip(&tasks)
            .filter(|(_, t)| !t.as_ref().is_some_and(|t| t.state.is_terminal()))
            .map(|(id, _)| *id)
            .collect();
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mode = if args.any {
            WaitMode::Any
        } else {
            WaitMode::All
        };
        let w = client.wait(&pending, mode, left).await?;
        for t in w.tasks {
            if let Some(i) = args.ids.iter().position(|id| *id == t.id) {
                tasks[i] = Some(t);
            }
        }
        if w.timed_out {
            return Ok((tasks, true));
        }
    }
    Ok((tasks, false))
}

/// Waits by following the event stream, redrawing a task's bar at each of its
/// events; the tasks as last seen, and whether the timeout passed.
async fn with_bars(
    client: &Client,
    args: &Args,
    deadline: Option<Instant>,
) -> anyhow::Result<(Vec<Option<TaskRecord>>, bool)> {
    // Subscribed before the tasks are read, so no change between the two is missed.
    let mut events = client.events(None).await?;
    let mut tasks = Vec::with_capacity(args.ids.len());
    for id in &args.ids {
        tasks.push(client.get(*id).await?);
    }
    let mut bars = Bars::new(&tasks, crate::fmt::now());
    let mut seen: Vec<Option<TaskRecord>> = tasks.into_iter().map(Some).collect();
    let timeout = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let mut timed_out = false;
    while !done(&seen, args.any) {
        let event = tokio::select! {
            e = events.next() => e,
            _ = &mut timeout => {
                timed_out = true;
                break;
            }
        };
        let event = match event {
            Some(e) => e?,
            // The stream ended (a proxy, or the daemon restarting): resume after the
            // last event seen.
            None => {
                events = events.reconnect().await?;
                continue;
            }
        };
        let Some(i) = event
            .task_id
            .and_then(|id| args.ids.iter().position(|x| *x == id))
        else {
            continue;
        };
        let t = client.get(args.ids[i]).await?;
        bars.update(i, &t);
        seen[i] = Some(t);
    }
    bars.finish();
    Ok((seen, timed_out))
}
