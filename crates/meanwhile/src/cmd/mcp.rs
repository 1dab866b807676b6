//! `meanwhile mcp`: the MCP server on stdin/stdout, talking to the daemon (started
//! when none answers), so that tasks outlive the agent's session.

use super::Ctx;
use anyhow::{Context, bail};
use meanwhile_mcp::{McpConfig, SpawnAgent, default_session, valid_session};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `mcp`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session whose completion notices this server delivers and that its tasks
    /// notify; default: one derived from the working directory, so an agent restarted
    /// in the same project hears how its earlier tasks ended.
    #[arg(long, value_name = "NAME")]
    pub session: Option<String>,
}

/// Runs `mcp`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    // stdout carries the protocol: anything logged goes to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEANWHILE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rmcp=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let session = match args.session {
        Some(s) if valid_session(&s) => s,
        Some(s) => bail!("--session {s:?}: use 1 to 128 printable characters without spaces"),
        None => default_session(&cwd),
    };
    let client = ctx.client()?.with_session(&session);
    let mut config = McpConfig::new(session);
    config.spawn_agent = SpawnAgent::detect(&ctx.home, &cwd);
    config.cwd = Some(cwd);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = asked.clone();
    let shutdown = async move {
        term.recv().await;
        stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    meanwhile_mcp::serve_stdio(Arc::new(client), config, shutdown).await?;
    if asked.load(std::sync::atomic::Ordering::SeqCst) {
        // Stopped while the client holds stdin open: leave now, since the runtime
        // would otherwise wait for its read of stdin to end.
        std::process::exit(0);
    }
    Ok(ExitCode::SUCCESS)
}
