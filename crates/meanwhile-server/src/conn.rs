//! The daemon's connections: one accept loop per listener, serving the router over
//! HTTP/1.1 with bounds that `axum::serve` does not have. A connection whose request
//! headers do not arrive within the header timeout, or that stays idle (no request
//! in flight) past the idle timeout, is closed; a TCP listener holds at most its cap
//! of connections and answers 503 beyond it, so idle clients cannot use up the file
//! descriptors that the Unix socket and the tasks need. An accept that fails (out of
//! descriptors) backs off instead of spinning.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use meanwhile_core::http::ErrorBody;
use meanwhile_core::{ApiError, ErrorCode};
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Refused connections being answered at once, per listener, at most (and at most
/// a sixteenth of its cap); more are closed without an answer, so that refusing
/// holds few descriptors.
const MAX_REFUSING: usize = 16;
/// The longest wait between two accepts after an accept failed.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How long a connection may wait for what it owes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// From the first byte of a request to the end of its headers.
    pub header: Duration,
    /// With no request in flight, before the next request's first byte.
    pub idle: Duration,
}

/// One listener's connections, as the metrics show them.
#[derive(Debug)]
pub(crate) struct ListenerStats {
    /// The listener's label: `socket`, or the TCP address.
    pub name: String,
    /// The cap on open connections, when there is one.
    pub max: Option<usize>,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Connections refused at the cap since the daemon started.
    pub refused: AtomicU64,
    /// Accepts that failed (other than a client giving up) since the daemon started.
    pub accept_errors: AtomicU64,
    /// Refused connections being answered now.
    refusing: AtomicUsize,
}

/// Every listener's [`ListenerStats`], for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    listeners: Mutex<Vec<Arc<ListenerStats>>>,
}

impl Connections {
    /// Adds a listener named `name`, with `max` connections at most.
    pub(crate) fn add(&self, name: String, max: Option<usize>) -> Arc<ListenerStats> {
        let stats = Arc::new(ListenerStats {
            name,
            max,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            refusing: AtomicUsize::new(0),
        });
        self.lock().push(stats.clone());
        stats
    }

    /// The listeners, in the order they were added.
    pub(crate) fn all(&self) -> Vec<Arc<ListenerStats>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<ListenerStats>>> {
        // The list is only pushed to and cloned: a panic elsewhere cannot leave it
        // half changed, so a poisoned lock still holds a good list.
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The default cap on a TCP listener's connections: a quarter of the open-files
/// limit, so that with a second TCP listener (the dashboard's port) nearly half of
/// the descriptors stay for the Unix socket, the store and the tasks.
pub(crate) fn default_max_connections(open_files: u64) -> usize {
    usize::try_from(open_files / 4).unwrap_or(usize::MAX).max(1)
}

/// A listener the accept loop can take connections from.
pub(crate) trait Accept: Send + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Takes the next connection.
    fn accept_io(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_io(&self) -> io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_io(&self) -> io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Serves `app` on `listener` until `down` turns true, then stops accepting and
/// returns once the connections open then have finished (each closes after the
/// request it is serving). Every request carries `ConnectInfo(info(&connection))`.
pub(crate) async fn serve<L, I, F>(
    listener: L,
    app: Router,
    info: F,
    timeouts: Timeouts,
    stats: Arc<ListenerStats>,
    mut down: watch::Receiver<bool>,
) where
    L: Accept,
    I: Clone + Send + Sync + 'static,
    F: Fn(&L::Io) -> I,
{
    // Each connection holds a receiver; all dropped means all connections ended.
    let (open_tx, open_rx) = watch::channel(());
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            r = listener.accept_io() => r,
            _ = down.wait_for(|d| *d) => break,
        };
        let io = match accepted {
            Ok(io) => io,
            Err(e) if client_gave_up(&e) => continue,
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                // Out of descriptors (EMFILE) the pending connection stays queued and
                // the listener stays ready: accepting again at once would spin. Each
                // listener backs off on its own, so the others go on being served.
                if backoff.is_zero() {
                    tracing::error!(
                        "accepting a connection on {} failed: {e} ({} open here); trying again with backoff",
                        stats.name,
                        stats.open.load(Ordering::Relaxed)
                    );
                    backoff = Duration::from_millis(10);
                } else {
                    backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = down.wait_for(|d| *d) => break,
                }
                continue;
            }
        };
        backoff = Duration::ZERO;
        if stats
            .max
            .is_some_and(|max| stats.open.load(Ordering::Relaxed) >= max)
        {
            refuse(io, stats.clone(), timeouts.header);
            continue;
        }
        stats.open.fetch_add(1, Ordering::Relaxed);
        let info = info(&io);
        tokio::spawn(connection(
            io,
            app.clone(),
            info,
            timeouts,
            Open(stats.clone()),
            down.clone(),
            open_rx.clone(),
        ));
    }
    drop(open_rx);
    drop(listener);
    open_tx.closed().await;
}

