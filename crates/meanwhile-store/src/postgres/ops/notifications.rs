//! Sessions and their notifications: the notice an ending task leaves, and draining
//! them exactly once.

use super::*;
use crate::postgres::Client;
use meanwhile_core::Notification;

pub(crate) const NOTIFICATIONS_AFTER: &str =
    crate::sql::ops::notifications::NOTIFICATIONS_AFTER.postgres;

async fn notifications_after(
    c: &Client,
    session: &str,
    cursor: i64,
    limit: u32,
) -> Result<Vec<Notification>> {
    let rows = c
        .query(
            NOTIFICATIONS_AFTER,
            &[&session, &cursor, &i64::from(limit.clamp(1, 1000))],
        )
        .await?;
    rows.iter()
        .map(|r| crate::decode::notification(col(r, 0)?, &col::<String>(r, 1)?))
        .collect()
}

async fn session_cursor(c: &Client, session: &str, lock: bool) -> Result<i64> {
    let sql = if lock {
        "SELECT cursor FROM sessions WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT cursor FROM sessions WHERE name = $1"
    };
    match c.query_opt(sql, &[&session]).await? {
        Some(row) => col(&row, 0),
        None => Ok(0),
    }
}

pub(crate) async fn drain_notifications(
    tx: &mut Tx,
    session: &str,
    limit: u32,
) -> Result<Vec<Notification>> {
    // Two drains of one session take turns on its row, so each notice is handed
    // out once. A session drained for the first time has no row to lock: its row
    // is made first (and kept at 0), and the second drain waits on it.
    exec(
        tx,
        "INSERT INTO sessions (name, cursor) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
        &[&session],
    )
    .await?;
    let cursor = session_cursor(tx.client(), session, true).await?;
    let out = notifications_after(tx.client(), session, cursor, limit).await?;
    if let Some(last) = out.last() {
        exec(
            tx,
            "UPDATE sessions SET cursor = $2 WHERE name = $1",
            &[&session, &last.seq],
        )
        .await?;
    }
    Ok(out)
}

pub(crate) async fn peek_notifications(
    c: &Client,
    session: &str,
    limit: u32,
) -> Result<Vec<Notification>> {
    let cursor = session_cursor(c, session, false).await?;
    notifications_after(c, session, cursor, limit).await
}

pub(crate) const NOTIFICATIONS_PENDING: &str =
    crate::sql::ops::notifications::NOTIFICATIONS_PENDING.postgres;

pub(crate) async fn notifications_pending(c: &Client) -> Result<Vec<(String, u64)>> {
    let rows = c.query(NOTIFICATIONS_PENDING, &[]).await?;
    rows.iter()
        .map(|r| Ok((col(r, 0)?, col::<i64>(r, 1)?.max(0) as u64)))
        .collect()
}
