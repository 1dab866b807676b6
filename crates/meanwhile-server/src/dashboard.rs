//! The dashboard: a web page served on the TCP listener under `/ui/`, written for the
//! browser as it is and embedded in the binary. It reads and steers everything
//! through the public API (`/v1/...`) and its event stream, so whatever it shows is
//! scriptable too.
//!
//! Here are its files, its login pages and the handlers behind them; the sessions,
//! one-time codes and the cookie are `browser.rs`'s. A request with the cookie that
//! changes state must carry an `Origin` (checked to be this listener by
//! [`crate::origin`]).

use crate::browser::{
    Browser, CODE_LIFETIME, SESSION_LIFETIME, cookie_name, port_of, session_cookie,
};
use crate::error::{Answer, Fail};
use crate::keys::token_hash;
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION,
    REFERRER_POLICY, SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use meanwhile_core::http::DashboardLink;
use meanwhile_core::{Actor, ApiError, ErrorCode};
use std::net::SocketAddr;

/// The page's files, as the browser reads them.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("dashboard/index.html"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/dom.js"),
    ),
    (
        "ansi.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/ansi.js"),
    ),
    (
        "tasks.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/tasks.js"),
    ),
    (
        "task.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/task.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/pages.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/charts.js"),
    ),
    (
        "events.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/events.js"),
    ),
];

const LOGIN_HTML: &str = include_str!("dashboard/login.html");

/// What the page may load and run: only its own files, and only this listener.
const CSP: &str = "default-src 'none'; script-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/// The login page's own: its style is inline.
const LOGIN_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The routes of the dashboard on the TCP listener.
pub(crate) fn routes() -> Router<AppState> {
    use axum::routing::get;
    Router::new()
        .route("/", get(|| async { redirect("/ui/") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/", get(file))
        .route("/ui/{*path}", get(file))
}

fn redirect(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())]).into_response()
}

/// The page's files. A path that is no file is one of the page's own addresses
/// (`/ui/tasks/7`), answered with the page, which reads it.
async fn file(uri: Uri, headers: HeaderMap) -> Response {
    let name = uri
        .path()
        .strip_prefix("/ui/static/")
        .unwrap_or("index.html");
    let Some((_, media, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return crate::error::error_response(ApiError::new(
            ErrorCode::NotFound,
            format!("the dashboard has no file {name:?}"),
        ));
    };
    let etag = format!("\"{}\"", &token_hash(body)[..16]);
    let mut r = if headers
        .get(IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, *media)], *body).into_response()
    };
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    page_headers(h, CSP);
    r
}

fn page_headers(h: &mut HeaderMap, csp: &'static str) {
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The login link's code must not leave in a Referer to another site. (With
    // no-referrer a browser sends `Origin: null` on a form's POST.)
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Where to go after logging in: a dashboard address, never another site.
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui") && !n.contains("//") && !n.contains('\\') => n.to_string(),
        _ => "/ui/".to_string(),
    }
}

