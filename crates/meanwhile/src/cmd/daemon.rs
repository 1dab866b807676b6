//! `meanwhile daemon start|stop|restart|status|install`: the daemon's life, without
//! looking for its pid. Stopping it leaves its running tasks running (the next daemon
//! adopts them and records their true end) unless `--stop-tasks` says otherwise.

use super::Ctx;
use anyhow::{Context, bail};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Arguments of `daemon`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// What `daemon` does.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Start the daemon in the background unless one runs (any command starts it
    /// when needed; this only makes it explicit).
    Start,
    /// Stop the daemon and wait until it has exited. Its running tasks keep running
    /// and the next daemon adopts them; with --stop-tasks they are stopped first.
    Stop(StopArgs),
    /// Stop the daemon (its tasks keep running unless --stop-tasks), then start a
    /// new one, which adopts them.
    Restart(StopArgs),
    /// Whether the daemon runs: pid, version, socket, uptime, task counts. Exits 0
    /// when it runs, 69 when none does.
    Status(super::status::Args),
    /// Write a systemd user unit (~/.config/systemd/user/meanwhile.service) that
    /// runs `meanwhile serve` for this home, and enable and start it, so the daemon
    /// starts at login. Stopping the service leaves the tasks running. Exits 1 when
    /// the service could not be enabled (the unit stays written).
    Install(InstallArgs),
    /// Disable and stop the service `install` set up (its tasks keep running, for
    /// the next daemon to adopt), and remove the unit file it wrote.
    Uninstall,
    /// For tests: move forward the clock of a daemon started with MEANWHILE_TEST_CLOCK
    /// (how far ahead of the system's it starts), and return once its schedules,
    /// budget windows, alert reminders, stall checks and heartbeats have looked at the
    /// new time. Prints the daemon's new time. Other daemons keep the system's time
    /// and refuse.
    Clock(ClockArgs),
}

/// Arguments of `daemon clock`.
#[derive(Debug, clap::Args)]
pub struct ClockArgs {
    /// How far to move the clock (`90s`, `1h`); `0s` only waits for the loops to look.
    #[arg(long, value_name = "DURATION", value_parser = super::duration)]
    pub advance: std::time::Duration,
    /// Print the answer as JSON: now (ms since the epoch), ahead_ms, settled.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `daemon stop` and `daemon restart`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Stop the running tasks first (SIGTERM, grace period, SIGKILL); they end
    /// cancelled.
    #[arg(long)]
    pub stop_tasks: bool,
}

/// Arguments of `daemon install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Only write the unit; do not run systemctl.
    #[arg(long)]
    pub no_enable: bool,
}

/// The name of the systemd user unit.
pub const UNIT: &str = "meanwhile.service";

/// Runs `daemon`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Start => start(ctx).await,
        Action::Stop(a) => {
            stop(ctx, &a).await?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Restart(a) => {
            if crate::daemon::is_remote() {
                bail!(
                    "cannot restart a remote daemon (MEANWHILE_URL is set): restart it on its machine"
                );
            }
            stop(ctx, &a).await?;
            start(ctx).await
        }
        Action::Status(a) => super::status::run(ctx, a).await,
        Action::Install(a) => install(ctx, &a).await,
        Action::Uninstall => uninstall(),
        Action::Clock(a) => clock(ctx, &a).await,
    }
}

