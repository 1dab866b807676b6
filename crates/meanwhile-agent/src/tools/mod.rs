//! The agent's tools: their definitions ([`defs`]), their errors, and the toolbox
//! that runs them for one agent (workspace, session, started tasks).
//!
//! The background task tools need nothing but a [`Backend`], so the MCP server runs
//! them through [`call_background_tool`] with the same definitions
//! ([`background_tools`]) and the same answers as the agent.

mod background;
mod bash;
pub mod defs;
mod files;
mod spawn;

pub use background::call_background_tool;
pub use defs::{ALL_TOOLS, BACKGROUND_TOOLS, agent_tools, background_tools, definition};
pub use spawn::call_spawn_agent;

use crate::budget::Budget;
use crate::workspace::{PathError, Workspace};
use meanwhile_core::{ApiError, Backend, StopMode, TaskId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest `timeout_seconds` a model may give a task: a month is "no limit" in
/// practice, and keeps the arithmetic of deadlines far from overflowing.
pub(crate) const MAX_TASK_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a tool call failed. The message goes back to the model as a failed tool
/// result, so it says what was wrong and what to do instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The model called a tool that does not exist or is not enabled.
    #[error("unknown tool {name:?}; the tools you can use are: {available}")]
    UnknownTool {
        /// The name it used.
        name: String,
        /// The enabled tools, comma-separated.
        available: String,
    },
    /// The arguments do not match the tool's schema.
    #[error("bad arguments for {tool}: {message}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// What is wrong with them.
        message: String,
    },
    /// A path was refused or could not be examined.
    #[error(transparent)]
    Path(#[from] PathError),
    /// `edit_file` found no occurrence of the text.
    #[error(
        "{path}: old_text was not found; read the file again and quote the text exactly, whitespace included, without line numbers"
    )]
    EditNoMatch {
        /// The file, relative to the workspace.
        path: String,
    },
    /// `edit_file` found the text more than once.
    #[error(
        "{path}: old_text occurs {count} times; include more of the surrounding lines so that it occurs exactly once"
    )]
    EditAmbiguous {
        /// The file, relative to the workspace.
        path: String,
        /// How many times it occurs.
        count: usize,
    },
    /// Reading or writing a file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// meanwhile refused the request (unknown task, bad spec, ...).
    #[error("{0}")]
    Backend(#[from] ApiError),
    /// The permission rules, or the person, refused the call.
    #[error("{tool} was not run: {why}. Choose another way, or ask the person to allow it.")]
    Refused {
        /// The tool.
        tool: String,
        /// Which rule refused it, or who.
        why: String,
    },
}

impl ToolError {
    pub(crate) fn args(tool: &str, message: impl Into<String>) -> ToolError {
        ToolError::InvalidArguments {
            tool: tool.to_string(),
            message: message.into(),
        }
    }

    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ToolError {
        let what = what.into();
        move |source| ToolError::Io { what, source }
    }
}

/// Parses a tool's arguments, turning serde's complaint into a message for the model.
pub(crate) fn parse_args<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, ToolError> {
    let args = match args {
        Value::Null => Value::Object(Default::default()),
        // The provider keeps arguments that were not valid JSON as a string.
        Value::String(raw) => {
            return Err(ToolError::args(
                tool,
                format!(
                    "they are not a JSON object (got {}); send an object matching the tool's schema",
                    crate::tools::preview(&raw, 200)
                ),
            ));
        }
        other => other,
    };
    // The path names the argument at fault, which serde's message alone may not.
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if matches!(path.as_str(), "" | ".") || inner.contains(&format!("`{path}`")) {
            ToolError::args(tool, inner)
        } else {
            ToolError::args(tool, format!("{path}: {inner}"))
        }
    })
}

/// A task id written as `7`, `"7"` or `"#7"`.
pub(crate) fn de_task_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TaskId, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) if n > 0 => Ok(TaskId(n)),
        Raw::Number(n) => Err(serde::de::Error::custom(format!(
            "task ids are positive integers like 7, got {n}"
        ))),
        Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// Seconds given by the model as a duration, checked and capped.
pub(crate) fn seconds(
    tool: &str,
    field: &str,
    value: Option<f64>,
    max: Duration,
) -> Result<Option<Duration>, ToolError> {
    match value {
        None => Ok(None),
        // `try_from` because a model may write 1e30, which `from_secs_f64` panics on.
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(
            Duration::try_from_secs_f64(s).map_or(max, |d| d.min(max)),
        )),
        Some(s) => Err(ToolError::args(
            tool,
            format!("{field} must be a number of seconds, 0 or more, got {s}"),
        )),
    }
}

