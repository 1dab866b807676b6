//! The spawner: a small single-threaded process started with the runtime, which
//! keeps a pool of attempt supervisors and hands each start to one of them.
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
//! Requests travel over the socket pair in the format of [`crate::wire`], with the
//! log file's descriptor and the write end of the attempt's end pipe passed
//! alongside. The spawner passes each start, as it came, to an idle supervisor of
//! its pool ([`crate::supervisor`]), forking a new one when none is idle, so the
//! pool grows to the most attempts that ran at once; the supervisor's reply comes
//! back once the task runs. A supervisor says when it is idle again; one whose
//! socket closes (it died) leaves the pool and is never used again. The runtime
//! trims the pool once in a while ([`Spawner::trim`]): the idle supervisors that no
//! attempt used since the last trim are let go. The spawner's command line is
//! `meanwhile-spawner <home>`, and it leaves room in its environment for each
//! supervisor to rewrite its own. It exits when the runtime's end of the socket
//! closes, and so do its idle supervisors then (busy ones once their attempt is
//! recorded). A spawner that failed is replaced, by the same exec.

use crate::journal;
use crate::spawn::{self, Proven, SpawnRequest, Spawned};
use crate::supervisor;
use crate::sys;
use crate::wire::{self, Reply, Stage};
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
    /// Set by [`Spawner::close`]: no spawner is started again.
    closed: std::sync::atomic::AtomicBool,
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
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Ends the spawner, and with it the pool: idle supervisors exit at once, busy
    /// ones once their attempt is recorded. For a runtime that has shut down; a
    /// start after this is refused.
    pub(crate) fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.take();
    }

    /// Lets go of the pool's idle supervisors that no attempt used since the last
    /// trim; returns (let go, kept). Nothing to do without a spawner.
    pub(crate) fn trim(&self) -> io::Result<(u32, u32)> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = &mut *conn else {
            return Ok((0, 0));
        };
        let answer = sys::send_all(&c.sock, &wire::encode_trim()).and_then(|()| {
            let mut b = [0u8; wire::TRIMMED];
            sys::read_exact(&c.sock, &mut b).map(|()| wire::decode_trimmed(&b))
        });
        if answer.is_err() {
            // A broken spawner: the next start replaces it (and settles what it
            // held through the journal).
            if let Some(mut child) = conn.take().and_then(|mut old| old.child.take()) {
                let _ = child.kill(); // our unreaped child; it may have exited
                let _ = child.wait(); // reaping it
            }
        }
        answer
    }

    /// Starts an attempt through the spawner. Returns once the task's program runs,
    /// its start journalled; an error names the step that failed, and then nothing
    /// of the task runs.
    ///
    /// With the attempt comes the read end of its end pipe, which becomes readable
    /// (at its end of file) once the supervisor has journalled the attempt's end, or
    /// died.
    pub(crate) fn spawn(&self, req: &SpawnRequest<'_>) -> io::Result<(Spawned, OwnedFd)> {
        wire::check(req)?;
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::other("the runtime has shut down"));
        }
        let (ended, end) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // A spawner that died (killed, out of memory) is found when the request
        // cannot be sent or is not answered. Once it is reaped, no supervisor of it
        // can start anything the journal does not show: the start is given up in the
        // journal (`journal::abandon`), and either the supervisor got as far as its
        // `S` line first, and the task runs and is followed, or nothing of it ran,
        // or will, and the request goes to a new spawner. The task never hears of it.
        let mut relaunched = false;
        let mut handovers = 0;
        let reply = loop {
            let c = match &mut *conn {
                Some(c) => c,
                None => conn.insert(launch(&self.home, &self.pid_file)?),
            };
            let broke = match send(&c.sock, req, &end).and_then(|()| receive(&c.sock)) {
                Ok(reply) if reply.stage == Stage::SupervisorDied => {
                    // The supervisor died holding the request: nothing more of it
                    // reaches the journal, which says whether it started the task.
                    match journal::start_of(req.journal, req.task, req.attempt) {
                        Ok(Some(s)) => {
                            tracing::warn!(
                                "the supervisor of task {} attempt {} died after starting it",
                                req.task,
                                req.attempt
                            );
                            break Reply::started(s);
                        }
                        Ok(None) if handovers < HANDOVERS => {
                            handovers += 1;
                            continue;
                        }
                        _ => break reply,
                    }
                }
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
                    break Reply::started(s);
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
        // The supervisor holds the end pipe's write end now (or died): ours goes,
        // so that its end is the only one left.
        drop(end);
        Ok((
            Spawned {
                supervisor: r.supervisor,
                pid: r.pid,
            },
            ended,
        ))
    }
}

