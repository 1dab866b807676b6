//! The audit trail in SQLite: appending hash-chained records in the writing
//! transaction, listing them, verifying the chain, pruning it behind a signed
//! checkpoint, and the named API tokens (kept as hashes).
//!
//! A record's `hash` is SHA-256 over its `prev_hash` and its own columns exactly as
//! stored (each length-prefixed, so no two different rows hash the same bytes), and
//! `prev_hash` is the hash of the record before it: the first record's is 64 zeros,
//! or, once retention pruned the head of the trail, the hash of the last pruned
//! record, kept in a checkpoint signed with HMAC-SHA256 under a key the database
//! does not hold. Sequence numbers never repeat (AUTOINCREMENT), so a removed record
//! shows as a gap, and a removed tail as a trail that ends before the highest
//! number it ever reached.

use crate::{AuditKey, StoreError, StoredToken};
use hmac::{KeyInit, Mac};
use meanwhile_core::{
    Actor, AuditCheckpoint, AuditFilter, AuditPage, AuditRecord, AuditVerdict, Event, EventKind,
    TaskId, Timestamp, TokenInfo,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use sha2::{Digest, Sha256};

type Result<T> = std::result::Result<T, StoreError>;

/// The `prev_hash` of the first record of a trail that was never pruned.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Records one prune looks at, at most.
const SLICE: i64 = 10_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One record as stored, before its hash.
pub(crate) struct Row<'a> {
    pub seq: i64,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub task_id: Option<i64>,
    pub summary: &'a str,
    pub prev_hash: &'a str,
}

impl Row<'_> {
    /// SHA-256 over `prev_hash` and the columns, each prefixed with its length.
    pub(crate) fn hash(&self) -> String {
        let mut h = Sha256::new();
        let task = self.task_id.map(|t| t.to_string()).unwrap_or_default();
        for part in [
            self.prev_hash.as_bytes(),
            self.seq.to_string().as_bytes(),
            self.at.to_string().as_bytes(),
            self.actor.as_bytes(),
            self.action.as_bytes(),
            self.subject.as_bytes(),
            task.as_bytes(),
            self.summary.as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        hex(&h.finalize())
    }
}

/// The signature of a checkpoint.
fn checkpoint_mac(key: &AuditKey, seq: i64, hash: &str, at: i64) -> String {
    // A key of any length is accepted by HMAC.
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("meanwhile audit checkpoint\0{seq}\0{hash}\0{at}").as_bytes());
    hex(&mac.finalize().into_bytes())
}

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

/// The end of the chain: the last record's seq (the highest ever given, so a
/// removed tail leaves a gap) and hash.
struct Head {
    seq: i64,
    hash: String,
}

fn head(conn: &Connection) -> Result<Head> {
    let last: Option<String> = conn
        .prepare_cached("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    let hash = match last {
        Some(hash) => hash,
        None => match checkpoint(conn)? {
            Some((cp, _)) => cp.hash,
            None => GENESIS.to_string(),
        },
    };
    Ok(Head {
        seq: highest_seq(conn)?,
        hash,
    })
}

/// Appends one record after `head`, and moves `head` on to it.
#[allow(clippy::too_many_arguments)]
fn append_after(
    conn: &Connection,
    head: &mut Head,
    at: Timestamp,
    actor: &str,
    action: &str,
    subject: &str,
    task_id: Option<TaskId>,
    summary: &str,
) -> Result<()> {
    let row = Row {
        seq: head.seq + 1,
        at: at.0,
        actor,
        action,
        subject,
        task_id: task_id.map(|t| t.0),
        summary,
        prev_hash: &head.hash,
    };
    let hash = row.hash();
    conn.prepare_cached(
        "INSERT INTO audit (seq, at, actor, action, subject, task_id, summary, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        row.seq,
        row.at,
        row.actor,
        row.action,
        row.subject,
        row.task_id,
        row.summary,
        row.prev_hash,
        hash
    ])?;
    head.seq = row.seq;
    head.hash = hash;
    Ok(())
}

fn actor_text(actor: &Actor) -> Result<String> {
    serde_json::to_string(actor).map_err(|e| StoreError::Corrupt(format!("actor: {e}")))
}

