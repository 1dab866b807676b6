//! The SQL behind each store operation. Writers run inside the writer thread's
//! transaction; every state change goes through `meanwhile_core::transition`.

use crate::{
    AttemptEnd, Claim, ClaimRequest, Claimed, CleanRequest, Finished, ListFilter, NewTask, Page,
    StopOutcome, StoreError, Submitted,
};
use meanwhile_core::{
    Attempt, AttemptOutcome, Event, EventKind, Notification, Progress, QueueInfo, TaskId, TaskKind,
    TaskRecord, TaskSpec, TaskState, Timestamp, Transition, transition,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::json;
use std::collections::HashMap;

type Result<T> = std::result::Result<T, StoreError>;

const TASK_COLS: &str = "id, kind, name, state, queue, priority, labels, session, spec, \
    created_at, run_after, started_at, finished_at, attempts, exit_code, signal, reason, \
    progress, result, node, stop_requested";

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

fn task_from_row(r: &Row<'_>) -> rusqlite::Result<std::result::Result<TaskRecord, StoreError>> {
    let kind: String = r.get(1)?;
    let state: String = r.get(3)?;
    let labels: String = r.get(6)?;
    let spec: String = r.get(8)?;
    let progress: Option<String> = r.get(17)?;
    let id = TaskId(r.get(0)?);
    let build = || -> Result<TaskRecord> {
        Ok(TaskRecord {
            id,
            kind: TaskKind::parse(&kind).ok_or_else(|| corrupt("task kind", &kind))?,
            name: r.get(2)?,
            state: TaskState::parse(&state).ok_or_else(|| corrupt("task state", &state))?,
            queue: r.get(4)?,
            priority: r.get(5)?,
            labels: serde_json::from_str(&labels).map_err(|e| corrupt("labels", e))?,
            session: r.get(7)?,
            spec: serde_json::from_str::<TaskSpec>(&spec).map_err(|e| corrupt("spec", e))?,
            created_at: Timestamp(r.get(9)?),
            run_after: r.get::<_, Option<i64>>(10)?.map(Timestamp),
            started_at: r.get::<_, Option<i64>>(11)?.map(Timestamp),
            finished_at: r.get::<_, Option<i64>>(12)?.map(Timestamp),
            attempts: r.get::<_, i64>(13)? as u32,
            exit_code: r.get(14)?,
            signal: r.get(15)?,
            reason: r.get(16)?,
            progress: match progress {
                Some(p) => Some(serde_json::from_str(&p).map_err(|e| corrupt("progress", e))?),
                None => None,
            },
            result: r.get(18)?,
            node: r.get(19)?,
            stop_requested: r.get::<_, i64>(20)? != 0,
        })
    };
    Ok(build())
}

pub(crate) fn load_task(conn: &Connection, id: TaskId) -> Result<TaskRecord> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {TASK_COLS} FROM tasks WHERE id = ?1"))?;
    stmt.query_row([id.0], task_from_row)
        .optional()?
        .ok_or(StoreError::UnknownTask(id))?
}

fn emit(
    conn: &Connection,
    events: &mut Vec<Event>,
    at: Timestamp,
    kind: EventKind,
    task_id: Option<TaskId>,
    data: serde_json::Value,
) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO events (at, kind, task_id, data) VALUES (?1, ?2, ?3, ?4)")?;
    stmt.execute(params![
        at.0,
        kind.as_str(),
        task_id.map(|t| t.0),
        data.to_string()
    ])?;
    events.push(Event {
        seq: conn.last_insert_rowid(),
        at,
        kind,
        task_id,
        data,
    });
    Ok(())
}

/// The time, for writes whose callers do not pass one (removal, queue changes).
fn db_now(conn: &Connection) -> Result<Timestamp> {
    Ok(Timestamp(conn.query_row(
        "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        [],
        |r| r.get(0),
    )?))
}

fn bump(conn: &Connection, queue: &str, state: TaskState, delta: i64) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO counts (queue, state, n) VALUES (?1, ?2, ?3)
         ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n",
    )?;
    stmt.execute(params![queue, state.as_str(), delta])?;
    Ok(())
}

/// Moves the state counters of one task from `from` to `to`.
fn count_move(conn: &Connection, queue: &str, from: TaskState, to: TaskState) -> Result<()> {
    if from != to {
        bump(conn, queue, from, -1)?;
        bump(conn, queue, to, 1)?;
    }
    Ok(())
}

