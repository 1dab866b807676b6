//! One module per command, each with its `Args` and `run`.

pub mod agent;
pub mod agent_record;
pub mod alerts;
pub mod attach;
pub mod audit;
pub mod backup;
pub mod batch;
pub mod budget;
pub mod check;
pub mod clean;
pub mod completions;
pub mod daemon;
pub mod dashboard;
pub mod logs;
pub mod ls;
pub mod man;
pub mod mcp;
pub mod nodes;
pub mod notifications;
pub mod queue;
pub mod retry;
pub mod rm;
pub mod run;
pub mod schedule;
pub mod send;
pub mod serve;
pub mod show;
pub mod status;
pub mod stop;
pub mod token;
pub mod wait;

use meanwhile_core::{TaskId, parse_duration};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// What every command gets besides its arguments.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The home directory.
    pub home: PathBuf,
}

impl Ctx {
    /// A client of the daemon, started if none answers.
    pub fn client(&self) -> anyhow::Result<meanwhile_client::Client> {
        crate::daemon::connect(&self.home)
    }
}

/// Runs `work`, which follows or waits on the tasks `ids`, until it ends or Ctrl-C.
/// At Ctrl-C it says that the tasks keep running and how to stop them, and the
/// command exits 130, as an interrupted command does.
pub async fn interruptible(
    ids: &[TaskId],
    work: impl std::future::Future<Output = anyhow::Result<std::process::ExitCode>>,
) -> anyhow::Result<std::process::ExitCode> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
            match list.as_slice() {
                [id] => errln!("\nmeanwhile: task {id} keeps running; meanwhile stop {id} stops it"),
                _ => errln!(
                    "\nmeanwhile: tasks {} keep running; meanwhile stop {} stops them",
                    list.join(", "),
                    list.join(" ")
                ),
            }
            Ok(std::process::ExitCode::from(130))
        }
    }
}

/// Says on stderr why a followed or waited task ended as it did, when its exit code
/// alone does not (124: its timeout; 137: killed, as over its memory limit).
pub fn say_why(t: &meanwhile_core::TaskRecord) {
    if matches!(crate::exit::of_task(t), 124 | 137)
        && let Some(r) = &t.reason
    {
        errln!("meanwhile: task {} {}: {r}", t.id, t.state);
    }
}

/// Parses a duration argument (`30s`, `5m`).
pub fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Parses a task id argument.
pub fn task_id(s: &str) -> Result<TaskId, String> {
    s.parse()
}

/// Does `each` to every task of `ids`, even after one fails: prints the line `line`
/// makes of what it returns (unless `json`: the caller prints them all), or the
/// error, naming the task, on stderr. Returns what each that worked returned, and the
/// worst exit code of them (the highest: 0 when all went well). A closed stdout or a
/// daemon that does not answer ends it at once, since the rest would fail the same way.
pub async fn for_each_task<T, F, Fut>(
    ids: &[TaskId],
    json: bool,
    line: impl Fn(&T) -> String,
    mut each: F,
) -> anyhow::Result<(Vec<T>, ExitCode)>
where
    F: FnMut(TaskId) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut worst = 0u8;
    let mut done = Vec::new();
    for &id in ids {
        match each(id).await {
            Ok(v) => {
                if !json {
                    outln!("{}", line(&v));
                }
                done.push(v);
            }
            Err(e) if crate::out::is_pipe_closed(&e) => return Err(e),
            Err(e) => {
                let code = crate::exit::code_of(&e);
                if code == crate::exit::UNAVAILABLE {
                    return Err(e);
                }
                let text = format!("{e:#}");
                // Most refusals name the task already (`task 5 has succeeded; ...`).
                if names_task(&text, id) {
                    errln!("meanwhile: {text}");
                } else {
                    errln!("meanwhile: task {id}: {text}");
                }
                worst = worst.max(code);
            }
        }
    }
    Ok((done, ExitCode::from(worst)))
}

/// Whether `text` speaks of task `id` (`task 5`, and not `task 51`).
fn names_task(text: &str, id: TaskId) -> bool {
    let name = format!("task {id}");
    text.match_indices(&name)
        .any(|(at, _)| !text[at + name.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Prints JSON, pretty.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_names_its_task_or_gets_the_name_in_front() {
        for (text, id, expect) in [
            (
                "task 5 has succeeded; only a running task takes input",
                5,
                true,
            ),
            ("unknown task 5 (see 'meanwhile ls')", 5, true),
            ("task 51 is running", 5, false),
            ("task 5: a succeeded task cannot be cancelled", 5, true),
            ("no meanwhile daemon answers", 5, false),
        ] {
            assert_eq!(names_task(text, TaskId(id)), expect, "{text:?}");
        }
    }
}
