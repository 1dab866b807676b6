//! The runtime's clock. Every time the runtime records or decides by (a task's
//! times, leases, schedules, budget windows, alerts, heartbeats) is read here.
//!
//! It is the system's clock, or, for tests, a clock that runs at the system's pace
//! ahead of it by an offset that only grows ([`Clock::ahead`]). Moving it forward
//! ([`Clock::advance`]) wakes every loop that waits on it, and [`Clock::settled`]
//! answers once each of those loops has looked at the new time, so a test drives
//! schedules, windows and heartbeats instead of waiting for them.

use meanwhile_core::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// The runtime's clock: the system's, or one ahead of it that tests move forward.
#[derive(Debug)]
pub struct Clock {
    /// Milliseconds added to the system's time.
    offset_ms: AtomicI64,
    /// Whether [`Clock::advance`] may move it.
    adjustable: bool,
    /// How many times it was moved; loops wait on it besides their timers.
    advances: watch::Sender<u64>,
    /// The last move each loop on this clock has looked after, by loop name; `None`
    /// until its first look.
    looked: watch::Sender<BTreeMap<&'static str, Option<u64>>>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(0, false)
    }
}

impl Clock {
    fn new(offset_ms: i64, adjustable: bool) -> Clock {
        Clock {
            offset_ms: AtomicI64::new(offset_ms),
            adjustable,
            advances: watch::channel(0).0,
            looked: watch::channel(BTreeMap::new()).0,
        }
    }

    /// The system's clock.
    pub fn system() -> Arc<Clock> {
        Arc::new(Clock::default())
    }

    /// A clock for tests: `offset` ahead of the system's, moved further by
    /// [`Clock::advance`].
    pub fn ahead(offset: Duration) -> Arc<Clock> {
        Arc::new(Clock::new(millis(offset), true))
    }

    /// How far ahead of the system's clock this one is.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::Relaxed).max(0) as u64)
    }

    /// The time now.
    pub fn now(&self) -> Timestamp {
        let system = Timestamp::from(std::time::SystemTime::now());
        Timestamp(system.0 + self.offset_ms.load(Ordering::Relaxed))
    }

    /// A time read from the system's clock elsewhere (a supervisor's record of an
    /// end), on this clock.
    pub fn shift(&self, system: Timestamp) -> Timestamp {
        Timestamp(system.0 + self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves a test clock forward by `by` and wakes the loops waiting on it; returns
    /// the move's number, for [`Clock::settled`]. The system's clock is not moved:
    /// `None`.
    pub fn advance(&self, by: Duration) -> Option<u64> {
        if !self.adjustable {
            return None;
        }
        self.offset_ms.fetch_add(millis(by), Ordering::Relaxed);
        let mut number = 0;
        self.advances.send_modify(|n| {
            *n += 1;
            number = *n;
        });
        Some(number)
    }

    /// Returns once every loop on this clock has looked after move `number`.
    pub async fn settled(&self, number: u64) {
        let mut looked = self.looked.subscribe();
        // The sender lives in `self`, so this ends only when every loop looked.
        let _ = looked
            .wait_for(|m| m.values().all(|l| l.is_some_and(|l| l >= number)))
            .await;
    }

    /// A loop's place on this clock, as `name`: its looks are reported to
    /// [`Clock::settled`], and its sleeps end early when the clock moves.
    pub fn looker(self: &Arc<Self>, name: &'static str) -> Looker {
        self.looked.send_modify(|m| {
            m.entry(name).or_insert(None);
        });
        Looker {
            clock: self.clone(),
            name,
            advances: self.advances.subscribe(),
            seen: 0,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One loop's place on a [`Clock`].
#[derive(Debug)]
pub struct Looker {
    clock: Arc<Clock>,
    name: &'static str,
    advances: watch::Receiver<u64>,
    /// The move the current look started after.
    seen: u64,
}

impl Looker {
    /// The time now; the look that reads it counts as after every move so far.
    pub fn now(&mut self) -> Timestamp {
        self.seen = *self.advances.borrow_and_update();
        self.clock.now()
    }

    /// Says that the look begun by the last [`Looker::now`] is done.
    pub fn looked(&self) {
        let seen = self.seen;
        self.clock.looked.send_if_modified(|m| {
            let slot = m.entry(self.name).or_insert(None);
            if slot.is_some_and(|s| s >= seen) {
                return false;
            }
            *slot = Some(seen);
            true
        });
    }

    /// Sleeps for `d` of real time, or until the clock moves (at once if it moved
    /// since the last [`Looker::now`]).
    pub async fn sleep(&mut self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.advances.changed() => {}
        }
    }

    /// Sleeps until the clock reads `at` or later, or it moves.
    pub async fn sleep_until(&mut self, at: Timestamp) {
        let left = self.clock.now().millis_until(at);
        self.sleep(Duration::from_millis(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_does_not_move() {
        let c = Clock::system();
        assert_eq!(c.advance(Duration::from_secs(3600)), None);
        assert_eq!(c.offset(), Duration::ZERO);
        let drift = c.now().0 - Timestamp::from(std::time::SystemTime::now()).0;
        assert!(drift.abs() < 1000, "{drift}");
    }

    #[tokio::test]
    async fn a_move_wakes_a_sleeping_looker_and_settles_once_it_looked() {
        let c = Clock::ahead(Duration::from_secs(60));
        let before = c.now();
        assert!(before.0 - Timestamp::from(std::time::SystemTime::now()).0 >= 59_000);
        let mut l = c.looker("test");
        let _ = l.now();
        // Not looked yet: a move does not settle until the looker looks again.
        let n = c.advance(Duration::from_secs(3600)).unwrap();
        assert_eq!(n, 1);
        let settled = c.settled(n);
        tokio::pin!(settled);
        assert!(futures_poll(&mut settled).is_none());
        // The move ends a day-long sleep at once.
        l.sleep(Duration::from_secs(86_400)).await;
        let now = l.now();
        assert!(now.0 - before.0 >= 3_600_000);
        l.looked();
        settled.await;
    }

    /// Polls a future once.
    fn futures_poll<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
