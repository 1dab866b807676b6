//! `meanwhile run [options] -- CMD...`: submits a task and prints its id at once.

use super::{Ctx, duration, task_id};
use crate::exit;
use anyhow::Context;
use meanwhile_core::{RetryPolicy, TaskId, TaskSpec, WaitMode};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The options of a task, shared by `run` and `schedule add`.
#[derive(Debug, clap::Args)]
pub struct TaskOptions {
    /// A short name for the task (default: the command).
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// The queue to run in; one that does not exist is made (with the default
    /// queue's max_parallel), and stderr says so.
    #[arg(long, short = 'q', add = crate::complete::queues())]
    pub queue: Option<String>,
    /// Higher runs first within its queue.
    #[arg(long, short = 'p', default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Stop an attempt that runs longer than this (`30s`, `5m`, `2h`).
    #[arg(long, short = 't', value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL when the task is stopped.
    #[arg(long, value_parser = duration)]
    pub grace: Option<Duration>,
    /// Retry a failed attempt up to this many times.
    #[arg(long, short = 'r', default_value_t = 0)]
    pub retries: u32,
    /// Delay before the first retry, doubled for each one after.
    #[arg(long, value_parser = duration)]
    pub backoff: Option<Duration>,
    /// A variable for the task: KEY=VALUE (repeat).
    #[arg(long, short = 'e', value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory (default: the current one).
    #[arg(long, short = 'C')]
    pub cwd: Option<PathBuf>,
    /// A label to filter by (repeat).
    #[arg(long, short = 'l')]
    pub label: Vec<String>,
    /// The session to notify when the task ends.
    #[arg(long, short = 's', env = "MEANWHILE_SESSION")]
    pub session: Option<String>,
    /// A concurrency key (`customer-42`): tasks of a queue with the same key share
    /// its per-key limit (`meanwhile queue set Q --per-key N`).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// A command run with `sh -c` when the task ends, however it ends, with
    /// `MEANWHILE_TASK_ID`, `MEANWHILE_TASK_STATE` and `MEANWHILE_EXIT_CODE` set.
    #[arg(long, value_name = "CMD")]
    pub on_end: Option<String>,
    /// Fire a `stalled` alert when the task prints nothing for this long (`10m`);
    /// it resolves when the task prints again or ends.
    #[arg(long, value_parser = duration)]
    pub stall: Option<Duration>,
    /// What a stall does besides the alert: `alert` (only that) or `stop` (stop the
    /// task).
    #[arg(long, value_name = "alert|stop", value_parser = stall_action, requires = "stall")]
    pub stall_action: Option<meanwhile_core::StallAction>,
    /// Give the task a pipe as its stdin, written with `meanwhile send ID` (without
    /// --stdin or --tty, stdin is /dev/null).
    #[arg(long, conflicts_with = "tty")]
    pub stdin: bool,
    /// Run the task in a pseudo-terminal (80x24, or COLSxROWS: `--tty 120x40`): a
    /// REPL, a prompt, a program that colours only a terminal. Answer it with
    /// `meanwhile send`, join it with `meanwhile attach`. Put `--` before the
    /// command when the size is left out (`--tty -- python3`).
    #[arg(
        long,
        value_name = "COLSxROWS",
        num_args = 0..=1,
        default_missing_value = "80x24",
        value_parser = tty_size
    )]
    pub tty: Option<meanwhile_core::Terminal>,
    /// Sandbox the task (Landlock): it may write only in its working directory,
    /// the --allow-write paths and a private temporary directory ($TMPDIR);
    /// reading stays open. Refused, never run unconfined, where the kernel cannot.
    #[arg(long, overrides_with = "no_sandbox")]
    pub sandbox: bool,
    /// Do not sandbox the task, even where its queue's default would.
    #[arg(long)]
    pub no_sandbox: bool,
    /// One more path a sandboxed task may write in (repeat).
    #[arg(long, value_name = "PATH", requires = "sandbox")]
    pub allow_write: Vec<PathBuf>,
    /// Run the task without network: a network namespace of its own, loopback only.
    #[arg(long)]
    pub no_network: bool,
    /// The most memory the task's processes may hold together (`512M`, `2G`); over
    /// it they are killed and the task ends with `memory limit 2G exceeded`.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub memory: Option<meanwhile_core::ByteSize>,
    /// The most CPU time each of the task's processes may use (`30s`, `10m`).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub cpu_time: Option<Duration>,
    /// The most processes the task may have at once.
    #[arg(long, value_name = "N")]
    pub max_procs: Option<u32>,
    /// The most files each of the task's processes may have open.
    #[arg(long, value_name = "N")]
    pub max_files: Option<u32>,
    /// The most output the task's log keeps (`100M`; default the queue's, then
    /// `[tasks] max_output`, 1G). Beyond it the log keeps its first MiB and its
    /// newest part, and says how many bytes it dropped; the task keeps running.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub max_output: Option<meanwhile_core::ByteSize>,
    /// A secret for the task's environment (repeat): KEY=VALUE, or KEY to take the
    /// value of your own $KEY (kept out of `ps` and shell history). Shown as
    /// KEY=*** everywhere, and masked as *** in the task's output.
    #[arg(long, value_name = "KEY[=VALUE]")]
    pub secret: Vec<String>,
}