fn ensure_queue(conn: &Connection, queue: &str) -> Result<()> {
    // A queue first named by a task starts with the default queue's limit.
    let mut stmt = conn.prepare_cached(
        "INSERT OR IGNORE INTO queues (name, max_parallel, paused)
         SELECT ?1, max_parallel, 0 FROM queues WHERE name = 'default'",
    )?;
    stmt.execute([queue])?;
    Ok(())
}

pub(crate) fn insert_task(
    conn: &Connection,
    events: &mut Vec<Event>,
    t: &NewTask,
) -> Result<Submitted> {
    let spec = t.spec.spec();
    if let Some(key) = &spec.idempotency_key {
        let mut stmt = conn.prepare_cached("SELECT id FROM tasks WHERE idempotency_key = ?1")?;
        if let Some(id) = stmt.query_row([key], |r| r.get::<_, i64>(0)).optional()? {
            return Ok(Submitted::Existing(TaskId(id)));
        }
    }
    let mut failed_dep = None;
    for dep in &spec.after {
        let mut stmt = conn.prepare_cached("SELECT state FROM tasks WHERE id = ?1")?;
        let state: Option<String> = stmt.query_row([dep.0], |r| r.get(0)).optional()?;
        let state = state.ok_or(StoreError::UnknownDependency(*dep))?;
        let state = TaskState::parse(&state).ok_or_else(|| corrupt("task state", &state))?;
        if state.is_terminal() && state != TaskState::Succeeded && failed_dep.is_none() {
            failed_dep = Some((*dep, state));
        }
    }
    let queue = t.spec.queue();
    ensure_queue(conn, queue)?;
    let name = t.spec.display_name();
    let kind = t.spec.work().kind();
    let spec_json = serde_json::to_string(spec).map_err(|e| corrupt("spec", e))?;
    let labels = serde_json::to_string(&spec.labels).map_err(|e| corrupt("labels", e))?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO tasks (kind, name, state, queue, priority, labels, session, spec,
            idempotency_key, created_at, run_after, max_attempts)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    stmt.execute(params![
        kind.as_str(),
        name,
        queue,
        spec.priority,
        labels,
        spec.session,
        spec_json,
        spec.idempotency_key,
        t.now.0,
        t.spec.run_after(t.now).map(|t| t.0),
        spec.retry.max_attempts,
    ])?;
    let id = TaskId(conn.last_insert_rowid());
    for label in &spec.labels {
        let mut stmt = conn
            .prepare_cached("INSERT OR IGNORE INTO task_labels (label, task_id) VALUES (?1, ?2)")?;
        stmt.execute(params![label, id.0])?;
    }
    for dep in &spec.after {
        let mut stmt =
            conn.prepare_cached("INSERT OR IGNORE INTO deps (task_id, dep_id) VALUES (?1, ?2)")?;
        stmt.execute(params![id.0, dep.0])?;
    }
    bump(conn, queue, TaskState::Pending, 1)?;
    emit(
        conn,
        events,
        t.now,
        EventKind::Submitted,
        Some(id),
        json!({"name": name, "queue": queue, "kind": kind.as_str()}),
    )?;
    if let Some((dep, state)) = failed_dep {
        fail_for_dependency(conn, events, id, dep, state, t.now)?;
    }
    Ok(Submitted::Created(id))
}

/// Fails a pending task whose dependency ended without succeeding, then its own
/// dependents, and so on.
fn fail_for_dependency(
    conn: &Connection,
    events: &mut Vec<Event>,
    id: TaskId,
    dep: TaskId,
    dep_state: TaskState,
    now: Timestamp,
) -> Result<Vec<TaskRecord>> {
    let task = load_task(conn, id)?;
    let to = transition(task.state, Transition::DependencyFailed)
        .map_err(|source| StoreError::Illegal { id, source })?;
    let reason = format!("dependency {dep} ended {dep_state}, so this task never ran");
    let mut stmt = conn.prepare_cached(
        "UPDATE tasks SET state = ?2, reason = ?3, finished_at = ?4, run_after = NULL WHERE id = ?1",
    )?;
    stmt.execute(params![id.0, to.as_str(), reason, now.0])?;
    count_move(conn, &task.queue, task.state, to)?;
    let task = load_task(conn, id)?;
    finished(conn, events, &task, now, 0, "", 0)?;
    let mut out = vec![task];
    out.extend(cascade(conn, events, id, to, now)?);
    Ok(out)
}

