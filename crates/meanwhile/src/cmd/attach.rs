//! `meanwhile attach ID`: this terminal joined to a task's terminal, until Ctrl-]
//! detaches it (the task goes on) or the task ends.
//!
//! It shows the task's recent output, then follows the log from its cursor, and
//! sends each keypress as input (raw mode: Ctrl-C goes to the task, not to this
//! command). Its size is the task terminal's, followed on resize. One attached
//! terminal writes at a time; another one watches read-only until it detaches.

use super::{Ctx, task_id};
use crate::exit::{CONFLICT, refuse};
use meanwhile_client::{Client, ClientError};
use meanwhile_core::{ErrorCode, OutputQuery, TaskId, TaskInput, Terminal, WaitFor};
use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The byte Ctrl-] sends.
const DETACH: u8 = 0x1d;
/// How often a writing terminal renews its hold on the task's input.
const KEEP_WRITING: Duration = Duration::from_secs(3);
/// Lines of earlier output shown when attaching.
const RECENT_LINES: usize = 40;

/// Arguments of `attach`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Detach with Ctrl-] (the task goes on). The task must have been started with --tty."
)]
pub struct Args {
    /// The task.
    #[arg(value_parser = task_id, add = crate::complete::tasks())]
    pub id: TaskId,
    /// Watch only: send no input and leave the task's terminal size alone.
    #[arg(long)]
    pub read_only: bool,
}

/// Runs `attach`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let id = args.id;
    let task = client.get(id).await?;
    if task.spec.tty.is_none() {
        return Err(refuse(
            CONFLICT,
            format!(
                "task {id} has no terminal to attach to: it was started without --tty (follow its output with `meanwhile logs -f {id}`{})",
                if task.spec.stdin {
                    format!(", send it input with `meanwhile send {id}`")
                } else {
                    String::new()
                }
            ),
        ));
    }
    if task.state.is_terminal() {
        return Err(refuse(
            CONFLICT,
            format!(
                "task {id} {}; read its output with `meanwhile logs {id}`",
                task.state.in_words()
            ),
        ));
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "attach joins a terminal to the task's: run it in a terminal (stdin is not one)"
        );
    }
    // The pid and the clock tell two terminals apart.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let writer = format!("attach-{}-{nanos}", std::process::id());
    let mut writing = !args.read_only;
    if writing {
        match client.send_input(id, &hold(&writer)).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) && e.to_string().contains("another terminal") => {
                writing = false;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mode = if writing {
        ""
    } else {
        " read-only (another terminal writes to it)"
    };
    errln!(
        "attached to task {id} ({}){mode}; detach with Ctrl-]",
        task.name
    );
    let raw = RawMode::enter(&stdin)?;
    if writing && let Some(size) = terminal_size() {
        let _ = client
            .send_input(
                id,
                &TaskInput {
                    resize: Some(size),
                    ..hold(&writer)
                },
            )
            .await; // a task that just ended: the output loop says so
    }
    let outcome = tokio::select! {
        r = show_output(&client, id) => r,
        r = send_keys(&client, id, &writer, writing) => r,
    };
    drop(raw);
    if writing {
        let detach = TaskInput {
            detach: true,
            ..hold(&writer)
        };
        let _ = client.send_input(id, &detach).await; // the task may have ended
    }
    match outcome? {
        Ended::Detached => errln!("\ndetached from task {id}; it goes on (meanwhile attach {id})"),
        Ended::Task(state) => errln!("\ntask {id} ended: {state}"),
    }
    Ok(ExitCode::SUCCESS)
}

enum Ended {
    Detached,
    Task(meanwhile_core::TaskState),
}

/// An input that only holds the task's input for `writer`.
fn hold(writer: &str) -> TaskInput {
    TaskInput {
        writer: Some(writer.to_string()),
        ..TaskInput::default()
    }
}

fn is_conflict(e: &ClientError) -> bool {
    matches!(e, ClientError::Api(a) if a.code == ErrorCode::Conflict)
}

/// Prints the recent output, then what comes, until the task ends.
async fn show_output(client: &Client, id: TaskId) -> anyhow::Result<Ended> {
    let mut q = OutputQuery {
        tail: Some(RECENT_LINES),
        ..OutputQuery::default()
    };
    loop {
        let chunk = client.output(id, &q).await?;
        crate::out::bytes(chunk.text.as_bytes())?;
        if chunk.state.is_terminal() && !chunk.more {
            return Ok(Ended::Task(chunk.state));
        }
        q = OutputQuery {
            since: Some(chunk.cursor),
            wait: (!chunk.more).then_some(WaitFor::Output),
            timeout: Some(Duration::from_secs(30)),
            ..OutputQuery::default()
        };
    }
}

/// Sends what is typed until Ctrl-], keeping the hold on the task's input and its
/// terminal's size.
async fn send_keys(
    client: &Client,
    id: TaskId,
    writer: &str,
    writing: bool,
) -> anyhow::Result<Ended> {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 4096];
    let mut keep = tokio::time::interval(KEEP_WRITING);
    let mut resized =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    loop {
        tokio::select! {
            n = stdin.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Ok(Ended::Detached);
                }
                let typed = &buf[..n];
                let (send, detach) = match typed.iter().position(|&b| b == DETACH) {
                    Some(at) => (&typed[..at], true),
                    None => (typed, false),
                };
                if writing && !send.is_empty() {
                    let input = TaskInput {
                        text: Some(String::from_utf8_lossy(send).into_owned()),
                        ..hold(writer)
                    };
                    if let Err(e) = client.send_input(id, &input).await
                        && !is_conflict(&e)
                    {
                        return Err(e.into());
                    }
                }
                if detach {
                    return Ok(Ended::Detached);
                }
            }
            _ = keep.tick(), if writing => {
                let _ = client.send_input(id, &hold(writer)).await; // ended: the output says so
            }
            _ = resized.recv(), if writing => {
                if let Some(size) = terminal_size() {
                    let _ = client.send_input(id, &TaskInput { resize: Some(size), ..hold(writer) }).await;
                }
            }
        }
    }
}

/// This terminal's size, when stdout is a terminal.
fn terminal_size() -> Option<Terminal> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    let t = Terminal {
        cols: ws.ws_col,
        rows: ws.ws_row,
    };
    t.check("resize").ok().map(|()| t)
}

/// The terminal in raw mode (each key as it is pressed, no echo, no signals from
/// Ctrl-C), restored when dropped.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter(stdin: &std::io::Stdin) -> anyhow::Result<RawMode> {
        let saved = rustix::termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin().as_fd(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        ); // the terminal may be gone
    }
}
