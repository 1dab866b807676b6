//! An attempt's supervisor: a process forked by the spawner, kept in its pool and
//! given one attempt at a time, which outlives the runtime, starts the task, records
//! its start and its end in the journal, and leaves no process of the task's tree
//! behind.
//!
//! The supervisor forks the task's process itself. That child sets up a new session,
//! its standard streams (stdin on `/dev/null`, a pipe or a pseudo-terminal; stdout
//! and stderr into a pipe the supervisor empties into the log (`logwrite`), or the
//! terminal), its working directory, default
//! signal dispositions, its confinement ([`crate::sandbox`]), and then waits for a
//! "go" byte. Only once the `S` line (the task's pid and start time, the
//! supervisor's pid and start time) is in the journal does the supervisor send it;
//! if the line could not be written the child is killed before it ran anything, and
//! the start fails. `execve` errors come back through a close-on-exec pipe. (The go
//! byte is why the task's process is forked rather than started with `posix_spawn`
//! or `vfork`: its pid must be in the journal before its program runs.)
//!
//! The supervisor is a child subreaper: every orphan of the task's tree (a daemon
//! that double-forked, a `setsid` child) becomes its child. When the task's main
//! process ends (by itself or of a stop's signal), the supervisor kills its group
//! (before reaping the main process, so the group id cannot have been reused), then
//! kills and reaps its children again and again until it has none, and only then
//! appends the `E` line and closes the attempt's end pipe, which is how the runtime
//! hears of the end. For an interactive task it holds the pipe or the
//! terminal's master and serves the task's input socket meanwhile
//! ([`crate::interact`]). While it runs an attempt its command line reads
//! `meanwhile-supervise task <id> attempt <n>`, so `ps` and `pkill -f` tell it apart;
//! while idle, `meanwhile-supervise idle`.
//!
//! Between attempts it keeps nothing of the last one: its descriptors are closed
//! but for its socket to the spawner and the standard streams on `/dev/null`, its
//! children are all reaped (the sweep), the watch over the tree's limits has ended
//! (so it is single-threaded again), and its title is the idle one; it never changes
//! its own environment, directory, limits, namespaces or signal dispositions (the
//! task's process does, after the fork). Only then does it tell the spawner it is
//! ready. A supervisor that finds its spawner gone (its parent changed, or its
//! socket closed) exits instead: when idle at once, when busy once its attempt is
//! recorded, so no pool outlives the runtime that owns it.
//!
//! It forks only while single-threaded (its watch thread is joined before an
//! attempt ends), so both sides may allocate; a panic ends the process and never
//! unwinds into the spawner's copied stack.

use crate::interact::{Interact, Prepared};
use crate::journal;
use crate::logwrite::{LogWriter, Pumped};
use crate::sys;
use crate::wire::{self, Reply, Request, Stage};
use rustix::fs::{Mode, OFlags};
use rustix::pipe::PipeFlags;
use rustix::process::{Signal, WaitIdOptions, WaitOptions};
use std::ffi::c_char;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// A pooled supervisor's title while it waits for an attempt.
pub(crate) const IDLE_TITLE: &str = "meanwhile-supervise idle";
/// The largest request body a supervisor accepts (the spawner's bound too).
pub(crate) const MAX_BODY: usize = 64 << 20;

/// A supervisor's own marks, read once: its spawner (its parent when forked), its
/// pid and its start time.
struct Me {
    spawner: Option<rustix::process::Pid>,
    pid: i32,
    start: u64,
}

/// What a supervisor does once an attempt is over.
enum Next {
    /// Back to the pool: the attempt ended as it should, recorded or refused.
    Pool,
    /// Exit with this code: something went wrong that a fresh process should not
    /// inherit (the end could not be waited for or recorded).
    Exit(i32),
}