/// Fails the pending dependents of a task that ended without succeeding.
fn cascade(
    conn: &Connection,
    events: &mut Vec<Event>,
    id: TaskId,
    state: TaskState,
    now: Timestamp,
) -> Result<Vec<TaskRecord>> {
    if state == TaskState::Succeeded {
        return Ok(Vec::new());
    }
    let dependents: Vec<i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT d.task_id FROM deps d JOIN tasks t ON t.id = d.task_id
             WHERE d.dep_id = ?1 AND t.state = 'pending'",
        )?;
        stmt.query_map([id.0], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::new();
    for dependent in dependents {
        out.extend(fail_for_dependency(
            conn,
            events,
            TaskId(dependent),
            id,
            state,
            now,
        )?);
    }
    Ok(out)
}

/// Writes the `finished` event and, when the task names a session, its notification.
fn finished(
    conn: &Connection,
    events: &mut Vec<Event>,
    task: &TaskRecord,
    now: Timestamp,
    duration_ms: u64,
    tail: &str,
    output_bytes: u64,
) -> Result<()> {
    emit(
        conn,
        events,
        now,
        EventKind::Finished,
        Some(task.id),
        json!({
            "state": task.state,
            "exit_code": task.exit_code,
            "signal": task.signal,
            "reason": task.reason,
        }),
    )?;
    if let Some(session) = &task.session {
        let n = Notification {
            seq: 0,
            session: session.clone(),
            task_id: task.id,
            name: task.name.clone(),
            state: task.state,
            exit_code: task.exit_code,
            signal: task.signal,
            reason: task.reason.clone(),
            duration_ms,
            attempts: task.attempts,
            tail: tail.to_string(),
            output_bytes,
            created_at: now,
        };
        let body = serde_json::to_string(&n).map_err(|e| corrupt("notification", e))?;
        let mut stmt = conn.prepare_cached(
            "INSERT INTO notifications (session, task_id, body) VALUES (?1, ?2, ?3)",
        )?;
        stmt.execute(params![session, task.id.0, body])?;
    }
    Ok(())
}

pub(crate) fn list(conn: &Connection, f: &ListFilter) -> Result<Page> {
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    let mut sql = format!("SELECT {TASK_COLS} FROM tasks WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let arg = |v: rusqlite::types::Value, args: &mut Vec<_>| {
        args.push(v);
        format!("?{}", args.len())
    };
    if !f.states.is_empty() {
        let list: Vec<String> = f
            .states
            .iter()
            .map(|s| arg(s.as_str().to_string().into(), &mut args))
            .collect();
        sql += &format!(" AND state IN ({})", list.join(", "));
    }
    if let Some(q) = &f.queue {
        sql += &format!(" AND queue = {}", arg(q.clone().into(), &mut args));
    }
    if let Some(s) = &f.session {
        sql += &format!(" AND session = {}", arg(s.clone().into(), &mut args));
    }
    if let Some(n) = &f.name {
        sql += &format!(" AND name = {}", arg(n.clone().into(), &mut args));
    }
    if let Some(l) = &f.label {
        sql += &format!(
            " AND id IN (SELECT task_id FROM task_labels WHERE label = {})",
            arg(l.clone().into(), &mut args)
        );
    }
    if let Some(b) = f.before {
        sql += &format!(" AND id < {}", arg(b.0.into(), &mut args));
    }
    sql += &format!(" ORDER BY id DESC LIMIT {}", limit + 1);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), task_from_row)?;
    let mut tasks = Vec::new();
    for r in rows {
        tasks.push(r??);
    }
    let next = if tasks.len() > limit as usize {
        tasks.truncate(limit as usize);
        tasks.last().map(|t| t.id)
    } else {
        None
    };
    Ok(Page { tasks, next })
}

fn attempt_from_row(r: &Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        number: r.get::<_, i64>(0)? as u32,
        node: r.get(1)?,
        started_at: Timestamp(r.get(2)?),
        ended_at: r.get::<_, Option<i64>>(3)?.map(Timestamp),
        outcome: r.get(4)?,
        exit_code: r.get(5)?,
        signal: r.get(6)?,
        reason: r.get(7)?,
        pid: r.get(8)?,
        peak_rss_kb: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
        cpu_ms: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
    })
}

const ATTEMPT_COLS: &str = "number, node, started_at, ended_at, outcome, exit_code, signal, reason, pid, peak_rss_kb, cpu_ms";

