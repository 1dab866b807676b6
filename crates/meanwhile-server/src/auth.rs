//! Who is asking: the bearer tokens that guard the TCP listener (the token file's,
//! named `default`, and the named tokens kept as hashes in the store), the peer of
//! the Unix socket as the kernel names it, and the middleware that records either as
//! the actor of every store write a request makes.

use crate::dashboard::{self, Browser, Verdict};
use crate::error::{ServerError, error_response};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use meanwhile_core::{Actor, ApiError, DEFAULT_TOKEN, ErrorCode};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::UnixStream;

/// Reads the secret at `path`, creating it (32 random bytes as hex, mode 0600) when
/// it does not exist: the token file, and the audit trail's signing key.
pub(crate) fn load_or_create(path: &Path) -> Result<String, ServerError> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ServerError::io(format!("reading {}", path.display()))(e)),
    }
    let token = new_secret();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(ServerError::io(format!("creating {}", path.display())))?;
    f.write_all(token.as_bytes())
        .map_err(ServerError::io(format!("writing {}", path.display())))?;
    Ok(token)
}

/// 32 random bytes as hex. The default generator is a CSPRNG seeded from the
/// operating system.
pub(crate) fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// SHA-256 of a token, hex: what the store keeps instead of the token. Tokens are
/// 256 random bits, so a fast hash is enough: there is nothing to guess.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The tokens the TCP listener accepts, by hash. Changed by the token endpoints
/// right after their commit, so that an added token works and a removed one is
/// refused from the next request on.
pub(crate) struct Tokens {
    default_hash: String,
    named: RwLock<HashMap<String, String>>,
    /// In a fleet, where other nodes add tokens: the store to read again when a
    /// token is not known here, and when that was last done.
    shared: Option<(
        meanwhile_runtime::Runtime,
        tokio::sync::Mutex<Option<Instant>>,
    )>,
}

/// The least time between two reads of the store for an unknown token, so that
/// wrong tokens cannot make a node hammer its database.
const REREAD_AFTER: Duration = Duration::from_millis(250);

impl Tokens {
    /// The token file's token (`default`) and the named tokens of the store.
    pub(crate) fn new(default: &str, named: impl IntoIterator<Item = (String, String)>) -> Tokens {
        Tokens {
            default_hash: token_hash(default),
            named: RwLock::new(named.into_iter().map(|(n, h)| (h, n)).collect()),
            shared: None,
        }
    }

    /// Reads the store again for tokens this node does not know (a fleet's).
    pub(crate) fn shared_with(mut self, rt: meanwhile_runtime::Runtime) -> Tokens {
        self.shared = Some((rt, tokio::sync::Mutex::new(None)));
        self
    }

    /// The name of the token `given`; in a fleet, after reading the store again
    /// when it is not known (another node may have just added it).
    pub(crate) async fn find(&self, given: &str) -> Option<String> {
        if let Some(name) = self.name_of(given) {
            return Some(name);
        }
        let (rt, last) = self.shared.as_ref()?;
        let mut last = last.lock().await;
        // Another request may have read the store while this one waited.
        if let Some(name) = self.name_of(given) {
            return Some(name);
        }
        if last.is_some_and(|at| at.elapsed() < REREAD_AFTER) {
            return None;
        }
        *last = Some(Instant::now());
        match rt.tokens().await {
            Ok(named) => self.replace(named.into_iter().map(|t| (t.name, t.hash))),
            Err(e) => tracing::warn!("reading the named tokens: {e}"),
        }
        self.name_of(given)
    }

    /// The name of the token `given`, if it is one.
    fn name_of(&self, given: &str) -> Option<String> {
        let hash = token_hash(given);
        // Comparing hashes tells an attacker nothing about the secret.
        if hash == self.default_hash {
            return Some(DEFAULT_TOKEN.to_string());
        }
        self.named
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .cloned()
    }

    /// Replaces the named tokens with the store's (in a fleet, other nodes add and
    /// remove them).
    pub(crate) fn replace(&self, named: impl IntoIterator<Item = (String, String)>) {
        *self.named.write().unwrap_or_else(|e| e.into_inner()) =
            named.into_iter().map(|(n, h)| (h, n)).collect();
    }

    /// Whether the token of this hash opens the listener now.
    pub(crate) fn knows_hash(&self, hash: &str) -> bool {
        hash == self.default_hash
            || self
                .named
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(hash)
    }

    pub(crate) fn insert(&self, name: &str, hash: &str) {
        self.named
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash.to_string(), name.to_string());
    }

    pub(crate) fn remove(&self, name: &str) {
        self.named
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, n| n != name);
    }
}

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
        return match dashboard::without_token(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_known_by_hash_and_forgotten_when_removed() {
        let t = Tokens::new("secret", [("ci".to_string(), token_hash("ci-secret"))]);
        assert_eq!(t.name_of("secret").as_deref(), Some("default"));
        assert_eq!(t.name_of("ci-secret").as_deref(), Some("ci"));
        assert_eq!(t.name_of("guess"), None);
        t.insert("bot", &token_hash("bot-secret"));
        assert_eq!(t.name_of("bot-secret").as_deref(), Some("bot"));
        t.remove("ci");
        assert_eq!(t.name_of("ci-secret"), None);
        assert_eq!(token_hash("x").len(), 64);
    }
}
