//! The step record of attempts that can resume, as in SQLite.

use super::*;
use crate::postgres::Client;
use crate::{NewStep, StoreError};
use meanwhile_core::{Step, TaskId};

/// Appends a step to the task's running attempt (its row locked, so that no stop or
/// takeover ends or moves the attempt meanwhile), which must be held by the step's
/// node when it names one, charging its usage in the same write.
pub(crate) async fn record_step(tx: &mut Tx, s: &NewStep) -> Result<u32> {
    let id = s.id;
    crate::decode::check_step(&s.kind, &s.data)?;
    let row = tx
        .client()
        .query_opt(
            "SELECT state, attempts, node FROM tasks WHERE id = $1 FOR UPDATE",
            &[&id.0],
        )
        .await?
        .ok_or(StoreError::UnknownTask(id))?;
    let state: String = col(&row, 0)?;
    let current: i64 = col(&row, 1)?;
    let holder: Option<String> = col(&row, 2)?;
    crate::decode::check_step_attempt(s, &state, current as u32, holder.as_deref())?;
    let row = tx
        .client()
        .query_one(
            "INSERT INTO steps (task_id, attempt, n, at, kind, data)
             SELECT $1, $2, COALESCE(MAX(n), 0) + 1, $3, $4, $5
               FROM steps WHERE task_id = $1 AND attempt = $2
             RETURNING n",
            &[&id.0, &i64::from(s.attempt), &s.now.0, &s.kind, &s.data],
        )
        .await?;
    let n: i64 = col(&row, 0)?;
    if let Some((tokens, cost_usd)) = s.usage {
        charge_usage(tx, id, tokens, cost_usd, 1, s.now).await?;
    }
    Ok(n as u32)
}

/// The steps of task `$1`, of attempt `$2` or of all.
pub(crate) const STEPS: &str = "SELECT attempt, n, at, kind, data FROM steps
  WHERE task_id = $1 AND ($2::BIGINT IS NULL OR attempt = $2)
  ORDER BY attempt, n";

/// The steps of task `id`: of one attempt, or of all.
pub(crate) async fn steps(c: &Client, id: TaskId, attempt: Option<u32>) -> Result<Vec<Step>> {
    let rows = c.query(STEPS, &[&id.0, &attempt.map(i64::from)]).await?;
    rows.iter()
        .map(|r| {
            let (attempt, n): (i64, i64) = (col(r, 0)?, col(r, 1)?);
            let data: String = col(r, 4)?;
            crate::decode::step(attempt as u32, n as u32, col(r, 2)?, col(r, 3)?, &data)
        })
        .collect()
}

const SESSION_COLUMNS: &str = crate::sql::ops::steps::SESSION_COLUMNS.postgres;

fn session_row(r: &tokio_postgres::Row) -> Result<meanwhile_core::AgentSession> {
    Ok(crate::conversation::session(
        col(r, 0)?,
        col(r, 1)?,
        col(r, 2)?,
        col(r, 3)?,
        col(r, 4)?,
        col(r, 5)?,
        col(r, 6)?,
    ))
}

/// Opens an agent session for a holder (see `SessionStore::open_agent_session`).
pub(crate) async fn open_agent_session(
    tx: &mut Tx,
    open: &crate::OpenAgentSession,
) -> Result<meanwhile_core::AgentSession> {
    let c = tx.client();
    if !open.fresh {
        let held = c
            .query_opt(
                &format!(
                    "UPDATE agent_sessions SET holder = $2, updated_at = $3 WHERE name = $1
                     RETURNING {SESSION_COLUMNS}"
                ),
                &[&open.name, &open.holder, &open.now.0],
            )
            .await?;
        if let Some(row) = held {
            return session_row(&row);
        }
    }
    c.execute(
        "DELETE FROM agent_session_steps WHERE session = $1",
        &[&open.name],
    )
    .await?;
    let row = c
        .query_one(
            &format!(
                "INSERT INTO agent_sessions ({SESSION_COLUMNS}) VALUES ($1, $2, '', 0, $3, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET workspace = $2, title = '', steps = 0,
                   created_at = $3, updated_at = $3, holder = $4
                 RETURNING {SESSION_COLUMNS}"
            ),
            &[&open.name, &open.workspace, &open.now.0, &open.holder],
        )
        .await?;
    session_row(&row)
}

