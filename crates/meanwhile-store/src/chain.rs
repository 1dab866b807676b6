//! The audit trail's hash chain, the same for every store: what a record hashes,
//! what an event records, how a checkpoint is signed, and the walk that verifies a
//! trail. A store only reads and writes the rows.
//!
//! A record's `hash` is SHA-256 over its `prev_hash` and its own columns exactly as
//! stored (each length-prefixed, so no two different rows hash the same bytes), and
//! `prev_hash` is the hash of the record before it: the first record's is 64 zeros,
//! or, once retention pruned the head of the trail, the hash of the last pruned
//! record, kept in a checkpoint signed with HMAC-SHA256 under a key the database
//! does not hold. Sequence numbers never repeat, so a removed record shows as a gap,
//! and a removed tail as a trail that ends before the highest number it ever reached.

use crate::{AuditKey, StoreError};
use hmac::{KeyInit, Mac};
use meanwhile_core::{
    Actor, AuditCheckpoint, AuditRecord, AuditVerdict, Event, EventKind, TaskId, Timestamp,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record of a trail that was never pruned.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// One record as stored, columns in the order every store selects them
/// (`seq, at, actor, action, subject, task_id, summary, prev_hash, hash`).
#[derive(Debug, Clone)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub task_id: Option<i64>,
    pub summary: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// SHA-256 over `prev_hash` and the columns, each prefixed with its length: the
    /// hash the record should carry.
    pub(crate) fn expected_hash(&self) -> String {
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

    /// The record as listed.
    pub(crate) fn into_record(self) -> Result<AuditRecord, StoreError> {
        let actor = serde_json::from_str::<Actor>(&self.actor)
            .map_err(|e| StoreError::Corrupt(format!("audit actor: {e}")))?;
        Ok(AuditRecord {
            seq: self.seq,
            at: Timestamp(self.at),
            who: actor.who(),
            actor,
            action: self.action,
            subject: self.subject,
            task_id: self.task_id.map(TaskId),
            summary: self.summary,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// The end of the chain that the next record follows: the highest seq ever given
/// (so a removed tail leaves a gap) and the last record's hash.
pub(crate) struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    /// The head from what the store holds: the last record's hash, else the
    /// checkpoint's, else the genesis.
    pub(crate) fn new(
        seq: i64,
        last_hash: Option<String>,
        checkpoint_hash: Option<String>,
    ) -> Head {
        let hash = last_hash
            .or(checkpoint_hash)
            .unwrap_or_else(|| GENESIS.to_string());
        Head { seq, hash }
    }

    /// The record that follows the head, hashed; the head moves on to it.
    pub(crate) fn append(&mut self, entry: Entry, actor: &str) -> AuditRow {
        let mut row = AuditRow {
            seq: self.seq + 1,
            at: entry.at.0,
            actor: actor.to_string(),
            action: entry.action,
            subject: entry.subject,
            task_id: entry.task.map(|t| t.0),
            summary: entry.summary,
            prev_hash: std::mem::take(&mut self.hash),
            hash: String::new(),
        };
        row.hash = row.expected_hash();
        self.seq = row.seq;
        self.hash = row.hash.clone();
        row
    }
}

/// A change to record, before it is chained.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub at: Timestamp,
    pub action: String,
    pub subject: String,
    pub task: Option<TaskId>,
    pub summary: String,
}

/// The actor as stored.
pub(crate) fn actor_text(actor: &Actor) -> Result<String, StoreError> {
    serde_json::to_string(actor).map_err(|e| StoreError::Corrupt(format!("actor: {e}")))
}

/// The signature of a checkpoint.
pub(crate) fn checkpoint_mac(key: &AuditKey, seq: i64, hash: &str, at: i64) -> String {
    // A key of any length is accepted by HMAC.
    let mut mac =
        hmac::Hmac::<Sha256>::new_from_slice(key.bytes()).expect("HMAC takes a key of any length");
    mac.update(format!("meanwhile audit checkpoint\0{seq}\0{hash}\0{at}").as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What a write's events record: one entry per task an event names; progress
/// reports record nothing (a latest-value signal, not a change anyone made).
pub(crate) fn entries(events: &[Event]) -> Vec<Entry> {
    let mut out = Vec::with_capacity(events.len());
    let mut i = 0;
    while i < events.len() {
        // An attempt's end that ends its task, and the task's end: one record
        // ("finished", the attempt's outcome and the task's), not two.
        if let [ended, finished, ..] = &events[i..]
            && ended.kind == EventKind::AttemptEnded
            && finished.kind == EventKind::Finished
            && ended.task_id.is_some()
            && ended.task_id == finished.task_id
            && ended.data["retry_at"].is_null()
            && let Some(end) = describe(finished).into_iter().next()
        {
            // `attempt 1 exited; ended succeeded, exit code 0`.
            let attempt = format!(
                "attempt {} {}",
                text(&ended.data["attempt"]),
                text(&ended.data["outcome"])
            );
            out.push(Entry {
                summary: format!("{attempt}; {}", end.summary),
                ..end
            });
            i += 2;
            continue;
        }
        out.extend(describe(&events[i]));
        i += 1;
    }
    out
}

/// What an event records, one entry per task it names.
fn describe(e: &Event) -> Vec<Entry> {
    let d = &e.data;
    let entry = |action: String, subject: String, task: Option<TaskId>, summary: String| Entry {
        at: e.at,
        action,
        subject,
        task,
        summary,
    };
    let task_subject = |id: Option<TaskId>| match id {
        Some(id) => format!("task {id}"),
        None => "task".to_string(),
    };
    let one = |summary: String| {
        vec![entry(
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
        // Observations of a running task, not changes anyone made.
        EventKind::Progress | EventKind::WaitingForInput | EventKind::Listening => Vec::new(),
        EventKind::Submitted => one(format!(
            "submitted {} task {:?} to queue {}",
            text(&d["kind"]),
            text(&d["name"]),
            text(&d["queue"])
        )),
        EventKind::Started => match d["taken_over_from"].as_str() {
            Some(from) => one(format!(
                "attempt {} taken over by {} from {from}",
                text(&d["attempt"]),
                text(&d["node"])
            )),
            None => one(format!(
                "attempt {} started on {}",
                text(&d["attempt"]),
                text(&d["node"])
            )),
        },
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
                entry(
                    "removed".to_string(),
                    format!("task {id}"),
                    Some(TaskId(id)),
                    "removed with its log".to_string(),
                )
            })
            .collect(),
        EventKind::Queue if d["removed"].as_bool() == Some(true) => vec![entry(
            "queue_removed".into(),
            format!("queue {}", text(&d["name"])),
            None,
            "removed".into(),
        )],
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
            vec![entry(
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
            vec![entry(
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
            vec![entry(
                format!("budget_{action}"),
                format!("budget {queue}"),
                None,
                summary,
            )]
        }
        EventKind::Alert => {
            let what = format!("{}: {}", text(&d["kind"]), text(&d["message"]));
            let (action, summary) = match d["change"].as_str() {
                // A reminder changes nothing a person did or must answer for.
                Some("repeated") => return Vec::new(),
                Some("acked") => (
                    "alert_acked".to_string(),
                    format!(
                        "{what}; acknowledged {}",
                        match d["acked"]["until"].as_i64() {
                            Some(u) =>
                                format!("until {}", meanwhile_core::rfc3339_secs(Timestamp(u))),
                            None => "until it resolves".to_string(),
                        }
                    ),
                ),
                _ => (format!("alert_{}", text(&d["state"])), what),
            };
            vec![entry(
                action,
                format!("alert {}", text(&d["id"])),
                e.task_id,
                summary,
            )]
        }
    }
}

/// What adding or removing a named token records.
pub(crate) fn token_entry(at: Timestamp, name: &str, added: bool) -> Entry {
    let (action, summary) = if added {
        ("token_added", "token added")
    } else {
        (
            "token_removed",
            "token removed: requests with it are refused from now on",
        )
    };
    Entry {
        at,
        action: action.into(),
        subject: format!("token {name}"),
        task: None,
        summary: summary.into(),
    }
}

/// The error of adding a token under a name in use.
pub(crate) fn token_exists(name: &str) -> StoreError {
    StoreError::Conflict {
        field: "name",
        message: format!(
            "a token named {name:?} exists; remove it first ('meanwhile token rm {name}') or choose another name"
        ),
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// The walk that verifies a trail: fed the checkpoint, then every record in order,
/// then the highest number the trail ever reached; names the first record that
/// fails. A store reads all three in one snapshot.
pub(crate) struct Verifier {
    verdict: AuditVerdict,
    prev_seq: i64,
    prev_hash: String,
}

impl Verifier {
    /// Starts from the checkpoint (and its stored signature), checked with `key`.
    pub(crate) fn new(key: &AuditKey, checkpoint: Option<(AuditCheckpoint, String)>) -> Verifier {
        let mut v = Verifier {
            verdict: AuditVerdict {
                intact: true,
                records: 0,
                checkpoint: None,
                last_seq: None,
                first_bad_seq: None,
                problem: None,
            },
            prev_seq: 0,
            prev_hash: GENESIS.to_string(),
        };
        if let Some((cp, mac)) = checkpoint {
            let expected = checkpoint_mac(key, cp.seq, &cp.hash, cp.at.0);
            // Both sides are hex of a MAC: comparing in constant time tells nothing.
            if !same(expected.as_bytes(), mac.as_bytes()) {
                v.fail(
                    None,
                    format!(
                        "the checkpoint (after record {}) does not carry a valid signature: it was forged or changed",
                        cp.seq
                    ),
                );
            } else {
                (v.prev_seq, v.prev_hash) = (cp.seq, cp.hash.clone());
            }
            v.verdict.checkpoint = Some(cp);
        }
        v
    }

    fn fail(&mut self, seq: Option<i64>, problem: String) {
        self.verdict.intact = false;
        self.verdict.first_bad_seq = seq;
        self.verdict.problem = Some(problem);
    }

    /// Whether a failure was found: the walk may stop.
    pub(crate) fn failed(&self) -> bool {
        !self.verdict.intact
    }

    /// Checks the next record.
    pub(crate) fn record(&mut self, row: &AuditRow) {
        if self.failed() {
            return;
        }
        let (seq, prev_seq) = (row.seq, self.prev_seq);
        if seq != prev_seq + 1 {
            let missing = if seq == prev_seq + 2 {
                format!("record {} is missing", prev_seq + 1)
            } else {
                format!("records {} to {} are missing", prev_seq + 1, seq - 1)
            };
            self.fail(
                Some(prev_seq + 1),
                format!("{missing}: the chain breaks before record {seq} (removed)"),
            );
            return;
        }
        if row.expected_hash() != row.hash {
            self.fail(
                Some(seq),
                format!("record {seq} was changed: its content does not match its hash"),
            );
            return;
        }
        if row.prev_hash != self.prev_hash {
            // Its own hash holds, so the record before it was rewritten with a new
            // hash (or, for the first record kept, the checkpoint does not lead here).
            let (bad, problem) = if self.verdict.records == 0 {
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
            self.fail(Some(bad), problem);
            return;
        }
        self.verdict.records += 1;
        self.verdict.last_seq = Some(seq);
        (self.prev_seq, self.prev_hash) = (seq, row.hash.clone());
    }

    /// The verdict, given the highest number the trail ever gave out.
    pub(crate) fn finish(mut self, highest: i64) -> AuditVerdict {
        let prev_seq = self.prev_seq;
        if !self.failed() && highest > prev_seq {
            self.fail(
                Some(prev_seq + 1),
                format!(
                    "records {} to {highest} are missing: the trail reached record {highest} and now ends at {prev_seq} (removed)",
                    prev_seq + 1
                ),
            );
        }
        self.verdict
    }
}