fn size(s: &str) -> Result<meanwhile_core::ByteSize, String> {
    meanwhile_core::ByteSize::parse(s)
}

fn stall_action(s: &str) -> Result<meanwhile_core::StallAction, String> {
    match s {
        "alert" => Ok(meanwhile_core::StallAction::Alert),
        "stop" => Ok(meanwhile_core::StallAction::Stop),
        _ => Err(format!("expected alert or stop, got {s:?}")),
    }
}

impl TaskOptions {
    /// Sets these options on `spec`.
    pub fn apply(&self, spec: &mut TaskSpec) -> anyhow::Result<()> {
        let cwd = match &self.cwd {
            Some(c) if c.is_absolute() => c.clone(),
            Some(c) => std::env::current_dir()?.join(c),
            None => std::env::current_dir().context("reading the current directory")?,
        };
        spec.cwd = Some(cwd);
        let mut env = BTreeMap::new();
        for kv in &self.env {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--env takes KEY=VALUE, got {kv:?}"))?;
            env.insert(k.to_string(), v.to_string());
        }
        spec.env = env;
        spec.name = self.name.clone();
        spec.labels = self.label.clone();
        spec.queue = self.queue.clone();
        spec.priority = self.priority;
        spec.timeout = self.timeout;
        spec.grace = self.grace;
        let mut retry = RetryPolicy {
            max_attempts: self.retries.saturating_add(1),
            ..RetryPolicy::default()
        };
        if let Some(b) = self.backoff {
            retry.backoff = b;
            retry.backoff_max = retry.backoff_max.max(b);
        }
        spec.retry = retry;
        spec.session = self.session.clone();
        spec.concurrency_key = self.key.clone();
        spec.on_end = self.on_end.clone();
        spec.stall = self.stall;
        spec.stall_action = self.stall_action;
        spec.stdin = self.stdin;
        spec.tty = self.tty;
        spec.sandbox = match (self.sandbox, self.no_sandbox) {
            (true, _) => Some(true),
            (false, true) => Some(false),
            (false, false) => None,
        };
        spec.allow_write = self
            .allow_write
            .iter()
            .map(|p| match spec.cwd.as_ref() {
                Some(cwd) if p.is_relative() => cwd.join(p),
                _ => p.clone(),
            })
            .collect();
        spec.no_network = self.no_network.then_some(true);
        spec.memory = self.memory;
        spec.cpu_time = self.cpu_time;
        spec.max_procs = self.max_procs;
        spec.max_files = self.max_files;
        spec.max_output = self.max_output;
        for s in &self.secret {
            let (k, v) = match s.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => {
                    let v = std::env::var(s).with_context(|| {
                        format!("--secret {s}: ${s} is not set here; give --secret {s}=VALUE, or set ${s}")
                    })?;
                    (s.clone(), v)
                }
            };
            spec.secrets.insert(k, meanwhile_core::Secret::new(v));
        }
        Ok(())
    }
}

/// The spec of a command given on the command line: one argument runs with `sh -c`,
/// several as a program and its arguments.
pub fn command_spec(command: &[String]) -> TaskSpec {
    if command.len() == 1 {
        TaskSpec::shell(command[0].clone())
    } else {
        TaskSpec::argv(command.to_vec())
    }
}

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub task: TaskOptions,
    /// Start only after these tasks succeeded (repeat, or separate with commas).
    #[arg(long, short = 'a', value_delimiter = ',', value_parser = task_id, add = crate::complete::tasks())]
    pub after: Vec<TaskId>,
    /// Do not start before this time (`2030-01-02T03:04:05Z`, or seconds since the epoch).
    #[arg(long, value_parser = crate::fmt::parse_time)]
    pub at: Option<meanwhile_core::Timestamp>,
    /// Do not start before this long from now.
    #[arg(long, value_parser = duration)]
    pub delay: Option<Duration>,
    /// Submitting the same key again returns the first task instead of a new one.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Wait for the task to end and exit with its exit code.
    #[arg(long, short = 'w')]
    pub wait: bool,
    /// Print the task's output as it comes, then exit with its exit code.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Print `{"id": N}` instead of the bare id.
    #[arg(long)]
    pub json: bool,
    /// Run a sub-agent with this prompt instead of a command (the daemon's
    /// configured provider and model; its commands confined by --sandbox).
    #[arg(long, value_name = "PROMPT", conflicts_with_all = ["command", "llm"])]
    pub agent: Option<String>,
    /// Make one model call with this prompt instead of running a command; its answer
    /// is the task's result.
    #[arg(long, value_name = "PROMPT", conflicts_with = "command")]
    pub llm: Option<String>,
    /// With --llm: a JSON Schema file the answer must satisfy (structured output);
    /// the result is then the parsed answer.
    #[arg(long, value_name = "FILE.json", requires = "llm")]
    pub schema: Option<PathBuf>,
    /// The command. One argument runs with `sh -c` (pipes, `;`, globs work); several
    /// run as a program and its arguments, without a shell. Everything from the
    /// program on belongs to the command (`meanwhile run ls -la`); before it, an
    /// unknown option is an error. `--` ends meanwhile's options.
    // Not `allow_hyphen_values`: with it, a mistyped option (`--timout 5m`) became
    // the command's program and the task ran it.
    #[arg(
        required_unless_present_any = ["agent", "llm"],
        trailing_var_arg = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

