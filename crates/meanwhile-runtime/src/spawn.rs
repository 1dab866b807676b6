//! The one way meanwhile starts a process: a supervisor process that outlives us.
//!
//! `spawn` forks a small supervisor (a copy of this process that only makes raw,
//! async-signal-safe system calls). The supervisor starts the task with `posix_spawn`
//! in a new session and process group, its stdin on `/dev/null` and its stdout and
//! stderr appended to the task's log file, then waits for it and writes its exit
//! status, peak RSS and CPU time to a status file before exiting. Because the status
//! is written by the supervisor and the output goes straight to the file, a task keeps
//! running and keeps its true status and its whole output if meanwhile itself is
//! killed; a restarted runtime reads the status file or waits on the supervisor again.
//!
//! When the task's main process ends, the supervisor kills what is left of its process
//! group, so no process outlives its task.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Everything needed to start one attempt. The caller must choose cwd and env.
pub(crate) struct SpawnRequest<'a> {
    /// The program, already resolved to a path.
    pub program: &'a Path,
    /// argv, including argv[0].
    pub argv: &'a [String],
    /// The complete environment of the task.
    pub env: &'a [(String, String)],
    /// Working directory.
    pub cwd: &'a Path,
    /// The output log, opened for appending.
    pub log: &'a File,
    /// The supervisors' journal of the home.
    pub journal: &'a Path,
    /// The task, for the journal's records.
    pub task: i64,
    /// The attempt, for the journal's records.
    pub attempt: u32,
}

/// A started attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spawned {
    /// The supervisor process (our child).
    pub supervisor: i32,
    /// The task's main process, which is also its process group id.
    pub pid: i32,
}

fn cstring(what: &str, bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

fn cpath(p: &Path) -> io::Result<CString> {
    cstring("path", p.as_os_str().as_bytes())
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::Error::from_raw_os_error(rc).kind(),
            format!("{what}: {}", io::Error::from_raw_os_error(rc)),
        ))
    }
}

/// posix_spawn's attribute and file-action objects, freed on drop.
struct SpawnSetup {
    attr: libc::posix_spawnattr_t,
    actions: libc::posix_spawn_file_actions_t,
}

impl SpawnSetup {
    fn new(log: &File, devnull: &File, cwd: &CString) -> io::Result<Box<SpawnSetup>> {
        // SAFETY: both objects are initialised by their init functions before any
        // other use, and destroyed exactly once in Drop.
        unsafe {
            let mut s = Box::new(SpawnSetup {
                attr: std::mem::zeroed(),
                actions: std::mem::zeroed(),
            });
            check(
                libc::posix_spawnattr_init(&mut s.attr),
                "posix_spawnattr_init",
            )?;
            check(
                libc::posix_spawn_file_actions_init(&mut s.actions),
                "posix_spawn_file_actions_init",
            )?;
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            // Reset every catchable signal to its default: Rust ignores SIGPIPE, and a
            // task must not inherit that.
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigdelset(&mut all, libc::SIGKILL);
            libc::sigdelset(&mut all, libc::SIGSTOP);
            check(
                libc::posix_spawnattr_setsigmask(&mut s.attr, &empty),
                "posix_spawnattr_setsigmask",
            )?;
            check(
                libc::posix_spawnattr_setsigdefault(&mut s.attr, &all),
                "posix_spawnattr_setsigdefault",
            )?;
            let flags = libc::POSIX_SPAWN_SETSID
                | libc::POSIX_SPAWN_SETSIGMASK as libc::c_short
                | libc::POSIX_SPAWN_SETSIGDEF as libc::c_short;
            check(
                libc::posix_spawnattr_setflags(&mut s.attr, flags),
                "posix_spawnattr_setflags",
            )?;
            let a = &mut s.actions;
            check(
                libc::posix_spawn_file_actions_adddup2(a, devnull.as_raw_fd(), 0),
                "dup2 stdin",
            )?;
            check(
                libc::posix_spawn_file_actions_adddup2(a, log.as_raw_fd(), 1),
                "dup2 stdout",
            )?;
            check(
                libc::posix_spawn_file_actions_adddup2(a, log.as_raw_fd(), 2),
                "dup2 stderr",
            )?;
            check(
                libc::posix_spawn_file_actions_addchdir_np(a, cwd.as_ptr()),
                "chdir",
            )?;
            check(
                libc::posix_spawn_file_actions_addclosefrom_np(a, 3),
                "closefrom",
            )?;
            Ok(s)
        }
    }
}

