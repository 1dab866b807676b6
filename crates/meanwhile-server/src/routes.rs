//! The route table: one entry per endpoint with its handler and the types it reads
//! and answers. The router and the OpenAPI document are both built from it.

use crate::handlers::{
    alerts, audit, budgets, clock, control, events, nodes, notifications, output, queues,
    schedules, sessions, shutdown, status, tasks, tokens, wait,
};
use crate::route::{Route, op};
use crate::state::AppState;
use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::MethodRouter;
use meanwhile_core::http::{
    AckRequest, AlertParams, BatchAnswer, BatchRequest, CleanBody, ClockAdvance, ClockMoved,
    EventParams, Health, LimitParams, ListParams, OutputParams, ProgressReport, QueueUpdate,
    RemoveRequest, Removed, ShutdownRequest, ShuttingDown, Status, StopRequest, SubmitAnswer,
    TaskDetail, WaitRequest,
};
use meanwhile_core::{AgentSession, NewSessionStep, OpenSession, Step, StepRecorded};
use meanwhile_core::{
    Alert, BudgetInfo, BudgetSpec, Event, NodeInfo, Notification, OutputChunk, Page, QueueInfo,
    ScheduleInfo, ScheduleSpec, TaskRecord, TaskSpec, WaitOutcome,
};
use meanwhile_core::{
    AuditPage, AuditParams, AuditVerdict, NewToken, NewTokenRequest, TokenInfo, Transcript,
};
use meanwhile_core::{InputSent, TaskInput};

/// The OpenAPI document of every endpoint.
pub fn openapi() -> serde_json::Value {
    crate::openapi::document(&table())
}

async fn serve_document() -> axum::Json<serde_json::Value> {
    axum::Json(openapi())
}

/// The 409 answers of a submit.
const SUBMIT_CONFLICTS: &str = "`idempotency_conflict`: the idempotency key names a task submitted with another spec (the message names that task; a resend of the same spec answers it with 201). `no_provider`: an agent or llm task, and this daemon has no LLM provider configured";

