//! Tasks as records: submitting, listing, their attempts, removal and cleaning.

use super::*;
use crate::postgres::Client;
use crate::{CleanRequest, ListFilter, NewTask, Page, StoreError, Submitted};
use meanwhile_core::{Attempt, EventKind, TaskId, TaskState};
use serde_json::json;
use tokio_postgres::types::ToSql;

pub(crate) async fn insert_task(tx: &mut Tx, t: &NewTask) -> Result<Submitted> {
    let spec = t.spec.spec();
    if let Some(key) = &spec.idempotency_key
        && let Some(id) = task_with_key(tx.client(), key).await?
    {
        return Ok(Submitted::Existing(id));
    }
    let mut failed_dep = None;
    for dep in &spec.after {
        let row = tx
            .client()
            .query_opt("SELECT state FROM tasks WHERE id = $1", &[&dep.0])
            .await?
            .ok_or(StoreError::UnknownDependency(*dep))?;
        let state = crate::decode::state(&col::<String>(&row, 0)?)?;
        if state.is_terminal() && state != TaskState::Succeeded && failed_dep.is_none() {
            failed_dep = Some((*dep, state));
        }
    }
    let queue = t.spec.queue();
    ensure_queue(tx, queue).await?;
    let name = t.spec.display_name();
    let kind = t.spec.work().kind();
    // The record of a spec, which keeps its secrets.
    let spec_json = meanwhile_core::expose_secrets(|| serde_json::to_string(spec))
        .map_err(|e| corrupt("spec", e))?;
    let labels = serde_json::to_string(&spec.labels).map_err(|e| corrupt("labels", e))?;
    // Two nodes submitting one key at once: the second waits for the first to
    // commit, inserts nothing, and answers with the first's task.
    let inserted = tx
        .client()
        .query_opt(
            "INSERT INTO tasks (kind, name, state, queue, priority, labels, session, spec,
                idempotency_key, created_at, run_after, max_attempts, concurrency_key, owner)
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING id",
            &[
                &kind.as_str(),
                &name,
                &queue,
                &i64::from(spec.priority),
                &labels,
                &spec.session,
                &spec_json,
                &spec.idempotency_key,
                &t.now.0,
                &t.spec.run_after(t.now).map(|t| t.0),
                &i64::from(spec.retry.max_attempts),
                &spec.concurrency_key,
                &t.owner,
            ],
        )
        .await?;
    let id = match inserted {
        Some(row) => TaskId(col(&row, 0)?),
        None => {
            let key = spec.idempotency_key.as_deref().unwrap_or_default();
            let id = task_with_key(tx.client(), key)
                .await?
                .ok_or_else(|| corrupt("idempotency key", key))?;
            return Ok(Submitted::Existing(id));
        }
    };
    for label in &spec.labels {
        exec(
            tx,
            "INSERT INTO task_labels (label, task_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[label, &id.0],
        )
        .await?;
    }
    for dep in &spec.after {
        exec(
            tx,
            "INSERT INTO deps (task_id, dep_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&id.0, &dep.0],
        )
        .await?;
    }
    tx.bump(queue, TaskState::Pending, 1);
    tx.emit(
        t.now,
        EventKind::Submitted,
        Some(id),
        json!({"name": name, "queue": queue, "kind": kind.as_str()}),
    );
    if let Some((dep, state)) = failed_dep {
        crate::flow::fail_for_dependency(tx, id, dep, state, t.now).await?;
    }
    Ok(Submitted::Created(id))
}

pub(crate) const TASK_WITH_KEY: &str = crate::sql::ops::tasks::TASK_WITH_KEY.postgres;

async fn task_with_key(c: &Client, key: &str) -> Result<Option<TaskId>> {
    let row = c.query_opt(TASK_WITH_KEY, &[&key]).await?;
    row.map(|r| col(&r, 0).map(TaskId)).transpose()
}