/// A pooled supervisor's whole life, from the spawner's fork; returns its exit
/// code. `conn` is its socket to the spawner, on which attempts arrive and
/// [`wire::READY`] says it is idle again; each attempt's answer goes to the
/// runtime in the attempt's end pipe.
pub(crate) fn serve(conn: OwnedFd) -> i32 {
    // Forked by the spawner: a parent other than it later means the spawner died.
    let spawner = rustix::process::getppid();
    let pid = std::process::id() as i32;
    let me = Me {
        spawner,
        pid,
        start: sys::start_time(pid).unwrap_or(0),
    };
    // Leave the spawner's session, so terminal signals aimed at the runtime miss
    // us, and ignore the signals a stop sends to the task's group, in case one strays.
    let _ = rustix::process::setsid(); // fails only for a group leader, which we are not
    let _ = rustix::thread::set_name(c"mw-supervise"); // cosmetic
    sys::ignore_signals(&[
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGPIPE,
    ]);
    // The spawner lets the kernel reap its children; we must wait for ours.
    sys::default_signal(libc::SIGCHLD);
    // Orphans of the task's tree are re-parented to us, so we can kill and reap
    // them and know when the whole tree is gone.
    if rustix::process::set_child_subreaper(Some(rustix::process::getpid())).is_err() {
        return 1;
    }
    loop {
        sys::set_title(IDLE_TITLE.as_bytes());
        // An end of the socket: the spawner let us go (a trim) or died.
        let Ok(Some((req, log, end))) = receive(&conn) else {
            return 0;
        };
        let next = match req {
            Ok(req) => run(&req, log, end, &conn, &me),
            Err(reply) => {
                answer(&end, reply);
                ready(&conn);
                Next::Pool
            }
        };
        // Everything the attempt held is closed by now; this closes what a failure
        // path may have leaked, so that nothing passes to the next attempt.
        sys::close_from_3_except(&[conn.as_raw_fd()]);
        if let Next::Exit(code) = next {
            return code;
        }
        if rustix::process::getppid() != spawner {
            return 0; // no pool is left to return to
        }
    }
}

/// Tells the spawner this supervisor takes the next attempt. Said before the last
/// attempt's end pipe closes, so that the spawner knows it is free before the runtime
/// can send the start that the end makes room for; the next request waits in the
/// socket until this supervisor has let go of everything of the last one.
fn ready(conn: &OwnedFd) {
    // A spawner that is gone: found by the parent's check and the next read.
    let _ = sys::send_all(conn, &[wire::READY]);
}

/// A request as it came: the request, or the refusal to answer it with; the log
/// and the end pipe's write end. `None` at the end of the socket.
type Received = (Result<Request, Reply>, OwnedFd, OwnedFd);

fn receive(conn: &OwnedFd) -> io::Result<Option<Received>> {
    let mut header = [0u8; wire::HEADER];
    let (n, fds) = sys::recv_with_fds(conn, &mut header)?;
    if n == 0 {
        return Ok(None);
    }
    sys::read_exact(conn, &mut header[n..])?;
    let Some(wire::Header::Start { n_argv, n_env, len }) = wire::decode_header(&header) else {
        return Err(io::ErrorKind::InvalidData.into());
    };
    if len > MAX_BODY {
        return Err(io::ErrorKind::InvalidData.into());
    }
    let mut body = vec![0u8; len];
    sys::read_exact(conn, &mut body)?;
    let mut fds = fds.into_iter();
    let (Some(log), Some(end)) = (fds.next(), fds.next()) else {
        return Err(io::ErrorKind::InvalidData.into());
    };
    let req = wire::decode(&body, n_argv, n_env).ok_or(Reply::failed(Stage::Request, libc::EINVAL));
    Ok(Some((req, log, end)))
}

