//! The daemon's own errors, and how an [`ApiError`] becomes an HTTP answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use meanwhile_core::http::ErrorBody;
use meanwhile_core::{ApiError, ErrorCode};

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The runtime refused to start (another daemon holds the home, a broken database).
    #[error(transparent)]
    Runtime(#[from] meanwhile_runtime::Error),
    /// Reading or writing a file of the home failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The store can no longer write (its writer thread died): the daemon ends so
    /// that a new one takes over.
    #[error("the store can no longer write: {0}; a new daemon adopts the running tasks")]
    StoreBroken(String),
    /// A setting is wrong.
    #[error("{origin}: {message}")]
    Config {
        /// Where the setting came from (`config.toml`, `MEANWHILE_GRACE`).
        origin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl ServerError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
        let what = what.into();
        move |source| ServerError::Io { what, source }
    }
}

/// The HTTP status of an error code.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict | ErrorCode::IdempotencyConflict | ErrorCode::NoProvider => {
            StatusCode::CONFLICT
        }
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::Confined => StatusCode::FORBIDDEN,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answer: `{"error": {"code", "message", "field"}}` with its status.
#[derive(Debug)]
pub(crate) struct Fail(pub ApiError);

impl Fail {
    pub(crate) fn unavailable_shutting_down() -> Fail {
        Fail(ApiError::new(
            ErrorCode::Unavailable,
            "the daemon is shutting down; ask again once it is back",
        ))
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Fail {
        Fail(e)
    }
}

impl From<meanwhile_runtime::Error> for Fail {
    fn from(e: meanwhile_runtime::Error) -> Fail {
        if !e.is_caller_error() {
            tracing::error!("request failed: {e}");
        }
        Fail(e.into())
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

pub(crate) fn error_response(error: ApiError) -> Response {
    let status = status_of(error.code);
    let body = serde_json::to_vec(&ErrorBody { error }).unwrap_or_default();
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The result of a handler.
pub(crate) type Answer<T> = Result<T, Fail>;
