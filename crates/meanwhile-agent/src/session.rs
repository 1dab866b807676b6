//! The agent loop: a conversation with a model that calls tools, with the session's
//! completion notices injected before every model call and a budget checked before
//! every model call (the run's own, and an optional [`CallGate`], through which the
//! executor of agent tasks asks its queue's budget). [`Session`] keeps the
//! conversation between user messages.

use crate::budget::{Budget, BudgetExceeded};
use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::event::AgentEvent;
use crate::notices;
use crate::tools::{SpawnDefaults, ToolBox};
use crate::workspace::Workspace;
use meanwhile_core::{Backend, Notification};
use meanwhile_llm::{
    ContentBlock, Message, Provider, Request, Role, RunUsage, StopReason, ToolDefinition,
};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Notices drained per request to the backend; more are drained in further requests.
const NOTICE_BATCH: u32 = 100;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "stop", rename_all = "snake_case")]
pub enum RunStop {
    /// The model ended its turn with an answer.
    Answered,
    /// The model's reply hit the output token limit; the answer is cut short.
    Truncated,
    /// A budget was spent before the next model call.
    Budget {
        /// Which one.
        exceeded: BudgetExceeded,
    },
    /// The caller cancelled the run.
    Cancelled,
    /// The [`CallGate`] refused the next model call.
    Gated {
        /// Why, as the gate said it.
        reason: String,
    },
}

/// The future of a [`CallGate`] method.
pub type GateFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Asked before each model call of a [`Session`] and told of each call's usage
/// after it, so that something outside the session can hold its calls to a limit
/// of its own (the executor of agent tasks: its queue's budget). The session knows
/// nothing of what the limit is.
pub trait CallGate: Send + Sync {
    /// `Ok` when a model call may start now; `Err(reason)` stops the run before the
    /// call, with [`RunStop::Gated`].
    fn before_call(&self) -> GateFuture<'_, Result<(), String>>;
    /// One model call's usage: its tokens (input, cached or not, plus output) and
    /// its cost in US dollars.
    fn after_call(&self, tokens: u64, cost_usd: f64) -> GateFuture<'_, ()>;
}

/// Where a [`Session`] records each step as it completes (the executor of agent
/// tasks: the task's step record in the store), so that a session whose process died
/// goes on from its last step ([`Session::restore`], [`Session::resume`]) instead of
/// starting over. The steps, by kind:
///
/// - `user`: `{"text"}`, a user message;
/// - `notices`: `{"text"}`, the notices put before a model call;
/// - `model`: the model's response (`meanwhile_llm::Response`), its usage charged
///   with it: a session with a step log charges usage only there, never through its
///   [`CallGate`];
/// - `tool_start`: `{"id", "name", "key"}`, a tool call about to run, with the
///   idempotency key of the task it may start;
/// - `tool_result`: `{"id", "name", "output", "is_error", "started", "reported"}`, its
///   result, with the tasks the call started and the ends reported but not yet
///   heard as notices.
pub trait StepLog: Send + Sync {
    /// Records one step durably; `usage` (tokens, cost in US dollars) with a model
    /// response. An error stops the run: a step that cannot be recorded must not be
    /// acted on.
    fn record(
        &self,
        kind: &'static str,
        data: serde_json::Value,
        usage: Option<(u64, f64)>,
    ) -> GateFuture<'_, Result<(), meanwhile_core::ApiError>>;
}

impl std::fmt::Display for RunStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunStop::Answered => f.write_str("answered"),
            RunStop::Truncated => {
                f.write_str("the reply hit the output token limit and is cut short")
            }
            RunStop::Budget { exceeded } => write!(f, "{exceeded}"),
            RunStop::Cancelled => f.write_str("cancelled"),
            RunStop::Gated { reason } => f.write_str(reason),
        }
    }
}

/// What one run (one user message and everything the model did about it) came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunOutcome {
    /// The model's final answer (its last text, when the run stopped early).
    pub answer: String,
    /// Why the run ended.
    pub stop: RunStop,
    /// Tokens and cost of this run.
    pub usage: RunUsage,
    /// Model calls made.
    pub turns: u32,
}