pub(crate) fn attempts(conn: &Connection, id: TaskId) -> Result<Vec<Attempt>> {
    load_task(conn, id)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLS} FROM attempts WHERE task_id = ?1 ORDER BY number"
    ))?;
    Ok(stmt
        .query_map([id.0], attempt_from_row)?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn claim(
    conn: &Connection,
    events: &mut Vec<Event>,
    req: &ClaimRequest,
) -> Result<Claim> {
    if req.kinds.is_empty() || req.limit == 0 {
        return Ok(Claim {
            tasks: Vec::new(),
            next_wakeup: next_wakeup(conn, req.now)?,
        });
    }
    let running: HashMap<String, i64> = {
        let mut stmt = conn.prepare_cached(
            "SELECT queue, COUNT(*) FROM tasks WHERE state = 'running' GROUP BY queue",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let queues: Vec<(String, i64)> = {
        let mut stmt =
            conn.prepare_cached("SELECT name, max_parallel FROM queues WHERE paused = 0")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let kinds: Vec<String> = req
        .kinds
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect();
    let pick_sql = format!(
        "SELECT id FROM tasks WHERE state = 'pending' AND queue = ?1
           AND (run_after IS NULL OR run_after <= ?2)
           AND kind IN ({})
           AND NOT EXISTS (SELECT 1 FROM deps d JOIN tasks t ON t.id = d.dep_id
                           WHERE d.task_id = tasks.id AND t.state <> 'succeeded')
         ORDER BY priority DESC, id LIMIT ?3",
        kinds.join(", ")
    );
    let mut budget = req.limit as i64;
    let mut picked = Vec::new();
    for (queue, max) in queues {
        let free = (max - running.get(&queue).copied().unwrap_or(0)).min(budget);
        if free <= 0 {
            continue;
        }
        let mut stmt = conn.prepare_cached(&pick_sql)?;
        let ids: Vec<i64> = stmt
            .query_map(params![queue, req.now.0, free], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        budget -= ids.len() as i64;
        picked.extend(ids);
        if budget <= 0 {
            break;
        }
    }
    let mut out = Vec::with_capacity(picked.len());
    for id in picked {
        let id = TaskId(id);
        let mut task = load_task(conn, id)?;
        let to = transition(task.state, Transition::Claim)
            .map_err(|source| StoreError::Illegal { id, source })?;
        let attempt = task.attempts + 1;
        let mut stmt = conn.prepare_cached(
            "UPDATE tasks SET state = ?2, attempts = ?3, started_at = ?4, finished_at = NULL,
                node = ?5, lease_until = ?6, run_after = NULL, exit_code = NULL, signal = NULL,
                stop_requested = 0
             WHERE id = ?1",
        )?;
        stmt.execute(params![
            id.0,
            to.as_str(),
            attempt,
            req.now.0,
            req.node,
            req.lease_until.0
        ])?;
        let mut stmt = conn.prepare_cached(
            "INSERT INTO attempts (task_id, number, node, started_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        stmt.execute(params![id.0, attempt, req.node, req.now.0])?;
        count_move(conn, &task.queue, task.state, to)?;
        emit(
            conn,
            events,
            req.now,
            EventKind::Started,
            Some(id),
            json!({"attempt": attempt, "node": req.node}),
        )?;
        // The record as the UPDATE above left it, without reading it back.
        task.state = to;
        task.attempts = attempt;
        task.started_at = Some(req.now);
        task.finished_at = None;
        task.node = Some(req.node.clone());
        task.run_after = None;
        task.exit_code = None;
        task.signal = None;
        task.stop_requested = false;
        out.push(Claimed { task, attempt });
    }
    Ok(Claim {
        tasks: out,
        next_wakeup: next_wakeup(conn, req.now)?,
    })
}

pub(crate) fn set_pid(conn: &Connection, id: TaskId, attempt: u32, pid: i32) -> Result<()> {
    let mut stmt =
        conn.prepare_cached("UPDATE attempts SET pid = ?3 WHERE task_id = ?1 AND number = ?2")?;
    stmt.execute(params![id.0, attempt, pid])?;
    Ok(())
}

pub(crate) fn renew(conn: &Connection, node: &str, lease_until: Timestamp) -> Result<u64> {
    let mut stmt = conn.prepare_cached(
        "UPDATE tasks SET lease_until = ?2 WHERE state = 'running' AND node = ?1",
    )?;
    Ok(stmt.execute(params![node, lease_until.0])? as u64)
}

fn outcome_name(o: AttemptOutcome) -> &'static str {
    match o {
        AttemptOutcome::Exited { .. } => "exited",
        AttemptOutcome::Signaled { .. } => "signaled",
        AttemptOutcome::Failed => "failed",
        AttemptOutcome::TimedOut => "timed_out",
        AttemptOutcome::Cancelled => "cancelled",
        AttemptOutcome::Lost => "lost",
    }
}

fn describe_end(end: &AttemptEnd) -> String {
    match (end.exit_code, end.signal, end.outcome) {
        (_, _, AttemptOutcome::TimedOut) => "timed out".to_string(),
        (_, _, AttemptOutcome::Lost) => "lost".to_string(),
        (Some(c), _, _) => format!("exit code {c}"),
        (None, Some(s), _) => format!("signal {s}"),
        _ => outcome_name(end.outcome).to_string(),
    }
}

pub(crate) fn finish_attempt(
    conn: &Connection,
    events: &mut Vec<Event>,
    end: &AttemptEnd,
) -> Result<Option<Finished>> {
    let id = end.id;
    let mut task = load_task(conn, id)?;
    if task.state != TaskState::Running || task.attempts != end.attempt {
        return Ok(None);
    }
    let (base, max_attempts): (i64, i64) = conn
        .prepare_cached("SELECT attempt_base, max_attempts FROM tasks WHERE id = ?1")?
        .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let relative = (end.attempt as i64 - base).max(1) as u32;
    let to = transition(
        task.state,
        Transition::AttemptEnded {
            outcome: end.outcome,
            attempt: relative,
            max_attempts: max_attempts as u32,
        },
    )
    .map_err(|source| StoreError::Illegal { id, source })?;
    let mut stmt = conn.prepare_cached(
        "UPDATE attempts SET ended_at = ?3, outcome = ?4, exit_code = ?5, signal = ?6,
            reason = ?7, peak_rss_kb = ?8, cpu_ms = ?9
         WHERE task_id = ?1 AND number = ?2",
    )?;
    stmt.execute(params![
        id.0,
        end.attempt,
        end.ended_at.0,
        outcome_name(end.outcome),
        end.exit_code,
        end.signal,
        end.reason,
        end.peak_rss_kb.map(|v| v as i64),
        end.cpu_ms.map(|v| v as i64),
    ])?;
    let started = task.started_at.unwrap_or(end.ended_at);
    let duration_ms = started.millis_until(end.ended_at);
    let reason = match to {
        TaskState::Quarantined => Some(format!(
            "quarantined after {relative} attempts; the last ended with {}{}",
            describe_end(end),
            end.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        _ => end.reason.clone(),
    };
    if to == TaskState::Pending {
        let mut stmt = conn.prepare_cached(
            "UPDATE tasks SET state = 'pending', run_after = ?2, node = NULL, lease_until = NULL,
                exit_code = ?3, signal = ?4, reason = ?5, stop_requested = 0
             WHERE id = ?1",
        )?;
        let retry_reason = format!(
            "attempt {} ended with {}; retrying",
            end.attempt,
            describe_end(end)
        );
        stmt.execute(params![
            id.0,
            end.retry_at.0,
            end.exit_code,
            end.signal,
            retry_reason
        ])?;
        task.run_after = Some(end.retry_at);
        task.reason = Some(retry_reason);
    } else {
        let mut stmt = conn.prepare_cached(
            "UPDATE tasks SET state = ?2, finished_at = ?3, node = NULL, lease_until = NULL,
                exit_code = ?4, signal = ?5, reason = ?6, result = COALESCE(?7, result),
                stop_requested = 0
             WHERE id = ?1",
        )?;
        stmt.execute(params![
            id.0,
            to.as_str(),
            end.ended_at.0,
            end.exit_code,
            end.signal,
            reason,
            end.result
        ])?;
        task.finished_at = Some(end.ended_at);
        task.reason = reason;
        if end.result.is_some() {
            task.result = end.result.clone();
        }
    }
    count_move(conn, &task.queue, task.state, to)?;
    emit(
        conn,
        events,
        end.ended_at,
        EventKind::AttemptEnded,
        Some(id),
        json!({
            "attempt": end.attempt,
            "outcome": outcome_name(end.outcome),
            "exit_code": end.exit_code,
            "signal": end.signal,
            "state": to,
            "retry_at": (to == TaskState::Pending).then_some(end.retry_at.0),
        }),
    )?;
    // The record as the UPDATE above left it, without reading it back.
    task.state = to;
    task.node = None;
    task.exit_code = end.exit_code;
    task.signal = end.signal;
    task.stop_requested = false;
    let mut cascaded = Vec::new();
    if to.is_terminal() {
        finished(
            conn,
            events,
            &task,
            end.ended_at,
            duration_ms,
            &end.tail,
            end.output_bytes,
        )?;
        cascaded = cascade(conn, events, id, to, end.ended_at)?;
    }
    Ok(Some(Finished { task, cascaded }))
}

pub(crate) fn release(
    conn: &Connection,
    events: &mut Vec<Event>,
    id: TaskId,
    attempt: u32,
    now: Timestamp,
) -> Result<Option<TaskRecord>> {
    let task = load_task(conn, id)?;
    if task.state != TaskState::Running || task.attempts != attempt {
        return Ok(None);
    }
    let to = transition(task.state, Transition::Release)
        .map_err(|source| StoreError::Illegal { id, source })?;
    conn.prepare_cached(
        "UPDATE tasks SET state = ?2, attempts = attempts - 1, started_at = NULL, node = NULL,
            lease_until = NULL, stop_requested = 0
         WHERE id = ?1",
    )?
    .execute(params![id.0, to.as_str()])?;
    conn.prepare_cached("DELETE FROM attempts WHERE task_id = ?1 AND number = ?2")?
        .execute(params![id.0, attempt])?;
    count_move(conn, &task.queue, task.state, to)?;
    emit(
        conn,
        events,
        now,
        EventKind::Released,
        Some(id),
        json!({"attempt": attempt}),
    )?;
    load_task(conn, id).map(Some)
}

pub(crate) fn request_stop(
    conn: &Connection,
    events: &mut Vec<Event>,
    id: TaskId,
    now: Timestamp,
) -> Result<StopOutcome> {
    let task = load_task(conn, id)?;
    match task.state {
        TaskState::Running => {
            conn.prepare_cached("UPDATE tasks SET stop_requested = 1 WHERE id = ?1")?
                .execute([id.0])?;
            emit(
                conn,
                events,
                now,
                EventKind::StopRequested,
                Some(id),
                json!({}),
            )?;
            Ok(StopOutcome::Stopping(load_task(conn, id)?))
        }
        from => {
            let to = transition(from, Transition::Cancel)
                .map_err(|source| StoreError::Illegal { id, source })?;
            conn.prepare_cached(
                "UPDATE tasks SET state = ?2, finished_at = ?3, reason = ?4, run_after = NULL
                 WHERE id = ?1",
            )?
            .execute(params![
                id.0,
                to.as_str(),
                now.0,
                "cancelled before it started"
            ])?;
            count_move(conn, &task.queue, from, to)?;
            let task = load_task(conn, id)?;
            finished(conn, events, &task, now, 0, "", 0)?;
            let cascaded = cascade(conn, events, id, to, now)?;
            Ok(StopOutcome::Cancelled(Finished { task, cascaded }))
        }
    }
}

pub(crate) fn retry(
    conn: &Connection,
    events: &mut Vec<Event>,
    id: TaskId,
    now: Timestamp,
) -> Result<TaskRecord> {
    let task = load_task(conn, id)?;
    let to = transition(task.state, Transition::Retry)
        .map_err(|source| StoreError::Illegal { id, source })?;
    conn.prepare_cached(
        "UPDATE tasks SET state = ?2, attempt_base = attempts, run_after = NULL,
            finished_at = NULL, exit_code = NULL, signal = NULL, reason = NULL, result = NULL,
            progress = NULL, stop_requested = 0
         WHERE id = ?1",
    )?
    .execute(params![id.0, to.as_str()])?;
    count_move(conn, &task.queue, task.state, to)?;
    emit(
        conn,
        events,
        now,
        EventKind::Retried,
        Some(id),
        json!({"from": task.state}),
    )?;
    load_task(conn, id)
}

pub(crate) fn set_progress(
    conn: &Connection,
    events: &mut Vec<Event>,
    id: TaskId,
    progress: &Progress,
) -> Result<()> {
    let body = serde_json::to_string(progress).map_err(|e| corrupt("progress", e))?;
    let changed = conn
        .prepare_cached("UPDATE tasks SET progress = ?2 WHERE id = ?1 AND state = 'running'")?
        .execute(params![id.0, body])?;
    if changed == 0 {
        let task = load_task(conn, id)?;
        return Err(StoreError::Conflict {
            field: "progress",
            message: format!("task {id} is {}, not running", task.state),
        });
    }
    emit(
        conn,
        events,
        progress.at,
        EventKind::Progress,
        Some(id),
        serde_json::to_value(progress).unwrap_or_default(),
    )
}

pub(crate) fn running(
    conn: &Connection,
    node: Option<&str>,
    expired_before: Option<Timestamp>,
) -> Result<Vec<(TaskRecord, Attempt)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TASK_COLS} FROM tasks WHERE state = 'running'
           AND ((?1 IS NOT NULL AND node = ?1) OR (?2 IS NOT NULL AND lease_until < ?2))
         ORDER BY id"
    ))?;
    let tasks: Vec<TaskRecord> = stmt
        .query_map(params![node, expired_before.map(|t| t.0)], task_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ATTEMPT_COLS} FROM attempts WHERE task_id = ?1 AND number = ?2"
        ))?;
        if let Some(a) = stmt
            .query_row(params![t.id.0, t.attempts], attempt_from_row)
            .optional()?
        {
            out.push((t, a));
        }
    }
    Ok(out)
}