async fn clock(ctx: &Ctx, args: &ClockArgs) -> anyhow::Result<ExitCode> {
    let moved = crate::daemon::client(&ctx.home)
        .advance_clock(args.advance)
        .await?;
    let ahead = std::time::Duration::from_millis(moved.ahead_ms);
    if args.json {
        super::print_json(&moved)?;
    } else {
        outln!(
            "the daemon's clock reads {} ({} ahead of the system's)",
            moved.now.rfc3339(),
            meanwhile_core::format_duration(ahead)
        );
    }
    if !moved.settled {
        bail!(
            "the daemon's timed loops did not all look at the new time within 30s; see `meanwhile health`"
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn start(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    if crate::daemon::is_remote() {
        bail!("cannot start a remote daemon (MEANWHILE_URL is set): start it on its machine");
    }
    let started = crate::daemon::start_if_needed(&ctx.home)?;
    let s = crate::daemon::client(&ctx.home).status().await?;
    if started {
        outln!("started the daemon (pid {}) for {}", s.pid, s.home);
    } else {
        outln!("the daemon already runs (pid {}) for {}", s.pid, s.home);
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops the daemon, if one runs, and waits for its exit.
async fn stop(ctx: &Ctx, args: &StopArgs) -> anyhow::Result<()> {
    let client = crate::daemon::client(&ctx.home);
    let status = match client.status().await {
        Ok(s) => s,
        Err(e) if e.is_unreachable() => {
            outln!("no daemon runs for {}", ctx.home.display());
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let running = status.counts.get("running").copied().unwrap_or(0);
    let answer = client.shutdown(args.stop_tasks).await?;
    if crate::daemon::is_remote() {
        outln!("the daemon at {} is stopping", client.target());
        return Ok(());
    }
    let pid = answer.pid;
    let waiting = tokio::task::spawn_blocking(move || crate::daemon::wait_for_exit(pid));
    waiting
        .await?
        .with_context(|| format!("waiting for the daemon (pid {pid}) to exit"))?;
    let (tasks, keep, them) = match running {
        1 => ("1 running task".to_string(), "keeps", "it"),
        n => (format!("{n} running tasks"), "keep", "them"),
    };
    if running == 0 {
        outln!("stopped the daemon (pid {pid})");
    } else if answer.stop_tasks {
        outln!("stopped the daemon (pid {pid}) and its {tasks}");
    } else {
        outln!(
            "stopped the daemon (pid {pid}); its {tasks} {keep} running and the next daemon adopts {them}"
        );
    }
    Ok(())
}

/// The unit's directory: `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`.
fn unit_dir() -> anyhow::Result<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(c) => PathBuf::from(c),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => bail!("neither XDG_CONFIG_HOME nor HOME is set: set one to install the unit"),
        },
    };
    Ok(config.join("systemd").join("user"))
}

/// Quotes a word for a unit file: `%` and `$` are systemd's, `"` and `\` the quotes'.
fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '%' => q.push_str("%%"),
            '$' => q.push_str("$$"),
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The hard limit on open files that this process may raise its own to, which the
/// unit asks for: a unit asking for more than its service manager holds would not
/// start, and a login's limits are those of the user's manager.
fn hard_open_files() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(1 << 20)
}

/// The unit that runs `exe serve` for `home`, with `open_files` as its hard limit
/// on open files.
pub fn unit_text(exe: &Path, home: &Path, open_files: u64) -> String {
    let exe = quote(&exe.display().to_string());
    let home = quote(&format!("MEANWHILE_HOME={}", home.display()));
    let soft = open_files.min(1024);
    format!(
        "# Written by `meanwhile daemon install`.
[Unit]
Description=meanwhile: durable background tasks

[Service]
Type=simple
ExecStart={exe} serve
Environment={home}
# Stopping the service stops only the daemon: its tasks keep running, and the next
# daemon adopts them and records their true end.
KillMode=process
Restart=on-failure
# The daemon raises its soft limit to the hard one, and caps its TCP connections at a
# quarter of it; its tasks keep the soft limit, 1024, as programs using select need.
LimitNOFILE={soft}:{open_files}

[Install]
WantedBy=default.target
"
    )
}

/// Runs `systemctl --user ARGS`; its stdout, or why it could not.
fn systemctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(format!(
            "`systemctl --user {}` failed ({}): {}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Err("systemctl is not installed".into()),
        Err(e) => Err(format!("running systemctl: {e}")),
    }
}

async fn install(ctx: &Ctx, args: &InstallArgs) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("finding the meanwhile executable")?;
    let home = std::path::absolute(&ctx.home)
        .with_context(|| format!("making the home {} absolute", ctx.home.display()))?;
    let dir = unit_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(UNIT);
    let text = unit_text(&exe, &home, hard_open_files());
    let before = std::fs::read_to_string(&path).ok();
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    match &before {
        Some(b) if *b == text => outln!("{} is up to date", path.display()),
        Some(_) => outln!("updated {}", path.display()),
        None => outln!("wrote {}", path.display()),
    }
    let by_hand = "systemctl --user daemon-reload && systemctl --user enable --now meanwhile";
    if args.no_enable {
        outln!("to start the daemon at login: {by_hand}");
        return Ok(ExitCode::SUCCESS);
    }
    if let Err(why) = systemctl(&["daemon-reload"]) {
        bail!(
            "not enabled: {why}; the unit is written: where systemd runs for your user, enable it with: {by_hand} (or pass --no-enable to only write it)"
        );
    }
    outln!("ran systemctl --user daemon-reload");
    // A daemon this CLI started on demand holds the home: the service could not take
    // it. Stop that one, leaving its tasks for the service's daemon to adopt.
    let main_pid: u32 = systemctl(&["show", "--property=MainPID", "--value", UNIT])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if let Ok(s) = crate::daemon::client(&home).status().await
        && s.pid != main_pid
    {
        let ctx = Ctx { home: home.clone() };
        stop(&ctx, &StopArgs { stop_tasks: false }).await?;
    }
    match systemctl(&["enable", "--now", UNIT]) {
        Ok(_) => {
            outln!("ran systemctl --user enable --now {UNIT}: the daemon runs and starts at login")
        }
        Err(why) => bail!("{why} (the unit is written; see `systemctl --user status {UNIT}`)"),
    }
    if main_pid != 0 && before.is_some_and(|b| b != text) {
        systemctl(&["restart", UNIT]).map_err(anyhow::Error::msg)?;
        outln!("ran systemctl --user restart {UNIT}: its tasks keep running");
    }
    Ok(ExitCode::SUCCESS)
}

/// `daemon uninstall`: what `install` did, undone.
fn uninstall() -> anyhow::Result<ExitCode> {
    let path = unit_dir()?.join(UNIT);
    if !path.exists() {
        outln!("nothing to remove: {} does not exist", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    // Disabled first, so that systemd forgets the unit it still knows; the service's
    // daemon stops and its tasks keep running (KillMode=process).
    match systemctl(&["disable", "--now", UNIT]) {
        Ok(_) => outln!("ran systemctl --user disable --now {UNIT}"),
        Err(why) => outln!("not disabled: {why}"),
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    outln!("removed {}", path.display());
    if systemctl(&["daemon-reload"]).is_ok() {
        outln!("ran systemctl --user daemon-reload");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_raises_the_hard_open_files_limit_only() {
        let text = unit_text(Path::new("/usr/bin/meanwhile"), Path::new("/h"), 524_288);
        assert!(text.contains("\nLimitNOFILE=1024:524288\n"), "{text}");
        let text = unit_text(Path::new("/usr/bin/meanwhile"), Path::new("/h"), 512);
        assert!(text.contains("\nLimitNOFILE=512:512\n"), "{text}");
    }

    #[test]
    fn unit_words_are_quoted_for_systemd() {
        assert_eq!(quote("/usr/bin/meanwhile"), "\"/usr/bin/meanwhile\"");
        assert_eq!(quote("/a b/50%$x\"\\"), "\"/a b/50%%$$x\\\"\\\\\"");
    }
}
