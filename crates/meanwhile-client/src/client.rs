//! The client and its calls, one per endpoint.

use crate::conn::{Pool, Target};
use crate::error::ClientError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use meanwhile_core::http::{
    BatchAnswer, BatchRequest, CleanBody, ErrorBody, ListParams, OutputParams, ProgressReport,
    QueueUpdate, RemoveRequest, Removed, SESSION_HEADER, SOCKET_FILE, ShutdownRequest,
    ShuttingDown, Status, StopRequest, SubmitAnswer, TOKEN_FILE, TaskDetail, WaitRequest,
};
use meanwhile_core::{
    ApiError, Backend, BackendFuture, ErrorCode, ListFilter, Notification, OutputChunk,
    OutputQuery, Page, QueueInfo, ScheduleInfo, ScheduleSpec, StopMode, TaskId, TaskRecord,
    TaskSpec, WaitMode, WaitOutcome,
};
use meanwhile_core::{
    AuditFilter, AuditPage, AuditParams, AuditVerdict, NewToken, NewTokenRequest, TokenInfo,
};
use meanwhile_core::{BudgetInfo, BudgetSpec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A client of one daemon. Cheap to clone; clones share their connections.
#[derive(Clone)]
pub struct Client {
    pool: Arc<Pool>,
    /// The session this client speaks for, sent with every request so that the
    /// daemon's audit trail names it (the MCP server and the agent set it).
    session: Option<String>,
}

/// An answer as it came, for callers that want the status and bytes.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: u16,
    /// The content type, when given.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

fn percent_path(s: &str) -> String {
    // Queue and session names are restricted to URL-safe characters by validation;
    // anything else is escaped so that a bad name gets the daemon's error, not ours.
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query<T: Serialize>(params: &T) -> String {
    match serde_urlencoded::to_string(params) {
        Ok(q) if !q.is_empty() => format!("?{q}"),
        _ => String::new(),
    }
}

impl Client {
    /// A client of the daemon listening on the Unix socket at `socket`.
    pub fn unix(socket: impl Into<PathBuf>) -> Client {
        Client {
            pool: Arc::new(Pool::new(Target::Unix(socket.into()))),
            session: None,
        }
    }

    /// A client of the daemon whose home is `home` (its socket is in there).
    pub fn for_home(home: &Path) -> Client {
        Client::unix(home.join(SOCKET_FILE))
    }

    /// A client of a daemon on TCP (`127.0.0.1:7070`), with its bearer token.
    pub fn tcp(addr: impl Into<String>, token: impl Into<String>) -> Client {
        let addr: String = addr.into();
        let addr = addr
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Client {
            pool: Arc::new(Pool::new(Target::Tcp {
                addr,
                token: token.into(),
            })),
            session: None,
        }
    }

    /// The client the environment asks for: `MEANWHILE_URL` (with `MEANWHILE_TOKEN`,
    /// else the token file of the home) when set, else the socket in the home.
    pub fn from_env(home: &Path) -> Client {
        match std::env::var("MEANWHILE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            Some(url) => {
                let token = std::env::var("MEANWHILE_TOKEN")
                    .ok()
                    .or_else(|| std::fs::read_to_string(home.join(TOKEN_FILE)).ok())
                    .unwrap_or_default();
                Client::tcp(url, token.trim())
            }
            None => Client::for_home(home),
        }
    }

    /// The same client speaking for `session`: the daemon records it with the
    /// changes this client makes (`meanwhile audit`).
    pub fn with_session(mut self, session: impl Into<String>) -> Client {
        self.session = Some(session.into());
        self
    }

    /// Where this client connects, for messages.
    pub fn target(&self) -> String {
        self.pool.target.describe()
    }

    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        last_event_id: Option<i64>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        // On TCP the daemon serves only requests naming its own address (DNS
        // rebinding protection); the socket takes any name.
        let host = match &self.pool.target {
            Target::Tcp { addr, .. } => addr.as_str(),
            Target::Unix(_) => "meanwhile",
        };
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, host);
        if let Target::Tcp { token, .. } = &self.pool.target {
            b = b.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            b = b.header(CONTENT_TYPE, "application/json");
        }
        if let Some(s) = &self.session {
            b = b.header(SESSION_HEADER, s.as_str());
        }
        if let Some(id) = last_event_id {
            b = b.header("last-event-id", id.to_string());
        }
        b.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.protocol(e))
    }

    pub(crate) fn protocol(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol {
            target: self.target(),
            message: e.to_string(),
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Sends a request and reads the whole answer, whatever its status. A request
    /// that may change something is sent again (on a new connection) only when it
    /// provably never left this process; a `GET` also when its kept-alive connection
    /// turned out to be closed.
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, ClientError> {
        let repeatable = method == Method::GET;
        self.send(method, path_and_query, body, repeatable).await
    }

    /// Sends a request; `repeatable` says whether sending it twice does no harm (a
    /// read, or a submit that carries an idempotency key), so that it may be sent
    /// again when its kept-alive connection was found closed after it was written.
    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        repeatable: bool,
    ) -> Result<RawResponse, ClientError> {
        let (mut sender, reused) = self.pool.checkout().await?;
        let req = self.request(method.clone(), path_and_query, body.clone(), None)?;
        let resp = match sender.try_send_request(req).await {
            Ok(r) => r,
            Err(mut e) => {
                // The request comes back only when it was never written to the
                // connection: then nothing can have acted on it.
                let never_sent = e.take_message().is_some();
                let e = e.into_error();
                if !(reused && stale_connection(&e) && (never_sent || repeatable)) {
                    return Err(self.protocol(e));
                }
                // A kept-alive connection the daemon closed meanwhile (it restarted,
                // or timed the connection out): send again on a new connection.
                sender = self.pool.connect().await?;
                let req = self.request(method, path_and_query, body, None)?;
                sender
                    .send_request(req)
                    .await
                    .map_err(|e| self.protocol(e))?
            }
        };
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.protocol(e))?
            .to_bytes();
        self.pool.checkin(sender);
        Ok(RawResponse {
            status,
            content_type,
            body,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let repeatable = method == Method::GET;
        self.call_with(method, path, body, repeatable).await
    }

    async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        repeatable: bool,
    ) -> Result<T, ClientError> {
        let r = self.send(method, path, body, repeatable).await?;
        let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&r.body) {
                Ok(e) => ClientError::Api(e.error),
                Err(_) => ClientError::Api(ApiError::new(
                    ErrorCode::Internal,
                    format!(
                        "the daemon answered {status}: {}",
                        String::from_utf8_lossy(&r.body)
                    ),
                )),
            });
        }
        let bytes: &[u8] = if r.body.is_empty() { b"null" } else { &r.body };
        serde_json::from_slice(bytes).map_err(|e| self.protocol(format!("unexpected answer: {e}")))
    }

    /// A request's body. A spec's secrets travel as their values to the daemon,
    /// which keeps them and shows them to nobody.
    fn json<T: Serialize>(&self, v: &T) -> Result<Option<Vec<u8>>, ClientError> {
        meanwhile_core::expose_secrets(|| serde_json::to_vec(v))
            .map(Some)
            .map_err(|e| self.protocol(e))
    }

    /// The daemon's health, version and counts.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.call(Method::GET, "/v1/status", None).await
    }

    /// Asks the daemon to stop. Its running tasks keep running for the next daemon,
    /// or, with `stop_tasks`, are stopped first. It answers at once; wait for the
    /// exit of the process it names.
    pub async fn shutdown(&self, stop_tasks: bool) -> Result<ShuttingDown, ClientError> {
        // Asking twice is asking once: safe to send again.
        self.call_with(
            Method::POST,
            "/v1/shutdown",
            self.json(&ShutdownRequest { stop_tasks })?,
            true,
        )
        .await
    }

    /// Submits a task; its id comes back at once. A spec without an idempotency key
    /// gets one of the client's own, so that a submit sent twice (a connection that
    /// broke after the request was written) creates one task.
    pub async fn submit(&self, spec: &TaskSpec) -> Result<TaskId, ClientError> {
        Ok(self.submit_answer(spec).await?.id)
    }

    /// [`Client::submit`], with the whole answer: the id, and what the task will
    /// trip over at its start (`command not found: NAME`).
    pub async fn submit_answer(&self, spec: &TaskSpec) -> Result<SubmitAnswer, ClientError> {
        let body = match spec.idempotency_key {
            Some(_) => self.json(spec)?,
            None => self.json(&with_key(spec.clone()))?,
        };
        self.call_with(Method::POST, "/v1/tasks", body, true).await
    }

    /// Submits many tasks in one transaction; one result per spec, in order. A batch
    /// with an invalid spec stores nothing and fails as a whole.
    pub async fn submit_batch(
        &self,
        specs: Vec<TaskSpec>,
    ) -> Result<Vec<Result<TaskId, ApiError>>, ClientError> {
        let tasks = specs.into_iter().map(with_key).collect();
        let a: BatchAnswer = self
            .call_with(
                Method::POST,
                "/v1/tasks/batch",
                self.json(&BatchRequest { tasks })?,
                true,
            )
            .await?;
        Ok(a.results
            .into_iter()
            .map(|r| match (r.id, r.error) {
                (Some(id), _) => Ok(id),
                (None, Some(e)) => Err(e),
                (None, None) => Err(ApiError::new(ErrorCode::Internal, "no result")),
            })
            .collect())
    }

    /// One task with its attempts.
    pub async fn task(&self, id: TaskId) -> Result<TaskDetail, ClientError> {
        self.call(Method::GET, &format!("/v1/tasks/{id}"), None)
            .await
    }

    /// One task.
    pub async fn get(&self, id: TaskId) -> Result<TaskRecord, ClientError> {
        Ok(self.task(id).await?.task)
    }

    /// The steps an agent task recorded, every attempt's, oldest first
    /// (`GET /v1/tasks/{id}/transcript`).
    pub async fn transcript(&self, id: TaskId) -> Result<meanwhile_core::Transcript, ClientError> {
        self.call(Method::GET, &format!("/v1/tasks/{}/transcript", id.0), None)
            .await
    }

    /// A page of tasks, newest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Page, ClientError> {
        let q = query(&ListParams::from_filter(filter));
        self.call(Method::GET, &format!("/v1/tasks{q}"), None).await
    }

    /// Reads a task's output as `q` says (including waits).
    pub async fn output(&self, id: TaskId, q: &OutputQuery) -> Result<OutputChunk, ClientError> {
        let q = query(&OutputParams::from_query(q));
        self.call(Method::GET, &format!("/v1/tasks/{id}/output{q}"), None)
            .await
    }

    /// Stops a task.
    pub async fn stop(&self, id: TaskId, mode: StopMode) -> Result<TaskRecord, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{id}/stop"),
            self.json(&StopRequest { mode })?,
        )
        .await
    }

    /// Sends input to a running task started with `--stdin` or `--tty`.
    pub async fn send_input(
        &self,
        id: TaskId,
        input: &meanwhile_core::TaskInput,
    ) -> Result<meanwhile_core::InputSent, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{id}/input"),
            self.json(input)?,
        )
        .await
    }

    /// Runs a finished task again.
    pub async fn retry(&self, id: TaskId) -> Result<TaskRecord, ClientError> {
        self.call(Method::POST, &format!("/v1/tasks/{id}/retry"), None)
            .await
    }

    /// Reports progress of a running task.
    pub async fn report_progress(
        &self,
        id: TaskId,
        percent: Option<f32>,
        message: &str,
    ) -> Result<(), ClientError> {
        let body = ProgressReport {
            percent: percent.map(f64::from),
            message: message.to_string(),
        };
        self.call::<()>(
            Method::POST,
            &format!("/v1/tasks/{id}/progress"),
            self.json(&body)?,
        )
        .await
    }

    /// Removes finished tasks and their logs.
    pub async fn remove(&self, ids: Vec<TaskId>) -> Result<Vec<TaskId>, ClientError> {
        let r: Removed = self
            .call(
                Method::POST,
                "/v1/tasks/remove",
                self.json(&RemoveRequest { ids })?,
            )
            .await?;
        Ok(r.removed)
    }

    /// Removes finished tasks older than `older_than` or beyond the newest
    /// `keep_last`; every finished task when both are `None`.
    pub async fn clean(
        &self,
        older_than: Option<Duration>,
        keep_last: Option<u64>,
    ) -> Result<Vec<TaskId>, ClientError> {
        let body = CleanBody {
            older_than,
            keep_last,
        };
        let r: Removed = self
            .call(Method::POST, "/v1/clean", self.json(&body)?)
            .await?;
        Ok(r.removed)
    }

    /// Waits until any or all of `ids` end, at most `timeout`.
    pub async fn wait(
        &self,
        ids: &[TaskId],
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> Result<WaitOutcome, ClientError> {
        let body = WaitRequest {
            ids: ids.to_vec(),
            mode,
            timeout,
        };
        self.call(Method::POST, "/v1/wait", self.json(&body)?).await
    }

    /// The queues.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>, ClientError> {
        self.call(Method::GET, "/v1/queues", None).await
    }

    /// Creates or changes a queue: the fields of `change` that are given (a limit
    /// given as `Some(None)` is removed).
    pub async fn set_queue(
        &self,
        name: &str,
        change: QueueUpdate,
    ) -> Result<QueueInfo, ClientError> {
        self.call(
            Method::PUT,
            &format!("/v1/queues/{}", percent_path(name)),
            self.json(&change)?,
        )
        .await
    }

    /// Removes a queue that has no pending or running task and no budget.
    pub async fn remove_queue(&self, name: &str) -> Result<(), ClientError> {
        self.call::<()>(
            Method::DELETE,
            &format!("/v1/queues/{}", percent_path(name)),
            None,
        )
        .await
    }

    /// Every budget, by queue.
    pub async fn budgets(&self) -> Result<Vec<BudgetInfo>, ClientError> {
        self.call(Method::GET, "/v1/budgets", None).await
    }

    /// The budget of one queue.
    pub async fn budget(&self, queue: &str) -> Result<BudgetInfo, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/budgets/{}", percent_path(queue)),
            None,
        )
        .await
    }

    /// Sets the budget of a queue (a whole budget: limits, window and alarms).
    pub async fn set_budget(
        &self,
        queue: &str,
        spec: &BudgetSpec,
    ) -> Result<BudgetInfo, ClientError> {
        self.call(
            Method::PUT,
            &format!("/v1/budgets/{}", percent_path(queue)),
            self.json(spec)?,
        )
        .await
    }

    /// Removes the budget of a queue.
    pub async fn remove_budget(&self, queue: &str) -> Result<(), ClientError> {
        self.call::<()>(
            Method::DELETE,
            &format!("/v1/budgets/{}", percent_path(queue)),
            None,
        )
        .await
    }

    /// Alerts, newest first: the firing ones, or all.
    pub async fn alerts(&self, all: bool) -> Result<Vec<meanwhile_core::Alert>, ClientError> {
        let path = if all {
            "/v1/alerts?all=true"
        } else {
            "/v1/alerts"
        };
        self.call(Method::GET, path, None).await
    }

    /// Acknowledges firing alert `id` for `hold`, or until it resolves.
    pub async fn ack_alert(
        &self,
        id: i64,
        hold: Option<std::time::Duration>,
    ) -> Result<meanwhile_core::Alert, ClientError> {
        let body = meanwhile_core::http::AckRequest { for_: hold };
        let path = format!("/v1/alerts/{id}/ack");
        self.call(Method::POST, &path, self.json(&body)?).await
    }

    /// Whether any alert fires.
    pub async fn health(&self) -> Result<meanwhile_core::http::Health, ClientError> {
        self.call(Method::GET, "/v1/health", None).await
    }

    /// Adds a schedule.
    pub async fn add_schedule(&self, spec: &ScheduleSpec) -> Result<ScheduleInfo, ClientError> {
        self.call(Method::POST, "/v1/schedules", self.json(spec)?)
            .await
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>, ClientError> {
        self.call(Method::GET, "/v1/schedules", None).await
    }

    /// One schedule.
    pub async fn schedule(&self, name: &str) -> Result<ScheduleInfo, ClientError> {
        self.call(Method::GET, &schedule_path(name, ""), None).await
    }

    /// A page of the audit trail, oldest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<AuditPage, ClientError> {
        let q = query(&AuditParams::from_filter(filter));
        self.call(Method::GET, &format!("/v1/audit{q}"), None).await
    }

    /// Verifies the audit trail's hash chain and checkpoint.
    pub async fn verify_audit(&self) -> Result<AuditVerdict, ClientError> {
        self.call(Method::GET, "/v1/audit/verify", None).await
    }

    /// The API tokens (names and creation times). Over the Unix socket only.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        self.call(Method::GET, "/v1/tokens", None).await
    }

    /// Adds a named API token; the answer holds the token, shown this once. Over
    /// the Unix socket only.
    pub async fn add_token(&self, name: &str) -> Result<NewToken, ClientError> {
        let body = self.json(&NewTokenRequest {
            name: name.to_string(),
        })?;
        self.call(Method::POST, "/v1/tokens", body).await
    }

    /// Removes a named API token. Over the Unix socket only.
    pub async fn remove_token(&self, name: &str) -> Result<(), ClientError> {
        self.call::<()>(
            Method::DELETE,
            &format!("/v1/tokens/{}", percent_path(name)),
            None,
        )
        .await
    }

    /// A one-time login link to the dashboard, on a loopback port the daemon opens
    /// for it when it has no TCP listener. Over the Unix socket only.
    pub async fn dashboard(&self) -> Result<meanwhile_core::http::DashboardLink, ClientError> {
        self.call(Method::POST, "/v1/dashboard", None).await
    }

    /// Moves the clock of a daemon started with `MEANWHILE_TEST_CLOCK` forward by
    /// `by`, and waits until its timed loops looked at the new time. Over the Unix
    /// socket only; another daemon refuses (`conflict`).
    pub async fn advance_clock(
        &self,
        by: std::time::Duration,
    ) -> Result<meanwhile_core::http::ClockMoved, ClientError> {
        let body = self.json(&meanwhile_core::http::ClockAdvance { advance: by })?;
        self.call(Method::POST, "/v1/clock", body).await
    }

    /// The nodes sharing the daemon's store.
    pub async fn nodes(&self) -> Result<Vec<meanwhile_core::NodeInfo>, ClientError> {
        self.call(Method::GET, "/v1/nodes", None).await
    }

    /// Forgets a node that is gone for good; an alive one is refused.
    pub async fn remove_node(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/nodes/{}", percent_path(name));
        self.call::<()>(Method::DELETE, &path, None).await
    }

    /// Removes a schedule; the tasks it submitted stay.
    pub async fn remove_schedule(&self, name: &str) -> Result<(), ClientError> {
        self.call::<()>(Method::DELETE, &schedule_path(name, ""), None)
            .await
    }

    /// Pauses a schedule, or resumes it.
    pub async fn pause_schedule(
        &self,
        name: &str,
        paused: bool,
    ) -> Result<ScheduleInfo, ClientError> {
        let action = if paused { "/pause" } else { "/resume" };
        self.call(Method::POST, &schedule_path(name, action), None)
            .await
    }

    /// Fires a schedule now; returns its task's id.
    pub async fn run_schedule(&self, name: &str) -> Result<TaskId, ClientError> {
        let a: SubmitAnswer = self
            .call(Method::POST, &schedule_path(name, "/run"), None)
            .await?;
        Ok(a.id)
    }

    /// Returns a session's undelivered notifications and marks them delivered.
    pub async fn drain_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, ClientError> {
        self.call(
            Method::POST,
            &format!(
                "/v1/sessions/{}/notifications/drain?limit={limit}",
                percent_path(session)
            ),
            None,
        )
        .await
    }

    /// Agent sessions that keep their conversation, the last active first.
    pub async fn agent_sessions(
        &self,
        limit: u32,
    ) -> Result<Vec<meanwhile_core::AgentSession>, ClientError> {
        self.call(Method::GET, &format!("/v1/sessions?limit={limit}"), None)
            .await
    }

    /// One agent session that keeps its conversation.
    pub async fn agent_session(
        &self,
        name: &str,
    ) -> Result<meanwhile_core::AgentSession, ClientError> {
        let path = format!("/v1/sessions/{}", percent_path(name));
        self.call(Method::GET, &path, None).await
    }

    /// Opens agent session `name` for a new holder (see
    /// [`meanwhile_core::OpenSession`]); the answer carries the holder to record with.
    pub async fn open_agent_session(
        &self,
        name: &str,
        open: &meanwhile_core::OpenSession,
    ) -> Result<meanwhile_core::AgentSession, ClientError> {
        let path = format!("/v1/sessions/{}/open", percent_path(name));
        self.call(Method::POST, &path, self.json(open)?).await
    }

    /// Records an agent session's next step; answers its number.
    pub async fn record_session_step(
        &self,
        name: &str,
        step: &meanwhile_core::NewSessionStep,
    ) -> Result<u32, ClientError> {
        let path = format!("/v1/sessions/{}/steps", percent_path(name));
        let r: meanwhile_core::StepRecorded =
            self.call(Method::POST, &path, self.json(step)?).await?;
        Ok(r.n)
    }

    /// An agent session's steps, oldest first.
    pub async fn agent_session_steps(
        &self,
        name: &str,
    ) -> Result<Vec<meanwhile_core::Step>, ClientError> {
        let path = format!("/v1/sessions/{}/steps", percent_path(name));
        self.call(Method::GET, &path, None).await
    }

    /// Forgets an agent session's conversation; its notices stay.
    pub async fn forget_agent_session(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/sessions/{}", percent_path(name));
        self.call::<()>(Method::DELETE, &path, None).await
    }

    /// A session's undelivered notifications, left undelivered.
    pub async fn peek_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> Result<Vec<Notification>, ClientError> {
        self.call(
            Method::GET,
            &format!(
                "/v1/sessions/{}/notifications?limit={limit}",
                percent_path(session)
            ),
            None,
        )
        .await
    }

    /// The metrics, in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let r = self.raw(Method::GET, "/metrics", None).await?;
        Ok(String::from_utf8_lossy(&r.body).into_owned())
    }

    /// The OpenAPI document.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, "/v1/openapi.json", None).await
    }
}

