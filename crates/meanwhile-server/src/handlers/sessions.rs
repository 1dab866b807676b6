//! Agent sessions that keep their conversation: list them, open one (fresh or to
//! continue it), record and read its steps, forget it.

use crate::error::Answer;
use crate::extract::{Body, NamePath, Params};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meanwhile_core::http::LimitParams;
use meanwhile_core::{AgentSession, NewSessionStep, OpenSession, Step, StepRecorded};

pub(crate) async fn list(
    State(state): State<AppState>,
    Params(p): Params<LimitParams>,
) -> Answer<Json<Vec<AgentSession>>> {
    Ok(Json(state.rt.agent_sessions(p.limit()?).await?))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    NamePath(session): NamePath,
) -> Answer<Json<AgentSession>> {
    Ok(Json(state.rt.agent_session(&session).await?))
}

pub(crate) async fn open(
    State(state): State<AppState>,
    NamePath(session): NamePath,
    Body(open): Body<OpenSession>,
) -> Answer<Json<AgentSession>> {
    Ok(Json(state.rt.open_agent_session(&session, open).await?))
}

pub(crate) async fn steps(
    State(state): State<AppState>,
    NamePath(session): NamePath,
) -> Answer<Json<Vec<Step>>> {
    Ok(Json(state.rt.agent_session_steps(&session).await?))
}

pub(crate) async fn record(
    State(state): State<AppState>,
    NamePath(session): NamePath,
    Body(step): Body<NewSessionStep>,
) -> Answer<(StatusCode, Json<StepRecorded>)> {
    let n = state.rt.record_session_step(&session, step).await?;
    Ok((StatusCode::CREATED, Json(StepRecorded { n })))
}

pub(crate) async fn forget(
    State(state): State<AppState>,
    NamePath(session): NamePath,
) -> Answer<StatusCode> {
    state.rt.forget_agent_session(&session).await?;
    Ok(StatusCode::NO_CONTENT)
}
