//! The sequencer: puts what writes append to the shared logs (events,
//! notifications, the audit chain) in one order, without writes waiting for each
//! other.
//!
//! A write buffers its appends (see [`super::Tx`]) and, as the last thing before its
//! commit, takes the sequencing lock in *shared* mode and its place in line, `ord`,
//! from the `log_order` sequence; it puts the appends into the inboxes
//! (`events_inbox`, `notices_inbox`, `audit_inbox`) under that `ord`, and commits.
//! Any number of writes hold the shared lock at once, so writes commit (and flush
//! to disk) side by side.
//!
//! A stamp takes the same lock in *exclusive* mode, which waits for every write
//! between taking its `ord` and the end of its commit. Once it holds the lock every
//! `ord` given so far belongs to a committed write (visible) or a rolled-back one
//! (gone), and no write can take an `ord` until the stamp commits. So the stamp
//! moves every row of the inboxes, in (`ord`, `id`) order: events get the next
//! `seq` numbers (from `log_head`, gap-free), notifications the next numbers of
//! their sequence, and audit entries are chained onto the last record. Each stamp
//! covers one unbroken range of `ord`, after the previous stamp's, so:
//!
//! - a reader that has seen `seq` N never later finds a new event below N;
//! - a write that saw another's result took its `ord` after that one committed, so
//!   its events come after the other's;
//! - a rollback takes no number, so the log has no gaps.
//!
//! A write returns only after a stamp that began after its commit has ended, so
//! what it appended is in the logs (a task's notice can be drained) when its caller
//! hears of it. Writes of one node that end while a stamp runs share the next one
//! ([`Stamper`]); a node's follower stamps on its safety poll too, which moves
//! what a node that died between its commit and its stamp left in the inboxes.

use super::{Client, col, describe_error};
use crate::StoreError;
use crate::chain::{AuditRow, Entry, Head};
use meanwhile_core::{Event, TaskId, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Mutex;

type Result<T> = std::result::Result<T, StoreError>;

/// The advisory lock key of sequencing ("mw-order" in ASCII).
pub(crate) const LOCK: i64 = 0x6d77_2d6f_7264_6572;

/// Rows one stamp's transaction moves from each inbox at most; a stamp that found
/// more runs another, until the inboxes held less than this.
const BATCH: i64 = 10_000;

/// A write's appends, as they go into the inboxes.
#[derive(Default)]
pub(crate) struct Appends {
    pub events: Vec<Event>,
    /// Session, task, body.
    pub notices: Vec<(String, i64, String)>,
    /// Each entry with its actor's text.
    pub audit: Vec<(Entry, String)>,
}

impl Appends {
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.notices.is_empty() && self.audit.is_empty()
    }
}

