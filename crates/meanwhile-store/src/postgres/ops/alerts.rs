//! Alerts: firing one once per cause, resolving it once, listing them.

use super::*;
use crate::decode::AlertColumns;
use crate::postgres::Client;
use meanwhile_core::{Alert, TaskId, TaskState};
use tokio_postgres::Row;

const COLS: &str = crate::sql::ops::alerts::COLS.postgres;

fn from_row(r: &Row) -> Result<Alert> {
    AlertColumns::read(r)?.decode()
}

/// The newest `$1` alerts: all of them, or the firing ones.
pub(crate) fn alerts_sql(all: bool) -> String {
    if all {
        format!("SELECT {COLS} FROM alerts ORDER BY id DESC LIMIT $1")
    } else {
        format!("SELECT {COLS} FROM alerts WHERE state = 'firing' ORDER BY id DESC LIMIT $1")
    }
}

pub(crate) async fn alerts(c: &Client, all: bool, limit: u32) -> Result<Vec<Alert>> {
    let sql = alerts_sql(all);
    let rows = c.query(&sql, &[&i64::from(limit.clamp(1, 10_000))]).await?;
    rows.iter().map(from_row).collect()
}

pub(crate) const LAST_ENDS: &str = crate::sql::ops::alerts::LAST_ENDS.postgres;

/// The states of the last `n` tasks of `queue` that ended, newest first.
pub(crate) async fn last_ends(c: &Client, queue: &str, n: u32) -> Result<Vec<(TaskId, TaskState)>> {
    let rows = c.query(LAST_ENDS, &[&queue, &i64::from(n)]).await?;
    rows.iter()
        .map(|r| {
            Ok((
                TaskId(col(r, 0)?),
                crate::decode::state(&col::<String>(r, 1)?)?,
            ))
        })
        .collect()
}
