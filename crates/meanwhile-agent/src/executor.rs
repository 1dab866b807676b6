//! The executor of `agent` tasks: a sub-agent run as a background task, its
//! transcript written to the task's log as it happens, its progress the turns used,
//! its result the final answer. Dropping its future (stop, timeout) abandons the model
//! call in flight and stops the tasks it started.

use crate::budget::Budget;
use crate::config::{AgentConfig, enabled_tools};
use crate::event::AgentEvent;
use crate::session::{CallGate, GateFuture, RunStop, Session, StepLog};
use crate::tools::{StopGuard, defs};
use meanwhile_core::{Backend, Executor, TaskContext, TaskFuture, TaskRecord};
use meanwhile_llm::Provider;
use std::sync::Arc;
use tokio::sync::watch;

/// Runs tasks of kind `agent`: register it with the engine for
/// [`meanwhile_core::TaskKind::Agent`].
///
/// Each task's [`meanwhile_core::AgentSpec`] picks the prompt, model, tools, limits
/// and workspace; what it leaves out comes from the executor's [`AgentConfig`]. A
/// sub-agent notifies its own session (`agent-task-<id>`), so it hears of the tasks it
/// starts, and by default it may not spawn sub-agents itself. When its task ends, by
/// any way, the tasks it started and left running are stopped: no process outlives
/// the task that started it.
#[derive(Clone)]
pub struct AgentExecutor {
    config: AgentConfig,
    provider: Option<Arc<dyn Provider>>,
}

impl AgentExecutor {
    /// An executor that builds each task's provider from `config` (keys from the
    /// environment when the configuration has none).
    pub fn new(config: AgentConfig) -> AgentExecutor {
        AgentExecutor {
            config,
            provider: None,
        }
    }

    /// An executor that calls `provider` for every task that does not name another
    /// provider kind.
    pub fn with_provider(config: AgentConfig, provider: Arc<dyn Provider>) -> AgentExecutor {
        AgentExecutor {
            config,
            provider: Some(provider),
        }
    }
}

impl Executor for AgentExecutor {
    fn run(&self, task: TaskRecord, ctx: TaskContext) -> TaskFuture {
        let this = self.clone();
        Box::pin(async move { this.run_task(task, ctx).await })
    }

    /// Each step is recorded in the task's step record as it completes, so an
    /// attempt whose daemon died goes on from its last step: no recorded model call
    /// is made again, and no tool call that ended runs again.
    fn resumable(&self) -> bool {
        true
    }
}

impl AgentExecutor {
    async fn run_task(self, task: TaskRecord, ctx: TaskContext) -> Result<Option<String>, String> {
        let spec = task
            .spec
            .agent
            .clone()
            .ok_or_else(|| format!("task {} has no agent spec (prompt)", task.id))?;
        let backend: Arc<dyn Backend> = ctx
            .backend()
            .ok_or_else(|| "the runtime is shutting down".to_string())?;

        let mut config = self.config.clone();
        let provider = crate::llm_task::provider_for(
            &mut config,
            self.provider.as_ref(),
            spec.provider.as_deref(),
            spec.model.as_deref(),
            "agent",
        )?;
        if let Some(w) = spec.workspace.clone().or_else(|| task.spec.cwd.clone()) {
            config.workspace = w;
        }
        config.session = format!("agent-task-{}", task.id);
        // A sandboxed agent task runs every command sandboxed.
        config.sandbox |= task.spec.sandbox == Some(true);
        let sub_agent_default: Vec<&'static str> = match &config.tools {
            Some(t) => enabled_tools(Some(t), &defs::ALL_TOOLS).map_err(|e| e.to_string())?,
            None => defs::ALL_TOOLS.to_vec(),
        }
        .into_iter()
        .filter(|t| *t != defs::SPAWN_AGENT)
        .collect();
        config.tools = Some(match &spec.tools {
            Some(t) => t.clone(),
            None => sub_agent_default.iter().map(|s| s.to_string()).collect(),
        });
        config.budget = Budget {
            max_turns: spec.max_turns.or(config.budget.max_turns),
            max_tokens: spec.max_tokens.or(config.budget.max_tokens),
            max_cost_usd: spec.max_cost_usd.or(config.budget.max_cost_usd),
        };
        let model = spec
            .model
            .clone()
            .filter(|m| m.as_str() != provider.model());
        let mut session =
            Session::new(&config, provider, backend.clone()).map_err(|e| e.to_string())?;
        session.set_model(model);
        // A model call starts only after the queue's budget allows it, and its usage
        // is charged to the task and the budget.
        session.set_gate(Some(Arc::new(QueueBudget(ctx.clone()))));
        session.set_step_log(Some(Arc::new(TaskSteps(ctx.clone()))));
        session.set_attempt(ctx.clone());
        let recorded = ctx.steps().await.map_err(|e| {
            let e = format!("reading the task's recorded steps: {e}");
            ctx.println(format!("error: {e}"));
            e
        })?;
        let restored = session.restore(&recorded).map_err(|e| {
            ctx.println(format!("error: {e}"));
            e.to_string()
        })?;
        let _stop_started =
            StopGuard::new(backend, session.started_handle()).of_attempt(Some(ctx.clone()));

