//! Output reads and input forwarded to the node of a fleet that keeps the output or
//! runs the task.
//!
//! Each node of a fleet keeps its own named API token, `node.NAME`: the secret in
//! `node.token` in its home, its hash in the shared store (added or replaced at
//! start), so that every other node accepts it. A node reads another's output with
//! `GET /v1/tasks/{id}/output` over that node's TCP listener, marked as forwarded so
//! that the node asked reads its own log and never forwards again.

use crate::error::ServerError;
use crate::keys;
use meanwhile_core::http::{ErrorBody, OutputParams};
use meanwhile_core::{InputSent, OutputChunk, OutputQuery, TaskId, TaskInput};
use meanwhile_runtime::{RemoteError, RemoteOutput, Runtime};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

/// The header marking a read one node forwarded to another.
pub const FORWARDED_HEADER: &str = "x-meanwhile-forwarded";
/// The file in the home holding this node's token for the others.
pub const NODE_TOKEN_FILE: &str = "node.token";
/// How much longer than the read's own wait the answer may take.
const SLACK: Duration = Duration::from_secs(10);
/// How long establishing the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The name of a node's token.
pub(crate) fn token_name(node: &str) -> String {
    format!("node.{node}")
}

/// Reads other nodes' output over HTTP with this node's token.
pub(crate) struct HttpRemote {
    client: reqwest::Client,
    token: String,
}

impl HttpRemote {
    /// Loads (or creates) this node's token from `home`.
    pub(crate) fn new(home: &Path) -> Result<HttpRemote, ServerError> {
        let token = keys::load_or_create(&home.join(NODE_TOKEN_FILE))?;
        // reqwest is built without a default crypto provider (see the root Cargo.toml).
        let _already_installed = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("meanwhile/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ServerError::Config {
                origin: "node client".into(),
                message: e.to_string(),
            })?;
        Ok(HttpRemote { client, token })
    }

    /// Makes the store know this node's token, replacing one of an earlier start.
    pub(crate) async fn register(&self, rt: &Runtime) -> Result<(), ServerError> {
        let name = token_name(rt.node());
        let hash = keys::token_hash(&self.token);
        let tokens = rt.tokens().await.map_err(ServerError::Runtime)?;
        match tokens.iter().find(|t| t.name == name) {
            Some(t) if t.hash == hash => return Ok(()),
            Some(_) => rt.remove_token(&name).await.map_err(ServerError::Runtime)?,
            None => {}
        }
        rt.add_token(&name, &hash)
            .await
            .map_err(ServerError::Runtime)?;
        Ok(())
    }
}

impl RemoteOutput for HttpRemote {
    fn read(
        &self,
        address: &str,
        id: TaskId,
        query: &OutputQuery,
    ) -> Pin<Box<dyn Future<Output = Result<OutputChunk, RemoteError>> + Send>> {
        let params =
            serde_urlencoded::to_string(OutputParams::from_query(query)).unwrap_or_default();
        let url = format!("http://{address}/v1/tasks/{}/output?{params}", id.0);
        let wait = query
            .wait
            .as_ref()
            .map(|_| query.timeout.unwrap_or(Duration::from_secs(30)))
            .unwrap_or_default();
        let request = self
            .client
            .get(url)
            .bearer_auth(&self.token)
            .header(FORWARDED_HEADER, "1")
            .timeout(wait + SLACK);
        Box::pin(exchange(request, "output"))
    }

    fn input(
        &self,
        address: &str,
        id: TaskId,
        input: &TaskInput,
    ) -> Pin<Box<dyn Future<Output = Result<InputSent, RemoteError>> + Send>> {
        let url = format!("http://{address}/v1/tasks/{}/input", id.0);
        let request = self
            .client
            .post(url)
            .bearer_auth(&self.token)
            .header(FORWARDED_HEADER, "1")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(input).unwrap_or_default())
            .timeout(SLACK);
        Box::pin(exchange(request, "an input receipt"))
    }
}

/// Sends a forwarded request; its answer is a `T` (`what`), or the other node's error.
async fn exchange<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &'static str,
) -> Result<T, RemoteError> {
    let unreachable = |e: reqwest::Error| RemoteError::Unreachable(e.to_string());
    let answer = request.send().await.map_err(unreachable)?;
    let status = answer.status();
    let body = answer.bytes().await.map_err(unreachable)?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| RemoteError::Unreachable(format!("its answer is not {what} ({e})")));
    }
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(b) => Err(RemoteError::Refused(b.error)),
        Err(_) => Err(RemoteError::Unreachable(format!("it answered {status}"))),
    }
}
