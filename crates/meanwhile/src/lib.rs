//! The `meanwhile` command line: every command is a module of [`cmd`] with its own
//! arguments and `run`; this file parses, picks the home, and dispatches.

#[macro_use]
pub mod out;
pub mod bars;
pub mod cli_error;
pub mod cmd;
pub mod complete;
pub mod daemon;
pub mod exit;
pub mod fmt;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Durable background tasks: run slow work, keep every byte of its output, and hear
/// how it ended.
#[derive(Debug, Parser)]
#[command(name = "meanwhile", version, propagate_version = true)]
pub struct Cli {
    /// The home directory (database, logs, socket); default: the platform data
    /// directory, e.g. ~/.local/share/meanwhile.
    #[arg(long, global = true, env = "MEANWHILE_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in the background; prints its id at once.
    Run(Box<cmd::run::Args>),
    /// List tasks, newest first, with counts by state.
    #[command(visible_alias = "list")]
    Ls(cmd::ls::Args),
    /// Show one task and its attempts.
    Show(cmd::show::Args),
    /// Print a task's output.
    #[command(visible_alias = "log")]
    Logs(cmd::logs::Args),
    /// Wait for tasks to end, with a progress bar per task on a terminal; exits with
    /// the task's exit code when waiting on one.
    Wait(cmd::wait::Args),
    /// Stop tasks (SIGTERM, grace period, SIGKILL; or SIGKILL at once with --force).
    #[command(visible_alias = "kill")]
    Stop(cmd::stop::Args),
    /// Write to a running task's stdin or terminal: text, keys (enter, ctrl-c, ...),
    /// a file, the end of input (tasks started with --stdin or --tty).
    Send(cmd::send::Args),
    /// Join this terminal to a task's terminal (started with --tty): type into it,
    /// see what it shows; Ctrl-] detaches and the task goes on.
    Attach(cmd::attach::Args),
    /// Run a finished task again.
    Retry(cmd::retry::Args),
    /// Remove finished tasks and their logs.
    #[command(visible_alias = "remove")]
    Rm(cmd::rm::Args),
    /// Remove finished tasks by age or count (all finished ones by default).
    Clean(cmd::clean::Args),
    /// One LLM call per line of a JSONL file (a template or your prompt, answers
    /// checked against a JSON Schema), results gathered into a JSONL file; run it
    /// again to resume after a crash or a kill.
    Batch(cmd::batch::Args),
    /// List, create, change, pause, resume and remove queues.
    Queue(cmd::queue::Args),
    /// Run a task at the times a cron expression or an interval names: add, list,
    /// remove, pause, resume, or fire a schedule now.
    Schedule(cmd::schedule::Args),
    /// Limit the tokens and US dollars a queue's model calls use per hour, day or
    /// month (UTC) or in total, with alarms: set, list, remove.
    ///
    /// Usage is what the providers report, cost is from their price table. A spent
    /// budget pauses its queue until its next window, and its tasks stop before
    /// their next model call.
    Budget(cmd::budget::Args),
    /// The audit trail: who did what and when (socket peers by uid and process,
    /// TCP clients by token name, sessions of MCP and agents, meanwhile itself),
    /// oldest first; `audit verify` checks its hash chain.
    Audit(cmd::audit::Args),
    /// Write a consistent copy of the SQLite database to FILE while the daemon runs
    /// (on PostgreSQL: use pg_dump); `backup --help` says how to restore it.
    Backup(cmd::backup::Args),
    /// Check the database (SQLite's PRAGMA integrity_check) and the audit trail's
    /// hash chain; exits 1 naming what is wrong.
    Check(cmd::check::Args),
    /// The named bearer tokens of the TCP listener: add (prints it once), ls, rm.
    /// Over the Unix socket only.
    Token(cmd::token::Args),
    /// Open the dashboard in a browser: a one-time login link on a loopback port.
    /// Over the Unix socket only.
    Dashboard(cmd::dashboard::Args),
    /// The nodes sharing the daemon's store: address, version, latest heartbeat,
    /// running tasks, and whether each is alive; `nodes rm NAME` forgets one.
    Nodes(cmd::nodes::Args),
    /// Print (and mark delivered) a session's completion notices.
    Notifications(cmd::notifications::Args),
    /// The daemon's health, version and task counts.
    Status(cmd::status::Args),
    /// List alerts (stalled tasks, queues failing in a row, quarantined tasks, missed
    /// schedules, spent budgets, silent nodes); `alerts ack ID` acknowledges one.
    Alerts(cmd::alerts::Args),
    /// Exit 0 when no alert fires that no one acknowledged, 1 when one does (for
    /// cron and health checks).
    Health(cmd::alerts::HealthArgs),
    /// Start, stop, restart the daemon, or install it as a systemd user service.
    Daemon(cmd::daemon::Args),
    /// Print a shell completion script; it completes task ids and queue, schedule,
    /// budget and alert names from the running daemon.
    Completions(cmd::completions::Args),
    /// Print the manual page of meanwhile or of a command (`meanwhile man run | man -l -`),
    /// or write every page into a directory (--out-dir).
    Man(cmd::man::Args),
    /// Run the daemon in the foreground (the other commands start it when needed).
    #[command(
        after_help = "A fleet: set MEANWHILE_DATABASE_URL (or database_url in config.toml) to a PostgreSQL database that every node serves, give each node --node NAME and --listen (the other nodes read its tasks' output there), and see `meanwhile nodes`. Other settings: config.toml in the home and MEANWHILE_* variables."
    )]
    Serve(cmd::serve::Args),
    /// Serve MCP on stdin/stdout, for a coding agent's configuration (Claude Code,
    /// Codex, Cursor, Gemini CLI, ...); starts the daemon when none answers.
    Mcp(cmd::mcp::Args),
    /// The coding agent: an interactive session, or one prompt with -p. Slow
    /// commands go to the background and their notices reach the model before its
    /// next call.
    Agent(cmd::agent::Args),
}

