//! Schedules: add, list, show, remove, pause, resume, and fire one by hand.

use crate::error::{Answer, Fail};
use crate::extract::{Body, NamePath};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meanwhile_core::http::SubmitAnswer;
use meanwhile_core::{ApiError, ScheduleInfo, ScheduleSpec, check_schedule_name};

/// A schedule's name from the path, checked like the `name` of a spec.
fn name(NamePath(name): NamePath) -> Result<String, Fail> {
    check_schedule_name(&name).map_err(|e| Fail(ApiError::invalid("schedule", e.message)))?;
    Ok(name)
}

pub(crate) async fn list(State(state): State<AppState>) -> Answer<Json<Vec<ScheduleInfo>>> {
    Ok(Json(state.rt.schedules().await?))
}

pub(crate) async fn add(
    State(state): State<AppState>,
    Body(mut spec): Body<ScheduleSpec>,
) -> Answer<(StatusCode, Json<ScheduleInfo>)> {
    spec.task = super::tasks::with_defaults(&state, spec.task);
    Ok((
        StatusCode::CREATED,
        Json(state.rt.add_schedule(spec).await?),
    ))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    path: NamePath,
) -> Answer<Json<ScheduleInfo>> {
    Ok(Json(state.rt.schedule(&name(path)?).await?))
}

pub(crate) async fn remove(State(state): State<AppState>, path: NamePath) -> Answer<StatusCode> {
    state.rt.remove_schedule(&name(path)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn pause(
    State(state): State<AppState>,
    path: NamePath,
) -> Answer<Json<ScheduleInfo>> {
    Ok(Json(state.rt.pause_schedule(&name(path)?, true).await?))
}

pub(crate) async fn resume(
    State(state): State<AppState>,
    path: NamePath,
) -> Answer<Json<ScheduleInfo>> {
    Ok(Json(state.rt.pause_schedule(&name(path)?, false).await?))
}

pub(crate) async fn run(
    State(state): State<AppState>,
    path: NamePath,
) -> Answer<(StatusCode, Json<SubmitAnswer>)> {
    let id = state.rt.run_schedule(&name(path)?).await?;
    Ok((
        StatusCode::CREATED,
        Json(SubmitAnswer { id, warning: None }),
    ))
}