/// Takes the write's place in line (under the shared lock, held to its commit) and
/// puts its appends into the inboxes, in one statement.
pub(crate) async fn enqueue(c: &Client, a: &Appends) -> Result<()> {
    let e_at: Vec<i64> = a.events.iter().map(|e| e.at.0).collect();
    let e_kind: Vec<&str> = a.events.iter().map(|e| e.kind.as_str()).collect();
    let e_task: Vec<Option<i64>> = a.events.iter().map(|e| e.task_id.map(|t| t.0)).collect();
    let e_data: Vec<String> = a.events.iter().map(|e| e.data.to_string()).collect();
    let n_session: Vec<&str> = a.notices.iter().map(|n| n.0.as_str()).collect();
    let n_task: Vec<i64> = a.notices.iter().map(|n| n.1).collect();
    let n_body: Vec<&str> = a.notices.iter().map(|n| n.2.as_str()).collect();
    let a_at: Vec<i64> = a.audit.iter().map(|(e, _)| e.at.0).collect();
    let a_actor: Vec<&str> = a.audit.iter().map(|(_, a)| a.as_str()).collect();
    let a_action: Vec<&str> = a.audit.iter().map(|(e, _)| e.action.as_str()).collect();
    let a_subject: Vec<&str> = a.audit.iter().map(|(e, _)| e.subject.as_str()).collect();
    let a_task: Vec<Option<i64>> = a.audit.iter().map(|(e, _)| e.task.map(|t| t.0)).collect();
    let a_summary: Vec<&str> = a.audit.iter().map(|(e, _)| e.summary.as_str()).collect();
    c.query_one(
        "WITH o AS MATERIALIZED (
             SELECT nextval('log_order') AS ord
             FROM (SELECT pg_advisory_xact_lock_shared($1)::TEXT) AS locked),
         e AS (INSERT INTO events_inbox (ord, at, kind, task_id, data)
             SELECT o.ord, u.at, u.kind, u.task_id, u.data
             FROM o, unnest($2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[])
                 WITH ORDINALITY AS u(at, kind, task_id, data, i)
             ORDER BY u.i),
         n AS (INSERT INTO notices_inbox (ord, session, task_id, body)
             SELECT o.ord, u.session, u.task_id, u.body
             FROM o, unnest($6::TEXT[], $7::BIGINT[], $8::TEXT[])
                 WITH ORDINALITY AS u(session, task_id, body, i)
             ORDER BY u.i),
         a AS (INSERT INTO audit_inbox (ord, at, actor, action, subject, task_id, summary)
             SELECT o.ord, u.at, u.actor, u.action, u.subject, u.task_id, u.summary
             FROM o, unnest($9::BIGINT[], $10::TEXT[], $11::TEXT[], $12::TEXT[],
                            $13::BIGINT[], $14::TEXT[])
                 WITH ORDINALITY AS u(at, actor, action, subject, task_id, summary, i)
             ORDER BY u.i)
         SELECT ord FROM o",
        &[
            &LOCK, &e_at, &e_kind, &e_task, &e_data, &n_session, &n_task, &n_body, &a_at, &a_actor,
            &a_action, &a_subject, &a_task, &a_summary,
        ],
    )
    .await?;
    Ok(())
}

/// Takes the sequencing lock in exclusive mode and `log_head`'s row (held to the
/// commit): no write takes a place in line, and no write of an older version
/// appends, until the caller's transaction ends.
pub(crate) async fn lock(c: &Client) -> Result<()> {
    c.query(LOCK_SQL, &[&LOCK]).await?;
    c.query_one(HEAD, &[]).await?;
    Ok(())
}

/// Numbers the events waiting, moves them into the log and answers their new rows.
const MOVE_EVENTS: &str = "WITH moved AS (
         DELETE FROM events_inbox WHERE id IN
             (SELECT id FROM events_inbox ORDER BY ord, id LIMIT $1)
         RETURNING ord, id, at, kind, task_id, data),
     ins AS (
         INSERT INTO events (seq, at, kind, task_id, data)
         SELECT (SELECT events_seq FROM log_head WHERE id = 1)
                    + row_number() OVER (ORDER BY ord, id),
                at, kind, task_id, data
         FROM moved
         RETURNING seq, at, kind, task_id, data),
     bump AS (
         UPDATE log_head SET events_seq = events_seq + (SELECT count(*) FROM ins)
         WHERE id = 1 AND EXISTS (SELECT 1 FROM ins))
     SELECT seq, at, kind, task_id, data FROM ins ORDER BY seq";

/// Moves the notifications waiting, which take their numbers in line order.
const MOVE_NOTICES: &str = "WITH moved AS (
         DELETE FROM notices_inbox WHERE id IN
             (SELECT id FROM notices_inbox ORDER BY ord, id LIMIT $1)
         RETURNING ord, id, session, task_id, body)
     INSERT INTO notifications (session, task_id, body)
     SELECT session, task_id, body FROM moved ORDER BY ord, id";

const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)::TEXT";
const HEAD: &str = "SELECT audit_seq FROM log_head WHERE id = 1 FOR UPDATE";
const AUDIT_WAITING: &str = "SELECT id, at, actor, action, subject, task_id, summary
     FROM audit_inbox ORDER BY ord, id LIMIT $1";
