//! Writing to stdout like a Unix tool: when the reader has gone (`meanwhile ls | head`),
//! the command ends quietly with success instead of panicking or complaining.
//!
//! `println!` panics when stdout is a closed pipe (Rust ignores SIGPIPE, so the write
//! fails with EPIPE). Restoring SIGPIPE's default would let the kernel end the command
//! silently, but it would also kill a client whose daemon closes a socket mid-write,
//! where a resend must happen instead. So every command writes through here, and a
//! closed stdout, and only stdout, becomes [`PipeClosed`], which `main` turns into a
//! quiet exit 0.

use std::fmt;
use std::io::{self, Write};

/// The reader of stdout has gone: not a failure, the command is just done.
#[derive(Debug)]
pub struct PipeClosed;

impl fmt::Display for PipeClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for PipeClosed {}

/// Whether `e` (or what caused it) is a closed stdout.
pub fn is_pipe_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<PipeClosed>())
}

/// A failed write to stdout as the command's error.
pub fn stdout_error(e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        anyhow::Error::new(PipeClosed)
    } else {
        anyhow::Error::new(e).context("writing to stdout")
    }
}

/// Writes formatted text to stdout.
pub fn text(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    io::stdout().lock().write_fmt(args).map_err(stdout_error)
}

/// Writes bytes to stdout and flushes them, for output that must show at once.
pub fn bytes(b: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(b)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// Writes a message to stderr. A closed stderr is ignored: there is nowhere left to
/// report anything, and the command's exit code still tells how it went.
pub fn err(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Prints a line to stdout; a closed stdout ends the command quietly (see [`crate::out`]).
macro_rules! outln {
    () => { $crate::out::text(format_args!("\n"))? };
    ($($arg:tt)*) => { $crate::out::text(format_args!("{}\n", format_args!($($arg)*)))? };
}

/// Prints to stdout without a line break; a closed stdout ends the command quietly.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::text(format_args!($($arg)*))? };
}

/// Prints a line to stderr, ignoring a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::out::err(format_args!("{}\n", format_args!($($arg)*))) };
}
