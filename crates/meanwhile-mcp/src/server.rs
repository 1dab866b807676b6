//! The MCP server itself: an rmcp [`ServerHandler`] over a [`Backend`].

use crate::config::{McpConfig, SESSION_HEADER, valid_session};
use crate::tasks::WaitTask;
use crate::{notices, resources, tasks, tools};
use meanwhile_agent::tools::defs;
use meanwhile_core::Backend;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, CreateTaskResult,
    GetTaskParams, GetTaskResult, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams,
    ReadResourceResponse, ResourceUpdatedNotificationParam, ServerCapabilities, ServerConfig,
    ServerNotification, SubscribeRequestParams, SubscriptionFilter, TaskPayload,
    TaskStatusNotification, TaskStatusNotificationParams, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::task::AbortHandle;

/// What every connection of one server shares.
struct Shared {
    backend: Arc<dyn Backend>,
    config: McpConfig,
}

/// The legacy (`resources/subscribe`) subscriptions of one connection, by URI;
/// their watches end with the connection.
#[derive(Default)]
struct Watches(Mutex<HashMap<String, AbortHandle>>);

impl Watches {
    fn set(&self, uri: String, handle: AbortHandle) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = w.insert(uri, handle) {
            old.abort();
        }
    }

    fn remove(&self, uri: &str) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = w.remove(uri) {
            old.abort();
        }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        let w = self.0.get_mut().unwrap_or_else(|e| e.into_inner());
        for (_, h) in w.drain() {
            h.abort();
        }
    }
}

/// meanwhile's MCP server for one connection. Serve it with [`crate::serve_stdio`]
/// or [`crate::http_service`], or with any rmcp transport.
#[derive(Clone)]
pub struct McpServer {
    shared: Arc<Shared>,
    watches: Arc<Watches>,
}

impl McpServer {
    /// A server over `backend`.
    pub fn new(backend: Arc<dyn Backend>, config: McpConfig) -> McpServer {
        McpServer::from_shared(Arc::new(Shared { backend, config }))
    }

    fn from_shared(shared: Arc<Shared>) -> McpServer {
        McpServer {
            shared,
            watches: Arc::default(),
        }
    }

    /// A factory of servers for new connections, sharing the backend and config.
    pub(crate) fn factory(backend: Arc<dyn Backend>, config: McpConfig) -> impl Fn() -> McpServer {
        let shared = Arc::new(Shared { backend, config });
        move || McpServer::from_shared(shared.clone())
    }

    fn backend(&self) -> &dyn Backend {
        self.shared.backend.as_ref()
    }

    fn spawn_enabled(&self) -> bool {
        self.shared.config.spawn_agent.is_some()
    }

    /// The session a request speaks for: over HTTP, the one its `meanwhile-session`
    /// header or `session` query parameter names, if any; else the configured one.
    fn session(&self, ctx: &RequestContext<RoleServer>) -> Result<String, ErrorData> {
        let named = ctx.extensions.get::<http::request::Parts>().and_then(|p| {
            let header = p
                .headers
                .get(SESSION_HEADER)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            header.or_else(|| {
                form_urlencoded::parse(p.uri.query().unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "session")
                    .map(|(_, v)| v.into_owned())
            })
        });
        match named {
            None => Ok(self.shared.config.session.clone()),
            Some(s) if valid_session(&s) => Ok(s),
            Some(s) => Err(ErrorData::invalid_request(
                format!(
                    "session {s:?} is not a usable session name: use 1 to 128 printable characters without spaces"
                ),
                None,
            )),
        }
    }

    /// The backend to make a request's changes through: over HTTP, one that records
    /// them in the audit trail as made by the request's actor (which the daemon
    /// puts in the request's extensions) speaking for `session`.
    fn backend_for(&self, ctx: &RequestContext<RoleServer>, session: &str) -> Arc<dyn Backend> {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|p| p.extensions.get::<meanwhile_core::Actor>())
            .and_then(|actor| {
                let actor = actor.clone().with_session(Some(session.to_string()));
                self.shared.backend.acting_as(actor)
            })
            .unwrap_or_else(|| self.shared.backend.clone())
    }

    /// Whether every task of `w` exists, so that a handle is never made for a wait
    /// that could only fail.
    async fn all_exist(&self, w: &WaitTask) -> bool {
        for id in &w.ids {
            if self.backend().get(*id).await.is_err() {
                return false;
            }
        }
        true
    }

    /// On a connection that keeps a session (the `initialize` lifecycle), sends
    /// `notifications/tasks` when the handle's wait is over, so the client need not
    /// poll. Newer connections have no channel for it and poll `tasks/get`.
    fn announce_end(&self, ctx: &RequestContext<RoleServer>, w: WaitTask, session: String) {
        let legacy = ctx
            .protocol_version()
            .is_some_and(|v| v.as_str() < ProtocolVersion::V_2026_07_28.as_str());
        if !legacy || ctx.peer.peer_info().is_none() {
            return;
        }
        let peer = ctx.peer.clone();
        let backend = self.shared.backend.clone();
        let handle = tokio::spawn(async move {
            tasks::until_done(backend.as_ref(), &w, || peer.is_transport_closed()).await;
            if peer.is_transport_closed() {
                return;
            }
            // The notice-free state: notices go to the model through tasks/get or the
            // next tool result, which a client reads, not through a notification.
            let Ok(task) = tasks::state(backend.as_ref(), &session, &w).await else {
                return;
            };
            let n = TaskStatusNotification::new(TaskStatusNotificationParams::new(task));
            if let Err(e) = peer
                .send_notification(ServerNotification::TaskStatusNotification(n))
                .await
            {
                tracing::debug!("could not send a task status notification: {e}");
            }
        });
        self.watches
            .set(format!("task:{}", uuid_free_key()), handle.abort_handle());
    }
}