/// Every endpoint of the daemon.
pub(crate) fn table() -> Vec<Route> {
    use Method as M;
    vec![
        op(M::GET, "/v1/status", "The daemon's health, version and task counts", status::status)
            .answer::<Status>(),
        op(M::POST, "/v1/shutdown", "Stop the daemon; its running tasks keep running for the next daemon unless stop_tasks", shutdown::shutdown)
            .optional_body::<ShutdownRequest>()
            .answer::<ShuttingDown>()
            .status(202),
        op(M::POST, "/v1/tasks", "Submit a task; answers its id at once", tasks::submit)
            .body::<TaskSpec>()
            .answer::<SubmitAnswer>()
            .status(201)
            .refuses(409, SUBMIT_CONFLICTS),
        op(M::POST, "/v1/tasks/batch", "Submit many tasks in one transaction", tasks::submit_batch)
            .body::<BatchRequest>()
            .answer::<BatchAnswer>(),
        op(M::GET, "/v1/tasks", "List tasks, newest first, a page at a time", tasks::list)
            .query::<ListParams>()
            .answer::<Page>(),
        op(M::GET, "/v1/tasks/{id}", "One task with its attempts", tasks::get)
            .answer::<TaskDetail>(),
        op(M::GET, "/v1/tasks/{id}/transcript", "The steps an agent task recorded (model responses with their usage, tool calls and results, notices), every attempt's, oldest first; what a restarted daemon resumes it from", tasks::transcript)
            .answer::<Transcript>(),
        op(M::GET, "/v1/tasks/{id}/output", "Read a task's output (cursor, tail, grep, max_bytes, wait for exit, output or a regex)", output::read)
            .query::<OutputParams>()
            .answer::<OutputChunk>(),
        op(M::POST, "/v1/tasks/{id}/stop", "Stop a task (graceful or force); a pending one never starts", control::stop)
            .optional_body::<StopRequest>()
            .answer::<TaskRecord>(),
        op(M::POST, "/v1/tasks/{id}/input", "Send text, keys, the end of input or a new terminal size to a running task started with stdin or tty", control::input)
            .body::<TaskInput>()
            .answer::<InputSent>(),
        op(M::POST, "/v1/tasks/{id}/retry", "Run a finished task again", control::retry)
            .answer::<TaskRecord>(),
        op(M::POST, "/v1/tasks/{id}/progress", "Report a running task's progress", control::progress)
            .body::<ProgressReport>()
            .status(204),
        op(M::POST, "/v1/tasks/remove", "Remove finished tasks and their logs", control::remove)
            .body::<RemoveRequest>()
            .answer::<Removed>(),
        op(M::POST, "/v1/clean", "Remove finished tasks by age or count, with their logs", control::clean)
            .optional_body::<CleanBody>()
            .answer::<Removed>(),
        op(M::POST, "/v1/wait", "Wait until any or all of some tasks end", wait::wait)
            .body::<WaitRequest>()
            .answer::<WaitOutcome>(),
        op(M::GET, "/v1/queues", "The queues with their limits and counts", queues::list)
            .answer::<Vec<QueueInfo>>(),
        op(M::PUT, "/v1/queues/{name}", "Create or change a queue: max_parallel, pause, resume", queues::set)
            .body::<QueueUpdate>()
            .answer::<QueueInfo>(),
        op(M::DELETE, "/v1/queues/{name}", "Remove a queue; refused while it has pending or running tasks or a budget, and for default. Its finished tasks stay", queues::remove)
            .status(204)
            .refuses(409, "`conflict`: the queue has pending or running tasks, or a budget, or is `default`"),
        op(M::GET, "/v1/budgets", "The budgets of the queues: limits, window, what was used in it, state", budgets::list)
            .answer::<Vec<BudgetInfo>>(),
        op(M::PUT, "/v1/budgets/{queue}", "Set a queue's budget: tokens and/or cost_usd per hour, day, month or in total, with alarms; a raised budget resumes a queue it paused", budgets::set)
            .body::<BudgetSpec>()
            .answer::<BudgetInfo>(),
        op(M::GET, "/v1/budgets/{queue}", "One queue's budget", budgets::get)
            .answer::<BudgetInfo>(),
        op(M::DELETE, "/v1/budgets/{queue}", "Remove a queue's budget; a queue it paused resumes", budgets::remove)
            .status(204),
        op(M::GET, "/v1/alerts", "Alerts, newest first: the firing ones, or all with all=true", alerts::list)
            .query::<AlertParams>()
            .answer::<Vec<Alert>>(),
        op(M::POST, "/v1/alerts/{alert}/ack", "Acknowledge a firing alert, for a while (for) or until it resolves: no reminders reach the sinks meanwhile, health does not count it, and the audit trail records who did it", alerts::ack)
            .optional_body::<AckRequest>()
            .answer::<Alert>()
            .refuses(409, "`conflict`: the alert resolved"),
        op(M::GET, "/v1/health", "Whether any alert fires that no one acknowledged (ok is false then), with the firing ones", alerts::health)
            .answer::<Health>(),
        op(M::GET, "/v1/nodes", "The nodes sharing the store: address, version, latest heartbeat, running tasks, and whether each is alive", nodes::list)
            .answer::<Vec<NodeInfo>>(),
        op(M::DELETE, "/v1/nodes/{node}", "Forget a node that is gone for good (its node_silent alert resolves); an alive node is refused", nodes::remove)
            .status(204),
        op(M::GET, "/v1/schedules", "The schedules with their next time and latest task", schedules::list)
            .answer::<Vec<ScheduleInfo>>(),
        op(M::POST, "/v1/schedules", "Add a schedule: a task submitted at the times a cron expression or an interval names", schedules::add)
            .body::<ScheduleSpec>()
            .answer::<ScheduleInfo>()
            .status(201)
            .refuses(409, "`conflict`: a schedule of that name exists. `no_provider`: an agent or llm task, and this daemon has no LLM provider configured"),
        op(M::GET, "/v1/schedules/{schedule}", "One schedule", schedules::get)
            .answer::<ScheduleInfo>(),
        op(M::DELETE, "/v1/schedules/{schedule}", "Remove a schedule; the tasks it submitted stay", schedules::remove)
            .status(204),
        op(M::POST, "/v1/schedules/{schedule}/pause", "Pause a schedule: it fires nothing until resumed", schedules::pause)
            .answer::<ScheduleInfo>(),
        op(M::POST, "/v1/schedules/{schedule}/resume", "Resume a schedule from its next time after now", schedules::resume)
            .answer::<ScheduleInfo>(),
        op(M::POST, "/v1/schedules/{schedule}/run", "Fire a schedule now; its next time stays", schedules::run)
            .answer::<SubmitAnswer>()
            .status(201),
        op(M::GET, "/v1/sessions", "Agent sessions that keep their conversation (`meanwhile agent --session NAME`), the last active first", sessions::list)
            .query::<LimitParams>()
            .answer::<Vec<AgentSession>>(),
        op(M::POST, "/v1/sessions/{session}/open", "Open an agent session for a new holder, who alone records its steps from then on: `fresh` begins a new conversation (replacing the one it had), else the one it has is continued", sessions::open)
            .body::<OpenSession>()
            .answer::<AgentSession>(),
        op(M::GET, "/v1/sessions/{session}/steps", "An agent session's recorded steps, oldest first: what `--resume` rebuilds its conversation from", sessions::steps)
            .answer::<Vec<Step>>(),
        op(M::POST, "/v1/sessions/{session}/steps", "Record an agent session's next step, as number `after + 1`", sessions::record)
            .body::<NewSessionStep>()
            .answer::<StepRecorded>()
            .status(201)
            .refuses(409, "`conflict`: the session was opened again by another holder (field `holder`), or has another number of steps than `after` (field `after`)"),
        op(M::GET, "/v1/sessions/{session}", "One agent session that keeps its conversation", sessions::get)
            .answer::<AgentSession>(),
        op(M::DELETE, "/v1/sessions/{session}", "Forget an agent session's conversation; its notices stay", sessions::forget)
            .status(204),
        op(M::GET, "/v1/sessions/{session}/notifications", "A session's undelivered notifications, left undelivered", notifications::peek)
            .query::<LimitParams>()
            .answer::<Vec<Notification>>(),
        op(M::POST, "/v1/sessions/{session}/notifications/drain", "A session's undelivered notifications, marked delivered: each is returned once", notifications::drain)
            .query::<LimitParams>()
            .answer::<Vec<Notification>>(),
        op(M::GET, "/v1/events", "Every event as server-sent events; resume with Last-Event-ID", events::events)
            .query::<EventParams>()
            .answer::<Event>()
            .media("text/event-stream"),
        op(M::GET, "/v1/audit", "The audit trail, oldest first, a page at a time: who did what and when", audit::list)
            .query::<AuditParams>()
            .answer::<AuditPage>(),
        op(M::GET, "/v1/audit/verify", "Verify the audit trail's hash chain and its checkpoint; names the first record changed or removed", audit::verify)
            .answer::<AuditVerdict>(),
        op(M::GET, "/v1/openapi.json", "This document", serve_document),
        op(M::GET, "/metrics", "Metrics in the Prometheus text format", crate::metrics::metrics)
            .media("text/plain"),
    ]
}

