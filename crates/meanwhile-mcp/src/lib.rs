//! meanwhile's MCP server: background tasks for any coding agent, over any
//! [`meanwhile_core::Backend`].
//!
//! - Tools: the agent's own background tools (`background_run`, `background_output`,
//!   `background_stop`, `background_list`, `background_wait`, and `spawn_agent` when a
//!   provider is configured), with the same names, schemas and answers, plus
//!   `background_notifications`. Completion notices this session has not seen yet
//!   ride along on the next tool result, each exactly once, because most MCP clients
//!   show the model nothing but tool results.
//! - Resources: each task's output at `meanwhile://tasks/{id}/output`, readable and
//!   subscribable (an update when the output grows or the task ends).
//! - MCP tasks (`io.modelcontextprotocol/tasks`): a client that declares the extension
//!   gets a task handle from `background_wait`, backed by the meanwhile tasks it
//!   waits on, so `tasks/get` and `tasks/cancel` need no state in this server.
//!
//! Transports: [`serve_stdio`] (for `meanwhile mcp`) and [`http_service`] (the
//! streamable HTTP endpoint the daemon nests at `/mcp`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
pub mod jsonrpc;
mod notices;
mod resources;
mod server;
mod tasks;
mod tools;
mod transport;

pub use config::{McpConfig, SESSION_HEADER, SpawnAgent, default_session, valid_session};
pub use error::McpServeError;
pub use server::McpServer;
pub use tools::BACKGROUND_NOTIFICATIONS;
pub use transport::{HttpService, http_service, serve_stdio};
