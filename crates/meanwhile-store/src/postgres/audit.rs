//! The audit trail in PostgreSQL: chaining records (done by the sequencer, one
//! stamp at a time, so the chain stays one chain whatever the number of nodes),
//! listing them, verifying the chain, pruning it behind a signed checkpoint,
//! and the named API tokens. The chain itself is `crate::chain`'s, shared with
//! SQLite: the hashes of a trail are the same in either store.

use super::{Tx, col};
use crate::chain::{self, AuditRow, Verifier};
use crate::postgres::Client;
use crate::{AuditKey, StoreError, StoredToken};
use meanwhile_core::{AuditCheckpoint, AuditFilter, AuditPage, AuditVerdict, Timestamp, TokenInfo};
use tokio_postgres::Row;

type Result<T> = std::result::Result<T, StoreError>;

/// Records one prune looks at, at most.
const SLICE: i64 = 10_000;

const COLS: &str = crate::sql::audit::COLS.postgres;

async fn checkpoint(c: &Client) -> Result<Option<(AuditCheckpoint, String)>> {
    let row = c
        .query_opt(
            "SELECT seq, hash, at, mac FROM audit_checkpoint WHERE id = 1",
            &[],
        )
        .await?;
    row.map(|r| {
        Ok((
            AuditCheckpoint {
                seq: col(&r, 0)?,
                hash: col(&r, 1)?,
                at: Timestamp(col(&r, 2)?),
            },
            col(&r, 3)?,
        ))
    })
    .transpose()
}

fn audit_row(r: &Row) -> Result<AuditRow> {
    Ok(AuditRow {
        seq: col(r, 0)?,
        at: col(r, 1)?,
        actor: col(r, 2)?,
        action: col(r, 3)?,
        subject: col(r, 4)?,
        task_id: col(r, 5)?,
        summary: col(r, 6)?,
        prev_hash: col(r, 7)?,
        hash: col(r, 8)?,
    })
}

/// A page of records in `order` (`ASC` or `DESC`): those of task `$1` after `$2`,
/// before `$5` and since `$3`, `$4` of them; without a task the same, one number
/// down.
pub(crate) fn page_sql(of_task: bool, order: &str) -> String {
    if of_task {
        format!(
            "SELECT {COLS} FROM audit
             WHERE task_id = $1 AND seq > $2 AND seq < $5 AND at >= $3
             ORDER BY seq {order} LIMIT $4"
        )
    } else {
        format!(
            "SELECT {COLS} FROM audit WHERE seq > $1 AND seq < $4 AND at >= $2
             ORDER BY seq {order} LIMIT $3"
        )
    }
}

/// A page of records, oldest first or newest first.
pub(crate) async fn list(c: &Client, f: &AuditFilter) -> Result<AuditPage> {
    let q = crate::decode::AuditQuery::new(f);
    let rows = match f.task {
        Some(task) => {
            c.query(
                &page_sql(true, q.order),
                &[&task.0, &q.after, &q.since, &q.fetch, &q.before],
            )
            .await?
        }
        None => {
            c.query(
                &page_sql(false, q.order),
                &[&q.after, &q.since, &q.fetch, &q.before],
            )
            .await?
        }
    };
    q.page(rows.iter().map(audit_row).collect::<Result<_>>()?)
}

/// Checks the whole trail in one snapshot: the checkpoint's signature, then every
/// record in order, then the highest number given.
pub(crate) async fn verify(tx: &mut Tx, key: &AuditKey) -> Result<AuditVerdict> {
    let c = tx.client();
    c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    let mut v = Verifier::new(key, checkpoint(c).await?);
    let mut after = i64::MIN;
    // Page by page, so a long trail is never held in memory whole.
    while !v.failed() {
        let rows = c
            .query(
                &format!("SELECT {COLS} FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after, &SLICE],
            )
            .await?;
        for r in &rows {
            let row = audit_row(r)?;
            after = row.seq;
            v.record(&row);
        }
        if (rows.len() as i64) < SLICE {
            break;
        }
    }
    let row = c
        .query_one("SELECT audit_seq FROM log_head WHERE id = 1", &[])
        .await?;
    Ok(v.finish(col(&row, 0)?))
}

/// Removes the records committed before `before` from the head of the trail (one
/// bounded slice per call), and signs a checkpoint naming the last removed record.
pub(crate) async fn prune(tx: &mut Tx, before: Timestamp, key: &AuditKey) -> Result<u64> {
    // Stamps read the trail's end under this lock too.
    super::sequencer::lock(tx.client()).await?;
    let c = tx.client();
    let rows = c
        .query(
            "SELECT seq, at, hash FROM audit ORDER BY seq LIMIT $1",
            &[&SLICE],
        )
        .await?;
    let mut last: Option<(i64, String)> = None;
    let mut n = 0u64;
    for r in &rows {
        let at: i64 = col(r, 1)?;
        if at >= before.0 {
            break;
        }
        last = Some((col(r, 0)?, col(r, 2)?));
        n += 1;
    }
    let Some((seq, hash)) = last else {
        return Ok(0);
    };
    c.execute("DELETE FROM audit WHERE seq <= $1", &[&seq])
        .await?;
    let now = super::ops::db_now(c).await?;
    let mac = chain::checkpoint_mac(key, seq, &hash, now.0);
    c.execute(
        "INSERT INTO audit_checkpoint (id, seq, hash, at, mac) VALUES (1, $1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2, at = $3, mac = $4",
        &[&seq, &hash, &now.0, &mac],
    )
    .await?;
    Ok(n)
}

pub(crate) const TOKENS: &str = crate::sql::audit::TOKENS.postgres;

/// Every named token with its hash.
pub(crate) async fn tokens(c: &Client) -> Result<Vec<StoredToken>> {
    let rows = c.query(TOKENS, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(StoredToken {
                name: col(r, 0)?,
                hash: col(r, 1)?,
                created_at: Timestamp(col(r, 2)?),
            })
        })
        .collect()
}

/// Adds a named token (its hash only), with its audit record.
pub(crate) async fn add_token(
    tx: &mut Tx,
    name: &str,
    hash: &str,
    now: Timestamp,
) -> Result<TokenInfo> {
    let added = tx
        .client()
        .execute(
            "INSERT INTO tokens (name, hash, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&name, &hash, &now.0],
        )
        .await?;
    if added == 0 {
        return Err(chain::token_exists(name));
    }
    let at = super::ops::db_now(tx.client()).await?;
    tx.record(chain::token_entry(at, name, true));
    Ok(TokenInfo {
        name: name.to_string(),
        created_at: Some(now),
    })
}

/// Removes a named token, with its audit record.
pub(crate) async fn remove_token(tx: &mut Tx, name: &str) -> Result<()> {
    let removed = tx
        .client()
        .execute("DELETE FROM tokens WHERE name = $1", &[&name])
        .await?;
    if removed == 0 {
        return Err(StoreError::UnknownToken(name.to_string()));
    }
    let at = super::ops::db_now(tx.client()).await?;
    tx.record(chain::token_entry(at, name, false));
    Ok(())
}
