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
//! pool grows to the most attempts that ran at once, and goes on to the next
//! request: the supervisor answers the runtime itself, in the attempt's end pipe,
//! once the task runs, so the spawner is neither waited for nor woken on the way.
//! A supervisor says when it is idle again; one whose
//! socket closes (it died) leaves the pool and is never used again. The runtime
//! trims the pool once in a while ([`Spawner::trim`]): the idle supervisors that no
//! attempt used since the last trim are let go. The spawner's command line is
//! `meanwhile-spawner <home>`, and it leaves room in its environment for each
//! supervisor to rewrite its own. It exits when the runtime's end of the socket
//! closes, once every start it handed over is in the journal, and so do its idle
//! supervisors then (busy ones once their attempt is recorded). A spawner that
//! failed is replaced, by the same exec.

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

/// A spawner whose runtime is gone exits once every start it handed over is in the
/// journal; this waits (briefly) for that, so that recovery reads those starts
/// there. (One still unjournalled after that, recovery gives up in the journal.)
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

    /// Sends an attempt's start to the spawner with `end`, the write end of the
    /// attempt's end pipe ([`end_pipe`]), and returns as soon as it is sent; an
    /// error means nothing of the task runs. The caller closes its `end` then.
    ///
    /// Whoever carries the start out answers in that pipe: the supervisor, with a
    /// [`Reply`] once the task's program runs (or could not be started), or the
    /// spawner, when it could not hand the start over. The pipe then reaches its end
    /// of file once the supervisor has journalled the attempt's end. An end of file
    /// before any reply means every process that held the start is gone (the
    /// spawner or the supervisor died): the journal then says whether the program
    /// was started, and nothing can start it any more ([`answer`]).
    pub(crate) fn spawn(&self, req: &SpawnRequest<'_>, end: &OwnedFd) -> io::Result<()> {
        wire::check(req)?;
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::other("the runtime has shut down"));
        }
        let msg = wire::encode(req);
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut relaunched = false;
        loop {
            let c = match &mut *conn {
                Some(c) => c,
                None => conn.insert(launch(&self.home, &self.pid_file)?),
            };
            let broke = match send(c, &msg, req.log, end) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // The spawner is gone (a request that reached it in part is one it
            // cannot decode, and never acts on): end it, start a new one. Once it
            // is reaped and its socket closed, no copy of `end` is left with it.
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
            tracing::warn!("the process spawner was gone ({broke}); starting a new one");
            relaunched = true;
        }
    }

    /// [`Spawner::spawn`] where it must not wait, as on an async thread: `None` when
    /// it might, because another sender holds the spawner, the spawner's socket has
    /// no room for the request yet, or the spawner is gone and a new one must be
    /// started, and then the caller calls `spawn` where waiting is allowed.
    pub(crate) fn spawn_now(
        &self,
        req: &SpawnRequest<'_>,
        end: &OwnedFd,
    ) -> Option<io::Result<()>> {
        if let Err(e) = wire::check(req) {
            return Some(Err(e));
        }
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        let msg = wire::encode(req);
        let conn = match self.conn.try_lock() {
            Ok(c) => c,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        let c = conn
            .as_ref()
            .filter(|c| sys::has_room(&c.sock, msg.len()))?;
        // A failed send: `spawn` finds the spawner gone again, and replaces it.
        send(c, &msg, req.log, end).ok().map(Ok)
    }
}

/// An attempt's end pipe: (read end, non-blocking, for the runtime; write end, for
/// the request).
pub(crate) fn end_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (ended, end) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
    rustix::fs::fcntl_setfl(&ended, OFlags::NONBLOCK)?;
    Ok((ended, end))
}

/// Sends one request (`msg`) with its log and its end pipe's write end. An error
/// means the request did not reach the spawner whole.
fn send(c: &Conn, msg: &[u8], log: &std::fs::File, end: &OwnedFd) -> io::Result<()> {
    sys::send_with_fds(&c.sock, msg, &[log.as_fd(), end.as_fd()])?;
    // A test's fault here ends the runtime with the start on its way and its
    // answer unread (`spawner.sent`).
    let _ = crate::fault::point("spawner.sent");
    Ok(())
}

