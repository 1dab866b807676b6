//! Named API tokens: list, add, remove. Served only on the Unix socket: they manage
//! the credentials of the TCP listener, so a token must not be able to mint another.

use crate::error::{Answer, Fail};
use crate::extract::{Body, NamePath};
use crate::keys::{new_secret, token_hash};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use meanwhile_core::{
    ApiError, DEFAULT_TOKEN, NewToken, NewTokenRequest, Timestamp, TokenInfo, check_token_name,
};

fn default_refused(what: &str) -> Fail {
    Fail(ApiError::new(
        meanwhile_core::ErrorCode::Conflict,
        format!(
            "name: {DEFAULT_TOKEN:?} is the token of the token file in the daemon's home; {what}"
        ),
    ))
}

pub(crate) async fn list(State(state): State<AppState>) -> Answer<Json<Vec<TokenInfo>>> {
    let file = crate::keys::token_path(&state.settings.home);
    let created_at = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Timestamp(d.as_millis() as i64));
    let mut all = vec![TokenInfo {
        name: DEFAULT_TOKEN.to_string(),
        created_at,
    }];
    all.extend(state.rt.tokens().await?.into_iter().map(|t| TokenInfo {
        name: t.name,
        created_at: Some(t.created_at),
    }));
    Ok(Json(all))
}

pub(crate) async fn add(
    State(state): State<AppState>,
    Body(req): Body<NewTokenRequest>,
) -> Answer<(StatusCode, Json<NewToken>)> {
    check_token_name(&req.name)?;
    if req.name == DEFAULT_TOKEN {
        return Err(default_refused("choose another name"));
    }
    let token = new_secret();
    let hash = token_hash(&token);
    let info = state.rt.add_token(&req.name, &hash).await?;
    // Committed: from now on the listener accepts it.
    state.tokens.insert(&req.name, &hash);
    Ok((
        StatusCode::CREATED,
        Json(NewToken {
            name: info.name,
            token,
            created_at: info.created_at.unwrap_or_default(),
        }),
    ))
}

pub(crate) async fn remove(
    State(state): State<AppState>,
    NamePath(name): NamePath,
) -> Answer<StatusCode> {
    check_token_name(&name)?;
    if name == DEFAULT_TOKEN {
        return Err(default_refused(
            "to change it, replace that file and restart the daemon",
        ));
    }
    state.rt.remove_token(&name).await?;
    state.tokens.remove(&name);
    Ok(StatusCode::NO_CONTENT)
}
