//! Alerts: the firing ones (or all), and the daemon's health, which is whether any
//! fires.

use crate::error::Answer;
use crate::extract::{AlertPath, OptBody, Params};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use meanwhile_core::Alert;
use meanwhile_core::http::{AckRequest, AlertParams, Health};

/// The most alerts one answer lists.
const MAX_ALERTS: u32 = 1000;

pub(crate) async fn list(
    State(state): State<AppState>,
    Params(p): Params<AlertParams>,
) -> Answer<Json<Vec<Alert>>> {
    Ok(Json(
        state.rt.alerts(p.all.unwrap_or(false), MAX_ALERTS).await?,
    ))
}

pub(crate) async fn ack(
    State(state): State<AppState>,
    AlertPath(id): AlertPath,
    OptBody(req): OptBody<AckRequest>,
) -> Answer<Json<Alert>> {
    Ok(Json(state.rt.ack_alert(id, req.for_).await?))
}

pub(crate) async fn health(State(state): State<AppState>) -> Answer<Json<Health>> {
    let firing = state.rt.alerts(false, MAX_ALERTS).await?;
    let loops = state.rt.loop_health();
    let now = state.rt.now();
    Ok(Json(Health {
        ok: firing.iter().all(|a| a.acked_at(now)) && !loops.iter().any(|l| l.failing),
        firing,
        loops,
    }))
}
