//! meanwhile's coding agent: an LLM loop with shell, file and background-task tools
//! whose slow commands go to the background, with the session's completion notices
//! injected before each model call; and the executor that runs `agent` tasks.
//!
//! The agent works over any [`meanwhile_core::Backend`] (the in-process runtime, or
//! the daemon's client) and any [`meanwhile_llm::Provider`]:
//!
//! - [`run_prompt`]: one prompt to a final answer (`meanwhile agent -p`).
//! - [`Session`]: a conversation, one [`Session::send`] per user message, events
//!   streamed to a callback, cancellation through [`Session::send_until`].
//! - [`AgentExecutor`]: runs tasks of kind `agent`, through the engine's
//!   [`meanwhile_core::Executor`] contract; this crate needs no engine.
//! - [`LlmExecutor`]: runs tasks of kind `llm` (one model call), the same way.
//! - [`tools`]: the tool definitions and the background tools' execution, shared
//!   with the MCP server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use meanwhile_agent::{AgentConfig, AgentExecutor, AgentOverrides, Session};
//! use meanwhile_core::TaskKind;
//! use meanwhile_runtime::Runtime;
//! use std::sync::Arc;
//!
//! let runtime = Runtime::open("/tmp/meanwhile-home").await?;
//! // Flags (here none), then the environment, then `[agent]` in config.toml.
//! let config = AgentConfig::load(&AgentOverrides::default())?;
//! // Sub-agents (`spawn_agent`, or `agent` tasks submitted by anyone) run on it.
//! let executor = AgentExecutor::new(config.clone());
//! runtime.register_executor(TaskKind::Agent, Arc::new(executor));
//! let mut session = Session::new(&config, config.build_provider()?, Arc::new(runtime))?;
//! let outcome = session
//!     .send("run the tests in the background and fix what fails", &mut |event| {
//!         eprintln!("{}", event.transcript())
//!     })
//!     .await?;
//! println!("{}\n({}; {})", outcome.answer, outcome.stop, outcome.usage);
//! # Ok(())
//! # }
//! ```
//!
//! This crate knows no HTTP serving and no LLM wire format.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod budget;
mod config;
mod error;
mod event;
mod executor;
mod llm_task;
mod notices;
pub mod permissions;
mod run;
mod session;
mod shell;
pub mod tools;
mod workspace;

pub use budget::{Budget, BudgetExceeded};
pub use config::{AgentConfig, AgentOverrides, DEFAULT_MAX_TURNS, default_model};
pub use error::AgentError;
pub use event::AgentEvent;
pub use executor::AgentExecutor;
pub use llm_task::{DEFAULT_LLM_MAX_TOKENS, LlmExecutor};
pub use notices::notices_text;
pub use permissions::{PermissionRules, Permissions, Verdict};
pub use run::run_prompt;
pub use session::{CallGate, GateFuture, RunOutcome, RunStop, Session, StepLog};
pub use tools::{
    Answer, Approver, Question, ToolError, background_tools, call_background_tool, call_spawn_agent,
};
pub use workspace::{PathError, Workspace};
