//! The spawner: a small process forked when the runtime starts, which forks each
//! attempt's supervisor on the runtime's behalf.
//!
//! Forking the runtime itself for every attempt is slow once it has grown: the kernel
//! copies its page tables and every page the runtime writes afterwards is copied on
//! write while the supervisor lives. The spawner is forked once, while the runtime is
//! young, is single-threaded and writes almost nothing, so forking it is cheap and
//! leaves the runtime alone. Requests travel over a socket pair, with the log file's
//! descriptor passed alongside; the spawner exits when the runtime's end closes.
//!
//! The child of `fork` in a multi-threaded program may only rely on what the C
//! library makes safe there; glibc re-initialises its allocator in the child, which is
//! what the spawner's (allocating) request decoding relies on. It takes no other lock:
//! no stdio, no environment access.

use crate::spawn::{self, SpawnRequest, Spawned};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: u32 = 0x4d57_5350;
/// Fixed items before argv and env: program, cwd, journal, task, attempt.
const ITEMS: usize = 5;

/// The runtime's handle on its spawner process.
pub(crate) struct Spawner {
    conn: Mutex<Option<OwnedFd>>,
    pid_file: PathBuf,
}

/// A spawner exits as soon as it has answered its last request and found its
/// runtime gone; this waits (briefly) for that, so that what it journals is there
/// before recovery reads the journal.
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
    let pid = pid as i32;
    if spawn::start_time(pid) != Some(start) {
        return;
    }
    if let Ok(fd) = spawn::pidfd_open(pid) {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: polling one valid descriptor.
        unsafe { libc::poll(&mut p, 1, 2000) };
    }
}

fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair fills `fds` on success.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn start_process_recorded(pid_file: &Path) -> io::Result<OwnedFd> {
    let (fd, pid) = start_process_pid()?;
    let start = spawn::start_time(pid).unwrap_or(0);
    std::fs::write(pid_file, format!("{pid} {start}\n"))?;
    Ok(fd)
}

fn start_process_pid() -> io::Result<(OwnedFd, i32)> {
    let (ours, theirs) = socketpair()?;
    // SAFETY: the child runs `serve`, which never returns and ends in `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let fd = theirs.as_raw_fd();
        std::mem::forget(theirs);
        std::mem::forget(ours);
        // SAFETY: we are the freshly forked child.
        unsafe { serve(fd) }
    }
    drop(theirs);
    Ok((ours, pid))
}

impl Spawner {
    /// Waits for the spawner of a previous runtime on this home to finish the request
    /// it may be carrying out, then forks this runtime's spawner and records its pid.
    pub(crate) fn start(pid_file: &Path) -> io::Result<Spawner> {
        wait_for_previous(pid_file);
        let conn = start_process_recorded(pid_file)?;
        Ok(Spawner {
            conn: Mutex::new(Some(conn)),
            pid_file: pid_file.to_path_buf(),
        })
    }

    /// Starts an attempt through the spawner; the same contract as [`spawn::spawn`].
    pub(crate) fn spawn(&self, req: &SpawnRequest<'_>) -> io::Result<Spawned> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if conn.is_none() {
            *conn = Some(start_process_recorded(&self.pid_file)?);
        }
        let fd = conn.as_ref().map(|c| c.as_raw_fd()).unwrap_or(-1);
        match exchange(fd, req) {
            Ok(reply) => reply,
            Err(e) => {
                // The spawner is gone or confused: start a new one next time.
                *conn = None;
                Err(io::Error::other(format!("the process spawner failed: {e}")))
            }
        }
    }
}

fn encode(req: &SpawnRequest<'_>) -> Vec<u8> {
    let task = req.task.to_string();
    let attempt = req.attempt.to_string();
    let mut items: Vec<&[u8]> = vec![
        path_bytes(req.program),
        path_bytes(req.cwd),
        path_bytes(req.journal),
        task.as_bytes(),
        attempt.as_bytes(),
    ];
    items.extend(req.argv.iter().map(|a| a.as_bytes()));
    let env: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    items.extend(env.iter().map(|e| e.as_bytes()));
    let mut body = Vec::new();
    for item in &items {
        body.extend_from_slice(&(item.len() as u32).to_le_bytes());
        body.extend_from_slice(item);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    for v in [
        MAGIC,
        req.argv.len() as u32,
        req.env.len() as u32,
        body.len() as u32,
    ] {
        msg.extend_from_slice(&v.to_le_bytes());
    }
    msg.extend_from_slice(&body);
    msg
}

fn path_bytes(p: &Path) -> &[u8] {
    std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())
}