/// The first `max` characters of `s` on one line, for quoting in messages.
pub(crate) fn preview(s: &str, max: usize) -> String {
    format!("{:?}", meanwhile_core::shorten(s, max))
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Keeps the head and tail of `text` within about `max` bytes, saying in the middle
/// how much was left out and how to read it (`rest`).
pub(crate) fn bound(text: &str, max: usize, rest: &str) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let head = floor_boundary(text, max / 2);
    let tail = ceil_boundary(text, text.len() - (max - max / 2));
    format!(
        "{}\n[... {} bytes left out here; {rest} ...]\n{}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// Stops, when dropped while armed, the tasks it holds that have not ended: how a
/// dropped run (a stopped agent task, a cancelled turn) takes its processes with it.
pub(crate) struct StopGuard {
    backend: Arc<dyn Backend>,
    ids: Arc<Mutex<Vec<TaskId>>>,
    armed: bool,
    /// The attempt the run belongs to: one another node took over is dropped here
    /// without stopping what the other node goes on following.
    attempt: Option<meanwhile_core::TaskContext>,
}

impl StopGuard {
    pub(crate) fn new(backend: Arc<dyn Backend>, ids: Arc<Mutex<Vec<TaskId>>>) -> StopGuard {
        StopGuard {
            backend,
            ids,
            armed: true,
            attempt: None,
        }
    }

    /// The guard of a run that belongs to `attempt` (when it does).
    pub(crate) fn of_attempt(mut self, attempt: Option<meanwhile_core::TaskContext>) -> StopGuard {
        self.attempt = attempt;
        self
    }

    pub(crate) fn one(backend: Arc<dyn Backend>, id: TaskId) -> StopGuard {
        StopGuard::new(backend, Arc::new(Mutex::new(vec![id])))
    }

    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for StopGuard {
    fn drop(&mut self) {
        if !self.armed || self.attempt.as_ref().is_some_and(|a| a.handed_over()) {
            return;
        }
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        if ids.is_empty() {
            return;
        }
        // Drop cannot wait, so the stops run as their own task; a runtime that is
        // itself going away stops its tasks anyway.
        let backend = self.backend.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { stop_unfinished(backend.as_ref(), &ids).await });
        }
    }
}

/// Stops each of `ids` that has not ended yet.
pub(crate) async fn stop_unfinished(backend: &dyn Backend, ids: &[TaskId]) {
    for id in ids {
        match backend.get(*id).await {
            Ok(t) if !t.state.is_terminal() => {
                if let Err(e) = backend.stop(*id, StopMode::Graceful).await {
                    tracing::debug!(task = %id, "could not stop: {e}");
                }
            }
            _ => {}
        }
    }
}

/// What a sub-agent started with `spawn_agent` gets unless the model says otherwise.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpawnDefaults {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub queue: Option<String>,
    pub budget: Budget,
    pub sandbox: bool,
}

/// Everything the tools of one agent need.
pub(crate) struct ToolBox {
    pub backend: Arc<dyn Backend>,
    pub session: String,
    pub workspace: Workspace,
    pub bash_background_after: Duration,
    /// Bytes of tool output given to the model at most.
    pub output_limit: usize,
    pub enabled: Vec<&'static str>,
    pub spawn: SpawnDefaults,
    /// Tasks this agent started, so that they can be stopped with it.
    pub started: Arc<Mutex<Vec<TaskId>>>,
    /// Tasks whose end a tool result already told the model (a `bash` that finished
    /// in the foreground): their completion notice would only repeat it.
    reported: Mutex<HashSet<TaskId>>,
    /// What may run without asking, with what the person allowed this session.
    pub permissions: Mutex<crate::permissions::Permissions>,
    /// Who answers when the rules ask; nobody (ask is deny) when `None`.
    pub approver: Option<Arc<dyn Approver>>,
    /// Asking is answered yes (`--yes`).
    pub yes: bool,
    /// Every command runs as a sandboxed task.
    pub sandbox: bool,
    /// The attempt of the agent task this runs in, when it does (see
    /// [`StopGuard`]).
    pub attempt: Option<meanwhile_core::TaskContext>,
}

/// What a call would do, as shown to the person: the main argument, and for
/// `background_run` every other field that runs something or decides where
/// (`on_end`, `cwd`, `env`), so that a yes is given to all of it.
fn describe_call(tool: &str, args: &Value) -> String {
    let mut what = match crate::permissions::main_argument(tool, args) {
        a if a.is_empty() => tool.to_string(),
        a => format!("{tool}: {a}"),
    };
    if tool == defs::BACKGROUND_RUN {
        for field in ["on_end", "cwd", "env"] {
            match args.get(field) {
                Some(Value::String(v)) if !v.trim().is_empty() => {
                    what.push_str(&format!(" ({field}: {v})"))
                }
                Some(v @ Value::Object(o)) if !o.is_empty() => {
                    what.push_str(&format!(" ({field}: {v})"))
                }
                _ => {}
            }
        }
    }
    what
}