const LAST_HASH: &str = "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1";
const CHECKPOINT_HASH: &str = "SELECT hash FROM audit_checkpoint WHERE id = 1";
const AUDIT_MOVED: &str = "DELETE FROM audit_inbox WHERE id = ANY($1)";
const AUDIT_HEAD: &str = "UPDATE log_head SET audit_seq = $1 WHERE id = 1";

/// Moves what the inboxes hold into the logs, [`BATCH`] rows of each at most per
/// transaction of its own on `c`, until a transaction finds fewer (a backlog, left
/// by a node that died between its commits and its stamps, is moved whole, so the
/// writes waiting on this stamp are in the logs when it returns); returns the events
/// it numbered, in order.
async fn stamp(c: &Client) -> Result<Vec<Event>> {
    let mut numbered = Vec::new();
    loop {
        match stamp_in(c).await {
            Ok((events, more)) => {
                numbered.extend(events);
                if !more {
                    return Ok(numbered);
                }
            }
            Err(e) => {
                if let Err(r) = c.batch_execute("ROLLBACK").await {
                    tracing::warn!("rolling a stamp back failed: {}", describe_error(&r));
                }
                // What earlier transactions numbered is read by the follower.
                return Err(e);
            }
        }
    }
}

/// A stamp's transaction in two round trips: the statements are prepared first (once
/// per connection), then sent pipelined, in order. Answers the events it numbered,
/// and whether an inbox may hold more (it moved a whole batch of one).
async fn stamp_in(c: &Client) -> Result<(Vec<Event>, bool)> {
    let lock = c.prepared(LOCK_SQL).await?;
    let head = c.prepared(HEAD).await?;
    let move_events = c.prepared(MOVE_EVENTS).await?;
    let move_notices = c.prepared(MOVE_NOTICES).await?;
    let waiting = c.prepared(AUDIT_WAITING).await?;
    let last_hash = c.prepared(LAST_HASH).await?;
    let checkpoint_hash = c.prepared(CHECKPOINT_HASH).await?;
    let d = c.driver();
    let (_, _, head, events, notices, waiting, last_hash, checkpoint_hash) = tokio::try_join!(
        d.batch_execute("BEGIN"),
        d.query(&lock, &[&LOCK]),
        d.query_one(&head, &[]),
        d.query(&move_events, &[&BATCH]),
        d.execute(&move_notices, &[&BATCH]),
        d.query(&waiting, &[&BATCH]),
        d.query_opt(&last_hash, &[]),
        d.query_opt(&checkpoint_hash, &[]),
    )?;
    let full = |n: usize| n as i64 >= BATCH;
    let more = full(events.len()) || full(notices as usize) || full(waiting.len());
    let events = events
        .iter()
        .map(super::ops::event_row)
        .collect::<Result<Vec<Event>>>()?;
    let notify = if events.is_empty() {
        "COMMIT".to_string()
    } else {
        // Delivered to every node's follower when, and only if, this commits.
        format!("NOTIFY {}; COMMIT", super::follow::CHANNEL)
    };
    if waiting.is_empty() {
        d.batch_execute(&notify).await?;
        return Ok((events, more));
    }
    let last = last_hash.map(|r| col::<String>(&r, 0)).transpose()?;
    let cp = checkpoint_hash.map(|r| col::<String>(&r, 0)).transpose()?;
    let mut chain = Head::new(col(&head, 0)?, last, cp);
    let mut ids: Vec<i64> = Vec::with_capacity(waiting.len());
    let mut chained: Vec<AuditRow> = Vec::with_capacity(waiting.len());
    for r in &waiting {
        ids.push(col(r, 0)?);
        let entry = Entry {
            at: Timestamp(col(r, 1)?),
            action: col(r, 3)?,
            subject: col(r, 4)?,
            task: col::<Option<i64>>(r, 5)?.map(TaskId),
            summary: col(r, 6)?,
        };
        chained.push(chain.append(entry, &col::<String>(r, 2)?));
    }
    let insert = c.prepared(AUDIT_INSERT).await?;
    let moved = c.prepared(AUDIT_MOVED).await?;
    let audit_head = c.prepared(AUDIT_HEAD).await?;
    let rows = Columns::of(&chained);
    let (rows, ids, seq) = (rows.params(), [&ids as _], [&chain.seq as _]);
    tokio::try_join!(
        d.execute(&insert, &rows),
        d.execute(&moved, &ids),
        d.execute(&audit_head, &seq),
        d.batch_execute(&notify),
    )?;
    Ok((events, more))
}

