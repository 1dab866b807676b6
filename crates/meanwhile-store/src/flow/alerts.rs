//! Alerts: fired once per cause, resolved once, acknowledged, repeated; each change
//! with an `alert` event for the sinks.

use super::{Db, Result};
use crate::NewAlert;
use crate::decode::AlertColumns;
use crate::sql::ops::alerts::{ACK, BY_ID, FIRE, REPEAT, RESOLVE};
use meanwhile_core::{Alert, AlertChange, AlertKind, EventKind, Timestamp};

async fn announce(db: &mut impl Db, a: &Alert, change: AlertChange, now: Timestamp) -> Result<()> {
    let data = crate::alert_event(a, change);
    db.emit(now, EventKind::Alert, a.task, data).await
}

/// Fires an alert with an `alert` event; `None` when one of its kind fires for that
/// cause already.
pub(crate) async fn fire_alert(
    db: &mut impl Db,
    a: &NewAlert,
    now: Timestamp,
) -> Result<Option<Alert>> {
    let fired = [
        a.kind.as_str().into(),
        a.subject.as_str().into(),
        a.message.as_str().into(),
        a.task.map(|t| t.0).into(),
        (&a.queue).into(),
        now.0.into(),
    ];
    let Some(alert) = db
        .query(&FIRE, &fired, |r| AlertColumns::read(r)?.decode())
        .await?
        .pop()
    else {
        return Ok(None);
    };
    announce(db, &alert, AlertChange::Fired, now).await?;
    Ok(Some(alert))
}

/// Resolves the firing alert of `kind` for `subject`, saying why; `None` when none
/// fires.
pub(crate) async fn resolve_alert(
    db: &mut impl Db,
    kind: AlertKind,
    subject: &str,
    message: &str,
    now: Timestamp,
) -> Result<Option<Alert>> {
    let resolved = [
        kind.as_str().into(),
        subject.into(),
        now.0.into(),
        message.into(),
    ];
    let Some(alert) = db
        .query(&RESOLVE, &resolved, |r| AlertColumns::read(r)?.decode())
        .await?
        .pop()
    else {
        return Ok(None);
    };
    announce(db, &alert, AlertChange::Resolved, now).await?;
    Ok(Some(alert))
}

/// Acknowledges firing alert `id` for `by` until `until` (or until it resolves).
pub(crate) async fn ack_alert(
    db: &mut impl Db,
    id: i64,
    until: Option<Timestamp>,
    by: &str,
    now: Timestamp,
) -> Result<Alert> {
    let acked = [
        id.into(),
        now.0.into(),
        until.map(|u| u.0).into(),
        by.into(),
    ];
    let Some(alert) = db
        .query(&ACK, &acked, |r| AlertColumns::read(r)?.decode())
        .await?
        .pop()
    else {
        let found = db
            .query(&BY_ID, &[id.into()], |r| AlertColumns::read(r)?.decode())
            .await?
            .pop();
        return Err(crate::not_ackable(id, found));
    };
    announce(db, &alert, AlertChange::Acked, now).await?;
    Ok(alert)
}

/// Reminds the sinks of firing alerts (see `AlertStore::repeat_alerts`), oldest
/// first.
pub(crate) async fn repeat_alerts(
    db: &mut impl Db,
    every: Option<std::time::Duration>,
    now: Timestamp,
) -> Result<Vec<Alert>> {
    let every = every.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
    let mut out = db
        .query(&REPEAT, &[now.0.into(), every.into()], |r| {
            AlertColumns::read(r)?.decode()
        })
        .await?;
    out.sort_by_key(|a| a.id);
    for alert in &out {
        announce(db, alert, AlertChange::Repeated, now).await?;
    }
    Ok(out)
}