impl RunOutcome {
    /// True when the model finished its answer.
    pub fn is_answered(&self) -> bool {
        self.stop == RunStop::Answered
    }
}

/// A conversation with the agent: send it user messages, get runs back.
///
/// Tasks the agent starts notify [`AgentConfig::session`] and keep running between
/// messages (and after the session is dropped); their notices reach the model before
/// its next call in this or any later session of the same name.
pub struct Session {
    provider: Arc<dyn Provider>,
    tools: ToolBox,
    definitions: Vec<ToolDefinition>,
    system: String,
    model: Option<String>,
    max_output_tokens: u32,
    budget: Budget,
    messages: Vec<Message>,
    total: RunUsage,
    run: RunUsage,
    turns: u32,
    /// The sequence number of the last notice put into the conversation (or passed
    /// over as already reported); later ones are new.
    heard: i64,
    /// Asked before each model call, told of each call's usage; none by default.
    gate: Option<Arc<dyn CallGate>>,
    /// Where each step is recorded; none by default.
    steps: Option<Arc<dyn StepLog>>,
    /// How the last recorded response ended its run, when it was an answer (for
    /// [`Session::resume`]).
    answered_stop: Option<RunStop>,
}

impl Session {
    /// A new conversation with `config`'s settings, calling `provider` and running
    /// tasks on `backend`.
    pub fn new(
        config: &AgentConfig,
        provider: Arc<dyn Provider>,
        backend: Arc<dyn Backend>,
    ) -> Result<Session, AgentError> {
        config.validate()?;
        let workspace =
            Workspace::new(&config.workspace).map_err(|source| AgentError::Workspace {
                path: config.workspace.clone(),
                source,
            })?;
        let mut tools = ToolBox::new(
            backend,
            config.session.clone(),
            workspace,
            config.enabled_tools()?,
        );
        tools.bash_background_after = config.bash_background_after;
        tools.output_limit = config.output_limit.max(1000);
        tools.spawn = SpawnDefaults {
            provider: Some(config.provider.name().to_string()),
            model: Some(config.model.clone()),
            queue: config.subagent_queue.clone(),
            budget: Budget {
                max_turns: config.budget.max_turns,
                ..Budget::default()
            },
            sandbox: config.sandbox,
        };
        tools.permissions = std::sync::Mutex::new(config.permissions.clone());
        tools.yes = config.yes;
        tools.sandbox = config.sandbox;
        let system = system_prompt(&tools, config.instructions.as_deref());
        Ok(Session {
            provider,
            definitions: tools.definitions(),
            tools,
            system,
            model: None,
            max_output_tokens: config.max_output_tokens,
            budget: config.budget,
            messages: Vec::new(),
            total: RunUsage::new(),
            run: RunUsage::new(),
            turns: 0,
            heard: 0,
            gate: None,
            steps: None,
            answered_stop: None,
        })
    }

    /// Uses `model` instead of the provider's own in every request.
    pub fn set_model(&mut self, model: Option<String>) {
        self.model = model;
    }

    /// Asks `gate` before every model call from now on, and tells it each call's
    /// usage; `None` removes it.
    pub fn set_gate(&mut self, gate: Option<Arc<dyn CallGate>>) {
        self.gate = gate;
    }

    /// Runs as attempt `ctx` of an agent task: when another node takes the attempt
    /// over, what this session started is left running for it.
    pub fn set_attempt(&mut self, ctx: meanwhile_core::TaskContext) {
        self.tools.attempt = Some(ctx);
    }

    /// Records each step in `log` from now on (see [`StepLog`]).
    pub fn set_step_log(&mut self, log: Option<Arc<dyn StepLog>>) {
        self.steps = log;
    }

    /// Asks `approver` before each call the permission rules leave to asking; without
    /// one (the default), asking is refusing, unless the configuration says `yes`.
    pub fn set_approver(&mut self, approver: Option<Arc<dyn crate::tools::Approver>>) {
        self.tools.approver = approver;
    }