pub(crate) async fn list(c: &Client, f: &ListFilter) -> Result<Page> {
    let limit = crate::decode::list_limit(f.limit);
    let Some((sql, args)) = list_sql(f, super::super::icu()) else {
        return Ok(crate::decode::task_page(Vec::new(), limit));
    };
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(ListArg::to_sql).collect();
    let rows = c.query(&sql, &params).await?;
    Ok(crate::decode::task_page(tasks_from_rows(&rows)?, limit))
}

/// The listing `f` asks for and its parameters, the text filter through ICU's case
/// folding when the server has it; `None` when nothing can match.
pub(crate) fn list_sql(f: &ListFilter, icu: bool) -> Option<(String, Vec<ListArg>)> {
    let limit = crate::decode::list_limit(f.limit);
    let mut sql = format!("SELECT {TASK_COLS} FROM tasks WHERE true");
    let mut args: Vec<ListArg> = Vec::new();
    let mut arg = |v: ListArg| {
        args.push(v);
        format!("${}", args.len())
    };
    if !f.states.is_empty() {
        let states: Vec<String> = f.states.iter().map(|s| s.as_str().to_string()).collect();
        sql += &format!(" AND state = ANY({}::TEXT[])", arg(ListArg::Texts(states)));
    }
    if let Some(q) = &f.queue {
        sql += &format!(" AND queue = {}", arg(ListArg::Text(q.clone())));
    }
    if let Some(s) = &f.session {
        sql += &format!(" AND session = {}", arg(ListArg::Text(s.clone())));
    }
    if let Some(n) = &f.name {
        sql += &format!(" AND name = {}", arg(ListArg::Text(n.clone())));
    }
    if let Some(t) = &f.text {
        if t.contains('\0') {
            // PostgreSQL text holds no NUL, so no name contains one.
            return None;
        }
        // Case folded by ICU where the server has it (`DÉPLOYER` finds
        // `déployer`); ILIKE, which folds what the database's locale folds, where not.
        if icu {
            sql += &format!(
                " AND strpos(lower(name COLLATE \"und-x-icu\"), {}) > 0",
                arg(ListArg::Text(crate::decode::fold_case(t)))
            );
        } else {
            sql += &format!(
                " AND name ILIKE {} ESCAPE '\\'",
                arg(ListArg::Text(crate::decode::like_pattern(t)))
            );
        }
    }
    if let Some(l) = &f.label {
        sql += &format!(
            " AND id IN (SELECT task_id FROM task_labels WHERE label = {})",
            arg(ListArg::Text(l.clone()))
        );
    }
    if let Some(b) = f.before {
        sql += &format!(" AND id < {}", arg(ListArg::Int(b.0)));
    }
    sql += &format!(" ORDER BY id DESC LIMIT {}", limit + 1);
    Some((sql, args))
}

/// A parameter of a listing.
pub(crate) enum ListArg {
    Texts(Vec<String>),
    Text(String),
    Int(i64),
}

impl ListArg {
    fn to_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            ListArg::Texts(v) => v,
            ListArg::Text(s) => s,
            ListArg::Int(n) => n,
        }
    }
}

pub(crate) async fn attempts(c: &Client, id: TaskId) -> Result<Vec<Attempt>> {
    load_task(c, id).await?;
    let rows = c
        .query(
            &format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE task_id = $1 ORDER BY number"),
            &[&id.0],
        )
        .await?;
    rows.iter().map(attempt_from_row).collect()
}

/// A removed task's labels.
pub(crate) const REMOVE_LABELS: &str = "DELETE FROM task_labels WHERE task_id = $1";