/// One attempt, from its start to its `E` line. `end`, the attempt's end pipe,
/// receives one [`Reply`] once the task's program runs or could not be started,
/// and is closed once the end is in the journal; `conn` hears when this supervisor
/// is idle again.
fn run(req: &Request, log: OwnedFd, end: OwnedFd, conn: &OwnedFd, me: &Me) -> Next {
    // A test's fault here ends the supervisor holding a start it has not journalled,
    // as a kill would (`supervisor.taken`).
    let _ = crate::fault::point("supervisor.taken");
    let title = format!(
        "meanwhile-supervise task {} attempt {}",
        req.task, req.attempt
    );
    sys::set_title(title.as_bytes());
    let Started {
        reply,
        interact,
        output,
    } = match start(req, &log, me) {
        Ok(s) => s,
        Err(reply) => {
            answer(&end, reply);
            ready(conn);
            return Next::Pool;
        }
    };
    let pid = reply.pid;
    answer(&end, reply);
    // Hold nothing of the request's but the end pipe: the task's output goes
    // through its pipe or terminal.
    drop(log);
    let mut interact = interact;
    let mut output = output;
    // The watch over the tree's memory and processes. A task it cannot watch is
    // not left running over its limits.
    let watch = if req.confine.watched() {
        match crate::sandbox::Watch::start(&req.confine, pid) {
            Ok(w) => Some(w),
            Err(_) => {
                kill_group(pid);
                None
            }
        }
    } else {
        None
    };
    // Wait for the main process to end without reaping it: as a zombie it keeps
    // its pid, and so its process group id, from being reused while the group is
    // killed. Then reap it, for its status and resource usage.
    let exited = sys::pid(pid)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    match (&mut interact, &exited, &mut output) {
        (Some(i), Some(exited), _) => i.serve(pid, exited),
        (None, _, Some((pipe, log))) => {
            if copy_until_exit(pid, exited.as_ref(), pipe, log).is_err() {
                return Next::Exit(126);
            }
        }
        _ => {
            if wait_exit_unreaped(pid).is_err() {
                return Next::Exit(126);
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    kill_group(pid);
    let (status, usage) = match sys::wait4(pid) {
        Ok(r) => r,
        Err(_) => return Next::Exit(126),
    };
    sweep();
    // The tree is gone: what it wrote is all in the pipe now.
    if let Some(i) = interact {
        i.finish();
    }
    if let Some((pipe, mut log)) = output {
        log.pump(&pipe);
        log.finish();
    }
    // Joins the watch's thread: single-threaded again before the next fork.
    let exceeded = watch.and_then(crate::sandbox::Watch::finish);
    let cpu_us = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000
        + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
    let mut line = format!(
        "E {} {} 2 {status} {} {} {}",
        req.task,
        req.attempt,
        usage.ru_maxrss,
        cpu_us / 1000,
        now.as_micros()
    );
    if let Some(e) = exceeded {
        let (kind, value) = e.encode();
        line += &format!(" {kind} {value}");
    }
    line.push('\n');
    let recorded = journal::append(&req.journal, line.as_bytes());
    if recorded.is_ok() && rustix::process::getppid() == me.spawner {
        ready(conn);
    }
    // The runtime hears of the end now, and reads it from the journal.
    drop(end);
    match recorded {
        Ok(()) => Next::Pool,
        Err(_) => Next::Exit(1),
    }
}

/// Answers the runtime in the attempt's end pipe, which has room for it (nothing
/// else is written there).
fn answer(end: &OwnedFd, reply: Reply) {
    // EPIPE: the runtime is gone; the next one reads the start in the journal.
    let _ = sys::write_all(end, &reply.encode());
}

struct Started {
    reply: Reply,
    interact: Option<Interact>,
    /// The task's output, for a task with neither input nor terminal: the read end
    /// of its output pipe, and the log it goes to.
    output: Option<(OwnedFd, LogWriter)>,
}

/// Forks the task's process, journals its start, lets it run. On failure, nothing
/// of the task's program has run and no process of it is left.
fn start(req: &Request, log: &OwnedFd, me: &Me) -> Result<Started, Reply> {
    let fork_err = |e: io::Error| Reply::error(Stage::ForkTask, &e);
    let devnull = rustix::fs::open(
        c"/dev/null",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fork_err(e.into()))?;
    let prepared = Prepared::new(req.io).map_err(|e| Reply::error(Stage::Io, &e))?;
    // Opening the writable paths needs the file system the sandbox then closes.
    let confine = crate::sandbox::Prepared::new(&req.confine)
        .map_err(|e| Reply::error(Stage::Confine, &e))?;
    // A task without a terminal writes into a pipe that this supervisor empties
    // into the log (`logwrite`), so that a log that cannot take output (a full disk)
    // never blocks or fails the task.
    let out_pipe = match prepared.as_ref().is_some_and(Prepared::is_tty) {
        true => None,
        false => Some(crate::logwrite::output_pipe().map_err(|e| Reply::error(Stage::Io, &e))?),
    };
    let streams = match &prepared {
        Some(p) => {
            let (stdin, out) = p.task_side();
            Streams {
                stdin,
                out: out.or(out_pipe.as_ref().map(|(_, w)| w)).unwrap_or(log),
                tty: p.is_tty(),
            }
        }
        None => Streams {
            stdin: &devnull,
            out: out_pipe.as_ref().map_or(log, |(_, w)| w),
            tty: false,
        },
    };
    let (go_read, go_write) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| fork_err(e.into()))?;
    let (err_read, err_write) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|e| fork_err(e.into()))?;
    let argv: Vec<*const c_char> = req
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let env: Vec<*const c_char> = req
        .env
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: this process (a supervisor forked from the single-threaded spawner) is
    // single-threaded; the child ends in execve or `exit_now`.
    let pid = match unsafe { sys::fork() } {
        Err(e) => return Err(fork_err(e)),
        Ok(None) => sys::run_and_exit(|| {
            let (stage, e) = task_child(
                req,
                &streams,
                &confine,
                &go_read,
                err_write.as_raw_fd(),
                &argv,
                &env,
            );
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&e.raw_os_error().unwrap_or(libc::EIO).to_le_bytes());
            b[4..].copy_from_slice(&(stage as u32).to_le_bytes());
            let _ = sys::write_all(&err_write, &b); // nothing else can be done
            127
        }),
        Ok(Some(pid)) => pid,
    };
    drop(go_read);
    drop(err_write);
    drop(confine);
    // The task holds the write end: the pipe closes once its tree is gone.
    let out_read = out_pipe.map(|(read, _write)| read);
    let kill = |pid: i32| {
        if let Some(p) = sys::pid(pid) {
            let _ = rustix::process::kill_process(p, Signal::KILL); // it may have exited
            let _ = sys::wait4(pid); // reaping our own child
        }
    };
    let log = log.try_clone().map_err(|e| {
        kill(pid);
        Reply::error(Stage::Io, &e)
    })?;
    // The task has its side of the pipe or terminal; take ours, and listen.
    let (interact, output) = match prepared {
        Some(p) => match Interact::new(p, log, out_read, &req.io_socket) {
            Ok(i) => (Some(i), None),
            Err(e) => {
                kill(pid);
                return Err(Reply::error(Stage::Io, &e));
            }
        },
        None => (None, out_read.map(|r| (r, LogWriter::new(log)))),
    };
    let (supervisor, supervisor_start) = (me.pid, me.start);
    // The child is blocked on the go pipe (or has exited after a failed chdir, and
    // is then a zombie whose start time reads 0).
    let pid_start = sys::start_time(pid).unwrap_or(0);
    let line = format!(
        "S {} {} {pid} {supervisor} {supervisor_start} {pid_start}\n",
        req.task, req.attempt
    );
    if let Err(e) = journal::append(&req.journal, line.as_bytes()) {
        kill(pid);
        return Err(Reply::error(Stage::Journal, &e));
    }
    // The spawner is gone (it is no longer our parent), and the runtime that sent
    // this start may be too: the next one gives up, in the journal, each start it
    // finds unjournalled before it gives back its claim. The journal's order says
    // which came first, and a start given up runs nothing.
    if rustix::process::getppid() != me.spawner
        && journal::given_up(&req.journal, req.task, req.attempt)
    {
        kill(pid);
        let _ = journal::void(&req.journal, req.task, req.attempt); // nothing ran either way
        return Err(Reply::error(
            Stage::Journal,
            &io::Error::other("the runtime gave this start up when its spawner died"),
        ));
    }
    // EPIPE: the child failed before waiting for the go; its error follows.
    let _ = sys::write_all(&go_write, b"g");
    drop(go_write);
    let mut b = [0u8; 8];
    match sys::read_exact(&err_read, &mut b) {
        // Closed on exec: the program runs.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(e) => {
            kill(pid);
            return Err(Reply::error(Stage::ForkTask, &e));
        }
        Ok(()) => {
            let _ = sys::wait4(pid); // it exits right after reporting
            let errno = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let stage = match u32::from_le_bytes([b[4], b[5], b[6], b[7]]) {
                s if s == Stage::Chdir as u32 => Stage::Chdir,
                s if s == Stage::Confine as u32 => Stage::Confine,
                _ => Stage::Exec,
            };
            return Err(Reply::failed(stage, errno));
        }
    }
    Ok(Started {
        reply: Reply {
            pid,
            supervisor,
            errno: 0,
            stage: Stage::Started,
            supervisor_start,
            pid_start,
        },
        interact,
        output,
    })
}