    /// Replaces the limits of the following runs.
    pub fn set_budget(&mut self, budget: Budget) {
        self.budget = budget;
    }

    /// The session name the agent's tasks notify.
    pub fn session_name(&self) -> &str {
        &self.tools.session
    }

    /// The workspace, canonical.
    pub fn workspace(&self) -> &std::path::Path {
        self.tools.workspace.root()
    }

    /// Model calls made in the run in progress (or the last one).
    pub fn turns(&self) -> u32 {
        self.turns
    }

    /// The conversation so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Tokens and cost of every run of this session.
    pub fn usage(&self) -> &RunUsage {
        &self.total
    }

    /// The system prompt sent with every call.
    pub fn system_prompt(&self) -> &str {
        &self.system
    }

    /// True when a conversation rebuilt by [`Session::restore`] stopped in the middle
    /// of a run (a tool call or model call was under way, or its result not yet
    /// answered): [`Session::resume`] goes on with it.
    pub fn unfinished(&self) -> bool {
        !self.messages.is_empty() && self.answered_stop.is_none()
    }

    /// The last thing the person said in the conversation.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages.iter().rev().find_map(|m| {
            (m.role == Role::User)
                .then(|| {
                    m.content.iter().find_map(|b| match b {
                        ContentBlock::Text { text } if !text.starts_with("[meanwhile]") => {
                            Some(text.clone())
                        }
                        _ => None,
                    })
                })
                .flatten()
        })
    }

    /// Ids of every task the agent started in this session.
    pub fn started_tasks(&self) -> Vec<meanwhile_core::TaskId> {
        self.tools
            .started
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The tasks the agent started in this session that have not ended yet.
    pub async fn running_tasks(&self) -> Result<Vec<meanwhile_core::TaskId>, AgentError> {
        let mut running = Vec::new();
        for id in self.started_tasks() {
            let t = self.tools.backend.get(id).await?;
            if !t.state.is_terminal() {
                running.push(id);
            }
        }
        Ok(running)
    }

    /// Gives the model a turn for the notices that arrived since its last answer
    /// (tasks that ended meanwhile), as another coding agent wakes when a background
    /// task ends; `None`, with no model call, when there is none it has not seen.
    pub async fn wake(
        &mut self,
        on_event: &mut (dyn FnMut(&AgentEvent) + Send),
    ) -> Result<Option<RunOutcome>, AgentError> {
        self.repair();
        let before = self.messages.last().map(|m| m.content.len());
        let count = self.messages.len();
        self.inject_notices(on_event).await?;
        let added =
            self.messages.len() != count || self.messages.last().map(|m| m.content.len()) != before;
        if !added {
            return Ok(None);
        }
        self.run = RunUsage::new();
        self.turns = 0;
        self.run_loop(on_event).await.map(Some)
    }

    pub(crate) fn started_handle(&self) -> Arc<std::sync::Mutex<Vec<meanwhile_core::TaskId>>> {
        self.tools.started.clone()
    }

    /// Sends `text` and runs the agent until it answers, a budget is spent or an
    /// error stops it. `on_event` sees everything as it happens.
    pub async fn send(
        &mut self,
        text: &str,
        on_event: &mut (dyn FnMut(&AgentEvent) + Send),
    ) -> Result<RunOutcome, AgentError> {
        self.send_until(text, on_event, std::future::pending())
            .await
    }

    /// Like [`Session::send`], but the run is cancelled when `cancel` completes (a
    /// Ctrl-C, a timeout): the model call in flight is abandoned and a command that
    /// `bash` is waiting for is stopped; tasks already in the background keep going.
    /// The conversation stays valid for the next message.
    pub async fn send_until(
        &mut self,
        text: &str,
        on_event: &mut (dyn FnMut(&AgentEvent) + Send),
        cancel: impl Future<Output = ()>,
    ) -> Result<RunOutcome, AgentError> {
        self.repair();
        self.record("user", serde_json::json!({ "text": text }), None)
            .await?;
        self.run = RunUsage::new();
        self.turns = 0;
        self.messages.push(Message::user(text));
        let result = {
            let run = self.run_loop(on_event);
            tokio::select! {
                r = run => Some(r),
                () = cancel => None,
            }
        };
        match result {
            Some(r) => r,
            None => {
                self.repair();
                // A session resumed later takes the run as ended here, and does not
                // run the calls the person cancelled.
                self.record("cancelled", serde_json::json!({}), None)
                    .await?;
                Ok(RunOutcome {
                    answer: self.last_answer(),
                    stop: RunStop::Cancelled,
                    usage: self.run.clone(),
                    turns: self.turns,
                })
            }
        }
    }

    /// The text of the model's last message, if it has said anything.
    pub fn last_answer(&self) -> String {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
            .map(|m| {
                m.content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    async fn run_loop(
        &mut self,
        on_event: &mut (dyn FnMut(&AgentEvent) + Send),
    ) -> Result<RunOutcome, AgentError> {
        loop {
            if let Some(exceeded) = self.budget.exceeded(self.turns, &self.run) {
                on_event(&AgentEvent::BudgetSpent {
                    reason: exceeded.to_string(),
                });
                return Ok(RunOutcome {
                    answer: self.last_answer(),
                    stop: RunStop::Budget { exceeded },
                    usage: self.run.clone(),
                    turns: self.turns,
                });
            }
            if let Some(gate) = &self.gate
                && let Err(reason) = gate.before_call().await
            {
                on_event(&AgentEvent::BudgetSpent {
                    reason: reason.clone(),
                });
                return Ok(RunOutcome {
                    answer: self.last_answer(),
                    stop: RunStop::Gated { reason },
                    usage: self.run.clone(),
                    turns: self.turns,
                });
            }
            self.inject_notices(on_event).await?;
            on_event(&AgentEvent::ModelCall {
                turn: self.turns + 1,
                max_turns: self.budget.max_turns,
            });
            let request = Request {
                model: self.model.clone(),
                system: Some(self.system.clone()),
                messages: self.messages.clone(),
                tools: self.definitions.clone(),
                max_tokens: self.max_output_tokens,
                temperature: None,
                cache_prompt: true,
                output_schema: None,
            };
            let reply = self
                .provider
                .complete(&request)
                .await
                .map_err(|e| AgentError::model(&e))?;
            // Recorded before anything is made of it: a session resumed later has
            // this call without making it again, and its usage charged once.
            let usage = (reply.usage.total_tokens(), reply.cost.usd);
            if self.steps.is_some() {
                let data = serde_json::to_value(&reply).map_err(|e| {
                    AgentError::Backend(meanwhile_core::ApiError::new(
                        meanwhile_core::ErrorCode::Internal,
                        format!("the model's response does not serialize: {e}"),
                    ))
                })?;
                self.record("model", data, Some(usage)).await?;
            } else if let Some(gate) = &self.gate {
                gate.after_call(usage.0, usage.1).await;
            }
            self.turns += 1;
            self.run.record(&reply);
            self.total.record(&reply);
            on_event(&AgentEvent::Usage {
                call: reply.usage,
                cost_usd: reply.cost.usd,
                run: self.run.clone(),
            });
            self.messages.push(reply.to_message());
            let text = reply.text();
            if !text.trim().is_empty() {
                on_event(&AgentEvent::Text { text: text.clone() });
            }
            let calls: Vec<(String, String, serde_json::Value)> = reply
                .tool_uses()
                .map(|(id, name, input)| (id.to_string(), name.to_string(), input.clone()))
                .collect();
            if calls.is_empty() {
                let stop = match reply.stop_reason {
                    StopReason::MaxTokens => RunStop::Truncated,
                    _ => RunStop::Answered,
                };
                return Ok(RunOutcome {
                    answer: text,
                    stop,
                    usage: self.run.clone(),
                    turns: self.turns,
                });
            }
            // The results message exists before the tools run, so that a run cancelled
            // halfway keeps the results it has and `repair` adds the rest.
            self.messages.push(Message::new(Role::User, Vec::new()));
            self.run_tools(calls, &[], on_event).await?;
        }
    }

    /// Runs the model's tool calls in order, each result added to the pending user
    /// turn; with a step log, each call's start and result are recorded, and a task
    /// it starts gets an idempotency key made of the session and the call's id. The
    /// calls in `again` may have run before (a resumed session).
    async fn run_tools(
        &mut self,
        calls: Vec<(String, String, serde_json::Value)>,
        again: &[String],
        on_event: &mut (dyn FnMut(&AgentEvent) + Send),
    ) -> Result<(), AgentError> {
        for (id, name, input) in calls {
            on_event(&AgentEvent::ToolCall {
                id: id.clone(),
                name: name.clone(),
                input: input.clone(),
            });
            let key = self
                .steps
                .is_some()
                .then(|| call_key(&self.tools.session, &id));
            let started_before = self.tools.task_marks().0.len();
            if let Some(key) = &key {
                self.record(
                    "tool_start",
                    serde_json::json!({ "id": id, "name": name, "key": key }),
                    None,
                )
                .await?;
            }
            let (output, is_error) = match self
                .tools
                .call(&name, input, key, again.contains(&id))
                .await
            {
                Ok(out) => (out, false),
                Err(e) => (e.to_string(), true),
            };
            if self.steps.is_some() {
                // Only the tasks this call started: a long session's steps do not
                // each repeat every task it ever started.
                let (mut started, reported) = self.tools.task_marks();
                started.drain(..started_before.min(started.len()));
                self.record(
                    "tool_result",
                    serde_json::json!({
                        "id": id, "name": name, "output": output, "is_error": is_error,
                        "started": started, "reported": reported,
                    }),
                    None,
                )
                .await?;
            }
            on_event(&AgentEvent::ToolResult {
                id: id.clone(),
                name,
                output: output.clone(),
                is_error,
            });
            let block = if is_error {
                ContentBlock::tool_error(id, output)
            } else {
                ContentBlock::tool_result(id, output)
            };
            if let Some(last) = self.messages.last_mut() {
                last.content.push(block);
            }
        }
        Ok(())
    }

    /// Records a step when the session has a step log.
    async fn record(
        &self,
        kind: &'static str,
        data: serde_json::Value,
        usage: Option<(u64, f64)>,
    ) -> Result<(), AgentError> {
        match &self.steps {
            Some(log) => log
                .record(kind, data, usage)
                .await
                .map_err(AgentError::Backend),
            None => Ok(()),
        }
    }

    /// Rebuilds the conversation from the steps a session recorded (see
    /// [`StepLog`]): the messages, the turns and usage of the run in progress and of
    /// the session, the tasks it started and the ends already reported. No model call
    /// and no tool runs; nothing is charged again. Continue with [`Session::resume`].
    /// Returns the number of steps taken back.
    pub fn restore(&mut self, steps: &[meanwhile_core::Step]) -> Result<usize, AgentError> {
        let bad = |n: u32, kind: &str, e: &dyn std::fmt::Display| {
            AgentError::Backend(meanwhile_core::ApiError::new(
                meanwhile_core::ErrorCode::Internal,
                format!("step {n} ({kind}) of the record does not read: {e}"),
            ))
        };
        for step in steps {
            let text = || {
                step.data
                    .get("text")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| bad(step.n, &step.kind, &"no text"))
            };
            match step.kind.as_str() {
                "user" => {
                    self.repair();
                    self.run = RunUsage::new();
                    self.turns = 0;
                    self.answered_stop = None;
                    self.messages.push(Message::user(text()?));
                }
                "notices" => {
                    self.answered_stop = None;
                    if let Some(seq) = step.data.get("last_seq").and_then(|s| s.as_i64()) {
                        self.heard = self.heard.max(seq);
                    }
                    notices::inject(&mut self.messages, text()?);
                }
                "cancelled" => {
                    self.repair();
                    self.answered_stop = Some(RunStop::Cancelled);
                }
                "model" => {
                    let reply: meanwhile_llm::Response = serde_json::from_value(step.data.clone())
                        .map_err(|e| bad(step.n, &step.kind, &e))?;
                    self.turns += 1;
                    self.run.record(&reply);
                    self.total.record(&reply);
                    self.messages.push(reply.to_message());
                    self.answered_stop = None;
                    if reply.tool_uses().next().is_some() {
                        self.messages.push(Message::new(Role::User, Vec::new()));
                    } else {
                        self.answered_stop = Some(match reply.stop_reason {
                            StopReason::MaxTokens => RunStop::Truncated,
                            _ => RunStop::Answered,
                        });
                    }
                }
                "tool_start" => {}
                "tool_result" => {
                    let r: RecordedResult = serde_json::from_value(step.data.clone())
                        .map_err(|e| bad(step.n, &step.kind, &e))?;
                    self.tools.restore_tasks(&r.started, &r.reported);
                    let block = if r.is_error {
                        ContentBlock::tool_error(r.id, r.output)
                    } else {
                        ContentBlock::tool_result(r.id, r.output)
                    };
                    if let Some(last) = self.messages.last_mut() {
                        last.content.push(block);
                    }
                }
                other => return Err(bad(step.n, other, &"not a step kind of the agent")),
            }
        }
        Ok(steps.len())
    }

    /// Goes on with a conversation rebuilt by [`Session::restore`]: the tool calls
    /// of the last response that have no result run (again, for one that may have
    /// run: a task it started is found by its idempotency key, an edit already made
    /// is not made twice), then the run continues. A run whose last response was
    /// the answer ends with it, without a model call.
    pub async fn resume(
        &mut self,
        on_event: &mut (dyn FnMut(&AgentEvent) + Send),
    ) -> Result<RunOutcome, AgentError> {
        if let Some(stop) = self.answered_stop.clone() {
            return Ok(RunOutcome {
                answer: self.last_answer(),
                stop,
                usage: self.run.clone(),
                turns: self.turns,
            });
        }
        let last = self
            .messages
            .iter()
            .rposition(|m| m.role == Role::Assistant);
        if let Some(i) = last {
            let calls: Vec<(String, String, serde_json::Value)> = self.messages[i]
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::ToolUse { id, name, input } => {
                        Some((id.clone(), name.clone(), input.clone()))
                    }
                    _ => None,
                })
                .collect();
            let answered: Vec<String> = self
                .messages
                .get(i + 1)
                .map(|m| {
                    m.content
                        .iter()
                        .filter_map(|b| match b {
                            ContentBlock::ToolResult { tool_use_id, .. } => {
                                Some(tool_use_id.clone())
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let pending: Vec<_> = calls
                .into_iter()
                .filter(|(id, _, _)| !answered.contains(id))
                .collect();
            if !pending.is_empty() {
                if self.messages.len() == i + 1 {
                    self.messages.push(Message::new(Role::User, Vec::new()));
                }
                let again: Vec<String> = pending.iter().map(|(id, _, _)| id.clone()).collect();
                self.run_tools(pending, &again, on_event).await?;
            }
        }
        self.run_loop(on_event).await
    }

    /// Puts the session's undelivered notices into the pending user turn.
    ///
    /// They are read first and marked delivered only once they are in the
    /// conversation, and in the step record when there is one (with the sequence
    /// number of the last one read): a crash or a cancelled run in between leaves
    /// them undelivered, never lost, and `heard` skips those already put in, so none
    /// reaches the model twice.
    async fn inject_notices(
        &mut self,
        on_event: &mut (dyn FnMut(&AgentEvent) + Send),
    ) -> Result<(), AgentError> {
        let backend = self.tools.backend.clone();
        let session = self.tools.session.clone();
        loop {
            let batch = backend.peek_notifications(&session, NOTICE_BATCH).await?;
            let Some(last) = batch.last().map(|n| n.seq) else {
                return Ok(());
            };
            let fresh: Vec<Notification> = batch
                .iter()
                .filter(|n| n.seq > self.heard && !self.tools.take_reported(n.task_id))
                .cloned()
                .collect();
            if !fresh.is_empty() {
                let text = notices::notices_text(&fresh);
                self.record(
                    "notices",
                    serde_json::json!({ "text": text, "last_seq": last }),
                    None,
                )
                .await?;
                for n in &fresh {
                    on_event(&AgentEvent::Notice {
                        notification: n.clone(),
                    });
                }
                notices::inject(&mut self.messages, text);
            }
            self.heard = self.heard.max(last);
            // The oldest undelivered are those just read (one session, one reader).
            // Left undelivered when this fails: the next look drains them, and
            // `heard` keeps them out of the conversation.
            if let Err(e) = backend
                .drain_notifications(&session, batch.len() as u32)
                .await
            {
                tracing::warn!(session = %session, "notices put before the model stay undelivered until the next call: {e}");
                return Ok(());
            }
            if (batch.len() as u32) < NOTICE_BATCH {
                return Ok(());
            }
        }
    }

    /// Makes the conversation valid again after a cancelled run: every tool call of
    /// the last assistant message gets a result, so no wire format sees a call
    /// without its answer.
    fn repair(&mut self) {
        let Some(i) = self
            .messages
            .iter()
            .rposition(|m| m.role == Role::Assistant)
        else {
            return;
        };
        let calls: Vec<String> = self.messages[i]
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::ToolUse { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect();
        if calls.is_empty() {
            return;
        }
        if self.messages.len() == i + 1 || self.messages[i + 1].role != Role::User {
            self.messages
                .insert(i + 1, Message::new(Role::User, Vec::new()));
        }
        let results = &mut self.messages[i + 1].content;
        for id in calls {
            let answered = results.iter().any(
                |b| matches!(b, ContentBlock::ToolResult { tool_use_id, .. } if *tool_use_id == id),
            );
            if !answered {
                results.push(ContentBlock::tool_error(
                    id,
                    "not run: the user cancelled the turn before this tool finished",
                ));
            }
        }
    }
}

/// A tool call's result as a `tool_result` step records it.
#[derive(serde::Deserialize)]
struct RecordedResult {
    id: String,
    output: String,
    is_error: bool,
    #[serde(default)]
    started: Vec<meanwhile_core::TaskId>,
    #[serde(default)]
    reported: Vec<meanwhile_core::TaskId>,
}

/// The idempotency key of the task a tool call may start: the session's name and the
/// call's id, which the provider made unique; cut to the longest key accepted.
fn call_key(session: &str, call: &str) -> String {
    format!("{session}/{call}")
        .chars()
        .take(meanwhile_core::MAX_IDEMPOTENCY_KEY_LEN)
        .collect()
}

fn system_prompt(tools: &ToolBox, instructions: Option<&str>) -> String {
    let mut s = format!(
        "You are a coding agent working in the directory {root}. You act through tools; the file tools \
         only reach files under that directory.\n\n\
         Slow work goes to the background so you can keep working: commands run with `bash` that are still \
         going after {threshold} continue as background tasks, and `background_run` starts one at once. \
         Background tasks keep running, their whole output is kept, and you are told how each ended in a \
         message starting with [meanwhile] right before one of your next turns; each is reported once. So \
         start slow things (test suites, builds, servers) in the background, work on something else, and \
         react when their notice arrives; read their output with background_output, stop them with \
         background_stop.\n\n\
         Be direct. When the task is done, answer with a short summary of what you did and what you found.",
        root = tools.workspace.root().display(),
        threshold = meanwhile_core::format_duration(tools.bash_background_after),
    );
    if tools.enabled.contains(&crate::tools::defs::SPAWN_AGENT) {
        s.push_str(
            "\n\nFor independent pieces of work, spawn_agent starts sub-agents that run in parallel; \
             their final answers reach you when they end.",
        );
    }
    if let Some(extra) = instructions.filter(|i| !i.trim().is_empty()) {
        s.push_str("\n\n");
        s.push_str(extra);
    }
    s
}
