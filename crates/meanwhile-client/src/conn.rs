//! Connections to the daemon: a Unix socket or TCP, HTTP/1.1 via hyper, kept open
//! and reused so that a burst of calls does not pay a handshake each.

use crate::error::ClientError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// How long connecting may take before the daemon counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections kept for reuse.
const POOL_SIZE: usize = 16;

/// Where the daemon listens.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Unix(PathBuf),
    Tcp { addr: String, token: String },
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Unix(p) => p.display().to_string(),
            Target::Tcp { addr, .. } => format!("http://{addr}"),
        }
    }
}

pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// Opens new connections and keeps idle ones.
pub(crate) struct Pool {
    pub target: Target,
    idle: Mutex<Vec<Sender>>,
}

impl Pool {
    pub fn new(target: Target) -> Pool {
        Pool {
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection that is still open (true), or a new one (false).
    pub async fn checkout(&self) -> Result<(Sender, bool), ClientError> {
        loop {
            let idle = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            match idle {
                Some(mut s) => {
                    // A connection the daemon closed while idle fails here, before
                    // any request is sent on it.
                    if !s.is_closed() && s.ready().await.is_ok() {
                        return Ok((s, true));
                    }
                }
                None => return Ok((self.connect().await?, false)),
            }
        }
    }

    /// Gives back a connection whose last answer was read in full.
    pub fn checkin(&self, s: Sender) {
        if s.is_closed() {
            return;
        }
        if let Ok(mut v) = self.idle.lock()
            && v.len() < POOL_SIZE
        {
            v.push(s);
        }
    }

    /// A new connection, not pooled.
    pub async fn connect(&self) -> Result<Sender, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            target: self.target.describe(),
            source,
        };
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let broken = |e: hyper::Error| ClientError::Protocol {
            target: self.target.describe(),
            message: e.to_string(),
        };
        match &self.target {
            Target::Unix(path) => {
                let stream =
                    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path))
                        .await
                        .map_err(|_| unreachable(timed_out()))?
                        .map_err(unreachable)?;
                let (sender, conn) = http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(broken)?;
                tokio::spawn(conn);
                Ok(sender)
            }
            Target::Tcp { addr, .. } => {
                let stream = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect(addr.as_str()),
                )
                .await
                .map_err(|_| unreachable(timed_out()))?
                .map_err(unreachable)?;
                let _ = stream.set_nodelay(true);
                let (sender, conn) = http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(broken)?;
                tokio::spawn(conn);
                Ok(sender)
            }
        }
    }
}