/// How a start sent with [`Spawner::spawn`] went, read from its end pipe (`ended`,
/// non-blocking). `Ok(None)`: nothing of it ran, and nothing can run it any more:
/// every process that held it is gone before it started the program, and the start
/// may be sent again. A start whose supervisor died after journalling it is
/// answered from the journal, and followed (its end is then `lost`).
pub(crate) async fn answer(
    ended: &tokio::io::unix::AsyncFd<OwnedFd>,
    journal: &Path,
    task: i64,
    attempt: u32,
) -> io::Result<Option<Spawned>> {
    let mut b = [0u8; wire::REPLY];
    let mut got = 0;
    while got < wire::REPLY {
        let mut ready = ended.readable().await?;
        match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut b[got..])?)) {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    let reply = if got == wire::REPLY {
        Reply::decode(&b)
    } else {
        match journal::start_of(journal, task, attempt)? {
            Some(s) => {
                tracing::warn!(
                    "the supervisor of task {task} attempt {attempt} died after starting it"
                );
                Reply::started(s)
            }
            None => return Ok(None),
        }
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
    Ok(Some(Spawned {
        supervisor: r.supervisor,
        pid: r.pid,
    }))
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
            // Not before every start handed over is in the journal, though: the
            // next runtime waits for this exit, then reads there what was started.
            pool.settle_starts(START_SETTLES);
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
    /// The attempt handed to it, and the journal its start goes to, until it is
    /// idle again.
    attempt: Option<(i64, u32, PathBuf)>,
}

/// The longest a spawner whose runtime is gone waits for the starts it handed
/// over to reach the journal (the next runtime waits 2 s for it to exit).
const START_SETTLES: std::time::Duration = std::time::Duration::from_millis(1500);

/// How many times a start is passed to another supervisor when the one chosen turns
/// out dead before it took the request.
pub(crate) const HANDOVERS: usize = 4;

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

    /// Waits, at most `wait`, until every start handed over is settled: its
    /// supervisor journalled it, is idle again (it failed, or is over) or is gone.
    fn settle_starts(&mut self, wait: std::time::Duration) {
        let until = std::time::Instant::now() + wait;
        loop {
            self.hear(|_| true);
            let mut unsettled = Vec::new();
            for m in &mut self.members {
                // Not journalled yet. (A journal that cannot be read is not waited
                // for: waiting would not mend it.)
                if let Some((task, attempt, journal)) = &m.attempt
                    && let Ok(None) = journal::start_of(journal, *task, *attempt)
                {
                    unsettled.push(m.sock.as_fd());
                }
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if unsettled.is_empty() || left.is_zero() {
                return;
            }
            // Woken by a supervisor's word (idle, or its socket's end), else a look
            // at the journal every 10 ms.
            let tick = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: left.min(std::time::Duration::from_millis(10)).as_nanos() as i64,
            };
            let mut fds: Vec<_> = unsettled
                .iter()
                .map(|fd| rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN))
                .collect();
            let _ = rustix::event::poll(&mut fds, Some(&tick)); // looked at again either way
        }
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
                self.attempt = None;
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
            attempt: None,
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
    let (n_argv, n_env, len) = match wire::decode_header(&header) {
        Some(wire::Header::Start { n_argv, n_env, len }) => (n_argv, n_env, len),
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
    // started (`spawner.taken`), or with the request handed to a supervisor
    // (`spawner.started`), as a kill at either moment would.
    let _ = crate::fault::point("spawner.taken");
    let refused = match (
        &fds[..],
        wire::attempt_of(&msg[wire::HEADER..], n_argv, n_env),
    ) {
        ([log, end], Some(attempt)) => hand_over(pool, &msg, log, end, attempt).err(),
        ([_, end], None) => Some((Reply::failed(Stage::Request, libc::EINVAL), end)),
        _ => None,
    };
    if let Some((reply, end)) = refused {
        // Into the attempt's end pipe, which the runtime reads; a fresh pipe has
        // room for it.
        let _ = sys::write_all(end, &reply.encode()); // a runtime that is gone finds out itself
    }
    // The request's descriptors are the supervisor's now; ours close here. A
    // request that came without its two has no pipe to answer in: its runtime
    // hears the pipe's end (its own copy is closed), and sends it again.
    drop(fds);
    let _ = crate::fault::point("spawner.started");
    Ok(())
}

/// Passes a start request, as it came, to an idle supervisor, which answers the
/// runtime itself; or the answer to give when none can take it.
fn hand_over<'a>(
    pool: &mut Pool,
    msg: &[u8],
    log: &OwnedFd,
    end: &'a OwnedFd,
    attempt: (i64, u32, PathBuf),
) -> Result<(), (Reply, &'a OwnedFd)> {
    for _ in 0..HANDOVERS {
        let i = match pool.take() {
            Ok(i) => i,
            Err(e) => return Err((Reply::error(Stage::ForkSupervisor, &e), end)),
        };
        let m = &mut pool.members[i];
        if sys::send_with_fds(&m.sock, msg, &[log.as_fd(), end.as_fd()]).is_err() {
            // It died idle: nothing of the request reached it. Another one.
            pool.members.swap_remove(i);
            continue;
        }
        m.attempt = Some(attempt);
        return Ok(());
    }
    Err((Reply::failed(Stage::SupervisorDied, libc::EIO), end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start's end pipe, its write end given to `holder`, and what `answer` reads
    /// in it once `holder` is done, with the journal at `journal`.
    async fn answered(journal: &Path, holder: impl FnOnce(OwnedFd)) -> io::Result<Option<Spawned>> {
        let (ended, end) = end_pipe().unwrap();
        let ended = sys::async_fd(ended).unwrap();
        holder(end);
        answer(&ended, journal, 9, 1).await
    }

    #[tokio::test]
    async fn a_start_is_answered_in_its_end_pipe_or_else_by_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        // The supervisor's answer.
        let started = Reply {
            pid: 400,
            supervisor: 399,
            errno: 0,
            stage: Stage::Started,
            supervisor_start: 7,
            pid_start: 8,
        };
        let s = answered(&journal, |end| {
            sys::write_all(&end, &started.encode()).unwrap();
        })
        .await
        .unwrap();
        assert_eq!(
            s,
            Some(Spawned {
                supervisor: 399,
                pid: 400
            })
        );
        // A refusal names the step that failed.
        let e = answered(&journal, |end| {
            sys::write_all(&end, &Reply::failed(Stage::Exec, libc::ENOENT).encode()).unwrap();
        })
        .await
        .unwrap_err();
        assert!(e.to_string().contains("executing the program"), "{e}");
        // Every holder gone without a word, nothing journalled: nothing ran.
        assert_eq!(answered(&journal, drop).await.unwrap(), None);
        // ... and with its `S` line there, it ran and is followed.
        journal::append(&journal, b"S 9 1 500 499 7 8\n").unwrap();
        let s = answered(&journal, drop).await.unwrap();
        assert_eq!(
            s,
            Some(Spawned {
                supervisor: 499,
                pid: 500
            })
        );
    }
}