/// Sends one request; an error means it did not reach a spawner whole.
fn send(sock: &OwnedFd, req: &SpawnRequest<'_>, end: &OwnedFd) -> io::Result<()> {
    sys::send_with_fds(sock, &wire::encode(req), &[req.log.as_fd(), end.as_fd()])
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
    let mut pool = Pool::default();
    loop {
        use rustix::event::{PollFd, PollFlags};
        let mut fds = Vec::with_capacity(1 + pool.members.len());
        fds.push(PollFd::new(&sock, PollFlags::IN));
        fds.extend(
            pool.members
                .iter()
                .map(|m| PollFd::new(&m.sock, PollFlags::IN)),
        );
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return 1,
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        // The supervisors first, so that one that has just become idle takes the
        // request that arrived with its word.
        pool.hear(|i| ready[i + 1]);
        if ready[0] && handle(&sock, &mut pool).is_err() {
            // The runtime is gone: so is the pool, whose supervisors see their
            // sockets close (when busy, once their attempt is recorded) and exit.
            return 0;
        }
    }
}

/// The spawner's supervisors, each one attempt at a time.
#[derive(Default)]
struct Pool {
    members: Vec<Member>,
}

struct Member {
    /// The spawner's end of the supervisor's socket.
    sock: OwnedFd,
    /// Waiting for an attempt.
    idle: bool,
    /// Given an attempt since the last trim.
    used: bool,
}

/// How many times a start is passed to another supervisor when the one chosen turns
/// out dead before it took the request.
const HANDOVERS: usize = 4;

impl Pool {
    /// Reads what the supervisors for which `readable(i)` holds have said: each is
    /// idle again, or it is gone (its socket closed: it died or exited), and then it
    /// leaves the pool, never to be used again.
    fn hear(&mut self, readable: impl Fn(usize) -> bool) {
        // From the end: `swap_remove` moves a member already looked at.
        for i in (0..self.members.len()).rev() {
            if readable(i) && !self.members[i].hear() {
                self.members.swap_remove(i);
            }
        }
    }

    /// An idle supervisor's index, forking a new one when none is idle.
    fn take(&mut self) -> io::Result<usize> {
        if !self.members.iter().any(|m| m.idle) {
            // One may have finished since the last poll.
            self.hear(|_| true);
        }
        let i = match self.members.iter().position(|m| m.idle) {
            Some(i) => i,
            None => {
                self.members.push(fork_supervisor()?);
                self.members.len() - 1
            }
        };
        let m = &mut self.members[i];
        m.idle = false;
        m.used = true;
        Ok(i)
    }

    /// Lets the idle supervisors go that no attempt used since the last trim; the
    /// numbers let go and kept.
    fn trim(&mut self) -> (u32, u32) {
        let before = self.members.len();
        // Dropping a socket ends its supervisor, which waits on it when idle.
        self.members.retain(|m| !m.idle || m.used);
        for m in &mut self.members {
            m.used = false;
        }
        let kept = self.members.len();
        ((before - kept) as u32, kept as u32)
    }
}