/// The task's standard streams: stdin is `/dev/null`, a pipe or a terminal (then
/// also `out`, and made the session's controlling terminal); `out` is the log
/// otherwise.
struct Streams<'a> {
    stdin: &'a OwnedFd,
    out: &'a OwnedFd,
    tty: bool,
}

/// The task's process until `execve`; returns only with what failed.
fn task_child(
    req: &Request,
    streams: &Streams<'_>,
    confine: &crate::sandbox::Prepared,
    go: &OwnedFd,
    report: std::os::fd::RawFd,
    argv: &[*const c_char],
    env: &[*const c_char],
) -> (Stage, io::Error) {
    let setup = || -> rustix::io::Result<()> {
        rustix::process::setsid()?;
        if streams.tty {
            rustix::process::ioctl_tiocsctty(streams.stdin)?;
        }
        rustix::stdio::dup2_stdin(streams.stdin)?;
        rustix::stdio::dup2_stdout(streams.out)?;
        rustix::stdio::dup2_stderr(streams.out)?;
        Ok(())
    };
    if let Err(e) = setup() {
        return (Stage::ForkTask, e.into());
    }
    if let Err(e) = rustix::process::chdir(req.cwd.as_c_str()) {
        return (Stage::Chdir, e.into());
    }
    // Last before the wait for the go: the limits, the namespaces and the sandbox.
    if let Err((_, e)) = confine.apply() {
        return (Stage::Confine, e);
    }
    // Again, in the mount namespace that now hides the home: the directory held
    // since the first `chdir` is the one beneath the cover, from which `..` would
    // walk into the home.
    if confine.hides_home()
        && let Err(e) = rustix::process::chdir(req.cwd.as_c_str())
    {
        return (Stage::Chdir, e.into());
    }
    sys::reset_signals();
    sys::close_from_3_except(&[go.as_raw_fd(), report]);
    let mut byte = [0u8; 1];
    if sys::read_exact(go, &mut byte).is_err() {
        // The supervisor could not journal the start (or died): run nothing.
        sys::exit_now(127);
    }
    (Stage::Exec, sys::execve(&req.program, argv, env))
}

