//! The dashboard's logins: a browser cannot send a bearer token on its own, so it
//! logs in once and is given a session cookie (`HttpOnly`, `SameSite=Strict`), with
//! a token typed into the login form or a one-time link. Sessions live in the
//! daemon's memory. [`without_token`] is what the TCP listener's guard asks about a
//! request that carries no bearer token.

use crate::keys::{Tokens, new_secret, token_hash};
use axum::http::header::{COOKIE, LOCATION};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use meanwhile_core::{Actor, ApiError, ErrorCode};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a one-time login link works.
pub(crate) const CODE_LIFETIME: Duration = Duration::from_secs(300);
/// How long a session lasts after its login (the cookie's `Max-Age` too).
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The most sessions kept; the oldest go first.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    actor: Actor,
    /// The hash of the token it logged in with; none for a login link's.
    token: Option<String>,
    since: Instant,
}

/// The browser sessions and one-time login codes of a daemon, kept by hash.
#[derive(Default)]
pub(crate) struct Browser {
    sessions: Mutex<HashMap<String, Session>>,
    codes: Mutex<HashMap<String, (Actor, Instant)>>,
    /// The address the dashboard is served at, once a listener serves it.
    pub(crate) address: tokio::sync::Mutex<Option<SocketAddr>>,
    /// Serves the TCP router on a listener: set by the daemon once its state exists.
    pub(crate) launcher: OnceLock<Box<dyn Fn(tokio::net::TcpListener) + Send + Sync>>,
}

impl Browser {
    /// A browser that the daemon's TCP listener at `address` (if any) serves.
    pub(crate) fn new(address: Option<SocketAddr>) -> Browser {
        Browser {
            address: tokio::sync::Mutex::new(address),
            ..Browser::default()
        }
    }

    /// How a listener opened for the dashboard is served.
    pub(crate) fn set_launcher(&self, f: Box<dyn Fn(tokio::net::TcpListener) + Send + Sync>) {
        let _ = self.launcher.set(f);
    }

    pub(crate) fn new_session(&self, actor: Actor, token: Option<String>) -> String {
        let secret = new_secret();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, s| s.since.elapsed() < SESSION_LIFETIME);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.since)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            token_hash(&secret),
            Session {
                actor,
                token,
                since: Instant::now(),
            },
        );
        secret
    }

    /// The actor of the session `secret`, if it is one, has not expired, and the
    /// token it logged in with still opens the listener (`tokens` knows its hash: a
    /// token removed, even if added again under its name, ends its sessions).
    pub(crate) fn session(&self, secret: &str, tokens: &Tokens) -> Option<Actor> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let key = token_hash(secret);
        let s = sessions.get(&key)?;
        let gone = s.token.as_ref().is_some_and(|h| !tokens.knows_hash(h));
        if gone || s.since.elapsed() >= SESSION_LIFETIME {
            sessions.remove(&key);
            return None;
        }
        Some(s.actor.clone())
    }

    pub(crate) fn end_session(&self, secret: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token_hash(secret));
    }

    pub(crate) fn new_code(&self, actor: Actor) -> String {
        let code = new_secret();
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, (_, at)| at.elapsed() < CODE_LIFETIME);
        codes.insert(token_hash(&code), (actor, Instant::now()));
        code
    }

    /// The actor a login code was made for; the code works only once.
    pub(crate) fn take_code(&self, code: &str) -> Option<Actor> {
        let (actor, at) = self
            .codes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token_hash(code))?;
        (at.elapsed() < CODE_LIFETIME).then_some(actor)
    }
}

/// The name of the session cookie of the listener on `port`: cookies are kept per
/// host, not per port, so two daemons on one machine need two names.
pub(crate) fn cookie_name(port: u16) -> String {
    format!("meanwhile_{port}")
}

/// The session cookie of a request, if it carries one.
pub(crate) fn session_cookie(headers: &HeaderMap, port: u16) -> Option<String> {
    let name = cookie_name(port);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The port a request reached, from its `Host` (checked by [`crate::origin`] first).
pub(crate) fn port_of(headers: &HeaderMap) -> u16 {
    headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(80)
}

/// What the guard of the TCP listener decides about a request with no bearer token.
pub(crate) enum Verdict {
    /// Served as this actor.
    Serve(Actor),
    /// The login pages: served to anyone.
    Open,
    /// Refused with this answer.
    Refuse(Response),
}

/// The login pages, open to requests without a token.
fn is_open(path: &str) -> bool {
    path == "/login"
}

/// Pages a person opens: sent to the login form rather than refused with JSON.
fn is_page(method: &Method, path: &str) -> bool {
    method == Method::GET && (path == "/" || path == "/ui" || path.starts_with("/ui/"))
}

/// Decides about a request that carries no bearer token: its session cookie, the
/// login pages, or a refusal (a redirect to the login form for a page).
pub(crate) fn without_token(
    browser: &Browser,
    tokens: &Tokens,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Verdict {
    let path = uri.path();
    if is_open(path) {
        return Verdict::Open;
    }
    let port = port_of(headers);
    let actor = session_cookie(headers, port).and_then(|c| browser.session(&c, tokens));
    if let Some(actor) = actor {
        let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if changes && !headers.contains_key(axum::http::header::ORIGIN) {
            return Verdict::Refuse(crate::error::error_response(ApiError {
                code: ErrorCode::Forbidden,
                message: "a request with the dashboard's cookie that changes something must carry Origin (browsers send it; other clients use 'Authorization: Bearer <token>')".into(),
                field: Some("Origin".into()),
            }));
        }
        return Verdict::Serve(actor);
    }
    if is_page(method, path) {
        let next = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| p.starts_with("/ui"))
            .unwrap_or("/ui/");
        let to = format!(
            "/login?next={}",
            form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        return Verdict::Refuse(
            (StatusCode::SEE_OTHER, [(LOCATION, to)], "log in first").into_response(),
        );
    }
    Verdict::Refuse(crate::error::error_response(ApiError::new(
        ErrorCode::Unauthorized,
        "this listener needs 'Authorization: Bearer <token>' or the dashboard's login (the token is in the token file of the daemon's home)",
    )))
}
