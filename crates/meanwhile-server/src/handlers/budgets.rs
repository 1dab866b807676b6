//! Budgets: list them, and set, show or remove the budget of one queue.

use crate::error::{Answer, Fail};
use crate::extract::{Body, NamePath};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meanwhile_core::{ApiError, BudgetInfo, BudgetSpec, check_queue_name};

/// A queue's name from the path, checked like the `queue` of a spec.
fn queue(NamePath(name): NamePath) -> Result<String, Fail> {
    check_queue_name(&name).map_err(|e| Fail(ApiError::invalid("queue", e.to_string())))?;
    Ok(name)
}

pub(crate) async fn list(State(state): State<AppState>) -> Answer<Json<Vec<BudgetInfo>>> {
    Ok(Json(state.rt.budgets().await?))
}

pub(crate) async fn get(State(state): State<AppState>, path: NamePath) -> Answer<Json<BudgetInfo>> {
    Ok(Json(state.rt.budget(&queue(path)?).await?))
}

pub(crate) async fn set(
    State(state): State<AppState>,
    path: NamePath,
    Body(spec): Body<BudgetSpec>,
) -> Answer<Json<BudgetInfo>> {
    let name = queue(path)?;
    Ok(Json(state.rt.set_budget(&name, spec).await?))
}

pub(crate) async fn remove(State(state): State<AppState>, path: NamePath) -> Answer<StatusCode> {
    state.rt.remove_budget(&queue(path)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
