//! The daemon's life: open the runtime on the home, listen, serve until told to stop,
//! then stop accepting, let in-flight requests finish, and leave running tasks for
//! the next daemon (or stop them, when asked).

use crate::config::Settings;
use crate::conn::{self, Connections, Timeouts};
use crate::error::ServerError;
use crate::routes::Listener;
use crate::state::AppState;
use crate::{auth, keys, origin, retention, routes};
use axum::extract::Request;
use axum::middleware::Next;
use meanwhile_core::http::{AUDIT_KEY_FILE, SOCKET_FILE};
use meanwhile_core::{Actor, TaskKind};
use meanwhile_runtime::store::AuditKey;
use meanwhile_runtime::{Runtime, RuntimeConfig, ShutdownMode};
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long in-flight requests may take to finish once shutdown has begun. Long
/// waits are cut short at once, so only ordinary requests are in flight then.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// The daemon's socket in `home`.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join(SOCKET_FILE)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ServerError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(ServerError::io(
        format!("setting the mode of {}", path.display()),
    ))
}

/// Lets the daemon run agent and llm tasks when an LLM provider is configured (flags of
/// `[agent]` in config.toml, or the provider's API key in the environment). They are
/// in place before the runtime starts, so that an agent task the last daemon left
/// running resumes from its recorded steps.
fn agent_executors(cfg: &mut RuntimeConfig, home: &Path) {
    let overrides = meanwhile_agent::AgentOverrides {
        workspace: Some(home.to_path_buf()),
        config_file: Some(home.join("config.toml")).filter(|p| p.exists()),
        ..Default::default()
    };
    let config = match meanwhile_agent::AgentConfig::load(&overrides) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!("agent tasks are off: {e}");
            return;
        }
    };
    match config.build_provider() {
        Ok(provider) => {
            tracing::info!(
                "agent tasks run with {} ({})",
                config.provider.name(),
                config.model
            );
            let llm = meanwhile_agent::LlmExecutor::with_provider(config.clone(), provider.clone());
            let agent = meanwhile_agent::AgentExecutor::with_provider(config, provider);
            cfg.executors.push((TaskKind::Llm, Arc::new(llm)));
            cfg.executors.push((TaskKind::Agent, Arc::new(agent)));
        }
        Err(e) => tracing::info!("agent tasks are off: {e}"),
    }
}

/// How often a node of a fleet reads the named tokens, which other nodes change.
const TOKENS_REFRESH: Duration = Duration::from_secs(2);

/// Keeps the tokens this node accepts in step with the fleet's store.
async fn refresh_tokens(rt: Runtime, tokens: Arc<keys::Tokens>) {
    loop {
        tokio::time::sleep(TOKENS_REFRESH).await;
        if rt.is_shut_down() {
            return;
        }
        match rt.tokens().await {
            Ok(named) => {
                tokens.replace(named.into_iter().map(|t| (t.name, t.hash)));
                rt.loops().ok("tokens");
            }
            Err(e) => rt
                .loops()
                .failed("tokens", format_args!("reading the named tokens"), &e),
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so that the cap on TCP
/// connections derived from it is as high as this system allows; the soft limit
/// after. Called once the runtime has started its process spawner, so tasks keep
/// the limit the daemon was started with (programs that use `select` need 1024).
fn raise_open_files() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    let Some(hard) = limit.maximum else {
        // No hard limit: the soft one is what the system gives.
        return soft;
    };
    if soft >= hard {
        return soft;
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        },
    ) {
        Ok(()) => {
            tracing::debug!("open files limit raised from {soft} to {hard}");
            hard
        }
        Err(e) => {
            tracing::warn!("could not raise the open files limit from {soft} to {hard}: {e}");
            soft
        }
    }
}

/// The bounds every connection of the daemon is served with.
fn timeouts(settings: &Settings) -> Timeouts {
    Timeouts {
        header: settings.header_timeout,
        idle: settings.idle_timeout,
    }
}

/// Serves the API, the MCP endpoint and the dashboard on a TCP listener until the
/// daemon shuts down: the bearer token (or the dashboard's session) is required, and
/// a foreign `Host` or `Origin` is refused before the token is looked at. At most
/// `max_connections` are open at once; more are answered 503.
async fn serve_tcp(
    listener: tokio::net::TcpListener,
    state: AppState,
    tokens: Arc<keys::Tokens>,
    node_address: Option<String>,
    down_rx: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let max = state.max_connections;
    tracing::info!(
        "also serving on http://{local} (bearer token required, {max} connections at most)"
    );
    let stats = state.connections.add(local.to_string(), Some(max));
    let timeouts = timeouts(&state.settings);
    let allowed = Arc::new(origin::Allowed::new(local, node_address.as_deref()));
    let browser = state.browser.clone();
    // The outer layer runs first.
    let app = routes::router(state, Listener::Tcp)
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                auth::require_token(tokens.clone(), browser.clone(), req, next)
            },
        ))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| origin::check(allowed.clone(), req, next),
        ));
    conn::serve(
        listener,
        app,
        origin::LocalAddr::of,
        timeouts,
        stats,
        down_rx,
    )
    .await;
    Ok(())
}

