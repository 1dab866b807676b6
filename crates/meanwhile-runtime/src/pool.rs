//! The loop that shrinks the spawner's pool of supervisors once it is idle: every
//! [`TRIM_EVERY`] on the runtime's clock it asks the spawner to let go of the idle
//! supervisors that no attempt used since the look before ([`Spawner::trim`]), so a
//! supervisor is let go between one and two periods after its last attempt. The
//! pool grows by itself, one supervisor for each attempt that finds none idle.
//!
//! [`Spawner::trim`]: crate::spawner::Spawner::trim

use crate::engine::Inner;
use meanwhile_core::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// How often the pool is trimmed.
pub(crate) const TRIM_EVERY: Duration = Duration::from_secs(30);
const NAME: &str = "supervisor_pool";

pub(crate) fn start(inner: &Arc<Inner>) {
    inner.spawn_loop(NAME, trim_loop);
}

async fn trim_loop(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut clock = inner.config.clock.looker(NAME);
    let every = TRIM_EVERY.as_millis() as i64;
    let mut next = Timestamp(clock.now().0 + every);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = clock.now();
        if now >= next {
            let spawner = inner.clone();
            // The spawner answers between two starts, which block on their exec.
            match tokio::task::spawn_blocking(move || spawner.spawner.trim()).await {
                Ok(Ok((gone, kept))) => {
                    inner.loops.ok(NAME);
                    if gone > 0 {
                        tracing::debug!("let {gone} idle supervisors go, {kept} kept");
                    }
                }
                Ok(Err(e)) => inner.loops.failed(
                    NAME,
                    format_args!("trimming the spawner's pool of supervisors"),
                    &e,
                ),
                Err(e) => inner.loops.failed(
                    NAME,
                    format_args!("trimming the spawner's pool of supervisors"),
                    &e,
                ),
            }
            next = Timestamp(now.0 + every);
        }
        clock.looked();
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = shutdown.changed() => {}
        }
    }
}
