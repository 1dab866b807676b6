//! What every handler can reach.

use crate::config::Settings;
use crate::error::Fail;
use meanwhile_runtime::Runtime;
use std::future::Future;
use std::sync::Arc;
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
}

impl AppState {
    /// Runs a request that may block for long (a wait, a wait for output), cutting it
    /// short with 503 when the daemon shuts down, so that shutdown never waits for a
    /// client's timeout.
    pub async fn unless_shutdown<T>(
        &self,
        fut: impl Future<Output = Result<T, Fail>>,
    ) -> Result<T, Fail> {
        let mut rx = self.shutdown.clone();
        tokio::select! {
            r = fut => r,
            _ = rx.wait_for(|down| *down) => Err(Fail::unavailable_shutting_down()),
        }
    }
}