/// Runs the command line; the exit code on success (a task's exit code, for `wait`).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = cli.home.unwrap_or_else(meanwhile_client::default_home);
    // Made absolute once, here: a relative home would name another directory for a
    // daemon started elsewhere, or after a `cd`, and in every task's environment.
    let home = std::path::absolute(&home)
        .map_err(|e| anyhow::anyhow!("the home {}: {e}", home.display()))?;
    // The daemon gets worker threads; a client command does one thing at a time and
    // starts faster on one thread.
    let rt = match &cli.command {
        Command::Serve(_) | Command::Agent(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    let ctx = cmd::Ctx { home };
    rt.block_on(async move {
        match cli.command {
            Command::Run(a) => cmd::run::run(&ctx, *a).await,
            Command::Ls(a) => cmd::ls::run(&ctx, a).await,
            Command::Show(a) => cmd::show::run(&ctx, a).await,
            Command::Logs(a) => cmd::logs::run(&ctx, a).await,
            Command::Wait(a) => cmd::wait::run(&ctx, a).await,
            Command::Stop(a) => cmd::stop::run(&ctx, a).await,
            Command::Send(a) => cmd::send::run(&ctx, a).await,
            Command::Attach(a) => cmd::attach::run(&ctx, a).await,
            Command::Retry(a) => cmd::retry::run(&ctx, a).await,
            Command::Rm(a) => cmd::rm::run(&ctx, a).await,
            Command::Clean(a) => cmd::clean::run(&ctx, a).await,
            Command::Batch(a) => cmd::batch::run(&ctx, a).await,
            Command::Queue(a) => cmd::queue::run(&ctx, a).await,
            Command::Schedule(a) => cmd::schedule::run(&ctx, a).await,
            Command::Budget(a) => cmd::budget::run(&ctx, a).await,
            Command::Audit(a) => cmd::audit::run(&ctx, a).await,
            Command::Backup(a) => cmd::backup::run(&ctx, a).await,
            Command::Check(a) => cmd::check::run(&ctx, a).await,
            Command::Token(a) => cmd::token::run(&ctx, a).await,
            Command::Nodes(a) => cmd::nodes::run(&ctx, a).await,
            Command::Dashboard(a) => cmd::dashboard::run(&ctx, a).await,
            Command::Notifications(a) => cmd::notifications::run(&ctx, a).await,
            Command::Status(a) => cmd::status::run(&ctx, a).await,
            Command::Alerts(a) => cmd::alerts::run(&ctx, a).await,
            Command::Health(a) => cmd::alerts::health(&ctx, a).await,
            Command::Daemon(a) => cmd::daemon::run(&ctx, a).await,
            Command::Completions(a) => cmd::completions::run(a),
            Command::Man(a) => cmd::man::run(a),
            Command::Serve(a) => cmd::serve::run(&ctx, a).await,
            Command::Mcp(a) => cmd::mcp::run(&ctx, a).await,
            Command::Agent(a) => cmd::agent::run(&ctx, a).await,
        }
    })
}
