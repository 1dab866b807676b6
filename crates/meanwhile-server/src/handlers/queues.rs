//! Queues: list them, create or change one (parallelism, pause, resume, the limit
//! per concurrency key, the rate limit), remove one.

use crate::error::Answer;
use crate::extract::{Body, NamePath};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meanwhile_core::QueueInfo;
use meanwhile_core::http::QueueUpdate;

pub(crate) async fn list(State(state): State<AppState>) -> Answer<Json<Vec<QueueInfo>>> {
    Ok(Json(state.rt.queues().await?))
}

pub(crate) async fn set(
    State(state): State<AppState>,
    NamePath(name): NamePath,
    Body(u): Body<QueueUpdate>,
) -> Answer<Json<QueueInfo>> {
    u.check()?;
    Ok(Json(state.rt.set_queue(&name, u).await?))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Answer<StatusCode> {
    state.rt.remove_queue(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
