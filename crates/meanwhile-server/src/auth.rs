//! Who is asking: the bearer tokens that guard the TCP listener (the token file's,
//! named `default`, and the named tokens kept as hashes in the store), the peer of
//! the Unix socket as the kernel names it, and the middleware that records either as
//! the actor of every store write a request makes.

use crate::browser::{self, Browser, Verdict};
use crate::error::error_response;
use crate::keys::Tokens;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use meanwhile_core::{Actor, ApiError, ErrorCode};
use std::path::Path;
use std::sync::Arc;
use tokio::net::UnixStream;

/// The session a request speaks for: its `meanwhile-session` header, sent by the
/// MCP server on stdio and the agent (the MCP endpoint reads its own).
fn session_of(req: &Request) -> Option<String> {
    req.headers()
        .get(meanwhile_mcp::SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| meanwhile_mcp::valid_session(s))
        .map(str::to_string)
}

/// Serves `req` with `actor` as the actor of the store writes it makes; the MCP
/// endpoint finds it in the request's extensions.
async fn serve_as(actor: Actor, mut req: Request, next: Next) -> Response {
    let actor = actor.with_session(session_of(&req));
    req.extensions_mut().insert(actor.clone());
    meanwhile_runtime::store::acting(actor, next.run(req)).await
}

/// Middleware of the TCP listener: refuses a request without a known
/// `Authorization: Bearer <token>` or the dashboard's session cookie (the login
/// pages excepted), and records the token's name, or the session's actor, as its
/// actor.
pub(crate) async fn require_token(
    tokens: Arc<Tokens>,
    browser: Arc<Browser>,
    req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(given) = given else {
        return match browser::without_token(
            &browser,
            &tokens,
            req.method(),
            req.uri(),
            req.headers(),
        ) {
            Verdict::Serve(actor) => serve_as(actor, req, next).await,
            Verdict::Open => next.run(req).await,
            Verdict::Refuse(r) => r,
        };
    };
    match tokens.find(given).await {
        Some(name) => {
            let actor = Actor::Token {
                name,
                session: None,
            };
            serve_as(actor, req, next).await
        }
        None => error_response(ApiError::new(
            ErrorCode::Unauthorized,
            "wrong bearer token (the default one is in the token file of the daemon's home; see 'meanwhile token ls' for the named ones)",
        )),
    }
}

/// The peer of a Unix socket connection, as the kernel names it (`SO_PEERCRED`),
/// read once per connection.
#[derive(Clone, Debug)]
pub(crate) struct Peer(Option<Actor>);

impl Peer {
    /// The peer of `stream`.
    pub(crate) fn of(stream: &UnixStream) -> Peer {
        Peer(stream.peer_cred().ok().map(|cred| {
            let pid = cred.pid();
            Actor::Socket {
                uid: cred.uid(),
                pid,
                process: pid.and_then(process_name),
                session: None,
                task: None,
            }
        }))
    }
}

/// `/proc/<pid>/comm`: the process's name as `ps` shows it.
fn process_name(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
        .filter(|s| !s.is_empty())
}

/// Middleware of the Unix socket: records the peer as the actor of the request,
/// with the running task whose process tree it belongs to, if any. The runtime
/// then lets that task change only the tasks it started, and confines what it
/// submits as tightly as itself; a confined task is answered only what
/// [`confined_may`] allows.
pub(crate) async fn socket_peer(
    State(rt): State<meanwhile_runtime::Runtime>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .and_then(|c| c.0.0.clone());
    // A peer the kernel would not name (no credentials) still has the socket's
    // mode as its guard; it is recorded as an unknown uid rather than refused.
    let mut actor = peer.unwrap_or(Actor::Socket {
        uid: u32::MAX,
        pid: None,
        process: None,
        session: None,
        task: None,
    });
    // A pid of 0 is a peer in a pid namespace this daemon cannot see (a container's
    // client on a socket mounted into it), outside every task's tree.
    if let Actor::Socket {
        pid: Some(pid),
        task,
        ..
    } = &mut actor
        && *pid > 0
    {
        // A process that connected and exited may have left the connection to a
        // child, which could be inside a task while the walk can no longer tell.
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return error_response(ApiError::new(
                ErrorCode::Confined,
                format!(
                    "the process that connected (pid {pid}) has exited, so who asks cannot be told; connect from the process that asks"
                ),
            ));
        }
        *task = rt.task_of_process(*pid);
        if let Some(t) = *task
            && let Err(e) = confined_may(&rt, t, req.method(), req.uri().path()).await
        {
            return error_response(e);
        }
    }
    serve_as(actor, req, next).await
}

/// Whether a request from inside task `t` may be served. An unconfined task may
/// ask anything (the runtime still limits its changes to the tasks it started);
/// a confined one (sandbox, no network) reaches nothing of meanwhile but the
/// daemon's status, submitting tasks (confined by the runtime), the tasks it
/// started and itself, waits, and sessions' notifications (which `meanwhile mcp`
/// reads).
async fn confined_may(
    rt: &meanwhile_runtime::Runtime,
    t: meanwhile_core::TaskId,
    method: &axum::http::Method,
    path: &str,
) -> Result<(), ApiError> {
    use axum::http::Method;
    let caller = rt.get(t).await.map_err(ApiError::from)?;
    if caller.spec.sandbox != Some(true) && caller.spec.no_network != Some(true) {
        return Ok(());
    }
    let refuse = || {
        ApiError::new(
            ErrorCode::Confined,
            format!(
                "refused: task {t} is confined (sandbox or no network), and from inside it meanwhile answers only about itself and the tasks it starts; {method} {path} is not one of those"
            ),
        )
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        (&Method::GET, ["v1", "status"])
        | (&Method::POST, ["v1", "tasks" | "wait"])
        | (&Method::POST, ["v1", "tasks", "batch" | "remove"])
        | (&Method::GET, ["v1", "sessions", _, "notifications"])
        | (&Method::POST, ["v1", "sessions", _, "notifications", "drain"]) => Ok(()),
        (_, ["v1", "tasks", id, ..]) => {
            let id: meanwhile_core::TaskId = id.parse().map_err(|_| refuse())?;
            if id == t {
                return Ok(());
            }
            match rt.get(id).await {
                Ok(task) if task.spec.started_by == Some(t) => Ok(()),
                _ => Err(refuse()),
            }
        }
        _ => Err(refuse()),
    }
}
