//! The input of an interactive task, on the supervisor's side: the pipe or
//! pseudo-terminal it holds for the task, and the Unix socket where it takes what is
//! sent to it. The supervisor holds them, not the runtime, so a task keeps its
//! terminal while the runtime restarts.
//!
//! The supervisor runs one loop (single-threaded, `poll`) until the task's main
//! process ends: it copies what the terminal shows into the log, writes what clients
//! send into the pipe or terminal (buffered, never blocking the loop), and watches
//! for the task waiting for input: once the task has printed nothing for a moment,
//! it looks in `/proc` for a process of the task's session blocked reading that
//! terminal or pipe, and tells the clients that follow it.
//!
//! ```text
//! request: op (u8), length (u32 LE), payload
//!   w  write the payload            e  end the input (close the pipe, or Ctrl-D)
//!   r  resize: cols, rows (u16 LE)  m  follow: the reply is a stream of states
//! reply:   kind (u8), length (u32 LE), payload
//!   k  done                         x  refused; the payload says why
//!   W  (stream) the task waits for input
//!   B  (stream) the task does not (any more)
//! ```

use crate::logwrite::{LogWriter, Pumped};
use crate::procfs;
use rustix::event::{PollFd, PollFlags};
use rustix::fs::OFlags;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) const OP_WRITE: u8 = b'w';
pub(crate) const OP_EOF: u8 = b'e';
pub(crate) const OP_RESIZE: u8 = b'r';
pub(crate) const OP_FOLLOW: u8 = b'm';
pub(crate) const DONE: u8 = b'k';
pub(crate) const REFUSED: u8 = b'x';
pub(crate) const WAITING: u8 = b'W';
pub(crate) const BUSY: u8 = b'B';

/// Most bytes waiting to be written into the task's input; more is refused.
const MAX_PENDING: usize = meanwhile_core::MAX_INPUT_BYTES * 2;
/// How long a task prints nothing before it is looked at for waiting.
const QUIET: Duration = Duration::from_millis(400);
/// The loop's tick while nothing happens.
const TICK: Duration = Duration::from_millis(200);
/// How often `/proc` is looked at, at first; while nothing changes the looks grow
/// apart, up to [`LOOK_AT_MOST_EVERY`], so a task that waits for hours costs little.
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// See [`LOOK_EVERY`].
const LOOK_AT_MOST_EVERY: Duration = Duration::from_secs(4);

/// A frame: kind, length, payload.
pub(crate) fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(5 + payload.len());
    b.push(kind);
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(payload);
    b
}

/// What the supervisor prepares before forking the task: the task's side of its
/// input, and its own.
pub(crate) enum Prepared {
    Pipe { read: OwnedFd, write: OwnedFd },
    Tty { master: OwnedFd, slave: OwnedFd },
}

impl Prepared {
    /// A pipe, or a pseudo-terminal of `cols` x `rows`.
    pub(crate) fn new(io: crate::spawn::Io) -> io::Result<Option<Prepared>> {
        use crate::spawn::Io;
        Ok(match io {
            Io::None => None,
            Io::Pipe => {
                let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
                Some(Prepared::Pipe { read, write })
            }
            Io::Tty { cols, rows } => {
                use rustix::pty::OpenptFlags;
                let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
                let master = rustix::pty::openpt(flags)?;
                rustix::pty::grantpt(&master)?;
                rustix::pty::unlockpt(&master)?;
                rustix::termios::tcsetwinsize(&master, winsize(cols, rows))?;
                let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags)?;
                Some(Prepared::Tty { master, slave })
            }
        })
    }

    /// The task's stdin, and its stdout and stderr when they are not the log.
    pub(crate) fn task_side(&self) -> (&OwnedFd, Option<&OwnedFd>) {
        match self {
            Prepared::Pipe { read, .. } => (read, None),
            Prepared::Tty { slave, .. } => (slave, Some(slave)),
        }
    }

    pub(crate) fn is_tty(&self) -> bool {
        matches!(self, Prepared::Tty { .. })
    }
}

