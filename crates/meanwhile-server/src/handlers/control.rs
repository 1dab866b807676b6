//! Changing tasks: stop, retry, remove, clean, progress, input.

use crate::error::{Answer, Fail};
use crate::extract::{Body, IdPath, OptBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meanwhile_core::http::{CleanBody, ProgressReport, RemoveRequest, Removed, StopRequest};
use meanwhile_core::{ApiError, InputSent, TaskInput, TaskRecord};
use meanwhile_runtime::store::CleanRequest;

pub(crate) async fn stop(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    OptBody(req): OptBody<StopRequest>,
) -> Answer<Json<TaskRecord>> {
    Ok(Json(state.rt.stop(id, req.mode).await?))
}

pub(crate) async fn input(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Body(req): Body<TaskInput>,
) -> Answer<Json<InputSent>> {
    Ok(Json(state.rt.send_input(id, req).await?))
}

pub(crate) async fn retry(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Answer<Json<TaskRecord>> {
    Ok(Json(state.rt.retry(id).await?))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    Body(req): Body<RemoveRequest>,
) -> Answer<Json<Removed>> {
    if req.ids.is_empty() {
        return Err(Fail(ApiError::invalid("ids", "name at least one task")));
    }
    let removed = state.rt.remove(req.ids).await?;
    Ok(Json(Removed { removed }))
}

pub(crate) async fn clean(
    State(state): State<AppState>,
    OptBody(req): OptBody<CleanBody>,
) -> Answer<Json<Removed>> {
    if req.keep_last.is_some_and(|k| k > i64::MAX as u64) {
        return Err(Fail(ApiError::invalid(
            "keep_last",
            format!("must be at most {}", i64::MAX),
        )));
    }
    let now = state.rt.now();
    let finished_before = match (req.older_than, req.keep_last) {
        (Some(age), _) => Some(meanwhile_core::Timestamp(
            now.0.saturating_sub(age.as_millis() as i64),
        )),
        // Neither: every finished task (all that finished before now, and later).
        (None, None) => Some(meanwhile_core::Timestamp(i64::MAX)),
        (None, Some(_)) => None,
    };
    let removed = crate::retention::clean_all(
        &state.rt,
        CleanRequest {
            finished_before,
            keep_last: req.keep_last,
        },
    )
    .await?;
    Ok(Json(Removed { removed }))
}

pub(crate) async fn progress(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Body(req): Body<ProgressReport>,
) -> Answer<StatusCode> {
    // The one rule, checked before the percentage is narrowed to f32.
    let percent = req
        .percent
        .map(meanwhile_core::Progress::check_percent)
        .transpose()
        .map_err(|e| Fail(ApiError::invalid(e.field, e.message)))?;
    state.rt.report_progress(id, percent, req.message).await?;
    Ok(StatusCode::NO_CONTENT)
}