impl Backend for Client {
    fn submit(&self, spec: TaskSpec) -> BackendFuture<'_, TaskId> {
        Box::pin(async move { Ok(Client::submit(self, &spec).await?) })
    }

    fn get(&self, id: TaskId) -> BackendFuture<'_, TaskRecord> {
        Box::pin(async move { Ok(Client::get(self, id).await?) })
    }

    fn list(&self, filter: ListFilter) -> BackendFuture<'_, Page> {
        Box::pin(async move { Ok(Client::list(self, &filter).await?) })
    }

    fn read_output(&self, id: TaskId, query: OutputQuery) -> BackendFuture<'_, OutputChunk> {
        Box::pin(async move { Ok(Client::output(self, id, &query).await?) })
    }

    fn stop(&self, id: TaskId, mode: StopMode) -> BackendFuture<'_, TaskRecord> {
        Box::pin(async move { Ok(Client::stop(self, id, mode).await?) })
    }

    fn send_input(
        &self,
        id: TaskId,
        input: meanwhile_core::TaskInput,
    ) -> BackendFuture<'_, meanwhile_core::InputSent> {
        Box::pin(async move { Ok(Client::send_input(self, id, &input).await?) })
    }

    fn wait(
        &self,
        ids: Vec<TaskId>,
        mode: WaitMode,
        timeout: Option<Duration>,
    ) -> BackendFuture<'_, WaitOutcome> {
        Box::pin(async move { Ok(Client::wait(self, &ids, mode, timeout).await?) })
    }

    fn drain_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        let session = session.to_string();
        Box::pin(async move { Ok(Client::drain_notifications(self, &session, limit).await?) })
    }

    fn peek_notifications(
        &self,
        session: &str,
        limit: u32,
    ) -> BackendFuture<'_, Vec<Notification>> {
        let session = session.to_string();
        Box::pin(async move { Ok(Client::peek_notifications(self, &session, limit).await?) })
    }
}

