//! Moving a test clock (`meanwhile daemon clock --advance`): only a daemon started
//! with `MEANWHILE_TEST_CLOCK` has one; every other daemon keeps the system's time
//! and refuses.

use crate::error::{Answer, Fail};
use crate::extract::Body;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use meanwhile_core::http::{ClockAdvance, ClockMoved};
use meanwhile_core::{ApiError, ErrorCode};
use std::time::Duration;

/// How long a move waits for the timed loops to look at the new time.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

pub(crate) async fn advance(
    State(state): State<AppState>,
    Body(req): Body<ClockAdvance>,
) -> Answer<Json<ClockMoved>> {
    let clock = state.rt.clock();
    let Some(number) = clock.advance(req.advance) else {
        return Err(Fail(ApiError::new(
            ErrorCode::Conflict,
            "this daemon keeps the system's time; only a daemon started with MEANWHILE_TEST_CLOCK (a test's) has a clock to move",
        )));
    };
    let settled = tokio::time::timeout(SETTLE_WITHIN, clock.settled(number))
        .await
        .is_ok();
    Ok(Json(ClockMoved {
        now: clock.now(),
        ahead_ms: clock.offset().as_millis() as u64,
        settled,
    }))
}
