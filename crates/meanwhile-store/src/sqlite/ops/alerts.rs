//! Alerts: firing one once per cause, resolving it once, listing them.

use super::*;
use crate::decode::AlertColumns;
use meanwhile_core::{Alert, TaskId};
use rusqlite::{Connection, Row, params};

const COLS: &str = crate::sql::ops::alerts::COLS.sqlite;
/// Resolving and repeating alerts (for the plans checked by `plans`).
#[cfg(feature = "plans")]
pub(crate) const RESOLVE: &str = crate::sql::ops::alerts::RESOLVE.sqlite;
#[cfg(feature = "plans")]
pub(crate) const REPEAT: &str = crate::sql::ops::alerts::REPEAT.sqlite;

fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<Alert>> {
    Ok(AlertColumns::read(r).and_then(AlertColumns::decode))
}

/// The newest `?1` alerts: all of them, or the firing ones.
pub(crate) fn alerts_sql(all: bool) -> String {
    if all {
        format!("SELECT {COLS} FROM alerts ORDER BY id DESC LIMIT ?1")
    } else {
        format!("SELECT {COLS} FROM alerts WHERE state = 'firing' ORDER BY id DESC LIMIT ?1")
    }
}

pub(crate) fn alerts(conn: &Connection, all: bool, limit: u32) -> Result<Vec<Alert>> {
    let mut stmt = conn.prepare_cached(&alerts_sql(all))?;
    let rows = stmt.query_map([limit.clamp(1, 10_000)], from_row)?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r??);
    }
    Ok(out)
}

pub(crate) const LAST_ENDS: &str = crate::sql::ops::alerts::LAST_ENDS.sqlite;

/// The states of the last `n` tasks of `queue` that ended, newest first.
pub(crate) fn last_ends(
    conn: &Connection,
    queue: &str,
    n: u32,
) -> Result<Vec<(TaskId, meanwhile_core::TaskState)>> {
    let mut stmt = conn.prepare_cached(LAST_ENDS)?;
    let rows = stmt.query_map(params![queue, n], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, state) = row?;
        out.push((TaskId(id), crate::decode::state(&state)?));
    }
    Ok(out)
}
