//! A typed client of the meanwhile daemon's HTTP API, over the daemon's Unix socket
//! or over TCP with its bearer token.
//!
//! [`Client`] offers every endpoint as an async method and implements
//! [`meanwhile_core::Backend`], so the agent and the MCP server work the same against
//! the daemon as against an in-process runtime.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod conn;
mod error;
mod events;
mod home;

pub use client::{Client, RawResponse};
pub use error::ClientError;
pub use events::EventStream;
pub use home::default_home;
pub use hyper::Method;
pub use meanwhile_core as core;
