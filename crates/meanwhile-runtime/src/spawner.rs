//! The spawner: a small single-threaded process started with the runtime, which
//! forks each attempt's supervisor on the runtime's behalf.
//!
//! The runtime is multi-threaded, and the child of `fork` in a multi-threaded
//! process may find locks held by threads that do not exist in it. So the runtime
//! never forks: it starts the spawner with `std::process::Command`
//! (`posix_spawn`) on `/proc/self/exe`, which is the running program even if its
//! file was replaced or deleted, with `MEANWHILE_SPAWNER_FD` in the environment and
//! one end of a socket pair as its stdin. A constructor of this crate
//! ([`SPAWNER_ENTRY`], in `.init_array`, which glibc calls with argc, argv and envp
//! before `main`) finds that variable, runs the spawner's loop and exits; in every
//! other process it returns at once. The spawner is thus single-threaded from birth
//! and forks freely, whatever program embeds the runtime and without a binary of its
//! own.
//!
//! Forking the runtime itself for every attempt would also be slow once it has
//! grown (page tables, copy-on-write); the spawner is small. Requests travel over
//! the socket pair in the format of [`crate::wire`], with the log file's descriptor
//! passed alongside; the reply comes from the supervisor once the task runs. The
//! spawner's command line is `meanwhile-spawner <home>`, and it leaves room in its
//! environment for each supervisor to rewrite its own. It exits when the runtime's
//! end of the socket closes. A spawner that failed is replaced, by the same exec.

use crate::journal;
use crate::spawn::{self, Proven, SpawnRequest, Spawned};
use crate::supervisor;
use crate::sys;
use crate::wire::{self, Reply, Request, Stage};
use rustix::fs::{Mode, OFlags};
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::pipe::PipeFlags;
use std::ffi::{c_char, c_int};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

/// The environment variable that makes a program started from `/proc/self/exe` the
/// spawner; its value is `0`, the descriptor of the spawner's socket (its stdin).
const MARKER: &str = "MEANWHILE_SPAWNER_FD";
/// The spawner's argv[0], the other mark of a spawner.
const SPAWNER_ARG0: &str = "meanwhile-spawner";
/// Padding in the spawner's environment: room for a supervisor's command line.
const ROOM: &str = "MEANWHILE_SPAWNER_ROOM";
const ROOM_BYTES: usize = 96;
/// The largest request body the spawner accepts.
const MAX_BODY: usize = 64 << 20;
/// How long a new spawner may take to greet the runtime.
const GREETING_WAIT: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 20,
    tv_nsec: 0,
};

/// Runs before `main` in every program that links this crate, and turns the process
/// into the spawner when the runtime started it as one. (glibc passes argc, argv
/// and envp to these functions; other C libraries do not, so there is none there.)
#[cfg(target_env = "gnu")]
#[used]
#[unsafe(link_section = ".init_array")]
static SPAWNER_ENTRY: extern "C" fn(c_int, *const *const c_char, *const *const c_char) =
    spawner_entry;

#[cfg(target_env = "gnu")]
extern "C" fn spawner_entry(argc: c_int, argv: *const *const c_char, envp: *const *const c_char) {
    // SAFETY: glibc calls `.init_array` functions with the process's argc, argv
    // and envp, valid for the life of the process.
    let startup = unsafe { sys::startup(argc, argv, envp, MARKER) };
    // Both marks, so that a stray variable in some environment changes nothing.
    if startup.value != Some(b"0") || startup.arg0 != Some(SPAWNER_ARG0.as_bytes()) {
        return;
    }
    startup.keep_title_area();
    sys::run_and_exit(serve)
}

/// The runtime's handle on its spawner process.
pub(crate) struct Spawner {
    conn: Mutex<Option<Conn>>,
    pid_file: PathBuf,
    home: PathBuf,
}

struct Conn {
    sock: OwnedFd,
    child: Option<Child>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Closing our end (after this) makes the spawner exit; reap it off-thread so
        // that neither a zombie nor a wait is left to the embedding program.
        if let Some(mut child) = self.child.take() {
            std::thread::spawn(move || {
                let _ = child.wait(); // only to reap it
            });
        }
    }
}

/// A spawner exits as soon as it has answered its last request and found its
/// runtime gone; this waits (briefly) for that, so that every supervisor it forked
/// has journalled its start before recovery reads the journal.
fn wait_for_previous(pid_file: &Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let nums: Vec<u64> = text
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let [pid, start] = nums[..] else {
        return;
    };
    let Some(p) = crate::sys::pid(pid as i32) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    // Checked with the pidfd open, so a match proves the pidfd is that spawner.
    if !spawn::is_same_process(Proven {
        pid: pid as i32,
        start,
    }) {
        return;
    }
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let wait = rustix::event::Timespec {
        tv_sec: 2,
        tv_nsec: 0,
    };
    let _ = rustix::event::poll(&mut fds, Some(&wait)); // a timeout: go on regardless
}

