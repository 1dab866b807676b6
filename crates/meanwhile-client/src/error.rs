//! What can go wrong talking to the daemon.

use meanwhile_core::{ApiError, ErrorCode};

/// An error of a client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers at the address.
    #[error("no meanwhile daemon answers at {target} ({source}); start one with 'meanwhile serve'")]
    Unreachable {
        /// The socket path or TCP address.
        target: String,
        /// Why the connection failed.
        #[source]
        source: std::io::Error,
    },
    /// The daemon answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The connection broke or the answer did not make sense.
    #[error("talking to the daemon at {target}: {message}")]
    Protocol {
        /// The socket path or TCP address.
        target: String,
        /// What went wrong.
        message: String,
    },
}

impl ClientError {
    /// True when no daemon answered at all (so one may be started).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }

    /// The daemon's error, if it answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        match e {
            ClientError::Api(e) => e,
            other => ApiError::new(ErrorCode::Unavailable, other.to_string()),
        }
    }
}