        let max_turns = config.budget.max_turns;
        let (turns_tx, turns_rx) = watch::channel(0u32);
        if restored > 0 {
            turns_tx.send_replace(session.turns());
        }
        let progress = tokio::spawn(report_progress(ctx.clone(), turns_rx, max_turns));
        let _progress = AbortOnDrop(progress);

        if restored == 0 {
            ctx.println(format!(
                "agent task {} in {} (session {})\nprompt:\n{}",
                task.id,
                session.workspace().display(),
                session.session_name(),
                spec.prompt
            ));
        } else {
            // The same words whether this node's daemon came back or another node
            // took the attempt over; the node says which it runs on now.
            let node = task.node.as_deref().unwrap_or("?");
            ctx.println(format!(
                "resumed attempt {} on node {node:?} from its recorded steps ({restored} steps, {} model calls made): the daemon that ran it stopped or lost its lease",
                ctx.attempt(),
                session.turns()
            ));
        }
        let log = ctx.clone();
        let mut on_event = move |ev: &AgentEvent| {
            log.println(ev.transcript());
            if let AgentEvent::ModelCall { turn, .. } = ev {
                turns_tx.send_replace(*turn);
            }
        };
        let run = if restored == 0 {
            session.send(&spec.prompt, &mut on_event).await
        } else {
            session.resume(&mut on_event).await
        };
        let outcome = run.map_err(|e| {
            ctx.println(format!("error: {e}"));
            e.to_string()
        })?;
        ctx.println(format!("usage: {}", outcome.usage));
        match outcome.stop {
            RunStop::Answered | RunStop::Truncated => {
                ctx.println(format!("final answer:\n{}", outcome.answer));
                Ok(Some(outcome.answer))
            }
            RunStop::Budget { exceeded } => Err(format!("stopped before finishing: {exceeded}")),
            RunStop::Cancelled => Err("cancelled".to_string()),
            RunStop::Gated { reason } => Err(reason),
        }
    }
}

/// An agent task's steps, recorded in its step record in the store; a model call's
/// usage is charged with its step.
struct TaskSteps(TaskContext);

impl StepLog for TaskSteps {
    fn record(
        &self,
        kind: &'static str,
        data: serde_json::Value,
        usage: Option<(u64, f64)>,
    ) -> GateFuture<'_, Result<(), meanwhile_core::ApiError>> {
        Box::pin(async move {
            match usage {
                Some((tokens, cost)) => {
                    self.0
                        .record_step_with_usage(kind, data, tokens, cost)
                        .await
                }
                None => self.0.record_step(kind, data).await,
            }
            .map(|_| ())
        })
    }
}

/// The gate of an agent task's model calls: its queue's budget.
struct QueueBudget(TaskContext);

impl CallGate for QueueBudget {
    fn before_call(&self) -> GateFuture<'_, Result<(), String>> {
        Box::pin(self.0.budget_gate())
    }

    fn after_call(&self, tokens: u64, cost_usd: f64) -> GateFuture<'_, ()> {
        Box::pin(self.0.record_usage(tokens, cost_usd))
    }
}

async fn report_progress(ctx: TaskContext, mut turns: watch::Receiver<u32>, max: Option<u32>) {
    while turns.changed().await.is_ok() {
        let turn = *turns.borrow_and_update();
        let (percent, message) = match max {
            Some(m) if m > 0 => (
                Some((turn as f32 / m as f32 * 100.0).min(100.0)),
                format!("turn {turn} of {m}"),
            ),
            _ => (None, format!("turn {turn}")),
        };
        // The percentage is within 0 to 100 by construction; a failed write is the
        // store's to report, and progress is only a hint.
        if let Err(e) = ctx.progress(percent, message).await {
            tracing::debug!(task = %ctx.id(), "progress not recorded: {e}");
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
