//! A task's output on its way into its log, on the supervisor's side: the task
//! writes into a pipe (or a terminal) that its supervisor holds, and the supervisor
//! appends what comes out to the log. Being in between is what lets a task outlive
//! a full disk: what the log cannot take is read, counted and dropped, so the task
//! never blocks or fails on its own writes, and once the log takes output again it
//! gets one line saying how much was lost.

use std::io;
use std::os::fd::OwnedFd;

/// Bytes read from the pipe at a time.
const CHUNK: usize = 64 * 1024;

/// Appends to one attempt's log, counting what it could not.
pub(crate) struct LogWriter {
    log: OwnedFd,
    /// Bytes the log could not take since it last took some, and why.
    lost: u64,
    why: String,
    buf: Vec<u8>,
    /// Bytes taken from the task so far, written or lost.
    appended: u64,
}

/// What [`LogWriter::pump`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pumped {
    /// Nothing more for now; more may come.
    Open,
    /// Every writer closed the pipe.
    Closed,
}

impl LogWriter {
    pub(crate) fn new(log: OwnedFd) -> LogWriter {
        LogWriter {
            log,
            lost: 0,
            why: String::new(),
            buf: Vec::new(),
            appended: 0,
        }
    }

    /// Bytes taken from the task so far, written or lost.
    pub(crate) fn appended(&self) -> u64 {
        self.appended
    }

    /// Appends `bytes`. What the log refuses is counted, not retried (the pipe or
    /// terminal must be drained, or the task would block on it), and said in one
    /// line before the next output the log takes.
    pub(crate) fn append(&mut self, bytes: &[u8]) {
        self.appended += bytes.len() as u64;
        if self.lost > 0 {
            let line = format!(
                "\n[meanwhile: {} bytes of output lost: {}]\n",
                self.lost, self.why
            );
            if write_counted(&self.log, line.as_bytes()).1.is_some() {
                self.lost += bytes.len() as u64;
                return;
            }
            self.lost = 0;
        }
        let (written, failed) = write_counted(&self.log, bytes);
        if let Some(e) = failed {
            self.lost += (bytes.len() - written) as u64;
            self.why = match e {
                rustix::io::Errno::NOSPC => "no space left on device".into(),
                e => io::Error::from(e).to_string(),
            };
        }
    }

    /// Moves what the pipe `from` (non-blocking) holds now into the log.
    pub(crate) fn pump(&mut self, from: &OwnedFd) -> Pumped {
        if self.buf.len() < CHUNK {
            self.buf.resize(CHUNK, 0);
        }
        loop {
            match rustix::io::read(from, &mut self.buf) {
                Ok(0) => return Pumped::Closed,
                Ok(n) => {
                    let chunk = std::mem::take(&mut self.buf);
                    self.append(&chunk[..n]);
                    self.buf = chunk;
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return Pumped::Open,
                // Not a pipe we can read any more: nothing more will come from it.
                Err(_) => return Pumped::Closed,
            }
        }
    }

    /// Says what was lost, if the log takes it now (the task ended; space may have
    /// come back since its last output).
    pub(crate) fn finish(&mut self) {
        if self.lost > 0 {
            self.append(b"");
        }
    }
}

/// Writes what it can of `bytes`: how much, and the error that stopped it.
fn write_counted(fd: &OwnedFd, bytes: &[u8]) -> (usize, Option<rustix::io::Errno>) {
    let mut written = 0;
    while written < bytes.len() {
        match rustix::io::write(fd, &bytes[written..]) {
            Ok(n) => written += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return (written, Some(e)),
        }
    }
    (written, None)
}

/// A pipe for the task's output: the read end non-blocking (the supervisor's), the
/// write end for the task's stdout and stderr. Both close on exec.
pub(crate) fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let flags = rustix::fs::fcntl_getfl(&read)?;
    rustix::fs::fcntl_setfl(&read, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok((read, write))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_pumped_into_the_log_until_its_writers_close_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .unwrap();
        let mut w = LogWriter::new(log.into());
        let (read, write) = output_pipe().unwrap();
        rustix::io::write(&write, b"one\n").unwrap();
        assert_eq!(w.pump(&read), Pumped::Open);
        rustix::io::write(&write, b"two\n").unwrap();
        drop(write);
        assert_eq!(w.pump(&read), Pumped::Closed);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
    }

    #[test]
    fn what_the_log_refuses_is_counted_and_said_once_it_takes_output_again() {
        // /dev/full refuses every write with ENOSPC, as a full disk does.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut w = LogWriter::new(full.into());
        w.append(b"0123456789");
        w.append(b"abc");
        assert_eq!((w.lost, w.why.as_str()), (13, "no space left on device"));
        // Space comes back: the same writer on a log that takes writes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        w.log = std::fs::File::create(&path).unwrap().into();
        w.append(b"after\n");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "\n[meanwhile: 13 bytes of output lost: no space left on device]\nafter\n"
        );
        assert_eq!(w.lost, 0);
    }
}
