//! The audit trail: list its records, and verify its hash chain.

use crate::error::Answer;
use crate::extract::Params;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use meanwhile_core::{AuditPage, AuditParams, AuditVerdict};

pub(crate) async fn list(
    State(state): State<AppState>,
    Params(p): Params<AuditParams>,
) -> Answer<Json<AuditPage>> {
    let filter = p.into_filter()?;
    Ok(Json(state.rt.audit(filter).await?))
}

pub(crate) async fn verify(State(state): State<AppState>) -> Answer<Json<AuditVerdict>> {
    Ok(Json(state.rt.verify_audit(state.audit_key.clone()).await?))
}