impl Member {
    /// Reads what the supervisor said, without waiting; false once it is gone.
    fn hear(&mut self) -> bool {
        let mut b = [0u8; 1];
        match rustix::net::recv(&self.sock, &mut b, rustix::net::RecvFlags::DONTWAIT) {
            Ok((1, _)) if b[0] == wire::READY => {
                self.idle = true;
                true
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => true,
            // The end of its socket, an error, or a word out of turn: gone (or, for
            // the last, confused), and never used again.
            _ => false,
        }
    }
}

/// Forks a new supervisor for the pool.
fn fork_supervisor() -> io::Result<Member> {
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    // SAFETY: the spawner is single-threaded; the child ends in `run_and_exit`.
    match unsafe { sys::fork() }? {
        None => sys::run_and_exit(move || {
            drop(ours);
            // Hold nothing of the spawner's: above all not its socket, whose copy
            // would keep the runtime from seeing the spawner end, nor another
            // supervisor's, nor a request's descriptors.
            sys::close_from_3_except(&[theirs.as_raw_fd()]);
            supervisor::serve(theirs)
        }),
        Some(_) => Ok(Member {
            sock: ours,
            idle: true,
            used: false,
        }),
    }
}

/// Carries out one request; an error means the channel broke (or the runtime
/// closed it) and the spawner exits.
fn handle(sock: &OwnedFd, pool: &mut Pool) -> io::Result<()> {
    let mut msg = vec![0u8; wire::HEADER];
    let (n, fds) = sys::recv_with_fds(sock, &mut msg)?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    sys::read_exact(sock, &mut msg[n..])?;
    let header: [u8; wire::HEADER] = msg[..wire::HEADER]
        .try_into()
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    let len = match wire::decode_header(&header) {
        Some(wire::Header::Start { len, .. }) => len,
        Some(wire::Header::Trim) => {
            let (gone, kept) = pool.trim();
            return sys::send_all(sock, &wire::encode_trimmed(gone, kept));
        }
        None => return Err(io::ErrorKind::InvalidData.into()),
    };
    if len > supervisor::MAX_BODY {
        return Err(io::ErrorKind::InvalidData.into());
    }
    msg.resize(wire::HEADER + len, 0);
    sys::read_exact(sock, &mut msg[wire::HEADER..])?;
    // A test's fault here ends the spawner with the request taken and nothing
    // started (`spawner.taken`), or with the task started and no answer sent
    // (`spawner.started`), as a kill at either moment would.
    let _ = crate::fault::point("spawner.taken");
    let reply = match &fds[..] {
        [log, end] => hand_over(pool, &msg, log, end),
        _ => Reply::failed(Stage::Request, libc::EINVAL),
    };
    // The request's descriptors are the supervisor's now; ours close here.
    drop(fds);
    let _ = crate::fault::point("spawner.started");
    sys::send_all(sock, &reply.encode())
}

/// Passes a start request, as it came, to an idle supervisor, and relays its reply.
fn hand_over(pool: &mut Pool, msg: &[u8], log: &OwnedFd, end: &OwnedFd) -> Reply {
    for _ in 0..HANDOVERS {
        let i = match pool.take() {
            Ok(i) => i,
            Err(e) => return Reply::error(Stage::ForkSupervisor, &e),
        };
        let m = &pool.members[i];
        if sys::send_with_fds(&m.sock, msg, &[log.as_fd(), end.as_fd()]).is_err() {
            // It died idle: nothing of the request reached it. Another one.
            pool.members.swap_remove(i);
            continue;
        }
        let mut b = [0u8; wire::REPLY];
        return match sys::read_exact(&m.sock, &mut b) {
            Ok(()) => Reply::decode(&b),
            Err(_) => {
                // It died holding the request: the runtime reads in the journal
                // whether it started anything.
                pool.members.swap_remove(i);
                Reply::failed(Stage::SupervisorDied, libc::EIO)
            }
        };
    }
    Reply::failed(Stage::SupervisorDied, libc::EIO)
}