/// `spec` with an idempotency key: its own, or a new one that makes sending it twice
/// harmless: `client-`, the time in milliseconds as 12 hex digits, then 20 random ones.
/// The time first makes each new key sort after the ones before it, so the store adds
/// it at the end of its key index (one page written) instead of at a random place
/// that splits a page in the middle of the index.
fn with_key(mut spec: TaskSpec) -> TaskSpec {
    if spec.idempotency_key.is_none() {
        spec.idempotency_key = Some(new_key(SystemTime::now(), rand::random::<u128>()));
    }
    spec
}

fn new_key(now: SystemTime, random: u128) -> String {
    let millis = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let random = random & ((1 << 80) - 1);
    format!("client-{:012x}{random:020x}", millis & 0xffff_ffff_ffff)
}

/// Whether a request failed because its kept-alive connection had been closed by the
/// daemon before the request got through, so that sending it again is safe.
fn stale_connection(e: &hyper::Error) -> bool {
    if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::NotConnected
            );
        }
        source = s.source();
    }
    false
}

fn schedule_path(name: &str, action: &str) -> String {
    format!("/v1/schedules/{}{action}", percent_path(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_sorts_after_the_keys_made_before_it() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        let early = new_key(at(1_796_689_986_737), u128::MAX);
        let later = new_key(at(1_796_689_986_738), 0);
        assert!(early < later, "{early} then {later}");
        assert_eq!(early.len(), "client-".len() + 32, "{early}");
        assert_eq!(later, "client-01a2531184b200000000000000000000");
        // Two keys made in the same millisecond differ in their random part.
        assert_ne!(new_key(at(5), 1), new_key(at(5), 2));
    }
}
