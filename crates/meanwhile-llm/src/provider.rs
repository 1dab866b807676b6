//! The provider trait: one model call, whatever the wire format behind it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::config::ProviderKind;
use crate::conversation::{Request, Response};
use crate::error::LlmError;

/// A boxed, sendable future, so that [`Provider`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An LLM behind some wire format. Hold it as `Arc<dyn Provider>`.
///
/// A call retries rate limits, server errors, connection failures and timeouts by
/// itself as configured; the error it returns at last says whether a later try
/// may still succeed ([`LlmError::is_retryable`]).
pub trait Provider: Send + Sync + fmt::Debug {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;

    /// The model used for requests that name none.
    fn model(&self) -> &str;

    /// Sends one request and returns the model's reply with its usage and cost.
    fn complete<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Response, LlmError>>;
}
