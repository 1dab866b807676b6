//! Submitting tasks (one or a batch), reading one, listing them.

use crate::error::{Answer, Fail};
use crate::extract::{Body, IdPath, Params};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meanwhile_core::http::{
    BatchAnswer, BatchItem, BatchRequest, ListParams, SubmitAnswer, TaskDetail,
};
use meanwhile_core::{ApiError, Page, TaskSpec, Work};

/// Gives a spec without a timeout the configured default one.
pub(crate) fn with_defaults(state: &AppState, mut spec: TaskSpec) -> TaskSpec {
    if spec.timeout.is_none() {
        spec.timeout = state.settings.default_timeout;
    }
    spec
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    Body(spec): Body<TaskSpec>,
) -> Answer<(StatusCode, Json<SubmitAnswer>)> {
    let spec = with_defaults(&state, spec);
    let warning = state.rt.start_warning(&spec);
    let id = state.rt.submit(spec).await?;
    Ok((StatusCode::CREATED, Json(SubmitAnswer { id, warning })))
}

pub(crate) async fn submit_batch(
    State(state): State<AppState>,
    Body(req): Body<BatchRequest>,
) -> Answer<Json<BatchAnswer>> {
    // Every spec is checked before any is stored: a batch with a bad spec stores
    // nothing, and the error names the spec by its index.
    for (i, spec) in req.tasks.iter().enumerate() {
        let bad = |field: &str, message: &str| {
            Fail(ApiError::invalid(
                format!("tasks[{i}].{field}"),
                format!("tasks[{i}].{field}: {message}"),
            ))
        };
        match spec.clone().validate() {
            Err(e) => return Err(bad(e.field, &e.message)),
            // Over the wire a spec names what to run; closures are for the library.
            Ok(v) if matches!(v.work(), Work::Function) => {
                return Err(bad("command", "give one of command, argv and agent"));
            }
            Ok(_) => {}
        }
    }
    if req.tasks.is_empty() {
        return Err(Fail(ApiError::invalid("tasks", "give at least one task")));
    }
    let specs = req
        .tasks
        .into_iter()
        .map(|s| with_defaults(&state, s))
        .collect();
    let results = state.rt.submit_batch(specs).await?;
    let results = results
        .into_iter()
        .map(|r| match r {
            Ok(id) => BatchItem {
                id: Some(id),
                error: None,
            },
            Err(e) => BatchItem {
                id: None,
                error: Some(e.into()),
            },
        })
        .collect();
    Ok(Json(BatchAnswer { results }))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Answer<Json<TaskDetail>> {
    let task = state.rt.get(id).await?;
    let attempts = state.rt.attempts(id).await?;
    Ok(Json(TaskDetail { task, attempts }))
}

pub(crate) async fn transcript(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> Answer<Json<meanwhile_core::Transcript>> {
    Ok(Json(state.rt.transcript(id).await?))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Params(p): Params<ListParams>,
) -> Answer<Json<Page>> {
    let filter = p.into_filter()?;
    Ok(Json(state.rt.list(filter).await?))
}