/// Empties the task's output `pipe` into `log` until the child `pid` has ended,
/// leaving it a zombie. Woken by the pipe and by `exited` (its pidfd); without a
/// pidfd, it looks at the child between reads.
fn copy_until_exit(
    pid: i32,
    exited: Option<&OwnedFd>,
    pipe: &OwnedFd,
    log: &mut LogWriter,
) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut open = true;
    loop {
        let mut fds = Vec::with_capacity(2);
        if open {
            fds.push(PollFd::new(pipe, PollFlags::IN));
        }
        if let Some(e) = exited {
            fds.push(PollFd::new(e, PollFlags::IN));
        }
        // With a pidfd, the pipe or the exit wakes the loop; without one, a look at
        // the child each 100 ms.
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        let timeout = exited.is_none().then_some(&tick);
        match rustix::event::poll(&mut fds, timeout) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let pipe_ready = open && !fds[0].revents().is_empty();
        let ended = match exited {
            Some(_) => !fds[fds.len() - 1].revents().is_empty(),
            None => has_exited(pid)?,
        };
        drop(fds);
        if pipe_ready && log.pump(pipe) == Pumped::Closed {
            open = false;
        }
        if ended {
            return Ok(());
        }
        if !open && exited.is_none() {
            return wait_exit_unreaped(pid);
        }
    }
}

/// Whether the child `pid` has ended (left a zombie), without waiting.
fn has_exited(pid: i32) -> io::Result<bool> {
    let p = sys::pid(pid).ok_or(io::ErrorKind::InvalidInput)?;
    match rustix::process::waitid(
        rustix::process::WaitId::Pid(p),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG,
    ) {
        Ok(status) => Ok(status.is_some()),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Waits until the child `pid` has ended, leaving it a zombie.
fn wait_exit_unreaped(pid: i32) -> io::Result<()> {
    let p = sys::pid(pid).ok_or(io::ErrorKind::InvalidInput)?;
    loop {
        match rustix::process::waitid(
            rustix::process::WaitId::Pid(p),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Kills the task's process group, whose leader (the task's main process) has not
/// been reaped yet, so the id is still the group's.
fn kill_group(pgid: i32) {
    if let Some(p) = sys::pid(pgid) {
        let _ = rustix::process::kill_process_group(p, Signal::KILL); // may be only the zombie
    }
}

/// Kills and reaps every process left of the task's tree: every child of ours
/// (orphans of the tree are re-parented to us, the subreaper), again and again,
/// until we have no child left.
fn sweep() {
    loop {
        for child in sys::own_children() {
            // Our children, not yet reaped: their pids are still theirs.
            if let Some(p) = sys::pid(child) {
                let _ = rustix::process::kill_process(p, Signal::KILL); // may be exiting
            }
        }
        // Blocks until one of them has ended; its own orphans are ours by then, and
        // the next round kills them.
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => return, // ECHILD: the tree is gone
        }
    }
}
