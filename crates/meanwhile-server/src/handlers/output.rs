//! Reading a task's output, with every reading option, including waits.

use crate::error::Answer;
use crate::extract::{IdPath, Params};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use meanwhile_core::OutputChunk;
use meanwhile_core::http::OutputParams;

pub(crate) async fn read(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    Params(p): Params<OutputParams>,
) -> Answer<Json<OutputChunk>> {
    let query = p.into_query()?;
    // Another node of the fleet forwarded this read: the log is here, whatever
    // this node would conclude, so a read is never forwarded twice.
    let forwarded = headers.contains_key(crate::forward::FORWARDED_HEADER);
    state
        .unless_shutdown(async {
            let chunk = if forwarded {
                state.rt.read_output_here(id, query).await?
            } else {
                state.rt.read_output(id, query).await?
            };
            Ok(Json(chunk))
        })
        .await
}
