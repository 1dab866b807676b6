//! The daemon's health, versions and counts.

use crate::error::Answer;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use meanwhile_core::http::Status;
use std::collections::BTreeMap;

pub(crate) async fn status(State(state): State<AppState>) -> Answer<Json<Status>> {
    // From the store's counters, never a scan: this stays fast with millions of tasks.
    let mut counts = BTreeMap::new();
    for (_queue, s, n) in state
        .rt
        .store()
        .counts()
        .await
        .map_err(meanwhile_runtime::Error::from)?
    {
        *counts.entry(s.as_str().to_string()).or_insert(0) += n;
    }
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        home: state.settings.home.display().to_string(),
        node: state.rt.node().to_string(),
        started_at: state.started_at,
        counts,
        queues: state.rt.queues().await?,
    }))
}