/// Records the events a write committed, as made by `actor`: every one but
/// progress reports (a latest-value signal, not a change anyone made).
pub(crate) fn record_events(conn: &Connection, actor: &Actor, events: &[Event]) -> Result<()> {
    if events.iter().all(|e| e.kind == EventKind::Progress) {
        return Ok(());
    }
    let actor = actor_text(actor)?;
    // The chain's end is read once per write; its records follow each other.
    let mut end: Option<Head> = None;
    for e in events {
        for (action, subject, task, summary) in describe(e) {
            let h = match &mut end {
                Some(h) => h,
                None => end.insert(head(conn)?),
            };
            append_after(conn, h, e.at, &actor, &action, &subject, task, &summary)?;
        }
    }
    Ok(())
}

/// Records a change that has no event (a token added or removed), as made by `actor`.
pub(crate) fn record(
    conn: &Connection,
    actor: &Actor,
    action: &str,
    subject: &str,
    summary: &str,
) -> Result<()> {
    let now = super::ops::db_now(conn)?;
    append_after(
        conn,
        &mut head(conn)?,
        now,
        &actor_text(actor)?,
        action,
        subject,
        None,
        summary,
    )
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What an event records: (action, subject, task, summary), one per task it names.
fn describe(e: &Event) -> Vec<(String, String, Option<TaskId>, String)> {
    let d = &e.data;
    let task_subject = |id: Option<TaskId>| match id {
        Some(id) => format!("task {id}"),
        None => "task".to_string(),
    };
    let one = |summary: String| {
        vec![(
            e.kind.as_str().to_string(),
            task_subject(e.task_id),
            e.task_id,
            summary,
        )]
    };
    let exit = |d: &Value| {
        let mut s = String::new();
        if let Some(c) = d["exit_code"].as_i64() {
            s.push_str(&format!(", exit code {c}"));
        }
        if let Some(sig) = d["signal"].as_i64() {
            s.push_str(&format!(", signal {sig}"));
        }
        s
    };
    match e.kind {
        EventKind::Progress => Vec::new(),
        EventKind::Submitted => one(format!(
            "submitted {} task {:?} to queue {}",
            text(&d["kind"]),
            text(&d["name"]),
            text(&d["queue"])
        )),
        EventKind::Started => one(format!(
            "attempt {} started on {}",
            text(&d["attempt"]),
            text(&d["node"])
        )),
        EventKind::AttemptEnded => {
            let mut s = format!(
                "attempt {} {}{}; task now {}",
                text(&d["attempt"]),
                text(&d["outcome"]),
                exit(d),
                text(&d["state"])
            );
            if let Some(at) = d["retry_at"].as_i64() {
                s.push_str(&format!(", retry scheduled at {at}"));
            }
            one(s)
        }
        EventKind::Finished => {
            let mut s = format!("ended {}{}", text(&d["state"]), exit(d));
            if let Some(r) = d["reason"].as_str() {
                s.push_str(&format!(": {}", meanwhile_core::shorten(r, 200)));
            }
            one(s)
        }
        EventKind::StopRequested => one("stop requested".into()),
        EventKind::Retried => one(format!("put back to pending from {}", text(&d["from"]))),
        EventKind::Released => one(format!(
            "claim of attempt {} given back: it never started",
            text(&d["attempt"])
        )),
        EventKind::Removed => d["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .map(|id| {
                (
                    "removed".to_string(),
                    format!("task {id}"),
                    Some(TaskId(id)),
                    "removed with its log".to_string(),
                )
            })
            .collect(),
        EventKind::Queue => {
            let mut s = format!("max_parallel {}", text(&d["max_parallel"]));
            if d["paused"].as_bool() == Some(true) {
                s.push_str(match d["pause_reason"].as_str() {
                    Some("budget") => ", paused by its budget",
                    _ => ", paused",
                });
            }
            match d["per_key"].as_u64() {
                Some(n) => s.push_str(&format!(", per_key {n}")),
                None => s.push_str(", per_key none"),
            }
            match d["rate"].as_str() {
                Some(r) => s.push_str(&format!(", rate {r}")),
                None => s.push_str(", rate none"),
            }
            if let Some(n) = d["alert_after"].as_u64() {
                s.push_str(&format!(", alert_after {n}"));
            }
            vec![(
                "queue_set".into(),
                format!("queue {}", text(&d["name"])),
                None,
                s,
            )]
        }
        EventKind::Schedule => {
            let action = text(&d["action"]);
            let name = text(&d["schedule"]);
            let summary = match action.as_str() {
                "fired" => {
                    let mut s = match e.task_id {
                        Some(id) => format!("fired task {id}"),
                        None => "fired".to_string(),
                    };
                    if d["by_hand"].as_bool() == Some(true) {
                        s.push_str(" by hand");
                    }
                    if d["late"].as_bool() == Some(true) {
                        s.push_str(", late");
                    }
                    s
                }
                "missed" => format!("missed {} firing times", text(&d["missed"])),
                other => other.to_string(),
            };
            vec![(
                format!("schedule_{action}"),
                format!("schedule {name}"),
                e.task_id,
                summary,
            )]
        }
        EventKind::Budget => {
            let action = text(&d["action"]);
            let queue = text(&d["queue"]);
            let budget = serde_json::from_value::<meanwhile_core::BudgetInfo>(d["budget"].clone());
            let summary = match (action.as_str(), budget) {
                ("set", Ok(b)) => {
                    let alarms: Vec<String> =
                        b.spec.alarms.iter().map(|a| format!("{a}%")).collect();
                    format!(
                        "limit {} per {}, alarms {}; {} used {}",
                        b.spec.limit_text(),
                        b.spec.window,
                        if alarms.is_empty() {
                            "none".to_string()
                        } else {
                            alarms.join(",")
                        },
                        b.usage_text(),
                        b.window_text()
                    )
                }
                ("rolled", Ok(b)) => format!(
                    "a new window started at {}; usage counts from 0",
                    meanwhile_core::rfc3339_secs(b.window_start)
                ),
                ("removed", _) => "removed".to_string(),
                (other, _) => other.to_string(),
            };
            vec![(
                format!("budget_{action}"),
                format!("budget {queue}"),
                None,
                summary,
            )]
        }
        EventKind::Alert => {
            let state = text(&d["state"]);
            vec![(
                format!("alert_{state}"),
                format!("alert {}", text(&d["id"])),
                e.task_id,
                format!("{}: {}", text(&d["kind"]), text(&d["message"])),
            )]
        }
    }
}

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<AuditRecord>> {
    let actor_text: String = r.get(2)?;
    let actor = match serde_json::from_str::<Actor>(&actor_text) {
        Ok(a) => a,
        Err(e) => return Ok(Err(StoreError::Corrupt(format!("audit actor: {e}")))),
    };
    Ok(Ok(AuditRecord {
        seq: r.get(0)?,
        at: Timestamp(r.get(1)?),
        who: actor.who(),
        actor,
        action: r.get(3)?,
        subject: r.get(4)?,
        task_id: r.get::<_, Option<i64>>(5)?.map(TaskId),
        summary: r.get(6)?,
        prev_hash: r.get(7)?,
        hash: r.get(8)?,
    }))
}

