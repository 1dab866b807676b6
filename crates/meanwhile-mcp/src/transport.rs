//! The transports: stdio for an agent's config file, streamable HTTP for the daemon.

use crate::config::McpConfig;
use crate::error::McpServeError;
use crate::server::McpServer;
use meanwhile_core::Backend;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::future::Future;
use std::sync::Arc;

/// The streamable HTTP endpoint: a tower service that axum can nest (at `/mcp`).
pub type HttpService = StreamableHttpService<McpServer, LocalSessionManager>;

/// Serves MCP on this process's stdin and stdout until the client leaves or
/// `shutdown` completes.
pub async fn serve_stdio(
    backend: Arc<dyn Backend>,
    config: McpConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), McpServeError> {
    let server = McpServer::new(backend, config);
    tokio::pin!(shutdown);
    // A stop before the handshake ends leaves at once: there is nothing to finish.
    let running = tokio::select! {
        r = server.serve(rmcp::transport::io::stdio_pipes()) => {
            r.map_err(|e| McpServeError::Handshake(Box::new(e)))?
        }
        () = &mut shutdown => return Ok(()),
    };
    let stop = running.cancellation_token();
    tokio::select! {
        r = running.waiting() => {
            r.map_err(McpServeError::Serve)?;
        }
        () = shutdown => stop.cancel(),
    }
    Ok(())
}

/// The streamable HTTP service over `backend`, its open streams closed when
/// `shutdown` completes. Call it inside a Tokio runtime.
///
/// It checks no `Host` header itself: the daemon serves it on its Unix socket, which
/// no web page can reach, and on TCP behind its own `Host` and `Origin` check (and
/// the bearer token), which covers `/mcp` like every other path.
pub fn http_service(
    backend: Arc<dyn Backend>,
    config: McpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> HttpService {
    let http = StreamableHttpServerConfig::default().disable_allowed_hosts();
    let token = http.cancellation_token.clone();
    tokio::spawn(async move {
        shutdown.await;
        token.cancel();
    });
    let factory = McpServer::factory(backend, config);
    StreamableHttpService::new(
        move || Ok(factory()),
        Arc::new(LocalSessionManager::default()),
        http,
    )
}
