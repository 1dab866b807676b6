//! A session's completion notices: peek (leave them) or drain (mark them delivered).

use crate::error::Answer;
use crate::extract::{NamePath, Params};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use meanwhile_core::http::LimitParams;
use meanwhile_core::{ApiError, Notification, check_session_name};

pub(crate) async fn peek(
    State(state): State<AppState>,
    NamePath(session): NamePath,
    Params(p): Params<LimitParams>,
) -> Answer<Json<Vec<Notification>>> {
    check(&session)?;
    Ok(Json(
        state.rt.peek_notifications(&session, p.limit()?).await?,
    ))
}

pub(crate) async fn drain(
    State(state): State<AppState>,
    NamePath(session): NamePath,
    Params(p): Params<LimitParams>,
) -> Answer<Json<Vec<Notification>>> {
    check(&session)?;
    Ok(Json(
        state.rt.drain_notifications(&session, p.limit()?).await?,
    ))
}

/// A session's name from the path, checked like the `session` of a spec (no task
/// can notify another).
fn check(session: &str) -> Result<(), crate::error::Fail> {
    check_session_name("session", session)
        .map_err(|e| crate::error::Fail(ApiError::invalid("session", e.message)))
}