pub(crate) fn next_wakeup(conn: &Connection, now: Timestamp) -> Result<Option<Timestamp>> {
    // Named, because the planner would rather walk every pending task through
    // `tasks_state`: a scan per claim, quadratic over a long queue.
    let mut stmt = conn.prepare_cached(
        "SELECT MIN(run_after) FROM tasks INDEXED BY tasks_pending_time
         WHERE state = 'pending' AND run_after IS NOT NULL AND run_after > ?1",
    )?;
    Ok(stmt
        .query_row([now.0], |r| r.get::<_, Option<i64>>(0))?
        .map(Timestamp))
}

pub(crate) fn remove(
    conn: &Connection,
    events: &mut Vec<Event>,
    ids: &[TaskId],
) -> Result<Vec<TaskId>> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let (state, queue, labels): (String, String, String) = conn
            .prepare_cached("SELECT state, queue, labels FROM tasks WHERE id = ?1")?
            .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?
            .ok_or(StoreError::UnknownTask(id))?;
        let state = TaskState::parse(&state).ok_or_else(|| corrupt("task state", &state))?;
        if !state.is_terminal() {
            return Err(StoreError::Conflict {
                field: "id",
                message: format!("task {id} is {state}; stop it before removing it"),
            });
        }
        for sql in [
            "DELETE FROM tasks WHERE id = ?1",
            "DELETE FROM attempts WHERE task_id = ?1",
            "DELETE FROM deps WHERE task_id = ?1",
        ] {
            conn.prepare_cached(sql)?.execute([id.0])?;
        }
        let labels: Vec<String> =
            serde_json::from_str(&labels).map_err(|e| corrupt("labels", e))?;
        for label in labels {
            conn.prepare_cached("DELETE FROM task_labels WHERE label = ?1 AND task_id = ?2")?
                .execute(params![label, id.0])?;
        }
        bump(conn, &queue, state, -1)?;
        out.push(id);
    }
    if !out.is_empty() {
        let now = db_now(conn)?;
        let ids: Vec<i64> = out.iter().map(|t| t.0).collect();
        emit(
            conn,
            events,
            now,
            EventKind::Removed,
            None,
            json!({"ids": ids}),
        )?;
    }
    Ok(out)
}

