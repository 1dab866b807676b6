//! LLM providers behind one trait: Anthropic Messages and OpenAI-compatible chat
//! completions (OpenAI, OpenRouter, vLLM, Ollama, llama.cpp's server), with token
//! usage and cost.
//!
//! Build a provider from a [`ProviderConfig`] with [`from_config`], then call
//! [`Provider::complete`] with a provider-neutral [`Request`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), meanwhile_llm::LlmError> {
//! use meanwhile_llm::{Message, ProviderConfig, ProviderKind, Request, RunUsage};
//!
//! let config = ProviderConfig::new(ProviderKind::Anthropic, "claude-sonnet-4-5");
//! let provider = meanwhile_llm::from_config(&config)?; // reads ANTHROPIC_API_KEY
//! let mut run = RunUsage::new();
//! let reply = provider
//!     .complete(&Request::new(vec![Message::user("Say hi")], 1024))
//!     .await?;
//! run.record(&reply);
//! println!("{} ({}; run so far: {run})", reply.text(), reply.cost);
//! # Ok(())
//! # }
//! ```
//!
//! This crate knows nothing of tasks; it is the only one that knows LLM wire formats.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod anthropic;
mod config;
mod conversation;
mod error;
mod http;
mod openai;
mod price;
mod provider;
mod structured;
mod usage;

use std::sync::Arc;

pub use config::{ProviderConfig, ProviderKind, RetryConfig};
pub use conversation::{
    ContentBlock, Message, Request, Response, Role, StopReason, ToolDefinition,
};
pub use error::LlmError;
pub use price::{ModelPrice, PriceTable};
pub use provider::{BoxFuture, Provider};
pub use usage::{Cost, RunUsage, Usage};

/// Builds the provider `config` describes, reading unset values from the process
/// environment (`ANTHROPIC_API_KEY`, `OPENAI_BASE_URL`, ...).
pub fn from_config(config: &ProviderConfig) -> Result<Arc<dyn Provider>, LlmError> {
    from_config_with_env(config, |name| std::env::var(name).ok())
}

/// Like [`from_config`], with environment variables read through `env`, so that
/// callers and tests can supply their own environment.
pub fn from_config_with_env(
    config: &ProviderConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Provider>, LlmError> {
    let resolved = config::Resolved::new(config, &env)?;
    Ok(match resolved.kind {
        ProviderKind::Anthropic => Arc::new(anthropic::AnthropicProvider::new(resolved)?),
        ProviderKind::OpenAi | ProviderKind::OpenRouter | ProviderKind::OpenAiCompatible => {
            Arc::new(openai::OpenAiProvider::new(resolved)?)
        }
    })
}
