//! The background task tools (run, output, input, stop, list, wait) over any
//! [`Backend`]:
//! shared by the agent and the MCP server, so both answer a model the same way.

use super::defs::{self, MAX_LIST, MAX_OUTPUT_BYTES, MIN_OUTPUT_BYTES};
use super::{MAX_TASK_TIMEOUT, ToolError, de_task_id, parse_args, seconds};
use meanwhile_core::{
    Backend, ListFilter, OutputChunk, OutputQuery, StopMode, TaskId, TaskKind, TaskRecord,
    TaskSpec, TaskState, Timestamp, WaitFor, WaitMode, format_duration,
};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest a single wait may block: long enough for a test suite, short enough
/// that a model waiting by mistake gets control back.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// Output given to the model per answer unless it asks for another size.
const DEFAULT_OUTPUT_BYTES: usize = 16_000;

/// Runs one of the background tools (`background_run`, `background_output`,
/// `background_stop`, `background_list`, `background_wait`) with the model's
/// arguments and returns the text to give back to it.
///
/// Tasks started by `background_run` notify `session`, and `background_list` shows
/// that session's tasks unless asked for all. A relative `cwd` is refused here (there
/// is no workspace to resolve it against); absent, the backend's default applies.
pub async fn call_background_tool(
    backend: &dyn Backend,
    session: Option<&str>,
    name: &str,
    args: Value,
) -> Result<String, ToolError> {
    let bg = Background {
        backend,
        session,
        default_cwd: None,
        output_limit: DEFAULT_OUTPUT_BYTES,
        sandbox: false,
        key: None,
    };
    if name == defs::BACKGROUND_RUN {
        return bg.run(args).await.map(|(_, answer)| answer);
    }
    bg.call(name, args).await
}

/// Refuses, in a session that sandboxes every command, the `background_run` fields
/// that would reach outside the sandbox: `sandbox: false`, more places to write
/// (`allow_write`), and an `on_end` hook (hooks run as the daemon's user, unconfined).
/// Each refusal says what to do instead.
pub(crate) fn refuse_unconfined(args: &Value) -> Result<(), ToolError> {
    let tool = defs::BACKGROUND_RUN;
    if args.get("sandbox") == Some(&Value::Bool(false)) {
        return Err(ToolError::args(
            tool,
            "this session runs every command sandboxed; leave sandbox out",
        ));
    }
    if args
        .get("on_end")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.trim().is_empty())
    {
        return Err(ToolError::args(
            tool,
            "this session runs every command sandboxed, and an on_end hook runs outside the sandbox; leave on_end out (you are told how the task ended, or use background_wait)",
        ));
    }
    if args
        .get("allow_write")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(ToolError::args(
            tool,
            "this session runs every command sandboxed, writing only in the workspace and $TMPDIR; leave allow_write out",
        ));
    }
    Ok(())
}

