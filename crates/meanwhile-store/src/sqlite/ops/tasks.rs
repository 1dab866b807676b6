//! Tasks as records: submitting, listing, their attempts, removal and cleaning, and
//! seeding for benchmarks.

use super::*;
use crate::{CleanRequest, ListFilter, NewTask, Page, StoreError, Submitted};
use meanwhile_core::{Attempt, Event, EventKind, TaskId, TaskState};
#[cfg(feature = "bench")]
use meanwhile_core::{TaskSpec, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

pub(crate) const TASK_WITH_KEY: &str = crate::sql::ops::tasks::TASK_WITH_KEY.sqlite;

pub(crate) fn insert_task(
    conn: &Connection,
    events: &mut Vec<Event>,
    t: &NewTask,
) -> Result<Submitted> {
    let spec = t.spec.spec();
    if let Some(key) = &spec.idempotency_key {
        let mut stmt = conn.prepare_cached(TASK_WITH_KEY)?;
        if let Some(id) = stmt.query_row([key], |r| r.get::<_, i64>(0)).optional()? {
            return Ok(Submitted::Existing(TaskId(id)));
        }
    }
    let mut failed_dep = None;
    for dep in &spec.after {
        let mut stmt = conn.prepare_cached("SELECT state FROM tasks WHERE id = ?1")?;
        let state: Option<String> = stmt.query_row([dep.0], |r| r.get(0)).optional()?;
        let state = state.ok_or(StoreError::UnknownDependency(*dep))?;
        let state = crate::decode::state(&state)?;
        if state.is_terminal() && state != TaskState::Succeeded && failed_dep.is_none() {
            failed_dep = Some((*dep, state));
        }
    }
    let queue = t.spec.queue();
    ensure_queue(conn, queue)?;
    let name = t.spec.display_name();
    let kind = t.spec.work().kind();
    // The record of a spec, which keeps its secrets.
    let spec_json = meanwhile_core::expose_secrets(|| serde_json::to_string(spec))
        .map_err(|e| corrupt("spec", e))?;
    let labels = serde_json::to_string(&spec.labels).map_err(|e| corrupt("labels", e))?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO tasks (kind, name, state, queue, priority, labels, session, spec,
            idempotency_key, created_at, run_after, max_attempts, concurrency_key, owner)
         VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
        spec.concurrency_key,
        t.owner,
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
        let db = &mut lite(conn, events);
        crate::flow::ready(crate::flow::fail_for_dependency(db, id, dep, state, t.now))?;
    }
    Ok(Submitted::Created(id))
}

pub(crate) fn list(conn: &Connection, f: &ListFilter) -> Result<Page> {
    let limit = crate::decode::list_limit(f.limit);
    let (sql, args) = list_sql(f);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), task_from_row)?;
    let mut tasks = Vec::new();
    for r in rows {
        tasks.push(r??);
    }
    Ok(crate::decode::task_page(tasks, limit))
}

/// The listing `f` asks for, and its parameters.
pub(crate) fn list_sql(f: &ListFilter) -> (String, Vec<rusqlite::types::Value>) {
    let limit = crate::decode::list_limit(f.limit);
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
    if let Some(t) = &f.text {
        // Unicode case folded on both sides (`mw_fold`, registered on every
        // connection): `DÉPLOYER` finds `déployer`.
        sql += &format!(
            " AND instr(mw_fold(name), {}) > 0",
            arg(crate::decode::fold_case(t).into(), &mut args)
        );
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
    (sql, args)
}

pub(crate) fn attempts(conn: &Connection, id: TaskId) -> Result<Vec<Attempt>> {
    load_task(conn, id)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLS} FROM attempts WHERE task_id = ?1 ORDER BY number"
    ))?;
    let rows = stmt.query_map([id.0], attempt_from_row)?;
    rows.map(|r| r?).collect()
}

/// A removed task's label.
pub(crate) const REMOVE_LABEL: &str = "DELETE FROM task_labels WHERE label = ?1 AND task_id = ?2";

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
        let state = crate::decode::state(&state)?;
        if !state.is_terminal() {
            return Err(crate::decode::not_ended(id, state));
        }
        for sql in [
            "DELETE FROM tasks WHERE id = ?1",
            "DELETE FROM attempts WHERE task_id = ?1",
            "DELETE FROM deps WHERE task_id = ?1",
            "DELETE FROM steps WHERE task_id = ?1",
        ] {
            conn.prepare_cached(sql)?.execute([id.0])?;
        }
        let labels: Vec<String> =
            serde_json::from_str(&labels).map_err(|e| corrupt("labels", e))?;
        for label in labels {
            conn.prepare_cached(REMOVE_LABEL)?
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

/// Finished tasks, by age and by count.
pub(crate) const FINISHED_BEFORE: &str =
    "SELECT id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ?1 LIMIT 1000";
pub(crate) const FINISHED_BEYOND: &str = "SELECT id FROM tasks WHERE finished_at IS NOT NULL
     ORDER BY finished_at DESC LIMIT 1000 OFFSET ?1";

pub(crate) fn clean_candidates(conn: &Connection, req: &CleanRequest) -> Result<Vec<TaskId>> {
    let mut ids: Vec<i64> = Vec::new();
    if let Some(before) = req.finished_before {
        let mut stmt = conn.prepare_cached(FINISHED_BEFORE)?;
        ids.extend(
            stmt.query_map([before.0], |r| r.get::<_, i64>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?,
        );
    }
    if let Some(keep) = req.keep_last {
        let mut stmt = conn.prepare_cached(FINISHED_BEYOND)?;
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

#[cfg(feature = "bench")]
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

/// See [`crate::Store::seal_clear_secrets`].
pub(crate) fn seal_clear_secrets(conn: &Connection, seal: &crate::secrets::Seal) -> Result<u64> {
    use crate::secrets::{IN_SCHEDULE, IN_TASK, SEALED_MARK, reseal};
    let done: Option<i64> = conn
        .prepare_cached("SELECT seq FROM cursors WHERE name = ?1")?
        .query_row([SEALED_MARK], |r| r.get(0))
        .optional()?;
    if done.is_some() {
        return Ok(0);
    }
    // The rows rewritten here held values in clear: their old bytes are zeroed.
    conn.execute_batch("PRAGMA secure_delete = ON")?;
    let mut changed = 0;
    let rewrite = |select: &str, update: &str, path: &[&str]| -> Result<u64> {
        let rows: Vec<(rusqlite::types::Value, String)> = conn
            .prepare(select)?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut n = 0;
        for (key, spec) in rows {
            if let Some(sealed) = reseal(&spec, path, seal)? {
                conn.execute(update, params![sealed, key])?;
                n += 1;
            }
        }
        Ok(n)
    };
    let result = rewrite(
        r#"SELECT id, spec FROM tasks WHERE spec LIKE '%"secrets"%'"#,
        "UPDATE tasks SET spec = ?1 WHERE id = ?2",
        IN_TASK,
    )
    .and_then(|n| {
        changed += n;
        rewrite(
            r#"SELECT name, spec FROM schedules WHERE spec LIKE '%"secrets"%'"#,
            "UPDATE schedules SET spec = ?1 WHERE name = ?2",
            IN_SCHEDULE,
        )
    });
    conn.execute_batch("PRAGMA secure_delete = OFF")?;
    changed += result?;
    conn.execute(
        "INSERT INTO cursors (name, seq) VALUES (?1, 1)",
        [SEALED_MARK],
    )?;
    Ok(changed)
}
