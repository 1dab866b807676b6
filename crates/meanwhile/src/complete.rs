//! Completions that ask the daemon: task ids (newest first, each with its name and
//! state), and the names of queues, schedules and budgets. The shell calls
//! `COMPLETE=SHELL meanwhile -- ARGS` as the user presses Tab (see
//! `meanwhile completions`); these run then. They never start a daemon, and give up
//! after a moment, so a Tab with no daemon completes nothing rather than hanging.

use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use meanwhile_client::Client;
use meanwhile_core::ListFilter;
use std::time::Duration;

/// How long a Tab waits for the daemon.
const PATIENCE: Duration = Duration::from_millis(800);
/// Task ids offered: the newest.
const TASKS: u32 = 200;

/// What `ask` answers through the daemon of `MEANWHILE_HOME` (or `MEANWHILE_URL`),
/// or nothing when it does not answer in time.
fn ask<T>(f: impl AsyncFnOnce(&Client) -> Option<T>) -> Option<T> {
    let home = std::path::absolute(meanwhile_client::default_home()).ok()?;
    let client = Client::from_env(&home);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async { tokio::time::timeout(PATIENCE, f(&client)).await.ok()? })
}

/// Candidates that `list` reads from the daemon when the shell asks; none when the
/// daemon does not answer.
fn from_daemon<F>(list: F) -> ArgValueCandidates
where
    F: AsyncFn(&Client) -> Option<Vec<CompletionCandidate>> + Send + Sync + 'static,
{
    ArgValueCandidates::new(move || ask(&list).unwrap_or_default())
}

fn candidate(value: String, help: String) -> CompletionCandidate {
    CompletionCandidate::new(value).help(Some(help.into()))
}

/// Task ids, newest first, each described by its name and state.
pub fn tasks() -> ArgValueCandidates {
    from_daemon(async |c: &Client| {
        let filter = ListFilter {
            limit: Some(TASKS),
            ..ListFilter::default()
        };
        let page = c.list(&filter).await.ok()?;
        Some(
            page.tasks
                .into_iter()
                .map(|t| candidate(t.id.to_string(), format!("{} ({})", t.name, t.state)))
                .collect(),
        )
    })
}

/// Queue names, each with what runs and waits in it.
pub fn queues() -> ArgValueCandidates {
    from_daemon(async |c: &Client| {
        let queues = c.queues().await.ok()?;
        Some(
            queues
                .into_iter()
                .map(|q| {
                    let help = format!(
                        "{} running, {} pending{}",
                        q.running,
                        q.pending,
                        if q.paused { ", paused" } else { "" }
                    );
                    candidate(q.name, help)
                })
                .collect(),
        )
    })
}

/// Schedule names, each with when it fires.
pub fn schedules() -> ArgValueCandidates {
    from_daemon(async |c: &Client| {
        let schedules = c.schedules().await.ok()?;
        Some(
            schedules
                .into_iter()
                .map(|s| {
                    let when = match (&s.spec.cron, s.spec.every) {
                        (Some(cron), _) => format!("cron {cron}"),
                        (None, Some(every)) => {
                            format!("every {}", meanwhile_core::format_duration(every))
                        }
                        (None, None) => String::new(),
                    };
                    candidate(s.spec.name, when)
                })
                .collect(),
        )
    })
}

/// The queues that have a budget.
pub fn budgets() -> ArgValueCandidates {
    from_daemon(async |c: &Client| {
        let budgets = c.budgets().await.ok()?;
        Some(
            budgets
                .into_iter()
                .map(|b| {
                    let help = format!("{}, {} used", b.state.as_str(), b.usage_text());
                    candidate(b.queue, help)
                })
                .collect(),
        )
    })
}

/// The ids of the firing alerts, each with its message.
pub fn alerts() -> ArgValueCandidates {
    from_daemon(async |c: &Client| {
        let alerts = c.alerts(false).await.ok()?;
        Some(
            alerts
                .into_iter()
                .map(|a| candidate(a.id.to_string(), a.message))
                .collect(),
        )
    })
}