fn launch_error(what: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{what} /proc/self/exe as the process spawner: {e}"),
    )
}

/// Starts a spawner by exec'ing this program, waits for its greeting, and records
/// its pid and start time.
fn launch(home: &Path, pid_file: &Path) -> io::Result<Conn> {
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    // The spawner's end becomes its stdin: posix_spawn's dup2 gives it to the child
    // alone, without clearing close-on-exec on a descriptor other threads could
    // leak into programs they start.
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0(SPAWNER_ARG0)
        .arg(home)
        .env_clear()
        .env(MARKER, "0")
        .env(ROOM, " ".repeat(ROOM_BYTES))
        .envs(crate::fault::environment())
        .current_dir("/")
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| launch_error("executing", e))?;
    drop(cmd);
    if let Err(e) = greeting(&ours) {
        let _ = child.kill(); // our unreaped child: its pid is still its own
        let _ = child.wait(); // reaping it
        return Err(launch_error("no greeting from", e));
    }
    let pid = child.id() as i32;
    let start = sys::start_time(pid).unwrap_or(0);
    std::fs::write(pid_file, format!("{pid} {start}\n"))?;
    Ok(Conn {
        sock: ours,
        child: Some(child),
    })
}

fn greeting(sock: &OwnedFd) -> io::Result<()> {
    let mut fds = [rustix::event::PollFd::new(
        sock,
        rustix::event::PollFlags::IN,
    )];
    if rustix::event::poll(&mut fds, Some(&GREETING_WAIT))? == 0 {
        return Err(io::ErrorKind::TimedOut.into());
    }
    let mut b = [0u8; 4];
    sys::read_exact(sock, &mut b)?;
    if u32::from_le_bytes(b) != wire::MAGIC {
        return Err(io::ErrorKind::InvalidData.into());
    }
    Ok(())
}

impl Spawner {
    /// Waits for the spawner of a previous runtime on this home to finish the request
    /// it may be carrying out, then starts this runtime's spawner and records its pid.
    pub(crate) fn start(pid_file: &Path) -> io::Result<Spawner> {
        // The constructor is what makes the exec'd program a spawner: keep it linked.
        #[cfg(target_env = "gnu")]
        std::hint::black_box(&SPAWNER_ENTRY);
        #[cfg(not(target_env = "gnu"))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the process spawner needs glibc, which passes argv and envp to constructors",
        ));
        wait_for_previous(pid_file);
        let home = pid_file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let conn = launch(&home, pid_file)?;
        Ok(Spawner {
            conn: Mutex::new(Some(conn)),
            pid_file: pid_file.to_path_buf(),
            home,
        })
    }

    /// Starts an attempt through the spawner. Returns once the task's program runs,
    /// its start journalled; an error names the step that failed, and then nothing
    /// of the task runs.
    pub(crate) fn spawn(&self, req: &SpawnRequest<'_>) -> io::Result<Spawned> {
        wire::check(req)?;
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // A spawner that died (killed, out of memory) is found when the request
        // cannot be sent or is not answered. Once it is reaped, no supervisor of it
        // can start anything the journal does not show: the start is given up in the
        // journal (`journal::abandon`), and either the supervisor got as far as its
        // `S` line first, and the task runs and is followed, or nothing of it ran,
        // or will, and the request goes to a new spawner. The task never hears of it.
        let mut relaunched = false;
        let reply = loop {
            let c = match &mut *conn {
                Some(c) => c,
                None => conn.insert(launch(&self.home, &self.pid_file)?),
            };
            let broke = match send(&c.sock, req).and_then(|()| receive(&c.sock)) {
                Ok(reply) => break reply,
                Err(e) => e,
            };
            // The spawner is gone or confused: end it, start a new one.
            let reaped = match conn.take().and_then(|mut old| old.child.take()) {
                Some(mut child) => {
                    let _ = child.kill(); // our unreaped child; it may have exited
                    child.wait().is_ok()
                }
                None => false,
            };
            if relaunched || !reaped {
                return Err(io::Error::other(format!(
                    "the process spawner failed: {broke}"
                )));
            }
            match journal::abandon(req.journal, req.task, req.attempt) {
                Ok(Some(s)) => {
                    tracing::warn!(
                        "the process spawner died ({broke}) after task {} attempt {} started; following it",
                        req.task,
                        req.attempt
                    );
                    break Reply {
                        pid: s.pid,
                        supervisor: s.supervisor,
                        errno: 0,
                        stage: Stage::Started,
                        supervisor_start: s.supervisor_start,
                        pid_start: s.pid_start,
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "the process spawner failed ({broke}), and the journal could not settle the start: {e}"
                    )));
                }
            }
            tracing::warn!("the process spawner was gone ({broke}); starting a new one");
            relaunched = true;
        };
        let r = reply.into_result()?;
        spawn::register(
            Proven {
                pid: r.supervisor,
                start: r.supervisor_start,
            },
            Proven {
                pid: r.pid,
                start: r.pid_start,
            },
        );
        Ok(Spawned {
            supervisor: r.supervisor,
            pid: r.pid,
        })
    }
}

