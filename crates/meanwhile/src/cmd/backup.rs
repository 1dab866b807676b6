//! `meanwhile backup FILE`: a consistent copy of the home's SQLite database, taken
//! while the daemon runs and writes to it; on PostgreSQL, a pointer to `pg_dump`.

use super::Ctx;
use anyhow::{Context, bail};
use meanwhile_runtime::store::backup;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `backup`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
To restore: stop the daemon (`meanwhile daemon stop`), move the home's meanwhile.db \
aside and remove its meanwhile.db-wal and meanwhile.db-shm, copy FILE to \
meanwhile.db, and start the daemon. Task output logs (tasks/ in the home) are files: \
copy them with cp or rsync. Keep audit.key with the backup: it signs the audit \
trail's checkpoints, and `meanwhile check` needs it.")]
pub struct Args {
    /// Where to write the copy: a new file (an existing one is never overwritten).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// The message for a store on PostgreSQL, where a copy of a file means nothing.
pub fn on_postgres(command: &str) -> String {
    format!(
        "the store is PostgreSQL (database_url or MEANWHILE_DATABASE_URL), not a file of the home: {command}"
    )
}

/// Refuses to go on with `MEANWHILE_URL` set: `command` reads the home's file on
/// this machine, which is not the remote daemon's.
pub fn on_this_machine(command: &str) -> anyhow::Result<()> {
    if crate::daemon::is_remote() {
        bail!(
            "{command} reads the database file of the home on this machine, not the daemon's at MEANWHILE_URL; run it on the daemon's machine without MEANWHILE_URL"
        );
    }
    Ok(())
}

/// Runs `backup`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    on_this_machine("backup")?;
    let settings = meanwhile_server::Settings::load(&ctx.home)?;
    if settings.database_url.is_some() {
        errln!(
            "{}",
            on_postgres(
                "back it up with pg_dump, as in pg_dump --format=custom --file=FILE \"$MEANWHILE_DATABASE_URL\", and restore with pg_restore"
            )
        );
        return Ok(ExitCode::from(crate::exit::USAGE));
    }
    let db = meanwhile_runtime::Home::new(&ctx.home).database();
    if !db.exists() {
        bail!(
            "there is no database at {} to back up (is the home right? see --home)",
            db.display()
        );
    }
    if args.file.exists() {
        bail!(
            "{} already exists; name a new file (a backup never overwrites one)",
            args.file.display()
        );
    }
    let (from, to) = (db.clone(), args.file.clone());
    tokio::task::spawn_blocking(move || backup::copy(&from, &to))
        .await?
        .with_context(|| {
            format!(
                "backing up {} (`meanwhile check` tells whether it is damaged)",
                db.display()
            )
        })?;
    let size = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    outln!(
        "backed up {} to {} ({size} bytes); see `meanwhile backup --help` to restore it",
        db.display(),
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}
