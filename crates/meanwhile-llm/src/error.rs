//! The one error type of this crate, and what each kind means for a retry.

use std::time::Duration;

/// Everything that can go wrong configuring a provider or calling a model.
///
/// [`LlmError::is_retryable`] says whether the same request may succeed later;
/// [`LlmError::retry_after`] says when the provider asked to be called again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// No API key was given and the environment variable that would hold it is unset.
    #[error("no API key for {provider}: set {env_var}")]
    MissingApiKey {
        /// Provider name as configured (`anthropic`, `openai`, ...).
        provider: &'static str,
        /// The variable to set.
        env_var: &'static str,
    },

    /// The provider name is not one this crate knows.
    #[error(
        "unknown LLM provider {0:?} (expected anthropic, openai, openrouter or openai-compatible)"
    )]
    UnknownProvider(String),

    /// The configuration is incomplete or contradictory; the text says what to fix.
    #[error("invalid LLM configuration: {0}")]
    InvalidConfig(String),

    /// The HTTP client could not be built (for example, no usable TLS roots).
    #[error("could not build the HTTP client")]
    Client(#[source] reqwest::Error),

    /// The provider answered with an HTTP error status.
    #[error("{provider} answered HTTP {status}: {message}")]
    Api {
        /// Provider name.
        provider: &'static str,
        /// HTTP status code.
        status: u16,
        /// The provider's own error message (from `{"error":{"message":...}}`), or
        /// the start of the body when it had none.
        message: String,
        /// How long the provider asked us to wait, from `Retry-After`.
        retry_after: Option<Duration>,
    },

    /// The provider could not be reached (refused, reset, DNS, TLS).
    #[error("could not reach {provider} at {url}")]
    Connect {
        /// Provider name.
        provider: &'static str,
        /// The URL that was called.
        url: String,
        /// What the HTTP client saw.
        #[source]
        source: reqwest::Error,
    },

    /// The provider did not answer within the configured request timeout.
    #[error("{provider} did not answer within {timeout:?}")]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// The per-request timeout in force.
        timeout: Duration,
        /// What the HTTP client saw.
        #[source]
        source: reqwest::Error,
    },

    /// The connection broke while sending the request or reading the reply.
    #[error("lost the connection to {provider} at {url}")]
    Transport {
        /// Provider name.
        provider: &'static str,
        /// The URL that was called.
        url: String,
        /// What the HTTP client saw.
        #[source]
        source: reqwest::Error,
    },

    /// A successful HTTP answer whose body is not what the wire format promises.
    ///
    /// `what` already holds the parser's message (for example ``missing field
    /// `content` at line 1 column 9``): it is the whole explanation, so there is
    /// no separate source.
    #[error("malformed reply from {provider}: {what}")]
    MalformedResponse {
        /// Provider name.
        provider: &'static str,
        /// What was wrong with it.
        what: String,
    },

    /// A retryable failure persisted through every allowed attempt.
    #[error("{provider} still failing after {attempts} attempts")]
    RetriesExhausted {
        /// Provider name.
        provider: &'static str,
        /// How many attempts were made.
        attempts: u32,
        /// The error of the last attempt.
        #[source]
        last: Box<LlmError>,
    },

    /// A price table given as TOML could not be read.
    #[error("invalid price table")]
    PriceTable(#[source] toml::de::Error),

    /// A price table entry holds a value that cannot be a price.
    #[error("invalid price for model {model:?}: {what}")]
    InvalidPrice {
        /// The model key of the entry.
        model: String,
        /// What is wrong with it.
        what: String,
    },
}

impl LlmError {
    /// Whether sending the same request again later may succeed.
    ///
    /// True for rate limits (429), server errors (5xx), connection failures and
    /// timeouts. [`LlmError::RetriesExhausted`] answers for its last error: the
    /// provider has already retried, so a caller that retries again should do so on
    /// a longer time scale (a task retry), not in a tight loop.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Api { status, .. } => is_retryable_status(*status),
            LlmError::Connect { .. } | LlmError::Timeout { .. } | LlmError::Transport { .. } => {
                true
            }
            LlmError::RetriesExhausted { last, .. } => last.is_retryable(),
            LlmError::MissingApiKey { .. }
            | LlmError::UnknownProvider(_)
            | LlmError::InvalidConfig(_)
            | LlmError::Client(_)
            | LlmError::MalformedResponse { .. }
            | LlmError::PriceTable(_)
            | LlmError::InvalidPrice { .. } => false,
        }
    }

    /// How long the provider asked to wait before the next call, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Api { retry_after, .. } => *retry_after,
            LlmError::RetriesExhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status the provider answered with, if the error came from one.
    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Api { status, .. } => Some(*status),
            LlmError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

/// Rate limits and server errors are worth another try; any other 4xx means the
/// request itself is wrong and would fail the same way again.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> LlmError {
        LlmError::Api {
            provider: "anthropic",
            status,
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn only_rate_limits_and_server_errors_are_retryable() {
        for (status, retryable) in [
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (408, false),
            (429, true),
            (500, true),
            (529, true),
        ] {
            assert_eq!(api(status).is_retryable(), retryable, "status {status}");
        }
    }

    #[test]
    fn exhausted_retries_answer_for_their_last_error() {
        let err = LlmError::RetriesExhausted {
            provider: "openai",
            attempts: 4,
            last: Box::new(LlmError::Api {
                provider: "openai",
                status: 429,
                message: "slow down".into(),
                retry_after: Some(Duration::from_secs(3)),
            }),
        };
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.to_string(), "openai still failing after 4 attempts");
    }

    #[test]
    fn missing_key_names_the_variable() {
        let err = LlmError::MissingApiKey {
            provider: "anthropic",
            env_var: "ANTHROPIC_API_KEY",
        };
        assert_eq!(
            err.to_string(),
            "no API key for anthropic: set ANTHROPIC_API_KEY"
        );
    }
}