/// The endpoints served on the Unix socket only: the named API tokens, which are
/// the TCP listener's credentials (a token must not be able to mint another), the
/// dashboard's login links, and a test clock's moves. They are not in the OpenAPI
/// document, which describes what every listener serves.
fn socket_only() -> Vec<Route> {
    use Method as M;
    vec![
        op(
            M::GET,
            "/v1/tokens",
            "The named API tokens: names and creation times, never the secrets",
            tokens::list,
        )
        .answer::<Vec<TokenInfo>>(),
        op(
            M::POST,
            "/v1/tokens",
            "Add a named API token; the answer is the only time it is shown",
            tokens::add,
        )
        .body::<NewTokenRequest>()
        .answer::<NewToken>()
        .status(201),
        op(
            M::DELETE,
            "/v1/tokens/{name}",
            "Remove a named API token; requests with it are refused at once",
            tokens::remove,
        )
        .status(204),
        op(
            M::POST,
            "/v1/dashboard",
            "A one-time login link to the dashboard, on a loopback port opened for it when the daemon has no TCP listener",
            crate::dashboard::open,
        )
        .answer::<meanwhile_core::http::DashboardLink>(),
        op(
            M::POST,
            "/v1/clock",
            "Move the clock of a daemon started with MEANWHILE_TEST_CLOCK forward, and wait until its timed loops looked at the new time",
            clock::advance,
        )
        .body::<ClockAdvance>()
        .answer::<ClockMoved>()
        .refuses(409, "`conflict`: the daemon keeps the system's time"),
    ]
}

