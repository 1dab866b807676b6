//! One module per command, each with its `Args` and `run`.

pub mod agent;
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

/// Parses a duration argument (`30s`, `5m`).
pub fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Parses a task id argument.
pub fn task_id(s: &str) -> Result<TaskId, String> {
    s.parse()
}

/// Prints JSON, pretty.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
