//! The runtime's side of an interactive task's input socket (the format is in
//! [`crate::interact`]): one request and its answer, or a stream of the task's
//! waiting-for-input states.

use crate::interact::{self, BUSY, DONE, REFUSED, WAITING};
use std::io;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long an answer may take: the supervisor answers at once, between two looks
/// at its task.
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Why a request was not carried out.
#[derive(Debug)]
pub(crate) enum InputError {
    /// Nobody listens at the socket: the attempt's supervisor has ended.
    Gone,
    /// The supervisor refused, saying why.
    Refused(String),
    /// The exchange broke.
    Io(io::Error),
}

async fn connect(socket: &Path) -> Result<UnixStream, InputError> {
    UnixStream::connect(socket)
        .await
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => InputError::Gone,
            _ => InputError::Io(e),
        })
}

async fn read_frame(s: &mut UnixStream) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await?;
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > 64 * 1024 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "answer too long",
        ));
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await?;
    Ok((head[0], payload))
}

/// Sends one request (`OP_WRITE`, `OP_EOF`, `OP_RESIZE`) and waits for its answer.
pub(crate) async fn request(socket: &Path, op: u8, payload: &[u8]) -> Result<(), InputError> {
    let exchange = async {
        let mut s = connect(socket).await?;
        s.write_all(&interact::frame(op, payload))
            .await
            .map_err(InputError::Io)?;
        match read_frame(&mut s).await {
            Ok((DONE, _)) => Ok(()),
            Ok((REFUSED, why)) => Err(InputError::Refused(
                String::from_utf8_lossy(&why).into_owned(),
            )),
            Ok(_) => Err(InputError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected answer",
            ))),
            // The supervisor ended while answering: its task is ending.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(InputError::Gone),
            Err(e) => Err(InputError::Io(e)),
        }
    };
    match tokio::time::timeout(ANSWER_WITHIN, exchange).await {
        Ok(r) => r,
        Err(_) => Err(InputError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "the task's supervisor did not answer",
        ))),
    }
}

/// A stream of an interactive task's states: `true` while it waits for input.
pub(crate) struct Follow(UnixStream);

impl Follow {
    pub(crate) async fn open(socket: &Path) -> Result<Follow, InputError> {
        let mut s = connect(socket).await?;
        s.write_all(&interact::frame(interact::OP_FOLLOW, b""))
            .await
            .map_err(InputError::Io)?;
        Ok(Follow(s))
    }

    /// The next state; `None` once the supervisor has ended.
    pub(crate) async fn next(&mut self) -> Option<bool> {
        loop {
            match read_frame(&mut self.0).await {
                Ok((WAITING, _)) => return Some(true),
                Ok((BUSY, _)) => return Some(false),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}
