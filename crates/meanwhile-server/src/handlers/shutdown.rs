//! Stopping the daemon on request (`meanwhile daemon stop`), leaving its running
//! tasks for the next daemon unless asked to stop them.

use crate::error::Answer;
use crate::extract::OptBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meanwhile_core::http::{ShutdownRequest, ShuttingDown};

pub(crate) async fn shutdown(
    State(state): State<AppState>,
    OptBody(req): OptBody<ShutdownRequest>,
) -> Answer<(StatusCode, Json<ShuttingDown>)> {
    // A request to stop the tasks wins over one to leave them, whichever came first.
    state.stop.send_modify(|asked| {
        *asked = Some(asked.unwrap_or(false) || req.stop_tasks);
    });
    let stop_tasks = state.settings.stop_tasks || state.stop.borrow().unwrap_or(false);
    Ok((
        StatusCode::ACCEPTED,
        Json(ShuttingDown {
            pid: std::process::id(),
            stop_tasks,
        }),
    ))
}