/// A unique key for a watch that no client names (a task status announcement).
fn uuid_free_key() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

const INSTRUCTIONS: &str = "meanwhile runs slow work in the background and keeps it running when this \
conversation ends. Start commands with background_run and keep working; how they ended (state, exit code, \
last lines) is added to the result of your next meanwhile tool call, each notice once. Read output with \
background_output (pass the cursor as since to read only what is new; wait for a line with wait=match), \
stop with background_stop, list with background_list. Each task's output is also a resource, \
meanwhile://tasks/{id}/output.";

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("meanwhile", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::list(
            self.spawn_enabled(),
        )))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let session = self.session(&context)?;
        let spawn = self.spawn_enabled();
        let name = request.name.as_ref();
        if !tools::exists(name, spawn) {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {name:?}; the tools are {}",
                    tools::names(spawn)
                ),
                None,
            ));
        }
        let args = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        let tasks_declared = context
            .client_capabilities()
            .is_some_and(|c| c.supports_tasks());
        if name == defs::BACKGROUND_WAIT
            && tasks_declared
            && let Some(w) = WaitTask::from_args(&args)
            && self.all_exist(&w).await
        {
            let seed = tasks::created(&w);
            self.announce_end(&context, w, session);
            return Ok(CallToolResponse::Task(CreateTaskResult::new(seed)));
        }
        let backend = self.backend_for(&context, &session);
        let outcome = tools::call(
            backend.as_ref(),
            &session,
            self.shared.config.spawn_agent.as_ref(),
            self.shared.config.cwd.as_deref(),
            name,
            args,
        )
        .await;
        // background_notifications has just drained them itself.
        let notices = if name == tools::BACKGROUND_NOTIFICATIONS {
            None
        } else {
            notices::ride_along(self.backend(), &session).await
        };
        let content = tools::content(outcome.text, notices);
        Ok(if outcome.is_error {
            CallToolResult::error(content)
        } else {
            CallToolResult::success(content)
        }
        .into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let session = self.session(&context)?;
        let list = resources::list(self.backend(), &session).await?;
        // Tasks come and go: a listing must not be served from a cache.
        Ok(ListResourcesResult::with_all_items(list).with_ttl_ms(0))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            resources::template(),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        Ok(resources::read(self.backend(), &request.uri).await?.into())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let uri = request.uri;
        let parsed = resources::parse(&uri)?;
        self.backend()
            .get(parsed.id)
            .await
            .map_err(|e| resources::naming_uri(crate::error::to_mcp(&e), &uri))?;
        let backend = self.shared.backend.clone();
        let peer = context.peer.clone();
        let watched = uri.clone();
        let handle = tokio::spawn(async move {
            resources::watch(backend.as_ref(), &watched, || {
                let peer = peer.clone();
                let uri = watched.clone();
                async move {
                    peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                        .await
                        .is_ok()
                }
            })
            .await;
        });
        self.watches.set(uri, handle.abort_handle());
        Ok(())
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.watches.remove(&request.uri);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // Only task output URIs can be watched; the SDK drops what the capabilities
        // do not offer (the list-changed notifications).
        let mut accepted = requested.clone();
        accepted.resource_subscriptions = requested.resource_subscriptions.as_ref().map(|uris| {
            uris.iter()
                .filter(|u| resources::parse(u).is_ok())
                .cloned()
                .collect()
        });
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let mut watches = tokio::task::JoinSet::new();
        for uri in uris {
            let backend = self.shared.backend.clone();
            let sink = context.sink().clone();
            watches.spawn(async move {
                resources::watch(backend.as_ref(), &uri, || {
                    let sink = sink.clone();
                    let uri = uri.clone();
                    async move { sink.notify_resource_updated(uri).await.is_ok() }
                })
                .await;
            });
        }
        // A subscription lasts until the client cancels it, even after its tasks
        // ended: closing it is the client's word.
        context.cancelled().await;
        watches.abort_all();
        Ok(())
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let session = self.session(&context)?;
        let w = WaitTask::parse(&request.task_id)?;
        let mut task = tasks::state(self.backend(), &session, &w).await?;
        if let TaskPayload::Completed { result } = &mut task.payload
            && let Some(text) = notices::ride_along(self.backend(), &session).await
            && let Some(Value::Array(content)) = result.get_mut("content")
        {
            content.push(json!({"type": "text", "text": text}));
        }
        Ok(GetTaskResult::new(task))
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let w = WaitTask::parse(&request.task_id)?;
        let session = self.session(&context)?;
        tasks::cancel(self.backend_for(&context, &session).as_ref(), &w).await
    }
}
