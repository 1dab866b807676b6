//! `meanwhile dashboard`: asks the daemon, on its Unix socket, for a one-time login
//! link to the dashboard (the daemon opens a loopback port for it when it has no
//! TCP listener), prints it, and opens it in the person's browser when there is one.

use super::Ctx;
use std::process::{ExitCode, Stdio};

/// Arguments of `dashboard`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only print the login link; do not open a browser.
    #[arg(long)]
    pub no_open: bool,
    /// Print the link as JSON (url, login_url, expires_in_seconds).
    #[arg(long)]
    pub json: bool,
}

/// Runs `dashboard`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    if std::env::var("MEANWHILE_URL").is_ok_and(|u| !u.is_empty()) {
        anyhow::bail!(
            "a login link is given over the daemon's Unix socket only; on another machine open the daemon's address in a browser and log in with a token ('meanwhile token add NAME' makes one)"
        );
    }
    let link = ctx.client()?.dashboard().await?;
    if args.json {
        super::print_json(&link)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("dashboard: {}", link.url);
    println!(
        "log in (works once, within {} minutes): {}",
        link.expires_in_seconds / 60,
        link.login_url
    );
    if !args.no_open {
        match open_browser(&link.login_url) {
            Some(how) => println!("opened with {how}"),
            None => println!("no browser found here: open the link above in one"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens `url` in the person's browser: `$BROWSER`, else the desktop's opener when
/// there is a display. Returns what opened it.
fn open_browser(url: &str) -> Option<String> {
    let mut tries: Vec<String> = std::env::var("BROWSER")
        .ok()
        .into_iter()
        .flat_map(|b| b.split(':').map(str::to_string).collect::<Vec<_>>())
        .filter(|b| !b.is_empty())
        .collect();
    if cfg!(target_os = "macos") {
        tries.push("open".into());
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        tries.push("xdg-open".into());
    }
    tries.into_iter().find(|cmd| {
        std::process::Command::new(cmd)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .is_ok()
    })
}
