//! `bash`: a command run as a meanwhile task that the agent waits for, up to a
//! threshold; past it the task stays in the background and the model is told so.

use super::background::format_output;
use super::{MAX_TASK_TIMEOUT, StopGuard, ToolBox, ToolError, defs, parse_args, seconds};
use meanwhile_core::{OutputQuery, TaskSpec, TaskState, WaitMode, format_duration};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    command: String,
    #[serde(default)]
    timeout_seconds: Option<f64>,
}

pub(crate) async fn bash(
    tb: &ToolBox,
    args: Value,
    key: Option<String>,
) -> Result<String, ToolError> {
    let tool = defs::BASH;
    let a: Args = parse_args(tool, args)?;
    if a.command.trim().is_empty() {
        return Err(ToolError::args(tool, "command must not be empty"));
    }
    let mut spec = TaskSpec::shell(a.command);
    spec.cwd = Some(tb.workspace.root().to_path_buf());
    spec.session = Some(tb.session.clone());
    spec.sandbox = tb.sandbox.then_some(true);
    spec.timeout = seconds(tool, "timeout_seconds", a.timeout_seconds, MAX_TASK_TIMEOUT)?
        .filter(|d| !d.is_zero());
    spec.idempotency_key = key;
    let id = tb.backend.submit(spec).await?;
    tb.track(id);
    // Until the command is either done or handed to the background, it belongs to
    // this call: a turn cancelled meanwhile takes it down too.
    let guard = StopGuard::one(tb.backend.clone(), id).of_attempt(tb.attempt.clone());
    let waited = tb
        .backend
        .wait(vec![id], WaitMode::All, Some(tb.bash_background_after))
        .await?;
    guard.disarm();
    let task = match waited.tasks.into_iter().next() {
        Some(t) => t,
        None => tb.backend.get(id).await?,
    };
    if task.state.is_terminal() {
        tb.mark_reported(id);
        let chunk = tb
            .backend
            .read_output(
                id,
                OutputQuery {
                    max_bytes: Some(tb.output_limit),
                    strip_ansi: true,
                    ..OutputQuery::default()
                },
            )
            .await?;
        let mut head = match (task.state, task.exit_code, task.signal) {
            (_, Some(code), _) => format!("exit code {code}"),
            (TaskState::TimedOut, _, _) => "timed out (timeout_seconds reached)".to_string(),
            (_, None, Some(sig)) => format!("killed by signal {sig}"),
            (state, None, None) => state.as_str().replace('_', " "),
        };
        if let Some(r) = task
            .reason
            .as_deref()
            .filter(|_| task.state != TaskState::Succeeded)
        {
            head.push_str(&format!(" ({r})"));
        }
        if chunk.elided_bytes > 0 || chunk.more {
            head.push_str(&format!(
                "; the output was {} bytes, so its middle is left out: read it with background_output id {id} (since, tail, grep)",
                chunk.total_bytes
            ));
        }
        let text = if chunk.text.is_empty() {
            "(no output)".to_string()
        } else {
            chunk.text
        };
        return Ok(format!("{head}\n{text}"));
    }
    let so_far = tb
        .backend
        .read_output(
            id,
            OutputQuery {
                tail: Some(20),
                max_bytes: Some(tb.output_limit / 2),
                strip_ansi: true,
                ..OutputQuery::default()
            },
        )
        .await?;
    let status = if task.state == TaskState::Pending {
        "has not started yet (its queue is busy)"
    } else {
        "is still running"
    };
    Ok(format!(
        "The command {status} after {}, so it continues in the background as task {id}. It is not killed and its whole output is kept. \
         You will be told how it ended before a later turn; meanwhile work on something else, or use background_output with id {id} \
         (wait \"exit\" blocks until it ends; since={} reads only newer output), and background_stop with id {id} to stop it.\n\
         Output so far:\n{}",
        format_duration(tb.bash_background_after),
        so_far.cursor,
        format_output(&so_far)
    ))
}
