//! Sessions and their notifications: the notice an ending task leaves, and draining
//! them exactly once.

use super::*;
use meanwhile_core::Notification;
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) const NOTIFICATIONS_AFTER: &str =
    crate::sql::ops::notifications::NOTIFICATIONS_AFTER.sqlite;

pub(super) fn notifications_after(
    conn: &Connection,
    session: &str,
    cursor: i64,
    limit: u32,
) -> Result<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(NOTIFICATIONS_AFTER)?;
    let rows = stmt.query_map(params![session, cursor, limit.clamp(1, 1000)], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, body) = row?;
        out.push(crate::decode::notification(seq, &body)?);
    }
    Ok(out)
}

pub(super) fn session_cursor(conn: &Connection, session: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT cursor FROM sessions WHERE name = ?1")?
        .query_row([session], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

pub(crate) fn drain_notifications(
    conn: &Connection,
    session: &str,
    limit: u32,
) -> Result<Vec<Notification>> {
    let cursor = session_cursor(conn, session)?;
    let out = notifications_after(conn, session, cursor, limit)?;
    if let Some(last) = out.last() {
        conn.prepare_cached(
            "INSERT INTO sessions (name, cursor) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor",
        )?
        .execute(params![session, last.seq])?;
    }
    Ok(out)
}

pub(crate) fn peek_notifications(
    conn: &Connection,
    session: &str,
    limit: u32,
) -> Result<Vec<Notification>> {
    let cursor = session_cursor(conn, session)?;
    notifications_after(conn, session, cursor, limit)
}

pub(crate) const NOTIFICATIONS_PENDING: &str =
    crate::sql::ops::notifications::NOTIFICATIONS_PENDING.sqlite;

pub(crate) fn notifications_pending(conn: &Connection) -> Result<Vec<(String, u64)>> {
    // One range scan of the (session, seq) index per session, from its cursor.
    let mut stmt = conn.prepare_cached(NOTIFICATIONS_PENDING)?;
    Ok(stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?
        .collect::<rusqlite::Result<_>>()?)
}
