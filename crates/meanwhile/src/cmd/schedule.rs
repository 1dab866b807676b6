//! `meanwhile schedule`: add, list, remove, pause, resume and fire schedules.

use super::run::{TaskOptions, command_spec};
use super::{Ctx, duration};
use crate::fmt;
use meanwhile_core::{AgentSpec, Missed, ScheduleInfo, ScheduleSpec, TaskSpec};
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `schedule`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do; lists the schedules when absent.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Print as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A schedule action.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Add a schedule: its task is submitted at each time a cron expression or an
    /// interval names. Each firing's task has an idempotency key made of the
    /// schedule and the time, so a time never fires twice; it carries the label
    /// `schedule:NAME`.
    Add(Box<AddArgs>),
    /// List the schedules: when they fire next, their latest task and its state.
    #[command(visible_alias = "list")]
    Ls,
    /// Remove a schedule (the tasks it submitted stay).
    #[command(visible_alias = "remove")]
    Rm {
        /// The schedule.
        #[arg(add = crate::complete::schedules())]
        name: String,
    },
    /// Stop a schedule from firing until it is resumed.
    Pause {
        /// The schedule.
        #[arg(add = crate::complete::schedules())]
        name: String,
    },
    /// Let a paused schedule fire again, from its next time after now (the times
    /// passed while paused do not run).
    Resume {
        /// The schedule.
        #[arg(add = crate::complete::schedules())]
        name: String,
    },
    /// Fire a schedule now and print its task's id; its next time stays.
    Run {
        /// The schedule.
        #[arg(add = crate::complete::schedules())]
        name: String,
    },
}

/// Arguments of `schedule add`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("when").required(true).args(["cron", "every"])))]
pub struct AddArgs {
    /// The schedule's name: 1 to 64 of letters, digits, '.', '-' and '_'
    #[arg(id = "schedule", value_name = "NAME")]
    pub name: String,
    /// A cron expression, read in --tz: "MIN HOUR DAY MONTH WEEKDAY" ("0 9 * * MON-FRI",
    /// "*/15 * * * *"), or six fields with seconds first.
    #[arg(long)]
    pub cron: Option<String>,
    /// The IANA time zone of --cron (Europe/Berlin, America/New_York); UTC by
    /// default. Daylight-saving changes follow the tz database: a fixed time the
    /// clock skips runs right after the gap, one it repeats runs once.
    #[arg(long, requires = "cron")]
    pub tz: Option<String>,
    /// Fire every this long (`15m`, `1h`, `1d`), the first time one interval from now.
    #[arg(long, value_parser = duration)]
    pub every: Option<Duration>,
    /// Times that passed while meanwhile was not running: `skip` them, or run `once`
    /// to catch up. A firing up to a minute late runs either way.
    #[arg(long, default_value = "skip", value_parser = missed)]
    pub missed: Missed,
    /// A prompt for a sub-agent to run at each time, instead of a command.
    #[arg(long, conflicts_with = "command")]
    pub agent: Option<String>,
    #[command(flatten)]
    pub task: TaskOptions,
    /// The command, as for `run`: one argument runs with `sh -c`, several as a
    /// program and its arguments. `--` ends meanwhile's options.
    #[arg(
        trailing_var_arg = true,
        value_name = "CMD",
        required_unless_present = "agent"
    )]
    pub command: Vec<String>,
}

fn missed(s: &str) -> Result<Missed, String> {
    match s {
        "skip" => Ok(Missed::Skip),
        "once" => Ok(Missed::Once),
        _ => Err(format!("expected skip or once, got {s:?}")),
    }
}

impl AddArgs {
    /// The schedule these arguments describe.
    pub fn spec(&self) -> anyhow::Result<ScheduleSpec> {
        let mut task = match &self.agent {
            Some(prompt) => TaskSpec {
                agent: Some(AgentSpec {
                    prompt: prompt.clone(),
                    ..AgentSpec::default()
                }),
                ..TaskSpec::default()
            },
            None => command_spec(&self.command),
        };
        self.task.apply(&mut task)?;
        Ok(ScheduleSpec {
            name: self.name.clone(),
            cron: self.cron.clone(),
            tz: self.tz.clone(),
            every: self.every,
            missed: self.missed,
            task,
        })
    }
}

/// Runs `schedule`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let schedules = match args.action.unwrap_or(Action::Ls) {
        Action::Ls => client.schedules().await?,
        Action::Add(a) => {
            let s = client.add_schedule(&a.spec()?).await?;
            if args.json {
                super::print_json(&s)?;
            } else {
                outln!("added schedule {}: {}", s.spec.name, when(&s));
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Rm { name } => {
            client.remove_schedule(&name).await?;
            if args.json {
                super::print_json(&serde_json::json!({ "removed": name }))?;
            } else {
                outln!("removed schedule {name}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Pause { name } => vec![client.pause_schedule(&name, true).await?],
        Action::Resume { name } => vec![client.pause_schedule(&name, false).await?],
        Action::Run { name } => {
            let id = client.run_schedule(&name).await?;
            if args.json {
                super::print_json(&serde_json::json!({ "id": id }))?;
            } else {
                outln!("{id}");
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.json {
        super::print_json(&schedules)?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = fmt::now();
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            let next = match (s.paused, s.next_fire) {
                (true, _) => "paused".to_string(),
                (false, Some(t)) => format!("{} ({})", wall_clock(s, t), fmt::ago(t, now)),
                (false, None) => "never".to_string(),
            };
            let last = match (s.last_task, s.last_state) {
                (Some(id), Some(state)) => format!("{id} {} {}", state.symbol(), state.as_str()),
                (Some(id), None) => format!("{id} (removed)"),
                _ => "-".to_string(),
            };
            vec![
                s.spec.name.clone(),
                describe(s),
                next,
                last,
                s.missed_count.to_string(),
                meanwhile_core::shorten(&task_text(&s.spec.task), 40),
            ]
        })
        .collect();
    out!(
        "{}",
        fmt::table(
            &["SCHEDULE", "WHEN", "NEXT", "LAST TASK", "MISSED", "TASK"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn describe(s: &ScheduleInfo) -> String {
    match s.spec.clone().validate() {
        Ok(v) => v.describe(),
        Err(e) => format!("invalid: {e}"),
    }
}

fn wall_clock(s: &ScheduleInfo, t: meanwhile_core::Timestamp) -> String {
    match s.spec.clone().validate() {
        Ok(v) => v.wall_clock(t),
        Err(_) => t.0.to_string(),
    }
}

fn when(s: &ScheduleInfo) -> String {
    match s.next_fire {
        Some(t) => format!(
            "{}, first at {} ({})",
            describe(s),
            wall_clock(s, t),
            fmt::ago(t, fmt::now())
        ),
        None => describe(s),
    }
}

fn task_text(t: &TaskSpec) -> String {
    if let Some(a) = &t.agent {
        return format!("agent: {}", a.prompt);
    }
    if let Some(n) = &t.name {
        return n.clone();
    }
    match (&t.command, &t.argv) {
        (Some(c), _) => c.clone(),
        (None, Some(a)) => a.join(" "),
        _ => String::new(),
    }
}