impl Drop for SpawnSetup {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once here.
        unsafe {
            libc::posix_spawnattr_destroy(&mut self.attr);
            libc::posix_spawn_file_actions_destroy(&mut self.actions);
        }
    }
}

/// Formats `v` in decimal into `buf` without allocating; returns the bytes written.
fn write_decimal(buf: &mut [u8], v: i64) -> usize {
    let mut tmp = [0u8; 24];
    let mut n = 0;
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        tmp[n] = b'0' + (u % 10) as u8;
        n += 1;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    let mut len = 0;
    if neg {
        buf[0] = b'-';
        len = 1;
    }
    for i in (0..n).rev() {
        buf[len] = tmp[i];
        len += 1;
    }
    len
}

/// Appends one line, `values` space-separated after `prefix`, to the file at `path`
/// with a single `write` to an `O_APPEND` descriptor, using only async-signal-safe
/// calls.
///
/// # Safety
/// `path` must be a valid NUL-terminated string.
unsafe fn append_line(path: &CString, prefix: &[u8], values: &[i64]) {
    let mut buf = [0u8; 256];
    let mut len = prefix.len();
    buf[..len].copy_from_slice(prefix);
    for v in values {
        buf[len] = b' ';
        len += 1;
        len += write_decimal(&mut buf[len..], *v);
    }
    buf[len] = b'\n';
    len += 1;
    // SAFETY: raw system calls on valid buffers; no allocation.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
            0o600,
        );
        if fd >= 0 {
            libc::write(fd, buf.as_ptr().cast(), len);
            libc::close(fd);
        }
    }
}