pub(crate) fn clean_candidates(conn: &Connection, req: &CleanRequest) -> Result<Vec<TaskId>> {
    let mut ids: Vec<i64> = Vec::new();
    if let Some(before) = req.finished_before {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ?1 LIMIT 10000",
        )?;
        ids.extend(
            stmt.query_map([before.0], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    if let Some(keep) = req.keep_last {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM tasks WHERE finished_at IS NOT NULL
             ORDER BY finished_at DESC LIMIT 10000 OFFSET ?1",
        )?;
        ids.extend(
            stmt.query_map([keep as i64], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    ids.sort_unstable();
    ids.dedup();
    // Only terminal tasks have finished_at set, so every candidate may be removed.
    Ok(ids.into_iter().map(TaskId).collect())
}

fn queue_counts(conn: &Connection) -> Result<HashMap<(String, String), i64>> {
    let mut stmt = conn.prepare_cached("SELECT queue, state, n FROM counts WHERE n <> 0")?;
    Ok(stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn queues(conn: &Connection) -> Result<Vec<QueueInfo>> {
    let counts = queue_counts(conn)?;
    let get = |q: &str, s: &str| counts.get(&(q.to_string(), s.to_string())).copied();
    let mut stmt =
        conn.prepare_cached("SELECT name, max_parallel, paused FROM queues ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, max_parallel, paused) = row?;
        out.push(QueueInfo {
            pending: get(&name, "pending").unwrap_or(0).max(0) as u64,
            running: get(&name, "running").unwrap_or(0).max(0) as u64,
            name,
            max_parallel: max_parallel as u32,
            paused: paused != 0,
        });
    }
    Ok(out)
}

pub(crate) fn set_queue(
    conn: &Connection,
    events: &mut Vec<Event>,
    name: &str,
    max_parallel: Option<u32>,
    paused: Option<bool>,
) -> Result<QueueInfo> {
    if max_parallel == Some(0) {
        return Err(StoreError::Invalid {
            field: "max_parallel",
            message: "must be at least 1 (pause the queue to start nothing)".into(),
        });
    }
    ensure_queue(conn, name)?;
    conn.prepare_cached(
        "UPDATE queues SET max_parallel = COALESCE(?2, max_parallel),
            paused = COALESCE(?3, paused) WHERE name = ?1",
    )?
    .execute(params![name, max_parallel, paused.map(i64::from)])?;
    let info = queues(conn)?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or_else(|| corrupt("queue", name))?;
    let now = db_now(conn)?;
    emit(
        conn,
        events,
        now,
        EventKind::Queue,
        None,
        serde_json::to_value(&info).unwrap_or_default(),
    )?;
    Ok(info)
}

pub(crate) fn counts(conn: &Connection) -> Result<Vec<(String, TaskState, u64)>> {
    let mut out = Vec::new();
    for ((queue, state), n) in queue_counts(conn)? {
        let state = TaskState::parse(&state).ok_or_else(|| corrupt("task state", &state))?;
        out.push((queue, state, n.max(0) as u64));
    }
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    Ok(out)
}

fn notifications_after(
    conn: &Connection,
    session: &str,
    cursor: i64,
    limit: u32,
) -> Result<Vec<Notification>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, body FROM notifications WHERE session = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![session, cursor, limit.clamp(1, 1000)], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, body) = row?;
        let mut n: Notification =
            serde_json::from_str(&body).map_err(|e| corrupt("notification", e))?;
        n.seq = seq;
        out.push(n);
    }
    Ok(out)
}

fn session_cursor(conn: &Connection, session: &str) -> Result<i64> {
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

pub(crate) fn notifications_pending(conn: &Connection) -> Result<Vec<(String, u64)>> {
    // One range scan of the (session, seq) index per session, from its cursor.
    let mut stmt = conn.prepare_cached(
        "SELECT n.session, COUNT(*) FROM notifications n
         LEFT JOIN sessions s ON s.name = n.session
         WHERE n.seq > COALESCE(s.cursor, 0)
         GROUP BY n.session ORDER BY n.session",
    )?;
    Ok(stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn events_after(conn: &Connection, seq: i64, limit: u32) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, kind, task_id, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![seq, limit.clamp(1, 10_000)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at, kind, task_id, data) = row?;
        out.push(Event {
            seq,
            at: Timestamp(at),
            kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?,
            task_id: task_id.map(TaskId),
            data: serde_json::from_str(&data).map_err(|e| corrupt("event data", e))?,
        });
    }
    Ok(out)
}

pub(crate) fn seed_finished(conn: &Connection, n: u64, now: Timestamp) -> Result<()> {
    let spec = serde_json::to_string(&TaskSpec::shell("true")).map_err(|e| corrupt("spec", e))?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO tasks (kind, name, state, queue, spec, created_at, started_at,
            finished_at, attempts, exit_code)
         VALUES ('shell', 'true', 'succeeded', 'default', ?1, ?2, ?2, ?2, 1, 0)",
    )?;
    for _ in 0..n {
        stmt.execute(params![spec, now.0])?;
    }
    bump(conn, "default", TaskState::Succeeded, n as i64)?;
    Ok(())
}
