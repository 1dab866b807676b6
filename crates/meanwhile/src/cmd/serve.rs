//! `meanwhile serve`: the daemon in the foreground until SIGTERM or SIGINT.

use super::Ctx;
use anyhow::Context;
use meanwhile_server::Settings;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Arguments of `serve`. Everything else is in `$MEANWHILE_HOME/config.toml` and
/// `MEANWHILE_*` variables (see the meanwhile-server README).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also listen on this TCP address (e.g. 127.0.0.1:7070); every request there
    /// needs the bearer token from the home's token file. The dashboard is served
    /// there too (open http://ADDRESS/ and log in with the token).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// On shutdown, stop running tasks instead of leaving them for the next daemon.
    #[arg(long)]
    pub stop_tasks: bool,
    /// This node's name in leases, attempts and `meanwhile nodes` (also `node` in
    /// config.toml, or MEANWHILE_NODE); the host name by default.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
}

/// Runs `serve`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEANWHILE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    std::fs::create_dir_all(&ctx.home)
        .with_context(|| format!("creating {}", ctx.home.display()))?;
    let mut settings = Settings::load(&ctx.home)?;
    if args.listen.is_some() {
        settings.listen = args.listen;
    }
    if args.stop_tasks {
        settings.stop_tasks = true;
    }
    if let Some(n) = args.node {
        settings.node = Some(n);
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    meanwhile_server::serve(settings, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
