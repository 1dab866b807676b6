//! A session's completion notices: peek (leave them) or drain (mark them delivered).

use crate::error::Answer;
use crate::extract::{NamePath, Params};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use meanwhile_core::Notification;
use meanwhile_core::http::LimitParams;

pub(crate) async fn peek(
    State(state): State<AppState>,
    NamePath(session): NamePath,
    Params(p): Params<LimitParams>,
) -> Answer<Json<Vec<Notification>>> {
    Ok(Json(
        state.rt.peek_notifications(&session, p.limit()?).await?,
    ))
}

pub(crate) async fn drain(
    State(state): State<AppState>,
    NamePath(session): NamePath,
    Params(p): Params<LimitParams>,
) -> Answer<Json<Vec<Notification>>> {
    Ok(Json(
        state.rt.drain_notifications(&session, p.limit()?).await?,
    ))
}
