//! Retention of the event log, and of the events, notifications and sessions that
//! removed tasks leave behind. Every statement touches a bounded slice of rows.

use super::{Tx, col};
use crate::{PruneRequest, Pruned, StoreError};

/// Rows one statement of a prune looks at, at most.
const SLICE: i64 = 10_000;

pub(crate) const EVENTS_BY_AGE: &str = crate::sql::retention::EVENTS_BY_AGE.postgres;
pub(crate) const EVENTS_BY_COUNT: &str = crate::sql::retention::EVENTS_BY_COUNT.postgres;
pub(crate) const EVENTS_OF_REMOVED: &str = crate::sql::retention::EVENTS_OF_REMOVED.postgres;
pub(crate) const NOTIFICATIONS_OF_REMOVED: &str =
    crate::sql::retention::NOTIFICATIONS_OF_REMOVED.postgres;
pub(crate) const RESOLVED_ALERTS: &str = crate::sql::retention::RESOLVED_ALERTS.postgres;
pub(crate) const SESSIONS_WITHOUT_NOTICES: &str =
    crate::sql::retention::SESSIONS_WITHOUT_NOTICES.postgres;

pub(crate) async fn prune(tx: &mut Tx, req: &PruneRequest) -> Result<Pruned, StoreError> {
    let agent_sessions = match req.agent_sessions_before {
        Some(before) => super::ops::forget_idle_agent_sessions(tx, before).await?,
        None => 0,
    };
    let c = tx.client();
    let mut events = 0u64;
    let alerts = match req.alerts_resolved_before {
        Some(before) => c.execute(RESOLVED_ALERTS, &[&before.0, &SLICE]).await?,
        None => 0,
    };
    if let Some(before) = req.events_before {
        // Events are appended in time order (near enough: an end recorded late keeps
        // its true time), so the oldest are among the first rows.
        events += c.execute(EVENTS_BY_AGE, &[&before.0, &SLICE]).await?;
    }
    if let Some(keep) = req.events_keep_last {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        events += c.execute(EVENTS_BY_COUNT, &[&keep, &SLICE]).await?;
    }
    // The sweep for rows of removed tasks: one slice of sequence numbers per call,
    // in both tables (their sequences are separate, the slice bounds each).
    let (from, to) = (req.from_seq, req.from_seq.saturating_add(SLICE));
    events += c.execute(EVENTS_OF_REMOVED, &[&from, &to]).await?;
    let notifications = c.execute(NOTIFICATIONS_OF_REMOVED, &[&from, &to]).await?;
    let row = c
        .query_one(
            "SELECT GREATEST(COALESCE((SELECT MAX(seq) FROM events), 0),
                             COALESCE((SELECT MAX(seq) FROM notifications), 0))",
            &[],
        )
        .await?;
    let last: i64 = col(&row, 0)?;
    let done = to > last;
    // A session's cursor only matters while it has notifications: one with none left
    // starts again at 0, below every sequence number still to come. Done once the
    // sweep has removed what it will.
    let sessions = if done {
        c.execute(SESSIONS_WITHOUT_NOTICES, &[]).await?
    } else {
        0
    };
    Ok(Pruned {
        events,
        notifications,
        sessions,
        agent_sessions,
        alerts,
        next: (!done).then_some(to),
    })
}