/// Runs the daemon on `settings.home` until `shutdown` completes.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let home = settings.home.clone();
    std::fs::create_dir_all(&home)
        .map_err(ServerError::io(format!("creating {}", home.display())))?;
    // The home holds every task's output and the token: only its owner may enter.
    set_mode(&home, 0o700)?;
    let token = keys::load_or_create(&keys::token_path(&home))?;
    // Kept beside the token, out of the database: whoever edits the database
    // cannot sign a checkpoint of the audit trail.
    let audit_key = AuditKey::new(keys::load_or_create(&home.join(AUDIT_KEY_FILE))?.into_bytes());

    // Bound first, so that the address other nodes reach this one at is the one
    // bound (a port of 0 is given a free one).
    let tcp = match settings.listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(ServerError::io(format!("listening on {addr}")))?,
        ),
        None => None,
    };
    let bound = match &tcp {
        Some(l) => Some(
            l.local_addr()
                .map_err(ServerError::io("reading the TCP listener's address"))?,
        ),
        None => None,
    };

    let mut cfg = RuntimeConfig::new(&home);
    cfg.grace = settings.grace;
    if let Some(n) = &settings.node
        && (n.is_empty()
            || n.len() > 100
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(ServerError::Config {
            origin: "node".into(),
            message: format!(
                "{n:?} is not a node name: use 1 to 100 letters, digits and - _ . (a host name fits)"
            ),
        });
    }
    cfg.node = settings.node.clone();
    cfg.node_address = settings
        .node_address
        .clone()
        .or_else(|| bound.map(|a| a.to_string()));
    cfg.database_url = settings.database_url.clone();
    cfg.lease = settings.lease;
    cfg.max_output = settings.max_output;
    cfg.queue_defaults = settings
        .queues
        .iter()
        .map(|(name, q)| (name.clone(), q.defaults()))
        .filter(|(_, d)| !d.is_empty())
        .collect();
    let remote = match &settings.database_url {
        Some(_) => {
            if settings.node.as_ref().is_some_and(|n| n.len() > 59) {
                return Err(ServerError::Config {
                    origin: "node".into(),
                    message: "a node of a fleet has a name of 59 characters at most".into(),
                });
            }
            if cfg.node_address.is_none() {
                tracing::warn!(
                    "this node has no TCP listener: other nodes cannot read the output of its tasks (give --listen, or node_address)"
                );
            } else if settings.node_address.is_none()
                && bound.is_some_and(|a| a.ip().is_unspecified())
            {
                tracing::warn!(
                    "other nodes reach this one at {} as it listens there; set node_address to a name they can reach",
                    bound.map(|a| a.to_string()).unwrap_or_default()
                );
            }
            let remote = Arc::new(crate::forward::HttpRemote::new(&home)?);
            cfg.remote_output = Some(remote.clone());
            Some(remote)
        }
        None => None,
    };
    cfg.node_silent_after = settings.node_silent_after;
    cfg.alert_repeat = settings.alert_repeat;
    // Three heartbeats fit in the silence allowed, so one late write is no alarm.
    cfg.node_heartbeat = (settings.node_silent_after / 3).min(Duration::from_secs(5));
    cfg.schedule_late_after = settings.schedule_late_after;
    if let Some(ahead) = settings.test_clock {
        tracing::warn!(
            "MEANWHILE_TEST_CLOCK is set: this daemon's clock runs {} ahead of the system's, and `meanwhile daemon clock --advance` moves it; a test's setting, not for real work",
            meanwhile_core::format_duration(ahead)
        );
        cfg.clock = meanwhile_runtime::Clock::ahead(ahead);
    }
    cfg.on_end = settings.hooks.on_end.clone();
    cfg.hook_timeout = settings.hooks.timeout;
    if let Some(url) = &settings.hooks.webhook {
        let hook = crate::webhook::Webhook::new(url, settings.hooks.secret.clone()).map_err(
            |message| ServerError::Config {
                origin: "[hooks] webhook".into(),
                message,
            },
        )?;
        cfg.end_hooks.push(std::sync::Arc::new(hook));
    }
    for (i, sink) in settings.alert_sinks.iter().enumerate() {
        if let Some(url) = &sink.webhook {
            let hook =
                crate::webhook::Webhook::new(url, sink.secret.clone()).map_err(|message| {
                    ServerError::Config {
                        origin: format!("alerts.sinks[{i}]"),
                        message,
                    }
                })?;
            cfg.alert_sinks.push(std::sync::Arc::new(hook));
        }
        if let Some(c) = &sink.command {
            cfg.alert_commands.push(c.clone());
        }
    }
    cfg.shutdown_mode = if settings.stop_tasks {
        ShutdownMode::StopTasks
    } else {
        ShutdownMode::LeaveRunning
    };
    agent_executors(&mut cfg, &home);
    let rt = Runtime::start(cfg, std::future::pending()).await?;
    let open_files = raise_open_files();
    let max_connections = settings
        .max_connections
        .unwrap_or_else(|| conn::default_max_connections(open_files));
    if let Some(remote) = &remote {
        remote.register(&rt).await?;
    }
    // The settings' queues are a change the configuration makes, and the audit
    // trail says so.
    let from_config = Actor::Config {
        source: "config.toml".into(),
    };
    for (name, q) in &settings.queues {
        let mut update = q.update();
        let mut r =
            meanwhile_runtime::store::acting(from_config.clone(), rt.set_queue(name, update)).await;
        if let Err(e) = &r
            && update.paused == Some(false)
            && e.field() == Some("paused")
        {
            // `paused = false` does not resume a queue its spent budget paused: the
            // budget says when it resumes. The rest of the settings still apply.
            tracing::warn!("queue {name:?} stays paused: {e}");
            update.paused = None;
            r = meanwhile_runtime::store::acting(from_config.clone(), rt.set_queue(name, update))
                .await;
        }
        r.map_err(|e| ServerError::Config {
            origin: format!("queue {name:?}"),
            message: e.to_string(),
        })?;
        if let Some(budget) = &q.budget {
            meanwhile_runtime::store::acting(
                from_config.clone(),
                rt.set_budget(name, budget.clone()),
            )
            .await
            .map_err(|e| ServerError::Config {
                origin: format!("queue {name:?} budget"),
                message: e.to_string(),
            })?;
        }
    }
    let named = rt.tokens().await?;
    let mut tokens = keys::Tokens::new(&token, named.into_iter().map(|t| (t.name, t.hash)));
    if rt.store().is_shared() {
        tokens = tokens.shared_with(rt.clone());
    }
    let tokens = Arc::new(tokens);
    if rt.store().is_shared() {
        let tokens = tokens.clone();
        rt.spawn_loop("tokens", move |rt| refresh_tokens(rt, tokens.clone()));
    }

    let sock = socket_path(&home);
    // The runtime's lock on the home is ours now, so a socket file still here was
    // left by a daemon that died.
    match std::fs::remove_file(&sock) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ServerError::io(format!("removing {}", sock.display()))(e)),
    }
    let unix = tokio::net::UnixListener::bind(&sock).map_err(ServerError::io(format!(
        "listening on {} (a shorter MEANWHILE_HOME helps if the path is too long)",
        sock.display()
    )))?;
    set_mode(&sock, 0o600)?;

    let (down_tx, down_rx) = watch::channel(false);
    let (stop_tx, mut stop_rx) = watch::channel(None);
    let stop_tx = Arc::new(stop_tx);
    let settings = Arc::new(settings);
    let state = AppState {
        rt: rt.clone(),
        settings: settings.clone(),
        shutdown: down_rx.clone(),
        started_at: meanwhile_runtime::now().0,
        waiting: Default::default(),
        stop: stop_tx.clone(),
        tokens: tokens.clone(),
        audit_key: audit_key.clone(),
        browser: Arc::new(crate::browser::Browser::new(bound)),
        connections: Arc::new(Connections::default()),
        max_connections,
    };
    {
        // A loopback port opened for the dashboard is served like the TCP listener.
        let (state2, tokens, down_rx) = (state.clone(), tokens.clone(), down_rx.clone());
        let node_address = settings.node_address.clone();
        state.browser.set_launcher(Box::new(move |listener| {
            let serving = serve_tcp(
                listener,
                state2.clone(),
                tokens.clone(),
                node_address.clone(),
                down_rx.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = serving.await {
                    tracing::error!("serving the dashboard's port failed: {e}");
                }
            });
        }));
    }
    {
        let r = settings.retention;
        rt.spawn_loop("retention", move |rt| {
            retention::run(rt, r, audit_key.clone())
        });
    }
    if let Some(url) = &settings.heartbeat_url {
        let (url, every, down_rx) = (url.clone(), settings.heartbeat_every, down_rx.clone());
        rt.spawn_loop("heartbeat", move |rt| {
            crate::webhook::heartbeat(url.clone(), every, rt.clock().clone(), down_rx.clone())
        });
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => {}
            _ = stop_rx.wait_for(Option::is_some) => tracing::info!("asked to stop"),
        }
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = down_tx.send(true);
    });
    let down = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|d| *d).await;
    };

    tracing::info!(
        "meanwhile {} serving {} on {}",
        env!("CARGO_PKG_VERSION"),
        home.display(),
        sock.display()
    );
    // Every request on the socket is recorded as its peer's, as the kernel names it.
    let unix_app = routes::router(state.clone(), Listener::Socket).layer(
        axum::middleware::from_fn_with_state(state.rt.clone(), auth::socket_peer),
    );
    // No cap here: the socket's clients are this user's own processes, and the cap
    // on TCP leaves them the descriptors they need.
    let unix_server = conn::serve(
        unix,
        unix_app,
        auth::Peer::of,
        timeouts(&settings),
        state.connections.add("socket".into(), None),
        down_rx.clone(),
    );
    let tcp_server = {
        let (node_address, down_rx) = (settings.node_address.clone(), down_rx.clone());
        async move {
            match tcp {
                Some(listener) => serve_tcp(listener, state, tokens, node_address, down_rx).await,
                None => Ok(()),
            }
        }
    };
    let servers = async { tokio::join!(unix_server, tcp_server) };
    let limit = async {
        down(down_rx.clone()).await;
        tokio::time::sleep(DRAIN_LIMIT).await;
    };
    tokio::select! {
        ((), r) = servers => {
            if let Err(e) = r {
                tracing::error!("serving failed: {e}");
            }
        }
        _ = limit => tracing::warn!("requests still in flight after {DRAIN_LIMIT:?}; shutting down anyway"),
        // Nothing can be recorded any more: end at once and loudly, so that the
        // service manager starts a new daemon, which adopts the running tasks (their
        // supervisors keep them going meanwhile).
        why = rt.broken() => {
            tracing::error!("the store can no longer write ({why}); exiting so that a new daemon takes over");
            return Err(ServerError::StoreBroken(why));
        }
    }
    let stop_tasks = settings.stop_tasks || stop_tx.borrow().unwrap_or(false);
    rt.shutdown_with(if stop_tasks {
        ShutdownMode::StopTasks
    } else {
        ShutdownMode::LeaveRunning
    })
    .await;
    let _ = std::fs::remove_file(&sock);
    tracing::info!("stopped");
    Ok(())
}
