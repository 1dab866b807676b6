//! DNS rebinding protection on the TCP listener. A web page can point a name of its
//! own at 127.0.0.1 and have the browser send requests there; such a request carries
//! the page's name in `Host` (and its site in `Origin`). So a request is served only
//! when its `Host` is this listener: its address, the local address the client
//! connected to, or `localhost`, `127.0.0.1` or `[::1]`, each with the listener's
//! port; and when its `Origin`, if it has one, is `http://` one of those. Anything
//! else gets 403 before the token is looked at. The Unix socket needs none of this:
//! no web page can reach it.

use crate::error::error_response;
use axum::extract::Request;
use axum::extract::connect_info::ConnectInfo;
use axum::http::header::{HOST, ORIGIN};
use axum::middleware::Next;
use axum::response::Response;
use meanwhile_core::{ApiError, ErrorCode};
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// The local address a TCP client connected to (which may differ from the
/// listener's when it listens on every interface).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalAddr(Option<SocketAddr>);

impl LocalAddr {
    /// The local address of `stream`.
    pub(crate) fn of(stream: &TcpStream) -> LocalAddr {
        LocalAddr(stream.local_addr().ok())
    }
}

/// The `Host` values the listener answers to.
#[derive(Debug, Clone)]
pub(crate) struct Allowed {
    port: u16,
    hosts: Vec<String>,
}

impl Allowed {
    /// For a listener bound to `listen`, also reached as `name` (`host:port`, the
    /// address a node of a fleet gives the others) when there is one.
    pub(crate) fn new(listen: SocketAddr, name: Option<&str>) -> Allowed {
        let port = listen.port();
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|h| format!("{h}:{port}"))
            .collect();
        hosts.push(listen.to_string());
        hosts.extend(name.map(str::to_ascii_lowercase));
        Allowed { port, hosts }
    }

    fn host_ok(&self, host: &str, local: Option<SocketAddr>) -> bool {
        let host = host.to_ascii_lowercase();
        // A client leaves out the port when it is the scheme's default.
        let has_port = if host.starts_with('[') {
            host.contains("]:")
        } else {
            host.contains(':')
        };
        let host = if self.port == 80 && !has_port {
            format!("{host}:80")
        } else {
            host
        };
        self.hosts.contains(&host) || local.is_some_and(|l| l.to_string() == host)
    }

    fn origin_ok(&self, origin: &str, local: Option<SocketAddr>) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|authority| !authority.contains('/') && self.host_ok(authority, local))
    }

    /// Why a request with these headers is refused, if it is.
    pub(crate) fn refusal(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
        local: Option<SocketAddr>,
    ) -> Option<String> {
        match host {
            Some(h) if self.host_ok(h, local) => {}
            Some(h) => {
                return Some(format!(
                    "Host {h:?} is not this listener; use http://127.0.0.1:{} or http://localhost:{} (requests naming another host are refused against DNS rebinding)",
                    self.port, self.port
                ));
            }
            None => {
                return Some(format!(
                    "the request has no Host header; name this listener, as in Host: 127.0.0.1:{}",
                    self.port
                ));
            }
        }
        match origin {
            Some(o) if !self.origin_ok(o, local) => Some(format!(
                "Origin {o:?} is another site; only pages served from this listener (http://127.0.0.1:{}) may call it",
                self.port
            )),
            _ => None,
        }
    }
}

/// Middleware: refuses requests whose `Host` or `Origin` is not this listener.
pub(crate) async fn check(allowed: std::sync::Arc<Allowed>, req: Request, next: Next) -> Response {
    match verdict(&allowed, &req) {
        None => next.run(req).await,
        Some(e) => error_response(e),
    }
}

fn verdict(allowed: &Allowed, req: &Request) -> Option<ApiError> {
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
    };
    // HTTP/1.1 puts the host in the request target when it is an absolute URI.
    let host = header(HOST).or_else(|| req.uri().authority().map(|a| a.as_str()));
    let local = req
        .extensions()
        .get::<ConnectInfo<LocalAddr>>()
        .and_then(|c| c.0.0);
    let why = allowed.refusal(host, header(ORIGIN), local)?;
    let field = if host.is_some_and(|h| allowed.host_ok(h, local)) {
        "Origin"
    } else {
        "Host"
    };
    Some(ApiError {
        code: ErrorCode::Forbidden,
        message: why,
        field: Some(field.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(host: Option<&str>, origin: Option<&str>, ok: bool) {
        let a = Allowed::new("127.0.0.1:7070".parse().unwrap(), None);
        let local = Some("192.168.1.5:7070".parse().unwrap());
        assert_eq!(
            a.refusal(host, origin, local).is_none(),
            ok,
            "{host:?} {origin:?}"
        );
    }

    #[test]
    fn only_this_listener_and_its_pages() {
        check(Some("127.0.0.1:7070"), None, true);
        check(Some("localhost:7070"), None, true);
        check(Some("LOCALHOST:7070"), None, true);
        check(Some("[::1]:7070"), None, true);
        check(Some("192.168.1.5:7070"), None, true);
        check(Some("127.0.0.1:7070"), Some("http://localhost:7070"), true);
        check(Some("evil.example.com"), None, false);
        check(Some("evil.example.com:7070"), None, false);
        check(Some("localhost"), None, false);
        check(Some("localhost:7071"), None, false);
        check(Some("localhost.:7070"), None, false);
        check(None, None, false);
        check(
            Some("127.0.0.1:7070"),
            Some("http://evil.example.com"),
            false,
        );
        check(
            Some("127.0.0.1:7070"),
            Some("http://evil.example.com:7070"),
            false,
        );
        check(Some("127.0.0.1:7070"), Some("null"), false);
        check(
            Some("127.0.0.1:7070"),
            Some("https://localhost:7070"),
            false,
        );
        check(
            Some("127.0.0.1:7070"),
            Some("http://localhost:7070/x"),
            false,
        );
    }

    #[test]
    fn the_default_port_may_be_left_out() {
        let a = Allowed::new("127.0.0.1:80".parse().unwrap(), None);
        assert!(
            a.refusal(Some("localhost"), Some("http://localhost"), None)
                .is_none()
        );
        assert!(a.refusal(Some("[::1]"), None, None).is_none());
        assert!(a.refusal(Some("evil.example.com"), None, None).is_some());
    }
}