pub(crate) async fn remove(tx: &mut Tx, ids: &[TaskId]) -> Result<Vec<TaskId>> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let row = tx
            .client()
            .query_opt(
                "SELECT state, queue, labels FROM tasks WHERE id = $1 FOR UPDATE",
                &[&id.0],
            )
            .await?
            .ok_or(StoreError::UnknownTask(id))?;
        let state = crate::decode::state(&col::<String>(&row, 0)?)?;
        let queue: String = col(&row, 1)?;
        if !state.is_terminal() {
            return Err(crate::decode::not_ended(id, state));
        }
        for sql in [
            "DELETE FROM tasks WHERE id = $1",
            "DELETE FROM attempts WHERE task_id = $1",
            "DELETE FROM deps WHERE task_id = $1",
            "DELETE FROM steps WHERE task_id = $1",
            REMOVE_LABELS,
        ] {
            exec(tx, sql, &[&id.0]).await?;
        }
        tx.bump(&queue, state, -1);
        out.push(id);
    }
    if !out.is_empty() {
        let now = db_now(tx.client()).await?;
        let ids: Vec<i64> = out.iter().map(|t| t.0).collect();
        tx.emit(now, EventKind::Removed, None, json!({"ids": ids}));
    }
    Ok(out)
}

/// Finished tasks, by age and by count.
pub(crate) const FINISHED_BEFORE: &str =
    "SELECT id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < $1 LIMIT 10000";
pub(crate) const FINISHED_BEYOND: &str = "SELECT id FROM tasks WHERE finished_at IS NOT NULL
     ORDER BY finished_at DESC LIMIT 10000 OFFSET $1";

pub(crate) async fn clean_candidates(c: &Client, req: &CleanRequest) -> Result<Vec<TaskId>> {
    let mut ids: Vec<i64> = Vec::new();
    if let Some(before) = req.finished_before {
        let rows = c.query(FINISHED_BEFORE, &[&before.0]).await?;
        for r in &rows {
            ids.push(col(r, 0)?);
        }
    }
    if let Some(keep) = req.keep_last {
        let rows = c
            .query(FINISHED_BEYOND, &[&(keep.min(i64::MAX as u64) as i64)])
            .await?;
        for r in &rows {
            ids.push(col(r, 0)?);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    // Only terminal tasks have finished_at set, so every candidate may be removed.
    Ok(ids.into_iter().map(TaskId).collect())
}

/// See [`crate::Store::seal_clear_secrets`]. (The old row versions stay until
/// PostgreSQL vacuums them.)
pub(crate) async fn seal_clear_secrets(tx: &mut Tx, seal: &crate::secrets::Seal) -> Result<u64> {
    use crate::secrets::{IN_SCHEDULE, IN_TASK, SEALED_MARK};
    // One node seals; the others wait here, then find it done.
    exec(tx, "LOCK TABLE cursors IN EXCLUSIVE MODE", &[]).await?;
    let done = tx
        .client()
        .query_opt("SELECT seq FROM cursors WHERE name = $1", &[&SEALED_MARK])
        .await?;
    if done.is_some() {
        return Ok(0);
    }
    let changed = reseal_rows(
        tx,
        r#"SELECT id::text, spec FROM tasks WHERE spec LIKE '%"secrets"%'"#,
        "UPDATE tasks SET spec = $1 WHERE id = $2::text::bigint",
        IN_TASK,
        seal,
    )
    .await?
        + reseal_rows(
            tx,
            r#"SELECT name, spec FROM schedules WHERE spec LIKE '%"secrets"%'"#,
            "UPDATE schedules SET spec = $1 WHERE name = $2",
            IN_SCHEDULE,
            seal,
        )
        .await?;
    exec(
        tx,
        "INSERT INTO cursors (name, seq) VALUES ($1, 1)",
        &[&SEALED_MARK],
    )
    .await?;
    Ok(changed)
}

/// Rewrites the specs (`select` answers key and spec) whose secrets `seal` changes.
async fn reseal_rows(
    tx: &mut Tx,
    select: &str,
    update: &str,
    path: &[&str],
    seal: &crate::secrets::Seal,
) -> Result<u64> {
    let rows = tx.client().query(select, &[]).await?;
    let mut changed = 0;
    for row in rows {
        let (key, spec): (String, String) = (col(&row, 0)?, col(&row, 1)?);
        if let Some(sealed) = crate::secrets::reseal(&spec, path, seal)? {
            exec(tx, update, &[&sealed, &key]).await?;
            changed += 1;
        }
    }
    Ok(changed)
}
