//! The audit trail in SQLite: appending hash-chained records in the writing
//! transaction, listing them, verifying the chain, pruning it behind a signed
//! checkpoint, and the named API tokens (kept as hashes). The chain itself (what a
//! record hashes, what an event records, the verifying walk) is `crate::chain`'s.
//!
//! Sequence numbers come from AUTOINCREMENT and never repeat, so the highest one
//! ever given is `sqlite_sequence`'s.

use crate::chain::{self, AuditRow, Entry, Head, Verifier};
use crate::{AuditKey, StoreError, StoredToken};
use meanwhile_core::{Actor, AuditCheckpoint, AuditFilter, AuditPage, Event, Timestamp, TokenInfo};
use rusqlite::{Connection, OptionalExtension, params};

type Result<T> = std::result::Result<T, StoreError>;

/// Records one prune looks at, at most.
const SLICE: i64 = 10_000;

fn checkpoint(conn: &Connection) -> Result<Option<(AuditCheckpoint, String)>> {
    Ok(conn
        .prepare_cached("SELECT seq, hash, at, mac FROM audit_checkpoint WHERE id = 1")?
        .query_row([], |r| {
            Ok((
                AuditCheckpoint {
                    seq: r.get(0)?,
                    hash: r.get(1)?,
                    at: Timestamp(r.get(2)?),
                },
                r.get::<_, String>(3)?,
            ))
        })
        .optional()?)
}

/// The highest sequence number the trail ever gave out.
fn highest_seq(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn head(conn: &Connection) -> Result<Head> {
    let last: Option<String> = conn
        .prepare_cached("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    let cp = match last {
        Some(_) => None,
        None => checkpoint(conn)?.map(|(cp, _)| cp.hash),
    };
    Ok(Head::new(highest_seq(conn)?, last, cp))
}

/// Appends the entries, chained after the trail's end, as made by `actor`.
fn append(conn: &Connection, actor: &Actor, entries: Vec<Entry>) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let actor = chain::actor_text(actor)?;
    // The chain's end is read once per write; its records follow each other.
    let mut head = head(conn)?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO audit (seq, at, actor, action, subject, task_id, summary, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for entry in entries {
        let row = head.append(entry, &actor);
        stmt.execute(params![
            row.seq,
            row.at,
            row.actor,
            row.action,
            row.subject,
            row.task_id,
            row.summary,
            row.prev_hash,
            row.hash
        ])?;
    }
    Ok(())
}

/// Records the events a write committed, as made by `actor`.
pub(crate) fn record_events(conn: &Connection, actor: &Actor, events: &[Event]) -> Result<()> {
    append(conn, actor, chain::entries(events))
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        subject: r.get(4)?,
        task_id: r.get(5)?,
        summary: r.get(6)?,
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
    })
}

const COLS: &str = crate::sql::audit::COLS.sqlite;

/// A page of records in `order` (`ASC` or `DESC`): those of task `?1` after `?2`,
/// before `?5` and since `?3`, `?4` of them; without a task the same, one number
/// down.
pub(crate) fn page_sql(of_task: bool, order: &str) -> String {
    if of_task {
        format!(
            "SELECT {COLS} FROM audit
             WHERE task_id = ?1 AND seq > ?2 AND seq < ?5 AND at >= ?3
             ORDER BY seq {order} LIMIT ?4"
        )
    } else {
        format!(
            "SELECT {COLS} FROM audit WHERE seq > ?1 AND seq < ?4 AND at >= ?2
             ORDER BY seq {order} LIMIT ?3"
        )
    }
}

/// A page of records, oldest first or newest first.
pub(crate) fn list(conn: &Connection, f: &AuditFilter) -> Result<AuditPage> {
    let q = crate::decode::AuditQuery::new(f);
    let rows: Vec<AuditRow> = match f.task {
        Some(task) => conn
            .prepare_cached(&page_sql(true, q.order))?
            .query_map(
                params![task.0, q.after, q.since, q.fetch, q.before],
                audit_row,
            )?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached(&page_sql(false, q.order))?
            .query_map(params![q.after, q.since, q.fetch, q.before], audit_row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    q.page(rows)
}

/// Checks the whole trail: the checkpoint's signature, then every record's hash and
/// its link to the one before, in order; reports the first record that fails.
pub(crate) fn verify(conn: &Connection, key: &AuditKey) -> Result<meanwhile_core::AuditVerdict> {
    let mut v = Verifier::new(key, checkpoint(conn)?);
    let mut stmt = conn.prepare(&format!("SELECT {COLS} FROM audit ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    while !v.failed()
        && let Some(r) = rows.next()?
    {
        v.record(&audit_row(r)?);
    }
    Ok(v.finish(highest_seq(conn)?))
}

/// Removes the records committed before `before` from the head of the trail (one
/// bounded slice per call, stopping at the first younger record so that what stays
/// is one unbroken chain), and signs a checkpoint naming the last removed record.
/// Returns how many were removed.
pub(crate) fn prune(conn: &Connection, before: Timestamp, key: &AuditKey) -> Result<u64> {
    let mut last: Option<(i64, String)> = None;
    let mut n = 0u64;
    {
        let mut stmt =
            conn.prepare_cached("SELECT seq, at, hash FROM audit ORDER BY seq LIMIT ?1")?;
        let mut rows = stmt.query([SLICE])?;
        while let Some(r) = rows.next()? {
            let at: i64 = r.get(1)?;
            if at >= before.0 {
                break;
            }
            last = Some((r.get(0)?, r.get(2)?));
            n += 1;
        }
    }
    let Some((seq, hash)) = last else {
        return Ok(0);
    };
    conn.prepare_cached("DELETE FROM audit WHERE seq <= ?1")?
        .execute([seq])?;
    let now = super::ops::db_now(conn)?;
    let mac = chain::checkpoint_mac(key, seq, &hash, now.0);
    conn.prepare_cached(
        "INSERT INTO audit_checkpoint (id, seq, hash, at, mac) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET seq = ?1, hash = ?2, at = ?3, mac = ?4",
    )?
    .execute(params![seq, hash, now.0, mac])?;
    Ok(n)
}

pub(crate) const TOKENS: &str = crate::sql::audit::TOKENS.sqlite;

/// Every named token with its hash.
pub(crate) fn tokens(conn: &Connection) -> Result<Vec<StoredToken>> {
    let mut stmt = conn.prepare_cached(TOKENS)?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredToken {
            name: r.get(0)?,
            hash: r.get(1)?,
            created_at: Timestamp(r.get(2)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Adds a named token (its hash only), with its audit record.
pub(crate) fn add_token(
    conn: &Connection,
    actor: &Actor,
    name: &str,
    hash: &str,
    now: Timestamp,
) -> Result<TokenInfo> {
    let added = conn
        .prepare_cached(
            "INSERT INTO tokens (name, hash, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![name, hash, now.0])?;
    if added == 0 {
        return Err(chain::token_exists(name));
    }
    let at = super::ops::db_now(conn)?;
    append(conn, actor, vec![chain::token_entry(at, name, true)])?;
    Ok(TokenInfo {
        name: name.to_string(),
        created_at: Some(now),
    })
}

/// Removes a named token, with its audit record.
pub(crate) fn remove_token(conn: &Connection, actor: &Actor, name: &str) -> Result<()> {
    let removed = conn
        .prepare_cached("DELETE FROM tokens WHERE name = ?1")?
        .execute([name])?;
    if removed == 0 {
        return Err(StoreError::UnknownToken(name.to_string()));
    }
    let at = super::ops::db_now(conn)?;
    append(conn, actor, vec![chain::token_entry(at, name, false)])
}