pub(crate) struct Background<'a> {
    pub backend: &'a dyn Backend,
    pub session: Option<&'a str>,
    pub default_cwd: Option<&'a Path>,
    pub output_limit: usize,
    /// Every command runs sandboxed, whatever the call says.
    pub sandbox: bool,
    /// The idempotency key of the task `background_run` starts, if any.
    pub key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunArgs {
    command: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    timeout_seconds: Option<f64>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    concurrency_key: Option<String>,
    #[serde(default)]
    on_end: Option<String>,
    #[serde(default)]
    stall_seconds: Option<f64>,
    #[serde(default)]
    stall_action: Option<meanwhile_core::StallAction>,
    #[serde(default)]
    tty: bool,
    #[serde(default)]
    stdin: bool,
    #[serde(default)]
    sandbox: Option<bool>,
    #[serde(default)]
    allow_write: Vec<PathBuf>,
    #[serde(default)]
    no_network: bool,
    #[serde(default)]
    memory: Option<meanwhile_core::ByteSize>,
    #[serde(default)]
    cpu_time_seconds: Option<f64>,
    #[serde(default)]
    max_procs: Option<u32>,
    #[serde(default)]
    max_files: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputArgs {
    #[serde(deserialize_with = "de_task_id")]
    id: TaskId,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    keys: Vec<meanwhile_core::Key>,
    #[serde(default)]
    eof: bool,
}

/// The terminal an agent's task gets: wide enough for most programs' lines.
const AGENT_TERMINAL: meanwhile_core::Terminal = meanwhile_core::Terminal {
    cols: 120,
    rows: 40,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputArgs {
    #[serde(deserialize_with = "de_task_id")]
    id: TaskId,
    #[serde(default)]
    since: Option<u64>,
    #[serde(default)]
    tail: Option<usize>,
    #[serde(default)]
    grep: Option<String>,
    #[serde(default)]
    max_bytes: Option<usize>,
    #[serde(default)]
    wait: Option<WaitArg>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<f64>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum WaitArg {
    Exit,
    Output,
    Match,
    Listening,
    Input,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopArgs {
    #[serde(deserialize_with = "de_task_id")]
    id: TaskId,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    states: Vec<String>,
    #[serde(default)]
    all_sessions: bool,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitArgs {
    ids: Vec<IdArg>,
    #[serde(default)]
    mode: Option<ModeArg>,
    #[serde(default)]
    timeout_seconds: Option<f64>,
}

#[derive(Deserialize)]
struct IdArg(#[serde(deserialize_with = "de_task_id")] TaskId);

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ModeArg {
    All,
    Any,
}

impl Background<'_> {
    pub(crate) async fn call(&self, name: &str, args: Value) -> Result<String, ToolError> {
        match name {
            defs::BACKGROUND_RUN => self.run(args).await.map(|(_, answer)| answer),
            defs::BACKGROUND_OUTPUT => self.output(args).await,
            defs::BACKGROUND_INPUT => self.input(args).await,
            defs::BACKGROUND_STOP => self.stop(args).await,
            defs::BACKGROUND_LIST => self.list(args).await,
            defs::BACKGROUND_WAIT => self.wait(args).await,
            other => Err(ToolError::UnknownTool {
                name: other.to_string(),
                available: defs::BACKGROUND_TOOLS.join(", "),
            }),
        }
    }

    /// Starts the command; returns its id with the answer.
    pub(crate) async fn run(&self, args: Value) -> Result<(TaskId, String), ToolError> {
        let tool = defs::BACKGROUND_RUN;
        let a: RunArgs = parse_args(tool, args)?;
        if a.command.trim().is_empty() {
            return Err(ToolError::args(tool, "command must not be empty"));
        }
        let mut spec = TaskSpec::shell(a.command.clone());
        spec.name = a.name.filter(|n| !n.trim().is_empty());
        spec.cwd = a.cwd.or_else(|| self.default_cwd.map(Path::to_path_buf));
        spec.timeout = seconds(tool, "timeout_seconds", a.timeout_seconds, MAX_TASK_TIMEOUT)?
            .filter(|d| !d.is_zero());
        spec.env = a.env;
        spec.queue = a.queue;
        spec.concurrency_key = a.concurrency_key;
        spec.on_end = a.on_end.filter(|c| !c.trim().is_empty());
        spec.stall = seconds(tool, "stall_seconds", a.stall_seconds, MAX_TASK_TIMEOUT)?
            .filter(|d| !d.is_zero());
        spec.stall_action = a.stall_action;
        if a.tty && a.stdin {
            return Err(ToolError::args(
                tool,
                "give tty or stdin, not both (a terminal is also the task's input)",
            ));
        }
        spec.tty = a.tty.then_some(AGENT_TERMINAL);
        spec.stdin = a.stdin;
        spec.sandbox = if self.sandbox { Some(true) } else { a.sandbox };
        spec.allow_write = a.allow_write;
        spec.no_network = a.no_network.then_some(true);
        spec.memory = a.memory;
        spec.cpu_time = seconds(
            tool,
            "cpu_time_seconds",
            a.cpu_time_seconds,
            MAX_TASK_TIMEOUT,
        )?
        .filter(|d| !d.is_zero())
        .map(|d| Duration::from_secs(d.as_secs().max(1)));
        spec.max_procs = a.max_procs;
        spec.max_files = a.max_files;
        spec.session = self.session.map(str::to_string);
        spec.idempotency_key = self.key.clone();
        let id = self.backend.submit(spec).await?;
        let notify = if self.session.is_some() {
            " You will be told how it ended (state, exit code, last lines) before a later turn, so there is no need to poll it."
        } else {
            ""
        };
        Ok((
            id,
            format!(
                "Started task {id} in the background: {}.{notify} Read its output with background_output (id {id}), stop it with background_stop.",
                meanwhile_core::shorten(&a.command, 100)
            ),
        ))
    }

    async fn output(&self, args: Value) -> Result<String, ToolError> {
        let tool = defs::BACKGROUND_OUTPUT;
        let a: OutputArgs = parse_args(tool, args)?;
        let wait = match (a.wait, a.pattern) {
            (None, None) => None,
            (Some(WaitArg::Exit), None) => Some(WaitFor::Exit),
            (Some(WaitArg::Output), None) => Some(WaitFor::Output),
            (Some(WaitArg::Listening), None) => Some(WaitFor::Listening),
            (Some(WaitArg::Input), None) => Some(WaitFor::Input),
            (Some(WaitArg::Match) | None, Some(p)) => Some(WaitFor::Match(p)),
            (Some(WaitArg::Match), None) => {
                return Err(ToolError::args(
                    tool,
                    "wait = \"match\" needs a pattern (a regex)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ToolError::args(
                    tool,
                    "pattern goes with wait = \"match\" only",
                ));
            }
        };
        let timeout = seconds(tool, "timeout_seconds", a.timeout_seconds, MAX_WAIT)?;
        let max_bytes = match a.max_bytes {
            Some(n) if !(MIN_OUTPUT_BYTES..=MAX_OUTPUT_BYTES).contains(&n) => {
                return Err(ToolError::args(
                    tool,
                    format!(
                        "max_bytes must be between {MIN_OUTPUT_BYTES} and {MAX_OUTPUT_BYTES}, got {n}; read long output in pieces with since"
                    ),
                ));
            }
            Some(n) => n,
            None => self.output_limit.clamp(MIN_OUTPUT_BYTES, MAX_OUTPUT_BYTES),
        };
        let query = OutputQuery {
            since: a.since,
            tail: a.tail,
            grep: a.grep,
            max_bytes: Some(max_bytes),
            strip_ansi: true,
            wait,
            timeout,
        };
        let chunk = self.backend.read_output(a.id, query).await?;
        Ok(format_output(&chunk))
    }

    async fn input(&self, args: Value) -> Result<String, ToolError> {
        let tool = defs::BACKGROUND_INPUT;
        let a: InputArgs = parse_args(tool, args)?;
        let input = meanwhile_core::TaskInput {
            text: a.text.filter(|t| !t.is_empty()),
            keys: a.keys,
            eof: a.eof,
            ..meanwhile_core::TaskInput::default()
        };
        if input.text.is_none() && input.keys.is_empty() && !input.eof {
            return Err(ToolError::args(tool, "give text, keys or eof"));
        }
        let sent = self.backend.send_input(a.id, input).await?;
        let ended = if sent.eof { " and ended its input" } else { "" };
        Ok(format!(
            "Sent {} bytes to task {}{ended}. Read what it printed next with background_output (id {}, wait \"output\" or \"input\").",
            sent.bytes, sent.id, sent.id
        ))
    }

    async fn stop(&self, args: Value) -> Result<String, ToolError> {
        let a: StopArgs = parse_args(defs::BACKGROUND_STOP, args)?;
        let before = self.backend.get(a.id).await?;
        if before.state.is_terminal() {
            return Ok(format!(
                "{} already; nothing to stop",
                describe(&before, now())
            ));
        }
        let mode = if a.force {
            StopMode::Force
        } else {
            StopMode::Graceful
        };
        let t = self.backend.stop(a.id, mode).await?;
        if t.state.is_terminal() {
            return Ok(describe(&t, now()));
        }
        Ok(match mode {
            StopMode::Force => format!(
                "Killing task {} ({}) with SIGKILL; it will end as cancelled.",
                t.id, t.name
            ),
            StopMode::Graceful => format!(
                "Stopping task {} ({}): SIGTERM to its process group, then SIGKILL after the grace period; it will end as cancelled.",
                t.id, t.name
            ),
        })
    }

    async fn list(&self, args: Value) -> Result<String, ToolError> {
        let tool = defs::BACKGROUND_LIST;
        let a: ListArgs = parse_args(tool, args)?;
        let mut states = Vec::new();
        for s in &a.states {
            states.push(TaskState::parse(s).ok_or_else(|| {
                ToolError::args(tool, format!("{s:?} is not a task state (pending, running, succeeded, failed, timed_out, cancelled, quarantined, lost)"))
            })?);
        }
        let limit = match a.limit {
            Some(n) if !(1..=MAX_LIST).contains(&n) => {
                return Err(ToolError::args(
                    tool,
                    format!("limit must be between 1 and {MAX_LIST}, got {n}"),
                ));
            }
            Some(n) => n,
            None => 30,
        };
        let filter = ListFilter {
            states,
            session: if a.all_sessions {
                None
            } else {
                self.session.map(str::to_string)
            },
            limit: Some(limit),
            ..ListFilter::default()
        };
        let page = self.backend.list(filter).await?;
        if page.tasks.is_empty() {
            return Ok("No tasks.".to_string());
        }
        let now = now();
        let mut out: Vec<String> = page.tasks.iter().map(|t| describe(t, now)).collect();
        if page.next.is_some() {
            out.push(format!(
                "(more tasks not shown; raise limit above {limit} or filter by states)"
            ));
        }
        Ok(out.join("\n"))
    }

    async fn wait(&self, args: Value) -> Result<String, ToolError> {
        let tool = defs::BACKGROUND_WAIT;
        let a: WaitArgs = parse_args(tool, args)?;
        if a.ids.is_empty() {
            return Err(ToolError::args(tool, "ids must name at least one task"));
        }
        let ids: Vec<TaskId> = a.ids.into_iter().map(|i| i.0).collect();
        let mode = match a.mode {
            Some(ModeArg::Any) => WaitMode::Any,
            _ => WaitMode::All,
        };
        let timeout = seconds(tool, "timeout_seconds", a.timeout_seconds, MAX_WAIT)?
            .unwrap_or(Duration::from_secs(60));
        let w = self.backend.wait(ids, mode, Some(timeout)).await?;
        let now = now();
        let mut out = Vec::new();
        if w.timed_out {
            let running: Vec<String> = w
                .tasks
                .iter()
                .filter(|t| !t.state.is_terminal())
                .map(|t| t.id.to_string())
                .collect();
            out.push(format!(
                "Stopped waiting after {}; not finished yet: {}.",
                format_duration(timeout),
                running.join(", ")
            ));
        }
        let per_result = self.output_limit / w.tasks.len().max(1);
        for t in &w.tasks {
            out.push(describe(t, now));
            if let Some(result) = &t.result
                && t.kind == TaskKind::Agent
            {
                out.push(format!(
                    "final answer of task {}:\n{}",
                    t.id,
                    super::bound(
                        result,
                        per_result.max(500),
                        &format!(
                            "read the whole transcript with background_output id {}",
                            t.id
                        )
                    )
                ));
            }
        }
        Ok(out.join("\n"))
    }
}

pub(crate) fn now() -> Timestamp {
    Timestamp::from(std::time::SystemTime::now())
}

/// One line about a task: `task 7 (cargo test): failed with exit code 101 after 41s`.
pub(crate) fn describe(t: &TaskRecord, now: Timestamp) -> String {
    let took = t
        .duration_ms(now)
        .map(|ms| format_duration(Duration::from_millis(ms)));
    let state = match t.state {
        TaskState::Pending => {
            "pending (waiting for its time, its dependencies or a free slot in its queue)"
                .to_string()
        }
        TaskState::Running => match &took {
            Some(d) => format!("running for {d}"),
            None => "running".to_string(),
        },
        s => {
            let mut text = s.as_str().replace('_', " ");
            match (t.exit_code, t.signal) {
                (Some(c), _) => text.push_str(&format!(" with exit code {c}")),
                (None, Some(sig)) => text.push_str(&format!(" by signal {sig}")),
                _ => {}
            }
            if let Some(d) = &took {
                text.push_str(&format!(" after {d}"));
            }
            text
        }
    };
    let mut line = format!("task {} ({}): {state}", t.id, t.name);
    if let Some(r) = t.reason.as_deref().filter(|r| !r.is_empty())
        && t.state.is_terminal()
    {
        line.push_str(&format!("; {r}"));
    }
    if t.state == TaskState::Running && t.waiting_for_input {
        line.push_str(&format!(
            "; waiting for input at: {} (answer with background_input)",
            t.prompt.as_deref().unwrap_or("(no prompt shown)")
        ));
    }
    if t.state == TaskState::Running && !t.listening.is_empty() {
        let places: Vec<&str> = t.listening.iter().map(|l| l.reach()).collect();
        line.push_str(&format!("; listening on {}", places.join(", ")));
    }
    if let Some(p) = &t.progress
        && t.state == TaskState::Running
    {
        match p.percent {
            Some(pc) => line.push_str(&format!("; progress {pc:.0}% {}", p.message)),
            None => line.push_str(&format!("; progress: {}", p.message)),
        }
    }
    line
}

/// An output answer: where it is in the log, the state, then the text.
pub(crate) fn format_output(c: &OutputChunk) -> String {
    let mut head = format!("task {} is {}", c.id, c.state.as_str().replace('_', " "));
    if let Some(code) = c.exit_code {
        head.push_str(&format!(" (exit code {code})"));
    }
    head.push_str(&format!(
        "; bytes {}..{} of {}; pass since={} to read only newer output",
        c.start, c.cursor, c.total_bytes, c.cursor
    ));
    let mut notes = Vec::new();
    if c.timed_out {
        notes.push("the wait timed out first".to_string());
    }
    if let Some(m) = &c.matched {
        notes.push(format!("matched line: {}", m.trim_end()));
    }
    if !c.listening.is_empty() {
        let places: Vec<&str> = c.listening.iter().map(|l| l.reach()).collect();
        notes.push(format!("listening on {}", places.join(", ")));
    }
    if c.waiting_for_input {
        notes.push(format!(
            "waiting for input at: {} (answer with background_input)",
            c.prompt.as_deref().unwrap_or("(no prompt shown)")
        ));
    }
    if c.elided_bytes > 0 {
        notes.push(format!(
            "{} bytes in the middle left out (use since, tail or grep to read them)",
            c.elided_bytes
        ));
    }
    if c.skipped_lines > 0 {
        notes.push(format!(
            "{} lines not matching grep skipped",
            c.skipped_lines
        ));
    }
    if c.more {
        notes.push(format!(
            "more output follows; read on with since={}",
            c.cursor
        ));
    }
    let mut out = head;
    for n in notes {
        out.push_str(&format!("\n[{n}]"));
    }
    out.push('\n');
    if c.text.is_empty() {
        out.push_str("(no output in this range)");
    } else {
        out.push_str(&c.text);
    }
    out
}
