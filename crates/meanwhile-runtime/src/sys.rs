//! The process layer's system calls, through `rustix` where it offers them, and the
//! raw ones it does not: `fork`, `execve`, `_exit`, `wait4` with its resource usage,
//! closing descriptor ranges, signal dispositions and the signal mask, `unshare`,
//! bringing a network interface up, reading the arguments and environment the C
//! runtime hands a constructor, rewriting this process's command line, and
//! registering a descriptor with Tokio's reactor.
//!
//! The runtime's `unsafe` blocks live here (besides the spawner's constructor and
//! the calls to [`fork`], whose precondition only their callers can know), each
//! with the precondition it relies on.

use std::ffi::{CStr, c_char, c_int};
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Forks this process. `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
///
/// # Safety
/// The calling process must be single-threaded (the spawner or a supervisor, both
/// exec'd or forked from an exec'd program): the child then inherits no lock held
/// by a thread that does not exist in it, and may allocate and use std freely. The
/// child must end in [`exit_now`] (or exec), never by returning into the caller's
/// stack frames with their duplicated destructors.
pub(crate) unsafe fn fork() -> io::Result<Option<i32>> {
    // SAFETY: the caller guarantees a single-threaded process.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Runs `f` and ends the process with the code it returns, without unwinding past
/// this frame: a panic ends the process with code 101. For the spawner and every
/// forked child, whose stacks are copies whose callers must never run.
pub(crate) fn run_and_exit(f: impl FnOnce() -> i32) -> ! {
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
    exit_now(code)
}

/// `_exit`: ends the process at once, without running destructors or atexit hooks
/// (which belong to the program this process was copied from).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no precondition.
    unsafe { libc::_exit(code) }
}

/// Replaces this process with `program`. Returns only on failure.
pub(crate) fn execve(program: &CStr, argv: &[*const c_char], env: &[*const c_char]) -> io::Error {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()));
    debug_assert!(env.last().is_some_and(|p| p.is_null()));
    // SAFETY: `program` is NUL-terminated; both arrays are NULL-terminated arrays of
    // pointers to NUL-terminated strings that outlive the call (the caller's).
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), env.as_ptr()) };
    io::Error::last_os_error()
}

/// Waits for the child `pid` to end; its wait status and resource usage.
pub(crate) fn wait4(pid: i32) -> io::Result<(c_int, libc::rusage)> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: rusage is plain old data, for which all zeroes is a valid value;
        // wait4 writes only through the pointers to these locals.
        let (r, usage) = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            (libc::wait4(pid, &mut status, 0, &mut usage), usage)
        };
        if r == pid {
            return Ok((status, usage));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Closes every descriptor from 3 up, except those in `keep`.
pub(crate) fn close_from_3_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&f| f >= 3)
        .map(|&f| f as u32)
        .collect();
    keep.sort_unstable();
    let mut first = 3u32;
    for k in keep {
        if k > first {
            close_range(first, k - 1);
        }
        first = k + 1;
    }
    close_range(first, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes descriptors; the callers own every descriptor
    // in the range (they are the process's leftovers, not handed out as OwnedFds that
    // are used afterwards).
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
}

/// What a signal does, of the dispositions that run no code of ours.
#[derive(Clone, Copy)]
enum Disposition {
    Ignore,
    Default,
}

fn set_disposition(sig: c_int, disposition: Disposition) {
    let handler = match disposition {
        Disposition::Ignore => libc::SIG_IGN,
        Disposition::Default => libc::SIG_DFL,
    };
    // SAFETY: SIG_IGN and SIG_DFL install no handler, so no code of ours runs in a
    // signal's context; for a signal that cannot be caught the call just fails.
    unsafe { libc::signal(sig, handler) };
}

/// Sets `signals` to be ignored.
pub(crate) fn ignore_signals(signals: &[c_int]) {
    for &sig in signals {
        set_disposition(sig, Disposition::Ignore);
    }
}

/// Restores the default disposition of `sig`.
pub(crate) fn default_signal(sig: c_int) {
    set_disposition(sig, Disposition::Default);
}

/// Every signal back to its default disposition and none blocked, as a freshly
/// started program expects (an ignored SIGPIPE would otherwise be inherited).
pub(crate) fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            default_signal(sig);
        }
    }
    // SAFETY: sigset_t is plain old data, initialised by sigemptyset before use.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// What the C runtime hands a constructor in `.init_array`, read once: argv[0],
/// one variable of the environment, and where the argv and environment strings
/// lie, as the kernel shows them for this process's command line.
pub(crate) struct Startup {
    /// argv[0], if there is one.
    pub arg0: Option<&'static [u8]>,
    /// The value of the variable asked for, if it is set.
    pub value: Option<&'static [u8]>,
    /// The start and length of the argv and environment strings, as far as they
    /// are one contiguous block (as the kernel lays them out at exec).
    title_area: (*mut u8, usize),
}

/// Reads argv[0], the variable `name` and the area of the argv and environment
/// strings.
///
/// # Safety
/// `argv` must be null or point to `argc` valid NUL-terminated strings, and `envp`
/// must be null or a NULL-terminated array of them, all living as long as the
/// process: as glibc passes them to an `.init_array` function.
pub(crate) unsafe fn startup(
    argc: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
    name: &str,
) -> Startup {
    // SAFETY: per the precondition, every pointer read here (the first `argc`
    // entries of argv, the entries of envp up to its NULL, and the strings they
    // point to) is valid for the life of the process.
    unsafe {
        let argv: &[*const c_char] = if argc < 1 || argv.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(argv, argc as usize)
        };
        let mut envc = 0;
        while !envp.is_null() && !(*envp.add(envc)).is_null() {
            envc += 1;
        }
        let envp: &[*const c_char] = if envp.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts(envp, envc)
        };
        let text = |p: *const c_char| -> &'static [u8] { CStr::from_ptr(p).to_bytes() };
        let value = envp.iter().find_map(|&e| {
            text(e)
                .strip_prefix(name.as_bytes())
                .and_then(|v| v.strip_prefix(b"="))
        });
        let mut title_area = (std::ptr::null_mut(), 0);
        if let Some(&first) = argv.first() {
            let start = first as *mut u8;
            let mut end = start;
            for &p in argv.iter().chain(envp) {
                if p as *mut u8 != end && p as *mut u8 != start {
                    // Not contiguous: some string was moved; write only what is known.
                    break;
                }
                end = (p as *mut u8).add(text(p).len() + 1);
            }
            title_area = (start, end.offset_from(start) as usize);
        }
        Startup {
            arg0: argv.first().map(|&p| text(p)),
            value,
            title_area,
        }
    }
}

impl Startup {
    /// Records the area of the argv and environment strings for [`set_title`],
    /// in a process that no longer reads them.
    pub(crate) fn keep_title_area(&self) {
        let (start, len) = self.title_area;
        TITLE_LEN.store(len, Ordering::Relaxed);
        TITLE_AREA.store(start, Ordering::Relaxed);
    }
}

/// The memory holding this process's argv and environment strings, which the
/// kernel shows as its command line; recorded at startup by
/// [`Startup::keep_title_area`].
static TITLE_AREA: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static TITLE_LEN: AtomicUsize = AtomicUsize::new(0);

/// Rewrites this process's command line (what `ps` and `/proc/<pid>/cmdline`
/// show) in place, over the argv and environment strings, which this process no
/// longer reads. A title longer than the area is cut.
pub(crate) fn set_title(title: &[u8]) {
    let start = TITLE_AREA.load(Ordering::Relaxed);
    let len = TITLE_LEN.load(Ordering::Relaxed);
    if start.is_null() || len < 2 {
        return;
    }
    let n = title.len().min(len - 1);
    // SAFETY: [start, start + len) is the argv and environment block recorded at
    // startup, which stays mapped for the life of the process; nothing reads those
    // strings after startup (the environment is not read again in the spawner or
    // its supervisors).
    unsafe {
        std::ptr::copy_nonoverlapping(title.as_ptr(), start, n);
        std::ptr::write_bytes(start.add(n), 0, len - n);
    }
}

/// The most descriptors one message carries: a request's log and its end pipe.
pub(crate) const MAX_FDS: usize = 2;

/// Sends `bytes`, with `fds` (at most [`MAX_FDS`]) passed alongside the first byte.
pub(crate) fn send_with_fds(
    sock: impl AsFd,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    if !control.push(rustix::net::SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
    }
    let sent = rustix::net::sendmsg(
        &sock,
        &[IoSlice::new(bytes)],
        &mut control,
        rustix::net::SendFlags::NOSIGNAL,
    )?;
    send_all(sock, &bytes[sent..])
}

/// Receives into `buf` (at least one byte), and the descriptors passed with it (at
/// most [`MAX_FDS`], in the order they were sent).
pub(crate) fn recv_with_fds(sock: impl AsFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let msg = loop {
        match rustix::net::recvmsg(
            &sock,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            rustix::net::RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => {}
            r => break r?,
        }
    };
    // Any other descriptor passed (a peer's mistake) is closed with the iterator.
    let fds = control
        .drain()
        .flat_map(|m| match m {
            rustix::net::RecvAncillaryMessage::ScmRights(fds) => fds.collect(),
            _ => Vec::new(),
        })
        .collect();
    Ok((msg.bytes, fds))
}

/// Whether a send of `len` bytes on the stream socket `sock` finds room at once:
/// what its peer has not read yet (`SIOCOUTQ`, counted as the kernel charges it)
/// and twice `len` (the same charge for what is sent) fit in its send buffer.
pub(crate) fn has_room(sock: impl AsFd, len: usize) -> bool {
    let sock = sock.as_fd();
    let Ok(buffer) = rustix::net::sockopt::socket_send_buffer_size(sock) else {
        return false;
    };
    let mut unsent: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int through the pointer, which points
    // to one; the descriptor is borrowed, so open.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut unsent) };
    r == 0 && (unsent.max(0) as usize).saturating_add(len.saturating_mul(2)) < buffer
}

/// Sends all of `bytes` on a socket, without SIGPIPE.
pub(crate) fn send_all(sock: impl AsFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(&sock, bytes, rustix::net::SendFlags::NOSIGNAL) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes all of `bytes` to a pipe (whose writers ignore SIGPIPE).
pub(crate) fn write_all(fd: &impl std::os::fd::AsFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes; `UnexpectedEof` if the peer closed first.
pub(crate) fn read_exact(fd: &impl std::os::fd::AsFd, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The start time of a process (clock ticks since boot), to tell it from a later
/// process that reuses its pid. `None` for a process that is gone or a zombie.
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

/// The parent of a process, if it exists.
pub(crate) fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The children of this (single-threaded) process.
pub(crate) fn own_children() -> Vec<i32> {
    let me = std::process::id();
    match std::fs::read_to_string(format!("/proc/self/task/{me}/children")) {
        Ok(text) => text
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect(),
        // Kernels without CONFIG_PROC_CHILDREN: scan every process for its parent.
        Err(_) => std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| parent_of(pid) == Some(me as i32))
            .collect(),
    }
}

/// Moves the calling process into new namespaces; `CLONE_FILES` is refused.
pub(crate) fn unshare(flags: rustix::thread::UnshareFlags) -> io::Result<()> {
    if flags.contains(rustix::thread::UnshareFlags::FILES) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: without CLONE_FILES the descriptor table stays shared, so no thread is
    // left holding descriptors of a table it no longer has; new namespaces change
    // no memory of this process.
    unsafe { rustix::thread::unshare_unsafe(flags) }?;
    Ok(())
}

/// Brings the network interface `name` up, through the socket `sock` (one for the
/// interface ioctls, such as a datagram socket).
pub(crate) fn set_interface_up(sock: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    if name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: an all-zero ifreq is valid (integers and arrays of them), and its name
    // is NUL-terminated; the ioctls read and write only the ifreq we own, and
    // SIOCGIFFLAGS fills the flags that are then read.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (to, &from) in req.ifr_name.iter_mut().zip(name) {
            *to = from as c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Registers a descriptor we own with the Tokio reactor.
pub(crate) fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor, which therefore stays open, and the
    // same, while it is registered.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))
}

/// A pid for rustix; `None` for 0 and negative numbers (which name groups or
/// "every process" to kill, never one process).
pub(crate) fn pid(raw: i32) -> Option<rustix::process::Pid> {
    if raw > 0 {
        rustix::process::Pid::from_raw(raw)
    } else {
        None
    }
}
