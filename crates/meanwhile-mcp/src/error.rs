//! Errors: why serving stopped, and how meanwhile's errors become MCP errors.

use meanwhile_core::{ApiError, ErrorCode};
use rmcp::ErrorData;
use rmcp::service::ServerInitializeError;

/// Why an MCP server could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpServeError {
    /// The client never completed the MCP handshake (or left during it).
    #[error("the MCP client did not complete the handshake: {0}")]
    Handshake(#[source] Box<ServerInitializeError>),
    /// The connection failed while serving.
    #[error("serving MCP over stdio failed: {0}")]
    Serve(#[source] tokio::task::JoinError),
}

/// The JSON-RPC error for a meanwhile error outside a tool call (a resource read,
/// `tasks/get`): the message is meanwhile's own, which says what to do.
pub(crate) fn to_mcp(e: &ApiError) -> ErrorData {
    let data = e
        .field
        .as_ref()
        .map(|f| serde_json::json!({ "field": f, "code": e.code }));
    match e.code {
        ErrorCode::NotFound => ErrorData::resource_not_found(e.message.clone(), data),
        ErrorCode::InvalidArgument
        | ErrorCode::Conflict
        | ErrorCode::IdempotencyConflict
        | ErrorCode::NoProvider
        | ErrorCode::PayloadTooLarge => ErrorData::invalid_params(e.message.clone(), data),
        ErrorCode::Unauthorized
        | ErrorCode::Forbidden
        | ErrorCode::Confined
        | ErrorCode::Unavailable
        | ErrorCode::DiskFull
        | ErrorCode::Internal => ErrorData::internal_error(e.message.clone(), data),
    }
}