/// Sends one request; an error means it did not reach a spawner whole.
fn send(sock: &OwnedFd, req: &SpawnRequest<'_>) -> io::Result<()> {
    sys::send_with_fd(sock, &wire::encode(req), req.log.as_fd())
}

/// The reply to the request sent; an error means the channel broke after the
/// request was sent.
fn receive(sock: &OwnedFd) -> io::Result<Reply> {
    let mut reply = [0u8; wire::REPLY];
    sys::read_exact(sock, &mut reply).map_err(|e| {
        // Not a broken pipe: the request was sent, and may have been acted on.
        io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string())
    })?;
    Ok(Reply::decode(&reply))
}

/// The spawner's whole life, in the exec'd process; returns its exit code.
fn serve() -> i32 {
    // The runtime passed the socket as our stdin.
    let Ok(sock) = rustix::io::fcntl_dupfd_cloexec(std::io::stdin(), 3) else {
        return 1;
    };
    // /dev/null on 0, 1 and 2, so that descriptors received later are never taken
    // for standard streams, and nothing else of what the runtime may have leaked:
    // above all not the socket's copy on 0, which supervisors would inherit, and
    // which would keep the runtime from seeing the spawner end.
    let Ok(null) = rustix::fs::open(c"/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
    else {
        return 1;
    };
    if rustix::stdio::dup2_stdin(&null).is_err() {
        return 1;
    }
    let _ = rustix::stdio::dup2_stdout(&null); // best effort: they are not used
    let _ = rustix::stdio::dup2_stderr(&null);
    if null.as_raw_fd() <= 2 {
        // It is one of the three: keep it open.
        std::mem::forget(null);
    }
    sys::close_from_3_except(&[sock.as_raw_fd()]);
    let _ = rustix::thread::set_name(c"mw-spawner"); // cosmetic
    // Supervisors report through the journal; let the kernel reap them. Stay alive
    // for a Ctrl-C aimed at the runtime's terminal: the runtime decides.
    sys::ignore_signals(&[libc::SIGCHLD, libc::SIGPIPE, libc::SIGINT]);
    if sys::send_all(&sock, &wire::MAGIC.to_le_bytes()).is_err() {
        return 0;
    }
    while handle(&sock).is_ok() {}
    0
}

/// Carries out one request; an error means the channel broke (or the runtime
/// closed it) and the spawner exits.
fn handle(sock: &OwnedFd) -> io::Result<()> {
    let mut header = [0u8; wire::HEADER];
    let (n, log) = sys::recv_with_fd(sock, &mut header)?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    sys::read_exact(sock, &mut header[n..])?;
    let Some((n_argv, n_env, len)) = wire::decode_header(&header) else {
        return Err(io::ErrorKind::InvalidData.into());
    };
    if len > MAX_BODY {
        return Err(io::ErrorKind::InvalidData.into());
    }
    let mut body = vec![0u8; len];
    sys::read_exact(sock, &mut body)?;
    // A test's fault here ends the spawner with the request taken and nothing
    // started (`spawner.taken`), or with the task started and no answer sent
    // (`spawner.started`), as a kill at either moment would.
    let _ = crate::fault::point("spawner.taken");
    let reply = match (wire::decode(&body, n_argv, n_env), log) {
        (Some(req), Some(log)) => start_supervisor(&req, log),
        _ => Reply::failed(Stage::Request, libc::EINVAL),
    };
    let _ = crate::fault::point("spawner.started");
    sys::send_all(sock, &reply.encode())
}

/// Forks the attempt's supervisor and relays its report.
fn start_supervisor(req: &Request, log: OwnedFd) -> Reply {
    let (report_read, report_write) = match rustix::pipe::pipe_with(PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => return Reply::error(Stage::ForkSupervisor, &e.into()),
    };
    // SAFETY: the spawner is single-threaded; the child ends in `run_and_exit`.
    match unsafe { sys::fork() } {
        Err(e) => Reply::error(Stage::ForkSupervisor, &e),
        Ok(None) => sys::run_and_exit(move || {
            drop(report_read);
            // Hold nothing of the spawner's: above all not its socket, whose copy
            // would keep the runtime from seeing the spawner end.
            sys::close_from_3_except(&[log.as_raw_fd(), report_write.as_raw_fd()]);
            supervisor::run(req, log, report_write)
        }),
        Ok(Some(_)) => {
            drop(report_write);
            drop(log);
            let mut b = [0u8; wire::REPLY];
            match sys::read_exact(&report_read, &mut b) {
                Ok(()) => Reply::decode(&b),
                Err(_) => Reply::failed(Stage::SupervisorDied, libc::EIO),
            }
        }
    }
}