/// Starts the supervisor and, through it, the task. Returns once the task has been
/// exec'd (or failed to be, which is an error).
pub(crate) fn spawn(req: &SpawnRequest<'_>) -> io::Result<Spawned> {
    let program = cpath(req.program)?;
    let argv: Vec<CString> = req
        .argv
        .iter()
        .map(|a| cstring("an argument", a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let mut argv_ptrs: Vec<*mut libc::c_char> = argv.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv_ptrs.push(std::ptr::null_mut());
    let env: Vec<CString> = req
        .env
        .iter()
        .map(|(k, v)| cstring("an environment variable", format!("{k}={v}").as_bytes()))
        .collect::<io::Result<_>>()?;
    let mut env_ptrs: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr() as *mut _).collect();
    env_ptrs.push(std::ptr::null_mut());
    let cwd = cpath(req.cwd)?;
    let journal = cpath(req.journal)?;
    let key = [req.task, req.attempt as i64];
    let devnull = File::open("/dev/null")?;
    let setup = SpawnSetup::new(req.log, &devnull, &cwd)?;

    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills `fds` on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned here.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // SAFETY: after fork the child only makes async-signal-safe calls on memory
    // prepared above, and always ends in `_exit`.
    let supervisor = unsafe { libc::fork() };
    if supervisor < 0 {
        return Err(io::Error::last_os_error());
    }
    if supervisor == 0 {
        // SAFETY: see above; this never returns.
        unsafe {
            supervise(
                &program,
                &argv_ptrs,
                &env_ptrs,
                &setup,
                write_end.as_raw_fd(),
                &journal,
                key,
            )
        }
    }
    drop(write_end);
    let mut report = [0u8; 8];
    let mut got = 0;
    while got < report.len() {
        // SAFETY: reading into a valid buffer from an fd we own.
        let n = unsafe {
            libc::read(
                read_end.as_raw_fd(),
                report[got..].as_mut_ptr().cast(),
                report.len() - got,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    drop(setup);
    if got < report.len() {
        reap(supervisor);
        return Err(io::Error::other(
            "the task's supervisor exited before starting it",
        ));
    }
    let pid = i32::from_ne_bytes(report[..4].try_into().unwrap_or_default());
    let errno = i32::from_ne_bytes(report[4..].try_into().unwrap_or_default());
    if errno != 0 {
        reap(supervisor);
        return Err(io::Error::from_raw_os_error(errno));
    }
    Ok(Spawned { supervisor, pid })
}

/// Journals the processes of a started attempt, with the supervisor's start time so
/// that a restarted runtime can tell the supervisor from a later process that reuses
/// its pid. The spawner does this before it takes its next request.
pub(crate) fn journal_started(req: &SpawnRequest<'_>, spawned: Spawned) -> io::Result<()> {
    let journal = cpath(req.journal)?;
    let start = start_time(spawned.supervisor).unwrap_or(0) as i64;
    let values = [
        req.task,
        req.attempt as i64,
        spawned.pid as i64,
        spawned.supervisor as i64,
        start,
    ];
    // SAFETY: a valid path; a plain append.
    unsafe { append_line(&journal, b"S", &values) };
    Ok(())
}

/// Waits for a child that is known to be exiting.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid on our own child.
    unsafe {
        while libc::waitpid(pid, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

/// The supervisor's whole life, in the forked child.
///
/// # Safety
/// Must be called only in a freshly forked child, with valid pointers.
unsafe fn supervise(
    program: &CString,
    argv: &[*mut libc::c_char],
    env: &[*mut libc::c_char],
    setup: &SpawnSetup,
    report_fd: libc::c_int,
    journal: &CString,
    key: [i64; 2],
) -> ! {
    // SAFETY: async-signal-safe calls only; the caller guarantees valid pointers.
    unsafe {
        // Leave the runtime's session, so terminal signals aimed at it miss us, and
        // ignore the signals a stop sends to the task's group, in case one strays.
        libc::setsid();
        libc::prctl(
            libc::PR_SET_NAME,
            c"mw-supervisor".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        for sig in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        // The runtime's SIGCHLD handler must not run in this copy of it.
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        // Orphans of the task's tree are re-parented to us, so we can reap them and
        // know when the whole tree is gone.
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        let mut pid: libc::pid_t = 0;
        let rc = libc::posix_spawn(
            &mut pid,
            program.as_ptr(),
            &setup.actions,
            &setup.attr,
            argv.as_ptr(),
            env.as_ptr(),
        );
        let mut report = [0u8; 8];
        report[..4].copy_from_slice(&pid.to_ne_bytes());
        report[4..].copy_from_slice(&rc.to_ne_bytes());
        libc::write(report_fd, report.as_ptr().cast(), report.len());
        // Hold nothing of the runtime's: its sockets, database and log descriptors.
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        if rc != 0 {
            libc::_exit(127);
        }
        let mut status: libc::c_int = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        loop {
            let r = libc::wait4(pid, &mut status, 0, &mut usage);
            if r == pid {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(126);
            }
        }
        let mut now: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
        // Whatever the main process left behind in its group goes with it, and the
        // end is recorded only once the tree is gone: killed and reaped. Processes
        // that left the group (a new session of their own) are not killed; they are
        // waited for a moment, then left to init.
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        'tree: for _ in 0..200 {
            libc::kill(-pid, libc::SIGKILL);
            loop {
                let mut st: libc::c_int = 0;
                let r = libc::waitpid(-1, &mut st, libc::WNOHANG);
                if r > 0 {
                    continue;
                }
                if r == 0 {
                    break;
                }
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break 'tree;
            }
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
        let cpu_us = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) as i64 * 1_000_000
            + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) as i64;
        append_line(
            journal,
            b"E",
            &[
                key[0],
                key[1],
                2,
                status as i64,
                usage.ru_maxrss as i64,
                cpu_us / 1000,
                now.tv_sec as i64 * 1_000_000 + now.tv_nsec as i64 / 1000,
            ],
        );
        libc::_exit(0)
    }
}

/// Sends `signal` to the task's whole process group, waking stopped members so
/// they can act on it. A group that no longer exists is not an error.
pub(crate) fn signal_group(pgid: i32, signal: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill with a negative pid signals the group; no memory is touched.
    unsafe {
        libc::kill(-pgid, signal);
        if signal == libc::SIGTERM {
            libc::kill(-pgid, libc::SIGCONT);
        }
    }
}

/// A pidfd: becomes readable when the process exits, for children and non-children
/// alike (which is how a restarted runtime waits on supervisors it did not start).
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: the syscall returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a freshly returned fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Registers an fd we own with the Tokio reactor.
pub(crate) fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the fd, which therefore stays open while registered.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))
}

/// Reaps a process that has exited if it is a child of ours (this process may have
/// started it before a restart of the runtime); a no-op for others.
pub(crate) fn try_reap(pid: i32) {
    let mut status = 0;
    // SAFETY: non-blocking waitpid; ECHILD for a process that is not our child.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

/// The start time of a process (clock ticks since boot), to tell it from a later
/// process that reuses its pid.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // A zombie has ended; only its parent has yet to notice.
    if fields.next()? == "Z" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_formatting_without_allocation() {
        let mut buf = [0u8; 32];
        for v in [0i64, 7, -7, 1234567890123, i64::MIN + 1] {
            let n = write_decimal(&mut buf, v);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), v.to_string());
        }
    }
}