/// Records the next step of an agent session (its row locked, so that an open
/// elsewhere waits for it), as in SQLite.
pub(crate) async fn record_session_step(
    tx: &mut Tx,
    s: &crate::NewAgentSessionStep,
) -> Result<u32> {
    crate::decode::check_step(&s.kind, &s.data)?;
    let c = tx.client();
    let row = c
        .query_opt(
            "SELECT holder, steps FROM agent_sessions WHERE name = $1 FOR UPDATE",
            &[&s.name],
        )
        .await?
        .ok_or_else(|| StoreError::UnknownSession(s.name.clone()))?;
    let held_by: String = col(&row, 0)?;
    let steps: i64 = col(&row, 1)?;
    crate::conversation::check_next(&s.name, &held_by, steps as u32, &s.holder, s.after)?;
    let n = i64::from(s.after) + 1;
    c.execute(
        "INSERT INTO agent_session_steps (session, n, at, kind, data) VALUES ($1, $2, $3, $4, $5)",
        &[&s.name, &n, &s.now.0, &s.kind, &s.data],
    )
    .await?;
    let title = crate::conversation::title(&s.kind, &s.data);
    c.execute(
        "UPDATE agent_sessions SET steps = $2, updated_at = $3,
           title = CASE WHEN title = '' AND $4::TEXT IS NOT NULL THEN $4 ELSE title END
         WHERE name = $1",
        &[&s.name, &n, &s.now.0, &title],
    )
    .await?;
    Ok(n as u32)
}

pub(crate) const SESSION_STEPS: &str = crate::sql::ops::steps::SESSION_STEPS.postgres;

/// An agent session's steps, oldest first.
pub(crate) async fn agent_session_steps(c: &Client, name: &str) -> Result<Vec<Step>> {
    let known = c
        .query_opt("SELECT 1 FROM agent_sessions WHERE name = $1", &[&name])
        .await?;
    if known.is_none() {
        return Err(StoreError::UnknownSession(name.to_string()));
    }
    let rows = c.query(SESSION_STEPS, &[&name]).await?;
    rows.iter()
        .map(|r| {
            let data: String = col(r, 3)?;
            crate::conversation::step(col(r, 0)?, col(r, 1)?, col(r, 2)?, &data)
        })
        .collect()
}

/// One agent session.
pub(crate) async fn agent_session(c: &Client, name: &str) -> Result<meanwhile_core::AgentSession> {
    let row = c
        .query_opt(
            &format!("SELECT {SESSION_COLUMNS} FROM agent_sessions WHERE name = $1"),
            &[&name],
        )
        .await?
        .ok_or_else(|| StoreError::UnknownSession(name.to_string()))?;
    session_row(&row)
}

pub(crate) const AGENT_SESSIONS: &str = crate::sql::ops::steps::AGENT_SESSIONS.postgres;

/// Agent sessions, the last active first.
pub(crate) async fn agent_sessions(
    c: &Client,
    limit: u32,
) -> Result<Vec<meanwhile_core::AgentSession>> {
    let rows = c.query(AGENT_SESSIONS, &[&i64::from(limit)]).await?;
    rows.iter().map(session_row).collect()
}

/// Removes an agent session's conversation.
pub(crate) async fn forget_agent_session(tx: &mut Tx, name: &str) -> Result<bool> {
    let c = tx.client();
    c.execute(
        "DELETE FROM agent_session_steps WHERE session = $1",
        &[&name],
    )
    .await?;
    Ok(
        c.execute("DELETE FROM agent_sessions WHERE name = $1", &[&name])
            .await?
            > 0,
    )
}

pub(crate) const IDLE_AGENT_SESSIONS: &str = crate::sql::ops::steps::IDLE_AGENT_SESSIONS.postgres;

/// Removes the conversations of a slice of agent sessions idle since before
/// `before`; answers how many.
pub(crate) async fn forget_idle_agent_sessions(
    tx: &mut Tx,
    before: meanwhile_core::Timestamp,
) -> Result<u64> {
    let rows = tx
        .client()
        .query(
            IDLE_AGENT_SESSIONS,
            &[&before.0, &crate::conversation::IDLE_SLICE],
        )
        .await?;
    let names: Vec<String> = rows.iter().map(|r| col(r, 0)).collect::<Result<_>>()?;
    for name in &names {
        forget_agent_session(tx, name).await?;
    }
    Ok(names.len() as u64)
}
