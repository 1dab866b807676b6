//! `meanwhile queue`: list queues; create or change one (parallelism, the limit per
//! concurrency key, the rate limit); pause, resume and remove one.

use super::Ctx;
use crate::fmt;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{PauseReason, RateLimit};
use std::process::ExitCode;

/// Arguments of `queue`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do; lists the queues when absent.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Print as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A queue action.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List the queues with their limits and counts, and whether they are paused
    /// and why: by a user, or by a spent budget.
    Ls,
    /// Create a queue or change its limits; options left out keep their value.
    #[command(visible_alias = "create")]
    Set {
        /// The queue.
        #[arg(add = crate::complete::queues())]
        name: String,
        /// How many of its tasks may run at once.
        #[arg(long, short = 'j')]
        max_parallel: Option<u32>,
        /// How many of its tasks with the same key (`run --key`) may run at once;
        /// `none` removes the limit. Tasks without a key are bound only by
        /// --max-parallel.
        #[arg(long, value_name = "N|none", value_parser = per_key)]
        per_key: Option<Limit<u32>>,
        /// At most N task starts (each attempt counts, retries too) in any stretch of
        /// time of the given length: N/s, N/m, N/h, N/d or N/DURATION like 10/30s;
        /// `none` removes the limit.
        #[arg(long, value_name = "N/WINDOW|none", value_parser = rate)]
        rate: Option<Limit<RateLimit>>,
        /// Fire a `failures` alert when this many of its tasks in a row failed
        /// (resolved when one succeeds); `none` removes it.
        #[arg(long, value_name = "N|none", value_parser = alert_after)]
        alert_after: Option<Limit<u32>>,
    },
    /// Remove a queue; refused while it has pending or running tasks or a budget.
    /// Its finished tasks stay (a retry makes the queue again).
    #[command(visible_alias = "remove")]
    Rm {
        /// The queue.
        #[arg(add = crate::complete::queues())]
        name: String,
    },
    /// Start nothing new from the existing queue (running tasks go on).
    Pause {
        /// The queue.
        #[arg(add = crate::complete::queues())]
        name: String,
    },
    /// Start tasks from the existing queue again. A queue whose budget is spent stays paused
    /// (see 'meanwhile budget'): raise or remove the budget, or wait for its next
    /// window.
    Resume {
        /// The queue.
        #[arg(add = crate::complete::queues())]
        name: String,
    },
}

/// A limit given on the command line: a value, or `none` to remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<T>(pub Option<T>);

fn per_key(s: &str) -> Result<Limit<u32>, String> {
    count("per-key", s)
}

fn alert_after(s: &str) -> Result<Limit<u32>, String> {
    count("alert-after", s)
}

/// A count from 1, or `none`.
fn count(what: &str, s: &str) -> Result<Limit<u32>, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    match s.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(Limit(Some(n))),
        _ => Err(format!(
            "{what} must be a whole number from 1 to {}, or none for no limit, got {s:?}",
            u32::MAX
        )),
    }
}

fn rate(s: &str) -> Result<Limit<RateLimit>, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    s.parse()
        .map(|r| Limit(Some(r)))
        .map_err(|e| format!("{e}"))
}

/// Runs `queue`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let change = match args.action.unwrap_or(Action::Ls) {
        Action::Ls => None,
        Action::Rm { name } => {
            client.remove_queue(&name).await?;
            if args.json {
                super::print_json(&serde_json::json!({ "removed": name }))?;
            } else {
                outln!("removed queue {name}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Set {
            name,
            max_parallel,
            per_key,
            rate,
            alert_after,
        } => Some((
            name,
            QueueUpdate {
                max_parallel,
                per_key: per_key.map(|l| l.0),
                rate: rate.map(|l| l.0),
                alert_after: alert_after.map(|l| l.0),
                ..QueueUpdate::default()
            },
        )),
        Action::Pause { name } => Some((
            name,
            QueueUpdate {
                paused: Some(true),
                ..QueueUpdate::default()
            },
        )),
        Action::Resume { name } => Some((
            name,
            QueueUpdate {
                paused: Some(false),
                ..QueueUpdate::default()
            },
        )),
    };
    let queues = match change {
        Some((name, change)) => {
            // The API's PUT makes a queue it does not know; from here only `set`
            // does, so that a mistyped name in a pause is not a new paused queue.
            if change.paused.is_some() {
                let known: Vec<String> =
                    client.queues().await?.into_iter().map(|q| q.name).collect();
                if !known.contains(&name) {
                    return Err(crate::exit::refuse(
                        crate::exit::NOT_FOUND,
                        meanwhile_core::unknown_queue(&name, &known),
                    ));
                }
            }
            vec![client.set_queue(&name, change).await?]
        }
        None => client.queues().await?,
    };
    if args.json {
        super::print_json(&queues)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            vec![
                q.name.clone(),
                q.max_parallel.to_string(),
                q.per_key.map_or("-".into(), |n| n.to_string()),
                q.rate.map_or("-".into(), |r| r.to_string()),
                q.running.to_string(),
                q.pending.to_string(),
                match (q.paused, q.pause_reason) {
                    (false, _) => "active".to_string(),
                    (true, Some(PauseReason::Budget)) => "paused (budget)".to_string(),
                    (true, _) => "paused (user)".to_string(),
                },
            ]
        })
        .collect();
    out!(
        "{}",
        fmt::table(
            &[
                "QUEUE", "MAX", "PER KEY", "RATE", "RUNNING", "PENDING", "STATE"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_or_say_what_is_wrong() {
        assert_eq!(per_key("2"), Ok(Limit(Some(2))));
        assert_eq!(per_key("none"), Ok(Limit(None)));
        for bad in ["0", "-1", "two", ""] {
            let e = per_key(bad).unwrap_err();
            assert!(
                e.starts_with("per-key must be a whole number"),
                "{bad}: {e}"
            );
        }
        assert_eq!(rate("60/m"), Ok(Limit(Some("60/m".parse().unwrap()))));
        assert_eq!(rate("none"), Ok(Limit(None)));
        let e = rate("60 per minute").unwrap_err();
        assert!(
            e.starts_with("rate must be N/s, N/m, N/h, N/d or N/<duration>"),
            "{e}"
        );
    }
}