/// A question to the person before a call the rules leave to asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The tool.
    pub tool: String,
    /// What the call would do, as shown to the person (`bash: cargo test`).
    pub what: String,
    /// The pattern "always" would allow for the rest of the session.
    pub always: String,
}

/// The person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Run this call.
    Yes,
    /// Do not.
    No,
    /// Run it, and every call the question's pattern matches this session.
    Always,
    /// The person cannot be asked now (they are typing): refused, for now.
    NotNow,
}

/// Asks the person before a call that the rules leave to asking (the interactive
/// agent's terminal).
pub trait Approver: Send + Sync {
    /// The person's answer to `question`.
    fn ask<'a>(
        &'a self,
        question: &'a Question,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send + 'a>>;
}

impl ToolBox {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        session: String,
        workspace: Workspace,
        enabled: Vec<&'static str>,
    ) -> ToolBox {
        ToolBox {
            backend,
            session,
            workspace,
            bash_background_after: Duration::from_secs(30),
            output_limit: 16_000,
            enabled,
            spawn: SpawnDefaults::default(),
            started: Arc::default(),
            reported: Mutex::default(),
            permissions: Mutex::default(),
            approver: None,
            yes: false,
            sandbox: false,
            attempt: None,
        }
    }

    /// Lets the call run, or says why not: the rules decide, and where they ask,
    /// the approver (or `--yes`) answers; with neither, asking is refusing.
    async fn permit(&self, tool: &str, args: &Value) -> Result<(), ToolError> {
        use crate::permissions::{Verdict, always_pattern};
        let decision = self
            .permissions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .decide(tool, args);
        let refused = |why: String| ToolError::Refused {
            tool: tool.to_string(),
            why,
        };
        match decision.verdict {
            Verdict::Allow => Ok(()),
            Verdict::Deny => Err(refused(decision.denial())),
            Verdict::Ask if self.yes => Ok(()),
            Verdict::Ask => {
                let rule = decision.asker();
                let Some(approver) = &self.approver else {
                    return Err(refused(format!(
                        "{rule} needs the person's approval, and nobody can answer here (run with --yes, or allow it in [agent.permissions])"
                    )));
                };
                let always = always_pattern(tool, args);
                let question = Question {
                    tool: tool.to_string(),
                    what: describe_call(tool, args),
                    always: always.to_string(),
                };
                match approver.ask(&question).await {
                    Answer::Yes => Ok(()),
                    Answer::Always => {
                        self.permissions
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .allow(always);
                        Ok(())
                    }
                    Answer::No => Err(refused("the person said no".into())),
                    Answer::NotNow => Err(refused(
                        "it needs the person's approval, which cannot be asked while they type; say in your answer what you want to run"
                            .into(),
                    )),
                }
            }
        }
    }

    /// The definitions of the enabled tools.
    pub(crate) fn definitions(&self) -> Vec<meanwhile_llm::ToolDefinition> {
        self.enabled.iter().filter_map(|n| definition(n)).collect()
    }

    fn track(&self, id: TaskId) {
        if let Ok(mut s) = self.started.lock()
            && !s.contains(&id)
        {
            s.push(id);
        }
    }

    /// The tasks started so far, in order, and the ends reported but not yet heard
    /// as notices, for a step record: a resumed session knows them again through
    /// [`ToolBox::restore_tasks`].
    pub(crate) fn task_marks(&self) -> (Vec<TaskId>, Vec<TaskId>) {
        let started = self.started.lock().map(|s| s.clone()).unwrap_or_default();
        let reported = self
            .reported
            .lock()
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default();
        (started, reported)
    }

    /// Takes back what a step recorded of the tasks a call started and the ends it
    /// reported.
    pub(crate) fn restore_tasks(&self, started: &[TaskId], reported: &[TaskId]) {
        for &id in started {
            self.track(id);
        }
        for &id in reported {
            self.mark_reported(id);
        }
    }

    fn mark_reported(&self, id: TaskId) {
        if let Ok(mut r) = self.reported.lock() {
            r.insert(id);
        }
    }

    /// True (once) when the end of `id` was already reported by a tool result.
    pub(crate) fn take_reported(&self, id: TaskId) -> bool {
        self.reported
            .lock()
            .map(|mut r| r.remove(&id))
            .unwrap_or(false)
    }

    /// Runs the tool `name` with the model's `args`; a task it starts is submitted
    /// with the idempotency key `key` when given, so that running the same call again
    /// (a session resumed after its process died) finds that task rather than
    /// starting another. `again` marks a call that may have run before (its start
    /// was recorded, its result was not): an edit whose effect is already there is
    /// then not made twice.
    pub(crate) async fn call(
        &self,
        name: &str,
        args: Value,
        key: Option<String>,
        again: bool,
    ) -> Result<String, ToolError> {
        let Some(name) = self.enabled.iter().copied().find(|n| *n == name) else {
            return Err(ToolError::UnknownTool {
                name: name.to_string(),
                available: self.enabled.join(", "),
            });
        };
        // Fields a sandboxed session refuses, and a working directory outside the
        // workspace, are refused before anyone is asked about the call.
        let cwd = if name == defs::BACKGROUND_RUN {
            if self.sandbox {
                background::refuse_unconfined(&args)?;
            }
            // Relative working directories are the workspace's, and must stay in it.
            match args.get("cwd").and_then(Value::as_str) {
                Some(cwd) => Some(self.workspace.resolve(cwd)?),
                None => None,
            }
        } else {
            None
        };
        self.permit(name, &args).await?;
        match name {
            defs::BASH => bash::bash(self, args, key).await,
            defs::READ_FILE => files::read_file(self, args).await,
            defs::WRITE_FILE => files::write_file(self, args).await,
            defs::EDIT_FILE => files::edit_file(self, args, again).await,
            defs::SPAWN_AGENT => spawn::spawn_agent(self, args, key).await,
            defs::BACKGROUND_RUN => {
                let mut args = args;
                if let Some(dir) = cwd {
                    args["cwd"] = Value::String(dir.display().to_string());
                }
                let mut bg = self.background();
                bg.key = key;
                let (id, answer) = bg.run(args).await?;
                self.track(id);
                Ok(answer)
            }
            other => self.background().call(other, args).await,
        }
    }

    fn background(&self) -> background::Background<'_> {
        background::Background {
            backend: self.backend.as_ref(),
            session: Some(&self.session),
            default_cwd: Some(self.workspace.root()),
            output_limit: self.output_limit,
            sandbox: self.sandbox,
            key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_keeps_head_and_tail_and_says_how_to_read_the_rest() {
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let b = bound(&text, 200, "read it all with background_output");
        assert!(b.starts_with("line 0\n"), "{b}");
        assert!(b.ends_with("line 999\n"), "{b}");
        assert!(b.contains("bytes left out here; read it all with background_output"));
        assert!(b.len() < 300);
        assert_eq!(bound("short", 200, "x"), "short");
        // Multi-byte characters are never cut in half.
        let wide = "é".repeat(500);
        let b = bound(&wide, 101, "x");
        assert!(b.starts_with('é') && b.ends_with('é'));
    }

    #[test]
    fn a_question_shows_every_field_that_runs_something() {
        let args = serde_json::json!({
            "command": "echo hi", "on_end": "id", "cwd": "sub", "env": {"PATH": "./bin"}, "name": "x"
        });
        assert_eq!(
            describe_call(defs::BACKGROUND_RUN, &args),
            r#"background_run: echo hi (on_end: id) (cwd: sub) (env: {"PATH":"./bin"})"#
        );
        let args = serde_json::json!({"command": "echo hi", "env": {}});
        assert_eq!(
            describe_call(defs::BACKGROUND_RUN, &args),
            "background_run: echo hi"
        );
        assert_eq!(
            describe_call(defs::BACKGROUND_LIST, &Value::Null),
            "background_list"
        );
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct A {
            path: String,
            #[serde(deserialize_with = "de_task_id")]
            id: TaskId,
        }
        let e = parse_args::<A>("t", serde_json::json!({"pathh": "x"})).unwrap_err();
        assert!(e.to_string().contains("unknown field `pathh`"), "{e}");
        let e = parse_args::<A>("t", Value::String("{oops".into())).unwrap_err();
        assert!(e.to_string().contains("not a JSON object"), "{e}");
        let huge = seconds(
            "t",
            "timeout_seconds",
            Some(1e300),
            Duration::from_secs(600),
        );
        assert_eq!(huge.unwrap(), Some(Duration::from_secs(600)));
        let e = seconds("t", "timeout_seconds", Some(-1.0), Duration::MAX).unwrap_err();
        assert!(e.to_string().contains("0 or more"), "{e}");
        let a: A = parse_args("t", serde_json::json!({"path": "x", "id": "#7"})).unwrap();
        assert_eq!(a.id, TaskId(7));
        let e = parse_args::<A>("t", serde_json::json!({"path": "x", "id": -1})).unwrap_err();
        assert!(e.to_string().contains("positive integers"), "{e}");
    }
}
