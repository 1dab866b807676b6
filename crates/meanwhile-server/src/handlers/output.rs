//! Reading a task's output, with every reading option, including waits.

use crate::error::Answer;
use crate::extract::{IdPath, Params};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use meanwhile_core::OutputChunk;
use meanwhile_core::http::OutputParams;

pub(crate) async fn read(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    Params(p): Params<OutputParams>,
) -> Answer<Json<OutputChunk>> {
    let query = p.into_query()?;
    state
        .unless_shutdown(async { Ok(Json(state.rt.read_output(id, query).await?)) })
        .await
}
