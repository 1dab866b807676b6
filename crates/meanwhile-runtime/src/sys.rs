//! The raw system calls of the process layer that `rustix` does not offer: `fork`,
//! `execve`, `wait4` with its resource usage, closing descriptor ranges, resetting
//! signal dispositions, passing a descriptor over a socket, and rewriting this
//! process's command line, and the namespaces' `unshare` and bringing a network
//! interface up. Everything else goes through `rustix`.
//!
//! Every `unsafe` block of the process layer lives here, each with the precondition
//! it relies on.

use std::ffi::{CStr, c_char, c_int};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
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

/// Sets `signals` to be ignored.
pub(crate) fn ignore_signals(signals: &[c_int]) {
    for &sig in signals {
        // SAFETY: SIG_IGN is a valid disposition for these catchable signals.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// Restores the default disposition of `sig`.
pub(crate) fn default_signal(sig: c_int) {
    // SAFETY: SIG_DFL is valid for every catchable signal.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
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

/// The value of the variable `name` in `envp`.
///
/// # Safety
/// `envp` must be null or a NULL-terminated array of NUL-terminated strings that
/// live as long as the process (as the C runtime passes them to a constructor).
pub(crate) unsafe fn env_value(envp: *const *const c_char, name: &str) -> Option<&'static [u8]> {
    if envp.is_null() {
        return None;
    }
    let mut i = 0;
    loop {
        // SAFETY: per the precondition, every entry up to the NULL is a valid string.
        let entry = unsafe { *envp.add(i) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: as above.
        let s = unsafe { CStr::from_ptr(entry) }.to_bytes();
        if let Some(v) = s
            .strip_prefix(name.as_bytes())
            .and_then(|v| v.strip_prefix(b"="))
        {
            return Some(v);
        }
        i += 1;
    }
}

/// argv[0], if there is one.
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings that live as long as
/// the process.
pub(crate) unsafe fn arg0(argc: c_int, argv: *const *const c_char) -> Option<&'static [u8]> {
    if argc < 1 || argv.is_null() {
        return None;
    }
    // SAFETY: per the precondition.
    Some(unsafe { CStr::from_ptr(*argv) }.to_bytes())
}

/// The memory holding this process's argv and environment strings, which the
/// kernel shows as its command line; recorded at startup by [`remember_title_area`].
static TITLE_AREA: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static TITLE_LEN: AtomicUsize = AtomicUsize::new(0);

/// Records where argv and the environment strings lie, if they are one contiguous
/// block (as the kernel lays them out at exec), for [`set_title`].
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings and `envp` to a
/// NULL-terminated array of them, as the C runtime passes them to a constructor.
pub(crate) unsafe fn remember_title_area(
    argc: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) {
    if argc < 1 || argv.is_null() {
        return;
    }
    // SAFETY: per the precondition, every pointer read here is valid.
    unsafe {
        let start = *argv as *mut u8;
        let mut end = start;
        let mut strings: Vec<*const c_char> = (0..argc as usize).map(|i| *argv.add(i)).collect();
        let mut i = 0;
        while !envp.is_null() && !(*envp.add(i)).is_null() {
            strings.push(*envp.add(i));
            i += 1;
        }
        for s in strings {
            if s as *mut u8 != end && s as *mut u8 != start {
                // Not contiguous: some string was moved; write only what is known.
                break;
            }
            end = (s as *mut u8).add(CStr::from_ptr(s).to_bytes_with_nul().len());
        }
        TITLE_LEN.store(end.offset_from(start) as usize, Ordering::Relaxed);
        TITLE_AREA.store(start, Ordering::Relaxed);
    }
}

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

/// Sends `bytes`, with `fd` passed alongside the first byte.
pub(crate) fn send_with_fd(sock: RawFd, bytes: &[u8], fd: RawFd) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut _,
        iov_len: bytes.len(),
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr and the control buffer are set up per cmsg(3); the buffer is
    // large enough for one descriptor and suitably aligned (u64).
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    send_all(sock, &bytes[sent as usize..])
}

/// Receives into `buf` (at least one byte), and the descriptor passed with it.
pub(crate) fn recv_with_fd(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: as in `send_with_fd`; the kernel fills the buffers, and a descriptor it
    // passes is new and ours.
    let (n, fd) = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        let mut fd = None;
        if n > 0 {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            if !cmsg.is_null()
                && (*cmsg).cmsg_level == libc::SOL_SOCKET
                && (*cmsg).cmsg_type == libc::SCM_RIGHTS
            {
                let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
        }
        (n, fd)
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, fd))
}

/// Sends all of `bytes` on a socket, without SIGPIPE.
pub(crate) fn send_all(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: writing from a valid buffer.
        let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        bytes = &bytes[n as usize..];
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

/// A pid for rustix; `None` for 0 and negative numbers (which name groups or
/// "every process" to kill, never one process).
pub(crate) fn pid(raw: i32) -> Option<rustix::process::Pid> {
    if raw > 0 {
        rustix::process::Pid::from_raw(raw)
    } else {
        None
    }
}