const COLS: &str = "seq, at, actor, action, subject, task_id, summary, prev_hash, hash";

/// A page of records, oldest first.
pub(crate) fn list(conn: &Connection, f: &AuditFilter) -> Result<AuditPage> {
    let limit = i64::from(
        f.limit
            .unwrap_or(100)
            .clamp(1, meanwhile_core::MAX_AUDIT_LIMIT),
    );
    let after = f.after.unwrap_or(0);
    let since = f.since.map_or(i64::MIN, |t| t.0);
    let rows: Vec<Result<AuditRecord>> = match f.task {
        Some(task) => conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM audit WHERE task_id = ?1 AND seq > ?2 AND at >= ?3
                 ORDER BY seq LIMIT ?4"
            ))?
            .query_map(params![task.0, after, since, limit + 1], record_from_row)?
            .collect::<rusqlite::Result<_>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {COLS} FROM audit WHERE seq > ?1 AND at >= ?2 ORDER BY seq LIMIT ?3"
            ))?
            .query_map(params![after, since, limit + 1], record_from_row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    let mut records = rows.into_iter().collect::<Result<Vec<_>>>()?;
    let next = if records.len() as i64 > limit {
        records.truncate(limit as usize);
        records.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(AuditPage { records, next })
}

/// Checks the whole trail: the checkpoint's signature, then every record's hash and
/// its link to the one before, in order; reports the first record that fails.
pub(crate) fn verify(conn: &Connection, key: &AuditKey) -> Result<AuditVerdict> {
    let mut verdict = AuditVerdict {
        intact: true,
        records: 0,
        checkpoint: None,
        last_seq: None,
        first_bad_seq: None,
        problem: None,
    };
    let fail = |v: &mut AuditVerdict, seq: Option<i64>, problem: String| {
        v.intact = false;
        v.first_bad_seq = seq;
        v.problem = Some(problem);
    };
    let (mut prev_seq, mut prev_hash) = (0i64, GENESIS.to_string());
    if let Some((cp, mac)) = checkpoint(conn)? {
        let expected = checkpoint_mac(key, cp.seq, &cp.hash, cp.at.0);
        // Both sides are hex of a MAC: comparing in constant time tells nothing.
        if !same(expected.as_bytes(), mac.as_bytes()) {
            fail(
                &mut verdict,
                None,
                format!(
                    "the checkpoint (after record {}) does not carry a valid signature: it was forged or changed",
                    cp.seq
                ),
            );
            verdict.checkpoint = Some(cp);
            return Ok(verdict);
        }
        (prev_seq, prev_hash) = (cp.seq, cp.hash.clone());
        verdict.checkpoint = Some(cp);
    }
    let mut stmt = conn.prepare(&format!("SELECT {COLS} FROM audit ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        let actor: String = r.get(2)?;
        let action: String = r.get(3)?;
        let subject: String = r.get(4)?;
        let summary: String = r.get(6)?;
        let stored_prev: String = r.get(7)?;
        let stored_hash: String = r.get(8)?;
        let row = Row {
            seq,
            at: r.get(1)?,
            actor: &actor,
            action: &action,
            subject: &subject,
            task_id: r.get(5)?,
            summary: &summary,
            prev_hash: &stored_prev,
        };
        if seq != prev_seq + 1 {
            let missing = if seq == prev_seq + 2 {
                format!("record {} is missing", prev_seq + 1)
            } else {
                format!("records {} to {} are missing", prev_seq + 1, seq - 1)
            };
            fail(
                &mut verdict,
                Some(prev_seq + 1),
                format!("{missing}: the chain breaks before record {seq} (removed)"),
            );
            return Ok(verdict);
        }
        if row.hash() != stored_hash {
            fail(
                &mut verdict,
                Some(seq),
                format!("record {seq} was changed: its content does not match its hash"),
            );
            return Ok(verdict);
        }
        if stored_prev != prev_hash {
            // Its own hash holds, so the record before it was rewritten with a new
            // hash (or, for the first record kept, the checkpoint does not lead here).
            let (bad, problem) = if verdict.records == 0 {
                (
                    seq,
                    format!(
                        "record {seq} does not follow the start of the trail: it, or the records before it, were replaced"
                    ),
                )
            } else {
                (
                    prev_seq,
                    format!(
                        "record {prev_seq} was changed: record {seq} names another hash for it"
                    ),
                )
            };
            fail(&mut verdict, Some(bad), problem);
            return Ok(verdict);
        }
        verdict.records += 1;
        verdict.last_seq = Some(seq);
        (prev_seq, prev_hash) = (seq, stored_hash);
    }
    let highest = highest_seq(conn)?;
    if highest > prev_seq {
        fail(
            &mut verdict,
            Some(prev_seq + 1),
            format!(
                "records {} to {highest} are missing: the trail reached record {highest} and now ends at {prev_seq} (removed)",
                prev_seq + 1
            ),
        );
    }
    Ok(verdict)
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    let mac = checkpoint_mac(key, seq, &hash, now.0);
    conn.prepare_cached(
        "INSERT INTO audit_checkpoint (id, seq, hash, at, mac) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET seq = ?1, hash = ?2, at = ?3, mac = ?4",
    )?
    .execute(params![seq, hash, now.0, mac])?;
    Ok(n)
}

/// Every named token with its hash.
pub(crate) fn tokens(conn: &Connection) -> Result<Vec<StoredToken>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, hash, created_at FROM tokens ORDER BY name")?;
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
        return Err(StoreError::Conflict {
            field: "name",
            message: format!(
                "a token named {name:?} exists; remove it first ('meanwhile token rm {name}') or choose another name"
            ),
        });
    }
    record(
        conn,
        actor,
        "token_added",
        &format!("token {name}"),
        "token added",
    )?;
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
    record(
        conn,
        actor,
        "token_removed",
        &format!("token {name}"),
        "token removed: requests with it are refused from now on",
    )
}