fn login_form(status: StatusCode, message: &str, next: &str) -> Response {
    let html = LOGIN_HTML
        .replace("{message}", &escape(message))
        .replace("{next}", &escape(next));
    let mut r = (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    page_headers(r.headers_mut(), LOGIN_CSP);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Logged in: the cookie, and the way on. The way on is a page that refreshes
/// rather than a redirect, so that the browser sends the `SameSite=Strict` cookie
/// even when the login link was opened from another application.
fn logged_in(
    browser: &Browser,
    actor: Actor,
    token: Option<String>,
    port: u16,
    next: &str,
) -> Response {
    let secret = browser.new_session(actor, token);
    let cookie = format!(
        "{}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        cookie_name(port),
        SESSION_LIFETIME.as_secs()
    );
    let next = escape(next);
    let html = format!(
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=\"0;url={next}\"><title>meanwhile</title><p>Logged in. <a href=\"{next}\">Open the dashboard</a>.</p>"
    );
    let mut r = (
        StatusCode::OK,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    page_headers(r.headers_mut(), LOGIN_CSP);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    code: Option<String>,
    next: Option<String>,
}

/// `GET /login`: the form, or with `?code=` a one-time link's login.
async fn login_page(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let q: LoginQuery =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or(LoginQuery {
            code: None,
            next: None,
        });
    let next = next_page(q.next.as_deref());
    match q.code {
        Some(code) => match state.browser.take_code(&code) {
            Some(actor) => logged_in(&state.browser, actor, None, port_of(&headers), &next),
            None => login_form(
                StatusCode::UNAUTHORIZED,
                "This login link was used already or has expired. Run 'meanwhile dashboard' again, or give a token.",
                &next,
            ),
        },
        None => login_form(StatusCode::OK, "", &next),
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: a token typed into the form.
async fn login(State(state): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let next = next_page(None);
    if !headers.contains_key(axum::http::header::ORIGIN) {
        return login_form(
            StatusCode::FORBIDDEN,
            "The login form must be sent by a browser (the request had no Origin).",
            &next,
        );
    }
    let Ok(form) = serde_urlencoded::from_str::<LoginForm>(&body) else {
        return login_form(StatusCode::BAD_REQUEST, "Give a token.", &next);
    };
    let next = next_page(form.next.as_deref());
    match state.tokens.find(form.token.trim()).await {
        Some(name) => {
            let actor = Actor::Token {
                name,
                session: None,
            };
            let hash = token_hash(form.token.trim());
            logged_in(&state.browser, actor, Some(hash), port_of(&headers), &next)
        }
        None => login_form(
            StatusCode::UNAUTHORIZED,
            "Wrong token. The default one is in the file 'token' of the daemon's home; 'meanwhile token add NAME' makes another.",
            &next,
        ),
    }
}

/// `POST /logout`: ends the session.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let port = port_of(&headers);
    if let Some(c) = session_cookie(&headers, port) {
        state.browser.end_session(&c);
    }
    let mut r = redirect("/login");
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        cookie_name(port)
    )) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

/// `POST /v1/dashboard` (Unix socket only): a one-time login link for the person
/// asking, on the daemon's TCP listener, or on a loopback port opened for it.
pub(crate) async fn open(
    State(state): State<AppState>,
    Extension(actor): Extension<Actor>,
) -> Answer<Json<DashboardLink>> {
    let mut address = state.browser.address.lock().await;
    let addr = match *address {
        Some(a) => a,
        None => {
            let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(|e| unavailable(format!("opening a loopback port: {e}")))?;
            let a = listener
                .local_addr()
                .map_err(|e| unavailable(format!("reading the loopback port: {e}")))?;
            let Some(launch) = state.browser.launcher.get() else {
                return Err(unavailable("the daemon is still starting".into()));
            };
            launch(listener);
            tracing::info!("dashboard on http://{a}/ui/ (loopback, for a login link)");
            *address = Some(a);
            a
        }
    };
    // A listener on every interface is reached on this machine at loopback.
    let host = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let code = state.browser.new_code(actor);
    Ok(Json(DashboardLink {
        url: format!("http://{host}/ui/"),
        login_url: format!("http://{host}/login?code={code}"),
        expires_in_seconds: CODE_LIFETIME.as_secs(),
    }))
}

fn unavailable(message: String) -> Fail {
    Fail(ApiError::new(ErrorCode::Unavailable, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Tokens;
    use axum::http::header::COOKIE;

    fn someone() -> Actor {
        Actor::Token {
            name: "default".into(),
            session: None,
        }
    }

    #[test]
    fn codes_work_once_and_sessions_end() {
        let tokens = Tokens::new("secret", [("web".to_string(), token_hash("web-1"))]);
        let b = Browser::default();
        let code = b.new_code(someone());
        assert_eq!(b.take_code(&code), Some(someone()));
        assert_eq!(b.take_code(&code), None);
        assert_eq!(b.take_code("guess"), None);
        let linked = b.new_session(someone(), None);
        let by_default = b.new_session(someone(), Some(token_hash("secret")));
        let by_web = b.new_session(someone(), Some(token_hash("web-1")));
        for s in [&linked, &by_default, &by_web] {
            assert_eq!(b.session(s, &tokens), Some(someone()));
        }
        // A token removed and added again under its name is another token.
        tokens.remove("web");
        tokens.insert("web", &token_hash("web-2"));
        assert_eq!(b.session(&by_web, &tokens), None);
        assert_eq!(b.session(&by_default, &tokens), Some(someone()));
        b.end_session(&linked);
        assert_eq!(b.session(&linked, &tokens), None);
    }

    #[test]
    fn the_cookie_is_found_by_the_port_and_next_stays_here() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; meanwhile_7070=abc; meanwhile_7071=x"),
        );
        assert_eq!(session_cookie(&h, 7070).as_deref(), Some("abc"));
        assert_eq!(session_cookie(&h, 7072), None);
        assert_eq!(next_page(Some("/ui/tasks/7?x=1")), "/ui/tasks/7?x=1");
        assert_eq!(next_page(Some("https://evil.example.com")), "/ui/");
        assert_eq!(next_page(Some("/ui//evil.example.com")), "/ui/");
        assert_eq!(next_page(None), "/ui/");
    }
}
