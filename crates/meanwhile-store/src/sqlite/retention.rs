//! Retention of the event log, and of the events, notifications and sessions that
//! removed tasks leave behind. Every statement touches a bounded slice of rows.

use crate::{PruneRequest, Pruned, StoreError};
use rusqlite::{Connection, params};

/// Rows one statement of a prune looks at, at most.
const SLICE: i64 = 10_000;
/// Rows one prune deletes by age or count, at most: each call is one write the
/// writer runs between others, and a short one keeps their latency flat.
const DELETE_SLICE: i64 = 2_000;
/// Free space kept for the inserts to come, at least (in bytes), and as a share of
/// the file.
const FREE_KEPT_MIN: i64 = 1 << 20;
const FREE_KEPT_SHARE: i64 = 8;
/// Bytes given back to the file system in one prune, at most.
const FREE_GIVEN_MAX: i64 = 4 << 20;

/// Shrinks the file by the pages removed rows left free (the database runs with
/// `auto_vacuum = INCREMENTAL`), keeping some for the rows to come: an eighth of the
/// file, or 1 MiB. A bounded number per call (4 MiB), so one prune never holds the
/// writer for long; the next retention pass takes more.
fn give_back_free_pages(conn: &Connection) -> Result<(), StoreError> {
    let pragma = |name: &str| -> Result<i64, StoreError> {
        Ok(conn
            .prepare_cached(&format!("PRAGMA {name}"))?
            .query_row([], |r| r.get(0))?)
    };
    let free = pragma("freelist_count")?;
    let pages = pragma("page_count")?;
    let page_size = pragma("page_size")?.max(512);
    let keep = (FREE_KEPT_MIN / page_size).max(pages / FREE_KEPT_SHARE);
    let give = (free - keep).min(FREE_GIVEN_MAX / page_size);
    if give > 0 {
        // Each step of the pragma moves one page; it answers no rows.
        let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({give})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
    }
    Ok(())
}

pub(crate) const EVENTS_BY_AGE: &str = crate::sql::retention::EVENTS_BY_AGE.sqlite;
pub(crate) const EVENTS_BY_COUNT: &str = crate::sql::retention::EVENTS_BY_COUNT.sqlite;
pub(crate) const EVENTS_OF_REMOVED: &str = crate::sql::retention::EVENTS_OF_REMOVED.sqlite;
pub(crate) const NOTIFICATIONS_OF_REMOVED: &str =
    crate::sql::retention::NOTIFICATIONS_OF_REMOVED.sqlite;
pub(crate) const RESOLVED_ALERTS: &str = crate::sql::retention::RESOLVED_ALERTS.sqlite;
pub(crate) const SESSIONS_WITHOUT_NOTICES: &str =
    crate::sql::retention::SESSIONS_WITHOUT_NOTICES.sqlite;

pub(crate) fn prune(conn: &Connection, req: &PruneRequest) -> Result<Pruned, StoreError> {
    let mut events = 0u64;
    let agent_sessions = match req.agent_sessions_before {
        Some(before) => super::ops::forget_idle_agent_sessions(conn, before)?,
        None => 0,
    };
    let alerts = match req.alerts_resolved_before {
        Some(before) => conn
            .prepare_cached(RESOLVED_ALERTS)?
            .execute(params![before.0, DELETE_SLICE])? as u64,
        None => 0,
    };
    if let Some(before) = req.events_before {
        // Events are appended in time order (near enough: an end recorded late keeps
        // its true time), so the oldest are among the first rows.
        events += conn
            .prepare_cached(EVENTS_BY_AGE)?
            .execute(params![before.0, DELETE_SLICE])? as u64;
    }
    if let Some(keep) = req.events_keep_last {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        events += conn
            .prepare_cached(EVENTS_BY_COUNT)?
            .execute(params![keep, DELETE_SLICE])? as u64;
    }
    // The sweep for rows of removed tasks: one slice of sequence numbers per call,
    // in both tables (their sequences are separate, the slice bounds each).
    let (from, to) = (req.from_seq, req.from_seq.saturating_add(SLICE));
    events += conn
        .prepare_cached(EVENTS_OF_REMOVED)?
        .execute(params![from, to])? as u64;
    let notifications = conn
        .prepare_cached(NOTIFICATIONS_OF_REMOVED)?
        .execute(params![from, to])? as u64;
    let last: i64 = conn
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0),
                        COALESCE((SELECT MAX(seq) FROM notifications), 0))",
        )?
        .query_row([], |r| r.get(0))?;
    let done = to > last;
    // A session's cursor only matters while it has notifications: one with none left
    // starts again at 0, below every sequence number still to come. Done once the
    // sweep has removed what it will.
    let sessions = if done {
        conn.prepare_cached(SESSIONS_WITHOUT_NOTICES)?.execute([])? as u64
    } else {
        0
    };
    if done {
        give_back_free_pages(conn)?;
    }
    Ok(Pruned {
        events,
        notifications,
        sessions,
        agent_sessions,
        alerts,
        next: (!done).then_some(to),
    })
}