impl Args {
    /// The spec these arguments describe.
    pub fn spec(&self) -> anyhow::Result<TaskSpec> {
        let usage = |m: &str| exit::refuse(exit::USAGE, m.to_string());
        if self.schema.is_some() && self.llm.is_none() {
            return Err(usage("--schema goes with --llm PROMPT"));
        }
        if (self.agent.is_some() || self.llm.is_some()) && !self.command.is_empty() {
            return Err(usage(
                "give a command, --agent PROMPT or --llm PROMPT, not more than one",
            ));
        }
        let mut spec = match (&self.agent, &self.llm) {
            (Some(prompt), _) => TaskSpec {
                agent: Some(meanwhile_core::AgentSpec {
                    prompt: prompt.clone(),
                    ..Default::default()
                }),
                ..TaskSpec::default()
            },
            (None, Some(prompt)) => TaskSpec {
                llm: Some(meanwhile_core::LlmSpec {
                    prompt: prompt.clone(),
                    schema: self.schema.as_deref().map(read_schema).transpose()?,
                    ..Default::default()
                }),
                ..TaskSpec::default()
            },
            (None, None) => command_spec(&self.command),
        };
        self.task.apply(&mut spec)?;
        spec.idempotency_key = self.idempotency_key.clone();
        spec.run_after = self.at;
        spec.delay = self.delay;
        spec.after = self.after.clone();
        Ok(spec)
    }
}

/// `--tty`'s size; a word that is no size was most likely the command.
fn tty_size(s: &str) -> Result<meanwhile_core::Terminal, String> {
    s.parse::<meanwhile_core::Terminal>().map_err(|e| {
        format!(
            "{e}; to run {s:?} in a terminal of the default size, put -- before the command: meanwhile run --tty -- {s}"
        )
    })
}

/// A JSON Schema file for `--schema`; a missing file exits 66, as `batch`'s does.
fn read_schema(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        exit::refuse(
            exit::NO_INPUT,
            format!("reading --schema {}: {e}", path.display()),
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--schema {}: not JSON: {e}", path.display()))
}

/// Runs `run`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let spec = args.spec()?;
    let client = ctx.client()?;
    let before = match spec.queue.as_deref() {
        Some(q) if q != "default" => Some(client.queues().await?),
        _ => None,
    };
    let answer = client.submit_answer(&spec).await?;
    let id = answer.id;
    if let (Some(queues), Some(name)) = (before, spec.queue.as_deref())
        && !queues.iter().any(|q| q.name == name)
    {
        // A typo makes a queue as readily as a new name does: say so, with the ones
        // there were.
        let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
        let max = queues
            .iter()
            .find(|q| q.name == "default")
            .map_or_else(|| "-".to_string(), |q| q.max_parallel.to_string());
        errln!(
            "meanwhile: new queue {name:?} (max_parallel {max}, from default); queues: {}",
            names.join(", ")
        );
    }
    // Flushed at once: with --follow or --wait, the id must show before the wait.
    let line = if args.json {
        format!("{}\n", serde_json::json!({ "id": id }))
    } else {
        format!("{id}\n")
    };
    crate::out::bytes(line.as_bytes())?;
    // With --follow, the task's output says it.
    if let Some(w) = answer.warning.filter(|_| !args.follow) {
        errln!("meanwhile: {w} (task {id} will end with 127)");
    }
    if args.follow {
        if spec.tty.is_some() && std::io::stdin().is_terminal() {
            errln!(
                "meanwhile: following task {id}'s terminal; what you type here does not reach it (meanwhile attach {id} does)"
            );
        }
        return super::interruptible(&[id], async {
            let t = super::logs::follow(&client, id, Default::default()).await?;
            super::say_why(&t);
            Ok(exit::task_exit(&t))
        })
        .await;
    }
    if args.wait {
        return super::interruptible(&[id], async {
            let w = client.wait(&[id], WaitMode::All, None).await?;
            let t = &w.tasks[0];
            super::say_why(t);
            Ok(exit::task_exit(t))
        })
        .await;
    }
    Ok(ExitCode::SUCCESS)
}
