//! `meanwhile check`: SQLite's `PRAGMA integrity_check` on the home's database, then
//! the audit trail's verification; exits 1 naming what is wrong.

use super::Ctx;
use anyhow::bail;
use meanwhile_runtime::store::backup;
use std::process::ExitCode;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print as JSON: `{"database": {"checked", "problems"}, "audit": {...}}`.
    #[arg(long)]
    pub json: bool,
}

/// Runs `check`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    super::backup::on_this_machine("check")?;
    let settings = meanwhile_server::Settings::load(&ctx.home)?;
    let on_postgres = settings.database_url.is_some();
    let mut problems = Vec::new();
    if !on_postgres {
        let db = meanwhile_runtime::Home::new(&ctx.home).database();
        if !db.exists() {
            bail!(
                "there is no database at {} to check (is the home right? see --home)",
                db.display()
            );
        }
        problems = tokio::task::spawn_blocking(move || backup::integrity_problems(&db)).await??;
    }
    // A damaged file is not given to a daemon to read the audit trail from: it may
    // not start, or stop on the first bad page. The file is what must be fixed.
    let audit = if problems.is_empty() {
        Some(ctx.client()?.verify_audit().await?)
    } else {
        None
    };
    let sound = problems.is_empty() && audit.as_ref().is_some_and(|a| a.intact);
    if args.json {
        super::print_json(&serde_json::json!({
            "database": {"checked": !on_postgres, "problems": problems},
            "audit": audit,
        }))?;
    } else {
        if on_postgres {
            outln!(
                "{}",
                super::backup::on_postgres(
                    "its pages are PostgreSQL's to check (amcheck); checking the audit trail"
                )
            );
        } else if problems.is_empty() {
            outln!("database intact: PRAGMA integrity_check found nothing wrong");
        } else {
            errln!("database damaged: PRAGMA integrity_check says");
            for line in problems.iter().flat_map(|p| p.lines()) {
                errln!("  {line}");
            }
            errln!(
                "restore the home's meanwhile.db from a backup (see `meanwhile backup --help`); the audit trail was not verified"
            );
        }
        match &audit {
            Some(a) if a.intact => outln!("{}", super::audit::verdict_line(a)),
            Some(a) => errln!("{}", super::audit::verdict_line(a)),
            None => {}
        }
    }
    Ok(if sound {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