/// Which listener a router serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// The Unix socket: every endpoint.
    Socket,
    /// TCP: every endpoint but the socket-only ones.
    Tcp,
}

/// An endpoint's method and path, as the OpenAPI document names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// `GET`, `POST`, ...
    pub method: String,
    /// `/v1/tasks/{id}`.
    pub path: String,
}

/// Every endpoint the daemon serves.
pub fn route_infos() -> Vec<RouteInfo> {
    table()
        .into_iter()
        .map(|r| RouteInfo {
            method: r.method.to_string(),
            path: r.path.to_string(),
        })
        .collect()
}

/// The router of every endpoint, with JSON answers for unknown paths and methods.
pub(crate) fn router(state: AppState, listener: Listener) -> Router {
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    let extra = match listener {
        Listener::Socket => socket_only(),
        Listener::Tcp => Vec::new(),
    };
    for r in table().into_iter().chain(extra) {
        match by_path.iter_mut().find(|(p, _)| *p == r.path) {
            Some((_, m)) => *m = std::mem::take(m).merge(r.handler),
            None => by_path.push((r.path, r.handler)),
        }
    }
    let mut router = Router::new();
    for (path, m) in by_path {
        router = router.route(path, m.fallback(method_not_allowed));
    }
    if listener == Listener::Tcp {
        router = router.merge(crate::dashboard::routes());
    }
    let mcp = Router::new()
        .fallback_service(mcp_service(&state))
        .layer(axum::middleware::from_fn(jsonrpc_gate));
    router
        .nest_service("/mcp", mcp)
        .fallback(not_found)
        .with_state(state)
}

/// The MCP endpoint (streamable HTTP) over the daemon's runtime. Requests name
/// their session with a `meanwhile-session` header or `?session=`; those that do
/// not share the session `mcp-http`.
fn mcp_service(state: &AppState) -> meanwhile_mcp::HttpService {
    let mut down = state.shutdown.clone();
    meanwhile_mcp::http_service(
        std::sync::Arc::new(state.rt.clone()),
        meanwhile_mcp::McpConfig::new("mcp-http"),
        async move {
            let _ = down.wait_for(|d| *d).await;
        },
    )
}

/// The most a posted MCP message may hold, as the MCP service allows.
const MCP_BODY_LIMIT: usize = 4 << 20;

/// Answers a malformed JSON-RPC message posted to `/mcp` with HTTP 400 and the
/// JSON-RPC error for it (see `meanwhile_mcp::jsonrpc`); passes the rest on. A body
/// that is not declared JSON is left to the MCP service, which answers 415.
async fn jsonrpc_gate(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let json = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if req.method() != Method::POST || !json {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MCP_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            let e = serde_json::json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {
                    "code": meanwhile_mcp::jsonrpc::INVALID_REQUEST,
                    "message": format!("Invalid Request: the body is over {} MiB, or was cut off", MCP_BODY_LIMIT >> 20),
                },
            });
            return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(e)).into_response();
        }
    };
    if let Err(e) = meanwhile_mcp::jsonrpc::check_message(&bytes) {
        return (StatusCode::BAD_REQUEST, axum::Json(e)).into_response();
    }
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

async fn not_found(uri: axum::http::Uri) -> crate::error::Fail {
    crate::error::Fail(meanwhile_core::ApiError::new(
        meanwhile_core::ErrorCode::NotFound,
        format!("no endpoint {} (see /v1/openapi.json)", uri.path()),
    ))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> axum::response::Response {
    let mut r = crate::error::error_response(meanwhile_core::ApiError::invalid(
        "method",
        format!(
            "{} does not take {method} (see /v1/openapi.json)",
            uri.path()
        ),
    ));
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}
