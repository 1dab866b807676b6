//! `meanwhile notifications`: prints a session's completion notices and marks them
//! delivered (each is printed once), or only looks with `--peek`.

use super::Ctx;
use std::process::ExitCode;

/// Arguments of `notifications`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session whose notices to read.
    #[arg(
        long,
        short = 's',
        env = "MEANWHILE_SESSION",
        default_value = "default"
    )]
    pub session: String,
    /// Leave them undelivered.
    #[arg(long)]
    pub peek: bool,
    /// At most this many.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub limit: u32,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `notifications`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let limit = args.limit.clamp(1, 1000);
    let notes = if args.peek {
        client.peek_notifications(&args.session, limit).await?
    } else {
        client.drain_notifications(&args.session, limit).await?
    };
    if args.json {
        super::print_json(&notes)?;
    } else {
        for n in &notes {
            outln!("{}\n", n.text());
        }
    }
    Ok(ExitCode::SUCCESS)
}
