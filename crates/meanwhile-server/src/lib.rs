//! meanwhile's daemon: the runtime behind an HTTP/JSON API under `/v1`.
//!
//! It listens on `$MEANWHILE_HOME/meanwhile.sock` (mode 0600, in a 0700 home) and,
//! only when asked, on a TCP address where every request needs the bearer token kept
//! in `$MEANWHILE_HOME/token`. One route table (`routes`) builds both the router and
//! the OpenAPI document at `/v1/openapi.json`, so the two cannot drift apart.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod browser;
mod config;
mod conn;
mod daemon;
mod dashboard;
mod error;
mod extract;
pub mod forward;
mod handlers;
mod keys;
mod metrics;
mod metrics_runtime;
mod openapi;
mod origin;
mod retention;
mod route;
mod routes;
mod state;
pub mod webhook;

pub use config::{QueueSettings, Retention, Settings};
pub use daemon::{serve, socket_path};
pub use error::ServerError;
pub use keys::token_path;
pub use routes::openapi;
pub use routes::{RouteInfo, route_infos};