/// Inserts chained records, in one statement (parameters from [`Columns`]).
const AUDIT_INSERT: &str =
    "INSERT INTO audit (seq, at, actor, action, subject, task_id, summary, prev_hash, hash)
     SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                          $6::BIGINT[], $7::TEXT[], $8::TEXT[], $9::TEXT[])";

/// Chained records, column by column, as [`AUDIT_INSERT`] takes them.
struct Columns<'a> {
    seq: Vec<i64>,
    at: Vec<i64>,
    actor: Vec<&'a str>,
    action: Vec<&'a str>,
    subject: Vec<&'a str>,
    task: Vec<Option<i64>>,
    summary: Vec<&'a str>,
    prev: Vec<&'a str>,
    hash: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(rows: &'a [AuditRow]) -> Columns<'a> {
        Columns {
            seq: rows.iter().map(|r| r.seq).collect(),
            at: rows.iter().map(|r| r.at).collect(),
            actor: rows.iter().map(|r| r.actor.as_str()).collect(),
            action: rows.iter().map(|r| r.action.as_str()).collect(),
            subject: rows.iter().map(|r| r.subject.as_str()).collect(),
            task: rows.iter().map(|r| r.task_id).collect(),
            summary: rows.iter().map(|r| r.summary.as_str()).collect(),
            prev: rows.iter().map(|r| r.prev_hash.as_str()).collect(),
            hash: rows.iter().map(|r| r.hash.as_str()).collect(),
        }
    }

    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 9] {
        [
            &self.seq,
            &self.at,
            &self.actor,
            &self.action,
            &self.subject,
            &self.task,
            &self.summary,
            &self.prev,
            &self.hash,
        ]
    }
}

/// Runs stamps for the writes of one store, one at a time, and lets the writes that
/// ended while one ran share the next.
pub(crate) struct Stamper {
    /// Stamps begun so far; the one begun `n`th has number `n`.
    begun: AtomicU64,
    /// The number of the last stamp that ended (whether it moved anything).
    ended: Mutex<u64>,
    /// The stamps that failed, reported as the loop `sequencer`.
    pub(crate) health: crate::health::LoopMeter,
}

impl Default for Stamper {
    fn default() -> Stamper {
        Stamper {
            begun: AtomicU64::new(0),
            ended: Mutex::new(0),
            health: crate::health::LoopMeter::new("sequencer"),
        }
    }
}

impl Stamper {
    /// Returns once a stamp that began after this call has ended; runs it on `c`
    /// unless another caller's does. The events it numbered are handed to
    /// `publish`.
    pub(crate) async fn after_commit(
        &self,
        c: &Client,
        publish: impl Fn(Vec<Event>),
    ) -> Result<()> {
        let before = self.begun.load(Ordering::SeqCst);
        let mut ended = self.ended.lock().await;
        if *ended > before {
            return Ok(());
        }
        let n = self.begun.fetch_add(1, Ordering::SeqCst) + 1;
        let stamped = stamp(c).await;
        self.health.record(
            stamped
                .as_ref()
                .map(|_| ())
                .map_err(|e| format!("numbering the logs' new entries: {e}")),
            false,
        );
        let events = stamped?;
        // Published before the next stamp can run, so in order.
        publish(events);
        *ended = n;
        Ok(())
    }
}
