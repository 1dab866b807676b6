//! Nodes: the runtimes sharing the store, and forgetting one that is gone.

use crate::error::Answer;
use crate::extract::NamePath;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meanwhile_core::NodeInfo;

pub(crate) async fn list(State(state): State<AppState>) -> Answer<Json<Vec<NodeInfo>>> {
    Ok(Json(state.rt.nodes().await?))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Answer<StatusCode> {
    state.rt.remove_node(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