/// Sends `bytes`, with `fd` passed alongside the first byte.
fn send_with_fd(sock: RawFd, bytes: &[u8], fd: RawFd) -> io::Result<()> {
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
    write_all(sock, &bytes[sent as usize..])
}

fn write_all(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
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

fn read_exact(fd: RawFd, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reading into a valid buffer.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n as usize;
    }
    Ok(())
}

/// One request and its reply. The outer error means the channel broke; the inner
/// one is the spawn's own failure.
fn exchange(sock: RawFd, req: &SpawnRequest<'_>) -> io::Result<io::Result<Spawned>> {
    send_with_fd(sock, &encode(req), req.log.as_raw_fd())?;
    let mut reply = [0u8; 12];
    read_exact(sock, &mut reply)?;
    let word =
        |i: usize| i32::from_le_bytes(reply[i * 4..i * 4 + 4].try_into().unwrap_or_default());
    let (pid, supervisor, errno) = (word(0), word(1), word(2));
    if errno != 0 {
        return Ok(Err(io::Error::from_raw_os_error(errno)));
    }
    Ok(Ok(Spawned { supervisor, pid }))
}

/// Receives the fixed header and the descriptor passed with it.
fn recv_header(sock: RawFd) -> io::Result<([u8; 16], Option<OwnedFd>)> {
    let mut header = [0u8; 16];
    let mut iov = libc::iovec {
        iov_base: header.as_mut_ptr().cast(),
        iov_len: header.len(),
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: as in `send_with_fd`; the kernel fills the buffers.
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
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    read_exact(sock, &mut header[n as usize..])?;
    Ok((header, fd))
}

fn decode(body: &[u8], n_argv: usize, n_env: usize) -> Option<Vec<Vec<u8>>> {
    let mut items = Vec::with_capacity(ITEMS + n_argv + n_env);
    let mut at = 0;
    while at < body.len() {
        let len = u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4;
        items.push(body.get(at..at + len)?.to_vec());
        at += len;
    }
    (items.len() == ITEMS + n_argv + n_env).then_some(items)
}

fn handle(sock: RawFd) -> io::Result<()> {
    let (header, log) = recv_header(sock)?;
    let word =
        |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().unwrap_or_default());
    let (magic, n_argv, n_env, len) = (
        word(0),
        word(1) as usize,
        word(2) as usize,
        word(3) as usize,
    );
    if magic != MAGIC {
        return Err(io::ErrorKind::InvalidData.into());
    }
    let mut body = vec![0u8; len];
    read_exact(sock, &mut body)?;
    let einval = || send_reply(sock, [0, 0, libc::EINVAL]);
    let (Some(items), Some(log)) = (decode(&body, n_argv, n_env), log) else {
        return einval();
    };
    let path = |b: &Vec<u8>| -> PathBuf {
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(b.clone()).into()
    };
    let number = |b: &Vec<u8>| {
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
    };
    let (Some(task), Some(attempt)) = (number(&items[3]), number(&items[4])) else {
        return einval();
    };
    let strings: Option<Vec<String>> = items[ITEMS..]
        .iter()
        .map(|b| String::from_utf8(b.clone()).ok())
        .collect();
    let Some(strings) = strings else {
        return einval();
    };
    let (argv, env_pairs) = strings.split_at(n_argv);
    let env: Vec<(String, String)> = env_pairs
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    let log = File::from(log);
    let req = SpawnRequest {
        program: &path(&items[0]),
        argv,
        env: &env,
        cwd: &path(&items[1]),
        log: &log,
        journal: &path(&items[2]),
        task,
        attempt: attempt as u32,
    };
    let reply = match spawn::spawn(&req) {
        Ok(s) => [s.pid, s.supervisor, 0],
        Err(e) => [0, 0, e.raw_os_error().unwrap_or(libc::EIO)],
    };
    // Answer first (the runtime is waiting), then journal, still before the next
    // request: recovery relies on every started attempt being journalled by then.
    // A runtime that died meanwhile makes the answer fail; the journal line must be
    // written all the same.
    let sent = send_reply(sock, reply);
    if reply[2] == 0 {
        let spawned = Spawned {
            pid: reply[0],
            supervisor: reply[1],
        };
        let _ = spawn::journal_started(&req, spawned);
    }
    sent
}

