//! Finding the daemon, and starting it when none answers, so that on a fresh machine
//! `meanwhile run -- echo hi` just works.

use anyhow::{Context, bail};
use meanwhile_client::Client;
use meanwhile_core::http::SOCKET_FILE;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting daemon may take to answer (it recovers tasks first).
const START_LIMIT: Duration = Duration::from_secs(60);

/// The daemon's log when the CLI started it.
pub fn log_path(home: &Path) -> std::path::PathBuf {
    home.join("daemon.log")
}

fn answers(sock: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(sock).is_ok()
}

/// Whether the daemon is remote (`MEANWHILE_URL`): then it is never started here.
pub fn is_remote() -> bool {
    std::env::var_os("MEANWHILE_URL").is_some_and(|u| !u.is_empty())
}

/// A client of the home's daemon, starting the daemon first when none answers.
/// With `MEANWHILE_URL` set, the daemon is remote and is never started here.
pub fn connect(home: &Path) -> anyhow::Result<Client> {
    let client = Client::from_env(home);
    if !is_remote() {
        start_if_needed(home)?;
    }
    Ok(client)
}

/// Starts the home's daemon unless one answers; whether it was started.
pub fn start_if_needed(home: &Path) -> anyhow::Result<bool> {
    let sock = home.join(SOCKET_FILE);
    if answers(&sock) {
        return Ok(false);
    }
    start(home, &sock)?;
    Ok(true)
}

/// Blocks until process `pid` has exited (at once if it has already).
pub fn wait_for_exit(pid: u32) -> std::io::Result<()> {
    use rustix::event::{PollFd, PollFlags, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid out of range"))?;
    let fd = match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Ok(()), // already gone
        Err(e) => return Err(e.into()),
    };
    // A pidfd becomes readable when its process exits.
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    loop {
        match poll(&mut fds, None) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A client of the home's daemon, without starting one.
pub fn client(home: &Path) -> Client {
    Client::from_env(home)
}

/// Starts `meanwhile serve` detached (its own session, no terminal, output to the
/// daemon log) and waits until its socket answers.
fn start(home: &Path, sock: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .with_context(|| format!("creating the home {}", home.display()))?;
    let log_file = log_path(home);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_file)
        .with_context(|| format!("opening {}", log_file.display()))?;
    let exe = std::env::current_exe().context("finding the meanwhile executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve")
        .env("MEANWHILE_HOME", home)
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // The daemon leaves our session so that closing this terminal (SIGHUP) does not
    // take it and its tasks down.
    // SAFETY: the closure calls setsid only, which is async-signal-safe and
    // allocates nothing, so it may run between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the meanwhile daemon")?;
    let begun = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if answers(sock) {
            // The child is the daemon itself; reap it in the background of nothing:
            // dropping the handle leaves it running.
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            // Another CLI may have started a daemon at the same moment; that one wins.
            if answers(sock) {
                return Ok(());
            }
            let tail = std::fs::read_to_string(&log_file).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "the daemon exited at start ({status}); its log {} ends with:\n{}",
                log_file.display(),
                tail.join("\n")
            );
        }
        if begun.elapsed() > START_LIMIT {
            bail!(
                "the daemon started but did not answer on {} within {START_LIMIT:?}; see {}",
                sock.display(),
                log_file.display()
            );
        }
        // A process start has no event to wait on from here; back off gently.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
