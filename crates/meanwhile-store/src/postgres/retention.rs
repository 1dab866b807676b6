//! Retention of the event log, and of the events, notifications and sessions that
//! removed tasks leave behind. Every statement touches a bounded slice of rows.

use super::{Tx, col};
use crate::{PruneRequest, Pruned, StoreError};

/// Rows one statement of a prune looks at, at most.
const SLICE: i64 = 10_000;

/// Removes the events before `$1` among the first `$2`.
pub(crate) const EVENTS_BY_AGE: &str = "DELETE FROM events WHERE seq IN
    (SELECT seq FROM events ORDER BY seq LIMIT $2) AND at < $1";
/// Removes the first `$2` events of all but the last `$1`.
pub(crate) const EVENTS_BY_COUNT: &str = "DELETE FROM events WHERE seq IN
    (SELECT seq FROM events
     WHERE seq <= (SELECT COALESCE(MAX(seq), 0) FROM events) - $1
     ORDER BY seq LIMIT $2)";
/// Removes the events of removed tasks from `$1` to before `$2`.
pub(crate) const EVENTS_OF_REMOVED: &str =
    "DELETE FROM events WHERE seq >= $1 AND seq < $2 AND task_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = events.task_id)";
/// Removes the notifications of removed tasks from `$1` to before `$2`.
pub(crate) const NOTIFICATIONS_OF_REMOVED: &str =
    "DELETE FROM notifications WHERE seq >= $1 AND seq < $2
        AND NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = notifications.task_id)";
/// Removes the first `$2` alerts resolved before `$1`.
pub(crate) const RESOLVED_ALERTS: &str = "DELETE FROM alerts WHERE id IN
    (SELECT id FROM alerts WHERE state = 'resolved' AND resolved_at < $1 ORDER BY id LIMIT $2)";
/// Removes the sessions that have no notification left.
pub(crate) const SESSIONS_WITHOUT_NOTICES: &str = "DELETE FROM sessions WHERE NOT EXISTS
    (SELECT 1 FROM notifications n WHERE n.session = sessions.name)";

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
