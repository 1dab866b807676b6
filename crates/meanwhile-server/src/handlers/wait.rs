//! Waiting for tasks to end.

use crate::error::Answer;
use crate::extract::Body;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use meanwhile_core::WaitOutcome;
use meanwhile_core::http::WaitRequest;

pub(crate) async fn wait(
    State(state): State<AppState>,
    Body(req): Body<WaitRequest>,
) -> Answer<Json<WaitOutcome>> {
    state
        .unless_shutdown(async { Ok(Json(state.rt.wait(&req.ids, req.mode, req.timeout).await?)) })
        .await
}
