//! The event log: reading it back, and the cursors of its readers. Appending is
//! [`Tx::emit`]'s, numbered by the sequencer after the commit.

use super::*;
use crate::postgres::Client;
use meanwhile_core::{Event, EventKind, TaskId, Timestamp};
use tokio_postgres::Row;

pub(crate) const EVENTS_AFTER: &str = crate::sql::ops::events::EVENTS_AFTER.postgres;

pub(crate) async fn events_after(c: &Client, seq: i64, limit: u32) -> Result<Vec<Event>> {
    let rows = c
        .query(EVENTS_AFTER, &[&seq, &i64::from(limit.clamp(1, 10_000))])
        .await?;
    rows.iter().map(event_row).collect()
}

/// An event from a row of `seq, at, kind, task_id, data`.
pub(crate) fn event_row(r: &Row) -> Result<Event> {
    let kind: String = col(r, 2)?;
    let data: String = col(r, 4)?;
    Ok(Event {
        seq: col(r, 0)?,
        at: Timestamp(col(r, 1)?),
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?,
        task_id: col::<Option<i64>>(r, 3)?.map(TaskId),
        data: serde_json::from_str(&data).map_err(|e| corrupt("event data", e))?,
    })
}

/// Where the reader `name` of the event log is: the seq of the last event it is done
/// with. The first time, the log's end (a new reader does not replay history).
pub(crate) async fn reader_cursor(tx: &mut Tx, name: &str) -> Result<i64> {
    exec(
        tx,
        "INSERT INTO cursors (name, seq) SELECT $1, events_seq FROM log_head WHERE id = 1
         ON CONFLICT (name) DO NOTHING",
        &[&name],
    )
    .await?;
    let row = tx
        .client()
        .query_one("SELECT seq FROM cursors WHERE name = $1", &[&name])
        .await?;
    col(&row, 0)
}

/// Moves the reader `name` on to `seq`.
pub(crate) async fn set_reader_cursor(tx: &mut Tx, name: &str, seq: i64) -> Result<()> {
    exec(
        tx,
        "INSERT INTO cursors (name, seq) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
        &[&name, &seq],
    )
    .await?;
    Ok(())
}
