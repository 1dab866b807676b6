//! `meanwhile send ID [TEXT] [--key K]... [--file F] [--eof]`: writes to a running
//! task's stdin or terminal.

use super::{Ctx, task_id};
use anyhow::Context;
use meanwhile_core::{Key, MAX_INPUT_CHARS, TaskId, TaskInput, Terminal};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `send`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  meanwhile send 7 y --key enter          answer a [y/N] prompt\n  meanwhile send 7 'print(6*7)' --key enter\n  meanwhile send 7 --key ctrl-c            interrupt the program in the terminal\n  meanwhile send 7 --file answers.txt --eof\n\nThe task must have been started with --stdin (a pipe) or --tty (a terminal)."
)]
pub struct Args {
    /// The task.
    #[arg(value_parser = task_id, add = crate::complete::tasks())]
    pub id: TaskId,
    /// Text written as it is; no newline is added (press `--key enter`).
    pub text: Option<String>,
    /// A key pressed after the text (repeat): enter, tab, ctrl-c, ctrl-d, ctrl-z, up,
    /// down, left, right, esc, backspace. On a terminal, ctrl-c interrupts its
    /// foreground programs as a person's keypress would.
    #[arg(long = "key", short = 'k', value_name = "KEY")]
    pub keys: Vec<Key>,
    /// Send this file's contents (`-` for stdin) before the text.
    #[arg(long, value_name = "F")]
    pub file: Option<PathBuf>,
    /// End the input afterwards: close the pipe, or Ctrl-D on a terminal.
    #[arg(long)]
    pub eof: bool,
    /// Resize the task's terminal (COLSxROWS).
    #[arg(long, value_name = "COLSxROWS")]
    pub resize: Option<Terminal>,
    /// Print `{"id", "bytes", "eof"}`: what reached the task.
    #[arg(long)]
    pub json: bool,
}

/// Runs `send`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    if let Some(f) = &args.file {
        let mut bytes = Vec::new();
        if f.as_os_str() == "-" {
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("--file -: reading stdin")?;
        } else {
            bytes = std::fs::read(f).with_context(|| format!("--file: reading {}", f.display()))?;
        }
        text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("--file: {} is not UTF-8 text", f.display()))?;
    }
    text.push_str(args.text.as_deref().unwrap_or(""));
    if text.is_empty() && args.keys.is_empty() && !args.eof && args.resize.is_none() {
        anyhow::bail!("nothing to send: give TEXT, --key, --file, --eof or --resize");
    }
    let client = ctx.client()?;
    // Long text goes in parts; the keys, the end and the resize with the last one.
    let chars: Vec<char> = text.chars().collect();
    let mut parts: Vec<String> = chars
        .chunks(MAX_INPUT_CHARS)
        .map(|c| c.iter().collect())
        .collect();
    if parts.is_empty() {
        parts.push(String::new());
    }
    let last = parts.len() - 1;
    let mut bytes = 0;
    let mut ended = false;
    for (i, part) in parts.into_iter().enumerate() {
        let input = TaskInput {
            text: (!part.is_empty()).then_some(part),
            keys: if i == last {
                args.keys.clone()
            } else {
                Vec::new()
            },
            eof: i == last && args.eof,
            resize: if i == last { args.resize } else { None },
            ..TaskInput::default()
        };
        let sent = client.send_input(args.id, &input).await?;
        bytes += sent.bytes;
        ended |= sent.eof;
    }
    if args.json {
        super::print_json(&meanwhile_core::InputSent {
            id: args.id,
            bytes,
            eof: ended,
        })?;
    } else if ended {
        outln!("{} sent {bytes} bytes, input ended", args.id);
    } else {
        outln!("{} sent {bytes} bytes", args.id);
    }
    Ok(ExitCode::SUCCESS)
}
