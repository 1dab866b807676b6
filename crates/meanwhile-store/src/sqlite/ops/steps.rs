//! The step record of attempts that can resume (see `meanwhile_core::Step`).

use super::*;
use crate::{NewStep, StoreError};
use meanwhile_core::{Event, Step, TaskId};
use rusqlite::{Connection, OptionalExtension, params};

/// Appends a step to the task's running attempt, which must be held by the step's
/// node when it names one, and charges its usage in the same write when given: a
/// resumed attempt then neither charges a recorded call again nor misses one.
pub(crate) fn record_step(conn: &Connection, events: &mut Vec<Event>, s: &NewStep) -> Result<u32> {
    let id = s.id;
    crate::decode::check_step(&s.kind, &s.data)?;
    let running: Option<(String, u32, Option<String>)> = conn
        .prepare_cached("SELECT state, attempts, node FROM tasks WHERE id = ?1")?
        .query_row([id.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (state, current, holder) = running.ok_or(StoreError::UnknownTask(id))?;
    crate::decode::check_step_attempt(s, &state, current, holder.as_deref())?;
    let n: u32 = conn
        .prepare_cached(
            "INSERT INTO steps (task_id, attempt, n, at, kind, data)
             SELECT ?1, ?2, COALESCE(MAX(n), 0) + 1, ?3, ?4, ?5
               FROM steps WHERE task_id = ?1 AND attempt = ?2
             RETURNING n",
        )?
        .query_row(params![id.0, s.attempt, s.now.0, s.kind, s.data], |r| {
            r.get(0)
        })?;
    if let Some((tokens, cost_usd)) = s.usage {
        charge_usage(conn, events, id, tokens, cost_usd, 1, s.now)?;
    }
    Ok(n)
}

/// The steps of task `?1`, of attempt `?2` or of all.
pub(crate) const STEPS: &str = "SELECT attempt, n, at, kind, data FROM steps
  WHERE task_id = ?1 AND (?2 IS NULL OR attempt = ?2)
  ORDER BY attempt, n";

/// The steps of task `id`: of one attempt, or of all.
pub(crate) fn steps(conn: &Connection, id: TaskId, attempt: Option<u32>) -> Result<Vec<Step>> {
    let mut stmt = conn.prepare_cached(STEPS)?;
    let rows = stmt.query_map(params![id.0, attempt], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    rows.map(|r| {
        let (attempt, n, at, kind, data) = r?;
        crate::decode::step(attempt, n, at, kind, &data)
    })
    .collect()
}

const SESSION_COLUMNS: &str = crate::sql::ops::steps::SESSION_COLUMNS.sqlite;

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<meanwhile_core::AgentSession> {
    Ok(crate::conversation::session(
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

/// Opens an agent session for a holder (see `SessionStore::open_agent_session`).
pub(crate) fn open_agent_session(
    conn: &Connection,
    open: &crate::OpenAgentSession,
) -> Result<meanwhile_core::AgentSession> {
    let held = if open.fresh {
        None
    } else {
        conn.prepare_cached(&format!(
            "UPDATE agent_sessions SET holder = ?2, updated_at = ?3 WHERE name = ?1
             RETURNING {SESSION_COLUMNS}"
        ))?
        .query_row(params![open.name, open.holder, open.now.0], session_row)
        .optional()?
    };
    if let Some(s) = held {
        return Ok(s);
    }
    conn.prepare_cached("DELETE FROM agent_session_steps WHERE session = ?1")?
        .execute([&open.name])?;
    Ok(conn
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO agent_sessions ({SESSION_COLUMNS})
             VALUES (?1, ?2, '', 0, ?3, ?3, ?4)
             RETURNING {SESSION_COLUMNS}"
        ))?
        .query_row(
            params![open.name, open.workspace, open.now.0, open.holder],
            session_row,
        )?)
}

/// Records the next step of an agent session (see `SessionStore::record_session_step`).
pub(crate) fn record_session_step(
    conn: &Connection,
    s: &crate::NewAgentSessionStep,
) -> Result<u32> {
    crate::decode::check_step(&s.kind, &s.data)?;
    let held: Option<(String, u32)> = conn
        .prepare_cached("SELECT holder, steps FROM agent_sessions WHERE name = ?1")?
        .query_row([&s.name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (held_by, steps) = held.ok_or_else(|| StoreError::UnknownSession(s.name.clone()))?;
    crate::conversation::check_next(&s.name, &held_by, steps, &s.holder, s.after)?;
    let n = s.after + 1;
    conn.prepare_cached(
        "INSERT INTO agent_session_steps (session, n, at, kind, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![s.name, n, s.now.0, s.kind, s.data])?;
    let title = crate::conversation::title(&s.kind, &s.data);
    conn.prepare_cached(
        "UPDATE agent_sessions SET steps = ?2, updated_at = ?3,
           title = CASE WHEN title = '' AND ?4 IS NOT NULL THEN ?4 ELSE title END
         WHERE name = ?1",
    )?
    .execute(params![s.name, n, s.now.0, title])?;
    Ok(n)
}

pub(crate) const SESSION_STEPS: &str = crate::sql::ops::steps::SESSION_STEPS.sqlite;

/// An agent session's steps, oldest first.
pub(crate) fn agent_session_steps(conn: &Connection, name: &str) -> Result<Vec<Step>> {
    let known = conn
        .prepare_cached("SELECT 1 FROM agent_sessions WHERE name = ?1")?
        .exists([name])?;
    if !known {
        return Err(StoreError::UnknownSession(name.to_string()));
    }
    let mut stmt = conn.prepare_cached(SESSION_STEPS)?;
    let rows = stmt.query_map([name], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    rows.map(|r| {
        let (n, at, kind, data) = r?;
        crate::conversation::step(n, at, kind, &data)
    })
    .collect()
}

/// One agent session.
pub(crate) fn agent_session(conn: &Connection, name: &str) -> Result<meanwhile_core::AgentSession> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM agent_sessions WHERE name = ?1"
    ))?
    .query_row([name], session_row)
    .optional()?
    .ok_or_else(|| StoreError::UnknownSession(name.to_string()))
}

pub(crate) const AGENT_SESSIONS: &str = crate::sql::ops::steps::AGENT_SESSIONS.sqlite;

/// Agent sessions, the last active first.
pub(crate) fn agent_sessions(
    conn: &Connection,
    limit: u32,
) -> Result<Vec<meanwhile_core::AgentSession>> {
    let mut stmt = conn.prepare_cached(AGENT_SESSIONS)?;
    let rows = stmt.query_map([limit], session_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Removes an agent session's conversation.
pub(crate) fn forget_agent_session(conn: &Connection, name: &str) -> Result<bool> {
    conn.prepare_cached("DELETE FROM agent_session_steps WHERE session = ?1")?
        .execute([name])?;
    Ok(conn
        .prepare_cached("DELETE FROM agent_sessions WHERE name = ?1")?
        .execute([name])?
        > 0)
}

pub(crate) const IDLE_AGENT_SESSIONS: &str = crate::sql::ops::steps::IDLE_AGENT_SESSIONS.sqlite;

/// Removes the conversations of a slice of agent sessions idle since before
/// `before`; answers how many.
pub(crate) fn forget_idle_agent_sessions(
    conn: &Connection,
    before: meanwhile_core::Timestamp,
) -> Result<u64> {
    let names: Vec<String> = conn
        .prepare_cached(IDLE_AGENT_SESSIONS)?
        .query_map(params![before.0, crate::conversation::IDLE_SLICE], |r| {
            r.get(0)
        })?
        .collect::<rusqlite::Result<_>>()?;
    for name in &names {
        forget_agent_session(conn, name)?;
    }
    Ok(names.len() as u64)
}
