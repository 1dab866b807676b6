//! What every handler can reach.

use crate::config::Settings;
use crate::error::Fail;
use crate::keys::Tokens;
use meanwhile_runtime::Runtime;
use meanwhile_runtime::store::AuditKey;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// The runtime, the settings, and the shutdown signal.
#[derive(Clone)]
pub(crate) struct AppState {
    pub rt: Runtime,
    pub settings: Arc<Settings>,
    /// Becomes true when the daemon starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// When the daemon started, ms since the epoch.
    pub started_at: i64,
    /// Long requests (waits for tasks or output) being served now.
    pub waiting: Arc<AtomicU64>,
    /// Set by `POST /v1/shutdown`: `Some(stop_tasks)` once the daemon was asked to stop.
    pub stop: Arc<watch::Sender<Option<bool>>>,
    /// The bearer tokens the TCP listener accepts.
    pub tokens: Arc<Tokens>,
    /// The key that signs the audit trail's checkpoints.
    pub audit_key: AuditKey,
    /// The dashboard's browser sessions and login links.
    pub browser: Arc<crate::browser::Browser>,
    /// Each listener's open connections and refusals.
    pub connections: Arc<crate::conn::Connections>,
    /// The cap on each TCP listener's open connections.
    pub max_connections: usize,
}

/// Counts a long request for as long as it is served, however it ends.
struct Waiting(Arc<AtomicU64>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AppState {
    /// Runs a request that may block for long (a wait, a wait for output), cutting it
    /// short with 503 when the daemon shuts down, so that shutdown never waits for a
    /// client's timeout.
    pub async fn unless_shutdown<T>(
        &self,
        fut: impl Future<Output = Result<T, Fail>>,
    ) -> Result<T, Fail> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _counted = Waiting(self.waiting.clone());
        let mut rx = self.shutdown.clone();
        tokio::select! {
            r = fut => r,
            _ = rx.wait_for(|down| *down) => Err(Fail::unavailable_shutting_down()),
        }
    }
}