/// Errors of one connection that the client gave up on before it was accepted.
fn client_gave_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Counts a connection as open for as long as it lives.
struct Open(Arc<ListenerStats>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection until it ends, its timeouts close it, or shutdown has
/// let its request finish.
async fn connection<S, I>(
    io: S,
    app: Router,
    info: I,
    timeouts: Timeouts,
    _open: Open,
    mut down: watch::Receiver<bool>,
    _alive: watch::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    I: Clone + Send + Sync + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        io,
        activity: activity.clone(),
    });
    let router = TowerToHyperService::new(app);
    let tracker = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(info.clone()));
        let busy = Busy::start(tracker.clone());
        let answer = hyper::service::Service::call(&router, req);
        async move {
            let response = answer.await?;
            Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, _busy: busy })))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The timeouts are kept here, where "idle" can mean no request in flight.
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let expired = activity.expired(timeouts);
    tokio::pin!(expired);
    let mut draining = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            why = &mut expired => {
                // Dropping the connection closes it: nothing is in flight.
                tracing::debug!("closing a connection: {why}");
                return;
            }
            _ = down.wait_for(|d| *d), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answers 503 on a connection beyond the cap, then closes it, on a task of its
/// own bounded by `within`.
fn refuse<S>(mut io: S, stats: Arc<ListenerStats>, within: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    stats.refused.fetch_add(1, Ordering::Relaxed);
    let at_most = (stats.max.unwrap_or(0) / 16).clamp(1, MAX_REFUSING);
    if stats.refusing.fetch_add(1, Ordering::Relaxed) >= at_most {
        stats.refusing.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let answer = refusal(stats.max.unwrap_or(0));
    tokio::spawn(async move {
        let answered = async {
            io.write_all(&answer).await?;
            io.shutdown().await?;
            // Reading what the client sent, to its end, before closing: closing with
            // unread bytes would reset the connection, and the client could lose
            // the answer.
            let mut sink = [0u8; 4096];
            while io.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        };
        // A client that neither reads nor closes is dropped at the deadline; it has
        // had its answer's chance.
        match tokio::time::timeout(within, answered).await {
            Ok(Ok(())) | Err(_) => {}
            Ok(Err(e)) => tracing::debug!("answering a refused connection: {e}"),
        }
        stats.refusing.fetch_sub(1, Ordering::Relaxed);
    });
}

/// The whole answer to a connection beyond the cap of `max`.
fn refusal(max: usize) -> Vec<u8> {
    let body = serde_json::to_vec(&ErrorBody {
        error: ApiError {
            code: ErrorCode::Unavailable,
            message: format!(
                "this listener already holds its {max} connections (max_connections); try again shortly, or close idle connections"
            ),
            field: None,
        },
    })
    .unwrap_or_default();
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Nothing in flight since then, and no byte of a next request.
    Idle(Instant),
    /// Waiting since then for the end of a request's headers: since the connection
    /// opened, or since the first byte of a request after an idle time.
    Head(Instant),
    /// This many requests in flight (their answers not yet written out).
    Busy(usize),
}

/// What a connection is doing, told by its reads and its requests, watched by
/// [`Activity::expired`].
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    /// A new connection owes its first request's headers from the start: one that
    /// never sends a byte is closed after the header timeout.
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase::Head(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        // Every change is one assignment of a Copy value: never half done.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase) {
        *self.lock() = phase;
        self.changed.notify_one();
    }

    /// Bytes were read from the client.
    fn read(&self) {
        let mut phase = self.lock();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn begin(&self) {
        let next = match *self.lock() {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Idle(_) | Phase::Head(_) => Phase::Busy(1),
        };
        self.set(next);
    }

    fn end(&self) {
        let next = match *self.lock() {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
        self.set(next);
    }

    /// Completes when the connection has waited too long for a request's headers,
    /// or has been idle too long; says which.
    async fn expired(&self, t: Timeouts) -> &'static str {
        loop {
            let changed = self.changed.notified();
            let phase = *self.lock();
            let (deadline, why) = match phase {
                Phase::Busy(_) => {
                    changed.await;
                    continue;
                }
                Phase::Idle(since) => (since + t.idle, "idle"),
                Phase::Head(since) => (since + t.header, "request headers too slow"),
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = changed => continue,
            }
            // The phase may have changed as the deadline came.
            let phase = *self.lock();
            let still = match phase {
                Phase::Idle(since) => since + t.idle <= Instant::now(),
                Phase::Head(since) => since + t.header <= Instant::now(),
                Phase::Busy(_) => false,
            };
            if still {
                return why;
            }
        }
    }
}

/// A request in flight, from its headers to the last byte of its answer.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Busy {
        activity.begin();
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// An answer's body that keeps its request in flight until hyper has written it
/// out and dropped it: an event stream or a long poll is never idle.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection whose reads tell its [`Activity`].
struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    /// Whether `expired` completes within `after` of paused time.
    async fn expires_within(a: &Activity, after: Duration) -> bool {
        tokio::time::timeout(after, a.expired(T)).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_owes_its_headers_within_the_header_timeout() {
        let a = Activity::new();
        assert!(!expires_within(&a, Duration::from_secs(9)).await);
        assert!(expires_within(&a, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_a_connection_lasts_the_idle_timeout() {
        let a = Arc::new(Activity::new());
        drop(Busy::start(a.clone()));
        assert!(!expires_within(&a, Duration::from_secs(59)).await);
        assert!(expires_within(&a, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn headers_begun_must_end_within_the_header_timeout() {
        let a = Arc::new(Activity::new());
        drop(Busy::start(a.clone()));
        tokio::time::advance(Duration::from_secs(30)).await;
        a.read();
        // More bytes do not extend it: a byte a second cannot hold it open.
        a.read();
        assert!(!expires_within(&a, Duration::from_secs(9)).await);
        a.read();
        assert!(expires_within(&a, Duration::from_secs(2)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_idle_and_idleness_starts_at_its_end() {
        let a = Arc::new(Activity::new());
        a.read();
        let busy = Busy::start(a.clone());
        assert!(!expires_within(&a, Duration::from_secs(3600)).await);
        drop(busy);
        assert!(!expires_within(&a, Duration::from_secs(59)).await);
        assert!(expires_within(&a, Duration::from_secs(2)).await);
    }

    #[test]
    fn the_refusal_is_a_complete_answer() {
        let answer = String::from_utf8(refusal(256)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "unavailable");
        assert!(v["error"]["message"].as_str().unwrap().contains("256"));
    }

    #[test]
    fn the_default_cap_leaves_three_quarters_of_the_descriptors() {
        assert_eq!(default_max_connections(1024), 256);
        assert_eq!(default_max_connections(524_288), 131_072);
        assert_eq!(default_max_connections(20), 5);
        assert_eq!(default_max_connections(0), 1);
    }
}
