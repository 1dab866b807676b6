//! `meanwhile alerts` lists alerts and `alerts ack` acknowledges one; `meanwhile
//! health` exits non-zero when one fires that no one acknowledged.

use super::Ctx;
use crate::fmt;
use meanwhile_core::{Alert, AlertState};
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `alerts`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// What to do; lists the alerts when absent.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Resolved alerts too, not only the firing ones.
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Print as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// An alerts action.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Acknowledge a firing alert: its sinks get no reminders (`[alerts]
    /// repeat_every`) until it resolves or --for runs out, and `meanwhile health`
    /// no longer counts it. The audit trail records who acknowledged it.
    Ack {
        /// The alert's id (see `meanwhile alerts`).
        #[arg(value_name = "ID", value_parser = alert_id, add = crate::complete::alerts())]
        id: i64,
        /// Hold the acknowledgement this long (`1h`, `30m`); without it, until the
        /// alert resolves. When it runs out and the alert still fires, the sinks
        /// hear of it again at once.
        #[arg(long = "for", value_name = "DURATION", value_parser = super::duration)]
        hold: Option<Duration>,
    },
}

fn alert_id(s: &str) -> Result<i64, String> {
    match s.trim().trim_start_matches('#').parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "alert ids are positive integers like 3 (see 'meanwhile alerts'), got {s:?}"
        )),
    }
}

/// Arguments of `health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The exit code of `health` when an alert fires.
const FIRING: u8 = 1;

/// Runs `alerts`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Action::Ack { id, hold }) = args.action {
        let a = ctx.client()?.ack_alert(id, hold).await?;
        if args.json {
            super::print_json(&a)?;
        } else {
            let until = match a.acked.as_ref().and_then(|k| k.until) {
                Some(u) => format!(
                    "until {} ({})",
                    meanwhile_core::rfc3339_secs(u),
                    fmt::ago(u, fmt::now())
                ),
                None => "until it resolves".to_string(),
            };
            outln!(
                "alert {} acknowledged {until}: {} ({})",
                a.id,
                a.message,
                a.kind.as_str()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let alerts = ctx.client()?.alerts(args.all).await?;
    if args.json {
        super::print_json(&alerts)?;
        return Ok(ExitCode::SUCCESS);
    }
    if alerts.is_empty() {
        outln!(
            "{}",
            if args.all {
                "no alerts yet"
            } else {
                "no alert fires"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    out!("{}", table(&alerts));
    Ok(ExitCode::SUCCESS)
}

/// Runs `health`: exits 0 when no alert fires, 1 when one does (for cron and
/// container health checks).
pub async fn health(ctx: &Ctx, args: HealthArgs) -> anyhow::Result<ExitCode> {
    let h = ctx.client()?.health().await?;
    if args.json {
        super::print_json(&h)?;
    } else if h.ok && h.firing.is_empty() {
        outln!("ok: no alert fires");
    } else if h.ok {
        outln!("ok: {} alert(s) firing, all acknowledged", h.firing.len());
        out!("{}", table(&h.firing));
    } else {
        let now = fmt::now();
        let acked = h.firing.iter().filter(|a| a.acked_at(now)).count();
        if acked > 0 {
            outln!("{} alert(s) firing ({acked} acknowledged)", h.firing.len());
        } else {
            outln!("{} alert(s) firing", h.firing.len());
        }
        out!("{}", table(&h.firing));
    }
    Ok(if h.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FIRING)
    })
}

fn table(alerts: &[Alert]) -> String {
    let now = fmt::now();
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                a.kind.as_str().to_string(),
                match a.state {
                    AlertState::Firing if a.acked_at(now) => "acked".to_string(),
                    AlertState::Firing => "firing".to_string(),
                    AlertState::Resolved => "resolved".to_string(),
                },
                fmt::ago(a.at, now),
                match a.acked.as_ref().filter(|_| a.acked_at(now)) {
                    Some(k) => format!(
                        "{} [acknowledged by {}{}]",
                        a.message,
                        k.by,
                        k.until
                            .map(|u| format!(" until {}", meanwhile_core::rfc3339_secs(u)))
                            .unwrap_or_default()
                    ),
                    None => a.message.clone(),
                },
            ]
        })
        .collect();
    fmt::table(&["ID", "KIND", "STATE", "WHEN", "MESSAGE"], &rows)
}
