//! The errors of a run: configuration, the model provider, and meanwhile itself.

use meanwhile_core::ApiError;
use meanwhile_llm::LlmError;
use std::path::PathBuf;

/// What can stop an agent run or keep it from starting.
///
/// Errors of a single tool are not here: they go back to the model as a failed tool
/// result ([`crate::tools::ToolError`]) so that it can correct itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A setting is missing or wrong; the message names it and what to do.
    #[error("{message}")]
    Config {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The configuration file could not be read.
    #[error("could not read {}: {source}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The configuration file is not valid TOML, or its `[agent]` section has a
    /// field of the wrong type or an unknown one.
    #[error("{}: {source}", path.display())]
    ConfigSyntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line to fix.
        #[source]
        source: toml::de::Error,
    },

    /// The provider could not be set up (no API key, bad base URL, ...). The text is
    /// the provider's own message, plus where the setting can be given.
    #[error("{error}{hint}")]
    ProviderSetup {
        /// The provider's error.
        error: LlmError,
        /// Where else the missing value can be set, or empty.
        hint: String,
    },

    /// A model call failed after the provider's own retries. `message` holds the
    /// whole chain of causes, so a task's failure reason says everything.
    #[error("the model call failed: {message}")]
    Model {
        /// The error and its causes, joined.
        message: String,
        /// Whether a later try may succeed (rate limit, server error, timeout).
        retryable: bool,
    },

    /// meanwhile itself refused or failed (draining notices, submitting a task).
    #[error("meanwhile: {0}")]
    Backend(#[from] ApiError),

    /// The workspace directory cannot be used.
    #[error("workspace {}: {source}", path.display())]
    Workspace {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl AgentError {
    pub(crate) fn config(message: impl Into<String>) -> AgentError {
        AgentError::Config {
            message: message.into(),
        }
    }

    pub(crate) fn model(err: &LlmError) -> AgentError {
        AgentError::Model {
            message: chain(err),
            retryable: err.is_retryable(),
        }
    }
}

/// An error and all its causes, as one line: `a: b: c`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let s = cause.to_string();
        // Some errors repeat their cause in their own message; say it once.
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}
