//! Alerts: firing one once per cause, resolving it once, listing them.

use super::*;
use crate::NewAlert;
use crate::decode::AlertColumns;
use crate::postgres::Client;
use meanwhile_core::{Alert, AlertChange, AlertKind, EventKind, TaskId, TaskState, Timestamp};
use tokio_postgres::Row;

const COLS: &str = crate::sql::ops::alerts::COLS.postgres;

fn from_row(r: &Row) -> Result<Alert> {
    AlertColumns::read(r)?.decode()
}

fn announce(tx: &mut Tx, a: &Alert, change: AlertChange, now: Timestamp) {
    tx.emit(now, EventKind::Alert, a.task, crate::alert_event(a, change));
}

pub(crate) async fn fire_alert(tx: &mut Tx, a: &NewAlert, now: Timestamp) -> Result<Option<Alert>> {
    let row = tx
        .client()
        .query_opt(
            &format!(
                "INSERT INTO alerts (kind, subject, state, message, task_id, queue, fired_at,
                                     notified_at)
                 VALUES ($1, $2, 'firing', $3, $4, $5, $6, $6)
                 ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING
                 RETURNING {COLS}"
            ),
            &[
                &a.kind.as_str(),
                &a.subject,
                &a.message,
                &a.task.map(|t| t.0),
                &a.queue,
                &now.0,
            ],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let alert = from_row(&row)?;
    announce(tx, &alert, AlertChange::Fired, now);
    Ok(Some(alert))
}

/// Resolves the firing alert of kind `$1` for subject `$2`.
pub(crate) fn resolve_sql() -> String {
    format!(
        "UPDATE alerts SET state = 'resolved', resolved_at = $3, message = $4
         WHERE kind = $1 AND subject = $2 AND state = 'firing' RETURNING {COLS}"
    )
}

pub(crate) async fn resolve_alert(
    tx: &mut Tx,
    kind: AlertKind,
    subject: &str,
    message: &str,
    now: Timestamp,
) -> Result<Option<Alert>> {
    let row = tx
        .client()
        .query_opt(
            &resolve_sql(),
            &[&kind.as_str(), &subject, &now.0, &message],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let alert = from_row(&row)?;
    announce(tx, &alert, AlertChange::Resolved, now);
    Ok(Some(alert))
}

pub(crate) async fn ack_alert(
    tx: &mut Tx,
    id: i64,
    until: Option<Timestamp>,
    by: &str,
    now: Timestamp,
) -> Result<Alert> {
    let row = tx
        .client()
        .query_opt(
            &format!(
                "UPDATE alerts SET acked_at = $2, acked_until = $3, acked_by = $4
                 WHERE id = $1 AND state = 'firing' RETURNING {COLS}"
            ),
            &[&id, &now.0, &until.map(|u| u.0), &by],
        )
        .await?;
    let Some(row) = row else {
        let found = tx
            .client()
            .query_opt(&format!("SELECT {COLS} FROM alerts WHERE id = $1"), &[&id])
            .await?
            .map(|r| from_row(&r))
            .transpose()?;
        return Err(crate::not_ackable(id, found));
    };
    let alert = from_row(&row)?;
    announce(tx, &alert, AlertChange::Acked, now);
    Ok(alert)
}

/// The firing alerts to remind the sinks of at `$1`, `$2` after they were last told.
pub(crate) fn repeat_sql() -> String {
    format!(
        "UPDATE alerts SET notified_at = $1, notices = notices + 1,
                           acked_at = NULL, acked_until = NULL, acked_by = NULL
         WHERE state = 'firing'
           AND ((acked_until IS NOT NULL AND acked_until <= $1)
             OR (acked_at IS NULL AND $2::BIGINT IS NOT NULL
                 AND COALESCE(notified_at, fired_at) + $2::BIGINT <= $1))
         RETURNING {COLS}"
    )
}

pub(crate) async fn repeat_alerts(
    tx: &mut Tx,
    every: Option<std::time::Duration>,
    now: Timestamp,
) -> Result<Vec<Alert>> {
    let every = every.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
    let rows = tx.client().query(&repeat_sql(), &[&now.0, &every]).await?;
    let mut out = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    out.sort_by_key(|a| a.id);
    for alert in &out {
        announce(tx, alert, AlertChange::Repeated, now);
    }
    Ok(out)
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