fn send_reply(sock: RawFd, reply: [i32; 3]) -> io::Result<()> {
    let mut bytes = [0u8; 12];
    for (i, v) in reply.iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    write_all(sock, &bytes)
}

/// The spawner's whole life.
///
/// # Safety
/// Must be called only in a freshly forked child; never returns.
unsafe fn serve(sock: RawFd) -> ! {
    // SAFETY: raw system calls; the socket is ours.
    unsafe {
        // Hold nothing of the runtime's but the socket, moved out of the way, and
        // put /dev/null on 0, 1 and 2 so that descriptors received later are never
        // mistaken for standard streams.
        let sock = {
            let moved = libc::fcntl(sock, libc::F_DUPFD_CLOEXEC, 64);
            if moved < 0 {
                libc::_exit(1);
            }
            moved
        };
        libc::syscall(libc::SYS_close_range, 0u32, (sock - 1) as u32, 0u32);
        libc::syscall(libc::SYS_close_range, (sock + 1) as u32, u32::MAX, 0u32);
        for _ in 0..3 {
            libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        }
        // Show what this process is in `ps` and `top` (its command line is still
        // the runtime's, since it was forked, not exec'd).
        libc::prctl(
            libc::PR_SET_NAME,
            c"mw-spawner".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        // Supervisors report through the journal; let the kernel reap them.
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        // Stay alive for a Ctrl-C aimed at the runtime's terminal: the runtime decides.
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        loop {
            if handle(sock).is_err() {
                libc::_exit(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// What the runtime encodes, the spawner decodes to the same items.
        #[test]
        fn requests_decode_to_what_was_encoded(
            argv in proptest::collection::vec("\\PC{0,12}", 1..6),
            env in proptest::collection::vec(("[A-Z_]{1,8}", "\\PC{0,12}"), 0..6),
            cwd in "/[a-z/]{0,20}",
            task in 1i64..i64::MAX,
            attempt in 1u32..1000,
        ) {
            let log = tempfile::tempfile().unwrap();
            let req = SpawnRequest {
                program: Path::new("/bin/sh"),
                argv: &argv,
                env: &env,
                cwd: Path::new(&cwd),
                log: &log,
                journal: Path::new("/tmp/journal"),
                task,
                attempt,
            };
            let msg = encode(&req);
            let word = |i: usize| u32::from_le_bytes(msg[i * 4..i * 4 + 4].try_into().unwrap());
            prop_assert_eq!(word(0), MAGIC);
            prop_assert_eq!(word(3) as usize, msg.len() - 16);
            let items = decode(&msg[16..], word(1) as usize, word(2) as usize).unwrap();
            prop_assert_eq!(&items[0][..], b"/bin/sh");
            prop_assert_eq!(&items[1][..], cwd.as_bytes());
            prop_assert_eq!(&items[3], &task.to_string().into_bytes());
            prop_assert_eq!(&items[4], &attempt.to_string().into_bytes());
            for (i, a) in argv.iter().enumerate() {
                prop_assert_eq!(&items[ITEMS + i][..], a.as_bytes());
            }
            for (i, (k, v)) in env.iter().enumerate() {
                prop_assert_eq!(&items[ITEMS + argv.len() + i], &format!("{k}={v}").into_bytes());
            }
        }

        /// Bytes from a confused or hostile peer are refused, never a panic.
        #[test]
        fn any_body_decodes_or_is_refused(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            n_argv in 0usize..8,
            n_env in 0usize..8,
        ) {
            if let Some(items) = decode(&body, n_argv, n_env) {
                prop_assert_eq!(items.len(), ITEMS + n_argv + n_env);
            }
        }
    }
}
