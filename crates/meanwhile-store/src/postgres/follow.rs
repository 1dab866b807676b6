//! The event log followed as one ordered stream on every node.
//!
//! Every stamp that numbers events (see `sequencer.rs`) also sends
//! `NOTIFY meanwhile_events`, which PostgreSQL delivers to every listening
//! connection when (and only if) the stamp commits. Each store keeps one connection
//! listening; a notification, a stamp of its own that it could not publish in
//! order, or a slow safety poll (for a notification lost with a connection) makes
//! it read the log from the last `seq` it published. Subscribers therefore see
//! every node's events, each once, in `seq` order. Stamps number events gap-free
//! and never below a number given before, so reading after `seq` N never skips one
//! numbered later. The safety poll stamps first, so what a node that died between
//! its commit and its stamp left in the inboxes is numbered too.
//!
//! A stamp of this node whose events follow on directly from the last published
//! ones is published at once, without the round trip; the others wait for the
//! follower's read.

use super::{Inner, PgStore, describe_error};
use meanwhile_core::Event;
use std::sync::{Mutex, Weak};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel every write that appends events notifies.
pub(crate) const CHANNEL: &str = "meanwhile_events";
/// How often the log is read when no notification came: it covers a notification
/// lost with the listening connection, not the normal path.
const SAFETY_POLL: Duration = Duration::from_secs(2);
/// The pause before the listening connection is opened again after it failed.
const RECONNECT: Duration = Duration::from_secs(1);
/// Events read at once.
const BATCH: u32 = 1000;

/// What the follower shares with the writes of its store.
pub(crate) struct Follow {
    /// The `seq` of the last event published to subscribers.
    last: Mutex<i64>,
    /// Wakes the follower to read the log.
    kick: Notify,
    events: broadcast::Sender<Event>,
    /// Its failures to listen or to read the log, reported as the loop
    /// `event_follower`.
    pub(crate) health: crate::health::LoopMeter,
}

impl Follow {
    pub(crate) fn new(events: broadcast::Sender<Event>) -> Follow {
        Follow {
            last: Mutex::new(0),
            kick: Notify::new(),
            events,
            health: crate::health::LoopMeter::new("event_follower"),
        }
    }

    /// Sets where publishing starts: after the event `seq`.
    pub(crate) fn start_after(&self, seq: i64) {
        *self.last() = seq;
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    fn last(&self) -> std::sync::MutexGuard<'_, i64> {
        // A plain number: whatever panicked while holding it left it consistent.
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the follower to read the log.
    pub(crate) fn kick(&self) {
        self.kick.notify_one();
    }

    /// Publishes events this node numbered when they follow on from the last ones
    /// published; otherwise leaves them to the follower, which reads them in order.
    pub(crate) fn committed(&self, events: Vec<Event>) {
        let (Some(first), Some(end)) = (events.first(), events.last()) else {
            return;
        };
        let (first, end) = (first.seq, end.seq);
        let mut last = self.last();
        if first == *last + 1 {
            for e in events {
                // Nobody listening is not an error: the events are in the store.
                let _ = self.events.send(e);
            }
            *last = end;
        } else if end > *last {
            drop(last);
            self.kick.notify_one();
        }
    }

    /// Publishes what was read from the log after the last published event.
    fn publish(&self, events: Vec<Event>) {
        let mut last = self.last();
        for e in events {
            if e.seq > *last {
                *last = e.seq;
                let _ = self.events.send(e);
            }
        }
    }
}

/// Follows the log until the store is dropped.
pub(crate) async fn run(store: Weak<Inner>) {
    loop {
        let Some((config, follow)) = store
            .upgrade()
            .map(|i| (i.config.clone(), i.follow.clone()))
        else {
            return;
        };
        let (wake_tx, mut wake) = mpsc::unbounded_channel::<()>();
        let listener = match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let health = follow.clone();
                tokio::spawn(async move {
                    let health = &health.health;
                    loop {
                        let m = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                        match m {
                            Some(Ok(AsyncMessage::Notification(_))) => {
                                if wake_tx.send(()).is_err() {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                health.record(
                                    Err(format!(
                                        "the connection listening for events failed: {}",
                                        describe_error(&e)
                                    )),
                                    false,
                                );
                                return;
                            }
                            None => return,
                        }
                    }
                });
                match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                    Ok(()) => Some(client),
                    Err(e) => {
                        follow.health.record(
                            Err(format!("listening for events: {}", describe_error(&e))),
                            false,
                        );
                        None
                    }
                }
            }
            Err(e) => {
                follow.health.record(
                    Err(format!(
                        "opening the connection that listens for events: {}",
                        describe_error(&e)
                    )),
                    false,
                );
                None
            }
        };
        let listening = listener.is_some();
        // Read once at (re)connection: what committed while nobody listened. Stamp
        // then and on the safety poll, not on every notification (each of which a
        // stamp sent).
        let mut stamp = true;
        loop {
            if !catch_up(&store, &follow, stamp).await {
                return;
            }
            stamp = false;
            let wait = if listening { SAFETY_POLL } else { RECONNECT };
            tokio::select! {
                m = wake.recv(), if listening => {
                    if m.is_none() {
                        break; // the listening connection ended: open another
                    }
                    // Coalesce the notifications that came meanwhile.
                    while wake.try_recv().is_ok() {}
                }
                _ = follow.kick.notified() => {}
                _ = tokio::time::sleep(wait) => {
                    stamp = true;
                    if !listening {
                        break;
                    }
                }
            }
        }
        drop(listener);
    }
}

/// Numbers what waits in the inboxes when `stamp` says so, then reads and publishes
/// everything after the last published event; false once the store is gone.
async fn catch_up(store: &Weak<Inner>, follow: &Follow, stamp: bool) -> bool {
    let mut first = stamp;
    loop {
        let Some(inner) = store.upgrade() else {
            return false;
        };
        let store = PgStore { inner };
        if first {
            first = false;
            match store.conn().await {
                Ok(conn) => {
                    if store.stamp(&conn).await {
                        conn.release();
                    }
                }
                Err(e) => follow
                    .health
                    .record(Err(format!("a connection to stamp the logs: {e}")), false),
            }
        }
        let from = *follow.last();
        match crate::EventStore::events_after(&store, from, BATCH).await {
            Ok(events) => {
                follow.health.record(Ok(()), false);
                let full = events.len() as u32 == BATCH;
                follow.publish(events);
                if !full {
                    return true;
                }
            }
            Err(e) => {
                follow
                    .health
                    .record(Err(format!("reading the event log: {e}")), false);
                return true;
            }
        }
    }
}
