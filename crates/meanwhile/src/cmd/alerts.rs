//! `meanwhile alerts` lists alerts; `meanwhile health` exits non-zero when any fires.

use super::Ctx;
use crate::fmt;
use meanwhile_core::{Alert, AlertState};
use std::process::ExitCode;

/// Arguments of `alerts`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Resolved alerts too, not only the firing ones.
    #[arg(long, short = 'a')]
    pub all: bool,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
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
    } else if h.ok {
        outln!("ok: no alert fires");
    } else {
        outln!("{} alert(s) firing", h.firing.len());
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
                    AlertState::Firing => "firing".to_string(),
                    AlertState::Resolved => "resolved".to_string(),
                },
                fmt::ago(a.at, now),
                a.message.clone(),
            ]
        })
        .collect();
    fmt::table(&["ID", "KIND", "STATE", "WHEN", "MESSAGE"], &rows)
}