fn winsize(cols: u16, rows: u16) -> rustix::termios::Winsize {
    rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// The supervisor's side once the task runs.
pub(crate) struct Interact {
    /// The pipe's write end, or the terminal's master; `None` once a pipe was closed.
    input: Option<OwnedFd>,
    tty: bool,
    /// What `/proc/<pid>/fd/N` reads for the task's side (`/dev/pts/3`, `pipe:[9]`).
    target: String,
    /// Where output is copied: what the terminal shows, or what comes out of the
    /// task's output pipe.
    log: LogWriter,
    /// The task's output pipe (a task with a pipe for its input; a terminal carries
    /// both ways); `None` once every writer closed it.
    output: Option<OwnedFd>,
    listener: UnixListener,
    socket: PathBuf,
    followers: Vec<UnixStream>,
    pending: Vec<u8>,
    eof_after_pending: bool,
    /// The terminal's master gave EIO or hung up: nothing holds its other side.
    master_done: bool,
    last_output: Instant,
    last_input: Instant,
    next_look: Instant,
    /// The pause before the next look, doubled after each look that changed nothing.
    look_pause: Duration,
    waiting: bool,
}

impl Interact {
    /// Takes the supervisor's side of `prepared` (the task's side is dropped: the
    /// task has its own copy), and listens at `socket`.
    pub(crate) fn new(
        prepared: Prepared,
        log: OwnedFd,
        output: Option<OwnedFd>,
        socket: &Path,
    ) -> io::Result<Interact> {
        let (input, tty, target) = match prepared {
            Prepared::Pipe { read, write } => {
                let st = rustix::fs::fstat(&read)?;
                (write, false, format!("pipe:[{}]", st.st_ino))
            }
            Prepared::Tty { master, slave } => {
                let name = rustix::pty::ptsname(&master, Vec::new())?;
                drop(slave);
                (master, true, name.to_string_lossy().into_owned())
            }
        };
        let flags = rustix::fs::fcntl_getfl(&input)?;
        rustix::fs::fcntl_setfl(&input, flags | OFlags::NONBLOCK)?;
        let _ = std::fs::remove_file(socket); // a stale socket of an earlier start
        // Bound and made private under another name, then renamed into place: a
        // client finds the socket only once it listens (a connect between `bind` and
        // `listen` is refused, which reads as a supervisor that has ended), and only
        // with mode 0600.
        let staging = socket.with_extension("new");
        let _ = std::fs::remove_file(&staging);
        let listener = UnixListener::bind(&staging)?;
        std::fs::set_permissions(
            &staging,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
        std::fs::rename(&staging, socket)?;
        listener.set_nonblocking(true)?;
        let now = Instant::now();
        Ok(Interact {
            input: Some(input),
            tty,
            target,
            log: LogWriter::new(log),
            output,
            listener,
            socket: socket.to_path_buf(),
            followers: Vec::new(),
            pending: Vec::new(),
            eof_after_pending: false,
            master_done: false,
            last_output: now,
            last_input: now,
            next_look: now + QUIET,
            look_pause: LOOK_EVERY,
            waiting: false,
        })
    }

    /// Serves until the task's main process (`pid`, its session) has ended; the
    /// process is left a zombie, for the supervisor to kill its group and reap it.
    pub(crate) fn serve(&mut self, pid: i32, exited: &OwnedFd) {
        loop {
            let master = self
                .input
                .as_ref()
                .filter(|_| self.tty && !self.master_done);
            let want_write = !self.pending.is_empty() || self.eof_after_pending;
            let mut fds = vec![
                PollFd::new(exited, PollFlags::IN),
                PollFd::new(&self.listener, PollFlags::IN),
            ];
            let mut flags = PollFlags::empty();
            if master.is_some() {
                flags |= PollFlags::IN;
            }
            if want_write {
                flags |= PollFlags::OUT;
            }
            // A hung-up terminal nobody writes to is left out: it would wake the
            // loop at once, every time.
            let input_at = self
                .input
                .as_ref()
                .filter(|_| !flags.is_empty())
                .map(|input| {
                    fds.push(PollFd::new(input, flags));
                    fds.len() - 1
                });
            let output_at = self.output.as_ref().map(|output| {
                fds.push(PollFd::new(output, PollFlags::IN));
                fds.len() - 1
            });
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: TICK.as_nanos() as i64,
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => std::thread::sleep(TICK), // cannot happen with valid fds
            }
            let done = !fds[0].revents().is_empty();
            let accept = !fds[1].revents().is_empty();
            let input_events = input_at.map_or(PollFlags::empty(), |i| fds[i].revents());
            let output_ready = output_at.is_some_and(|i| !fds[i].revents().is_empty());
            drop(fds);
            if output_ready {
                self.pump_output();
            }
            if self.tty && !input_events.is_empty() {
                self.copy_output();
            }
            if input_events.contains(PollFlags::OUT) || (want_write && !input_events.is_empty()) {
                self.flush_input();
            }
            if accept {
                self.accept();
            }
            if done {
                return;
            }
            self.look(pid);
        }
    }

    /// Copies what the terminal shows into the log, until it has nothing more now.
    fn copy_output(&mut self) {
        if !self.tty || self.input.is_none() {
            return;
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            let Some(master) = &self.input else { return };
            match rustix::io::read(master, &mut buf) {
                Ok(0) => {
                    self.master_done = true;
                    return;
                }
                Ok(n) => {
                    self.log.append(&buf[..n]);
                    self.output_seen();
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                // EIO: no process holds the terminal any more.
                Err(_) => {
                    self.master_done = true;
                    return;
                }
            }
        }
    }

    fn output_seen(&mut self) {
        self.last_output = Instant::now();
        self.look_soon();
        if self.waiting {
            self.set_waiting(false);
        }
    }

    /// Writes what is pending into the task's input, as far as it takes it now.
    fn flush_input(&mut self) {
        let Some(input) = &self.input else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match rustix::io::write(input, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                // EPIPE: the task closed its input; what it did not read is dropped.
                Err(_) => {
                    self.pending.clear();
                    if !self.tty {
                        self.input = None;
                    }
                    return;
                }
            }
        }
        if self.eof_after_pending {
            self.eof_after_pending = false;
            if !self.tty {
                self.input = None; // closing the pipe is the end of input
            }
        }
    }

    /// Takes the clients waiting to connect.
    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            self.serve_client(stream);
        }
    }

    /// One client's request, answered at once (followers stay).
    fn serve_client(&mut self, mut stream: UnixStream) {
        // A client sends its request as it connects; one that stalls is dropped.
        if stream.set_nonblocking(false).is_err()
            || stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .is_err()
        {
            return;
        }
        let mut head = [0u8; 5];
        if stream.read_exact(&mut head).is_err() {
            return;
        }
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > meanwhile_core::MAX_INPUT_BYTES {
            let _ = stream.write_all(&frame(REFUSED, b"the input is too large"));
            return;
        }
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).is_err() {
            return;
        }
        let answer = match head[0] {
            OP_WRITE => self.queue_input(&payload),
            OP_EOF => self.end_input(),
            OP_RESIZE => self.resize(&payload),
            OP_FOLLOW => {
                let state = if self.waiting { WAITING } else { BUSY };
                if stream.write_all(&frame(state, b"")).is_ok()
                    && stream.set_nonblocking(true).is_ok()
                {
                    self.followers.push(stream);
                }
                return;
            }
            _ => Err("unknown request".to_string()),
        };
        let reply = match answer {
            Ok(()) => frame(DONE, b""),
            Err(why) => frame(REFUSED, why.as_bytes()),
        };
        let _ = stream.write_all(&reply); // a client that left does not need it
    }

    fn queue_input(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.input.is_none() || (self.eof_after_pending && !self.tty) {
            return Err(
                "the task's input was ended (end of input was sent, or the task closed it)".into(),
            );
        }
        if self.pending.len() + bytes.len() > MAX_PENDING {
            return Err(format!(
                "the task has not read the {} bytes sent to it before; it may not be reading its input",
                self.pending.len()
            ));
        }
        self.pending.extend_from_slice(bytes);
        self.input_sent();
        self.flush_input();
        Ok(())
    }

    fn end_input(&mut self) -> Result<(), String> {
        if self.tty {
            // What a person's Ctrl-D is: the end of input at the start of a line.
            return self.queue_input(b"\x04");
        }
        if self.input.is_none() {
            return Ok(()); // ended already
        }
        self.eof_after_pending = true;
        self.input_sent();
        self.flush_input();
        Ok(())
    }

    fn resize(&mut self, payload: &[u8]) -> Result<(), String> {
        let (Some(master), true, [c0, c1, r0, r1]) = (&self.input, self.tty, payload) else {
            return Err("only a task started with --tty has a terminal to resize".into());
        };
        let (cols, rows) = (
            u16::from_le_bytes([*c0, *c1]),
            u16::from_le_bytes([*r0, *r1]),
        );
        rustix::termios::tcsetwinsize(master, winsize(cols, rows)).map_err(|e| e.to_string())
    }

    fn input_sent(&mut self) {
        self.last_input = Instant::now();
        self.look_soon();
        if self.waiting {
            self.set_waiting(false);
        }
    }

    /// Every so often, once the task printed nothing and was sent nothing for a
    /// moment: is one of its processes blocked reading its input?
    fn look(&mut self, pid: i32) {
        let now = Instant::now();
        if now < self.next_look {
            return;
        }
        self.next_look = now + self.look_pause;
        self.look_pause = (self.look_pause * 2).min(LOOK_AT_MOST_EVERY);
        if now.duration_since(self.last_output) < QUIET
            || now.duration_since(self.last_input) < QUIET
            || !self.pending.is_empty()
            || self.input.is_none()
        {
            return;
        }
        let all = procfs::all_processes();
        let waiting = all
            .iter()
            .filter(|p| p.session == pid && p.state == b'S')
            .any(|p| procfs::blocked_reading(p.pid, &self.target));
        if waiting != self.waiting {
            self.set_waiting(waiting);
        }
    }

    /// Something happened: the next looks come quickly again.
    fn look_soon(&mut self) {
        self.look_pause = LOOK_EVERY;
        self.next_look = self.next_look.min(Instant::now() + QUIET);
    }

    fn set_waiting(&mut self, waiting: bool) {
        self.waiting = waiting;
        let msg = frame(if waiting { WAITING } else { BUSY }, b"");
        // A follower that cannot take a few bytes now is gone or stuck: drop it.
        self.followers.retain_mut(|s| s.write_all(&msg).is_ok());
    }

    /// After the task's processes are gone: the rest of what the terminal showed,
    /// and the socket removed.
    /// Moves what the task's output pipe holds into the log.
    fn pump_output(&mut self) {
        let Some(output) = &self.output else { return };
        let before = self.log.appended();
        if self.log.pump(output) == Pumped::Closed {
            self.output = None;
        }
        if self.log.appended() != before {
            self.output_seen();
        }
    }

    /// Copies the last of the task's output (its tree is gone: nothing more is
    /// written) and says what was lost.
    pub(crate) fn finish(mut self) {
        if self.tty {
            self.copy_output();
        }
        self.pump_output();
        self.log.finish();
        let _ = std::fs::remove_file(&self.socket); // it may have been removed with the task
    }
}
