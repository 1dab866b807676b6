//! The executor of `llm` tasks: one model call with a prompt, through the same
//! provider configuration as agent tasks. With a JSON Schema the answer is asked
//! as structured output, validated, and asked for once more when it does not
//! satisfy the schema; the task's result is then the answer's JSON. The call, the
//! answer and the usage go to the task's log.

use crate::config::{AgentConfig, default_model};
use meanwhile_core::{Executor, LlmSpec, TaskContext, TaskFuture, TaskRecord};
use meanwhile_llm::{Message, Provider, ProviderKind, Request, Response, StopReason};
use serde_json::Value;
use std::sync::Arc;

/// Tokens an answer may take when the spec does not say.
pub const DEFAULT_LLM_MAX_TOKENS: u32 = 4096;
/// Model calls per attempt at most: the first, and one more when the answer does not
/// satisfy the schema.
const CALLS_PER_ATTEMPT: u32 = 2;

/// Runs tasks of kind `llm`: register it with the engine for
/// [`meanwhile_core::TaskKind::Llm`].
#[derive(Clone)]
pub struct LlmExecutor {
    config: AgentConfig,
    provider: Option<Arc<dyn Provider>>,
}

impl LlmExecutor {
    /// An executor that builds each task's provider from `config` (keys from the
    /// environment when the configuration has none).
    pub fn new(config: AgentConfig) -> LlmExecutor {
        LlmExecutor {
            config,
            provider: None,
        }
    }

    /// An executor that calls `provider` for every task that does not name another
    /// provider kind.
    pub fn with_provider(config: AgentConfig, provider: Arc<dyn Provider>) -> LlmExecutor {
        LlmExecutor {
            config,
            provider: Some(provider),
        }
    }
}

impl Executor for LlmExecutor {
    fn run(&self, task: TaskRecord, ctx: TaskContext) -> TaskFuture {
        let this = self.clone();
        Box::pin(async move { this.run_task(task, ctx).await })
    }
}

/// The provider for a task that may name its own provider and model: the
/// configured one, or a new one of the named kind (`config` then says so too).
pub(crate) fn provider_for(
    config: &mut AgentConfig,
    configured: Option<&Arc<dyn Provider>>,
    provider: Option<&str>,
    model: Option<&str>,
    field: &str,
) -> Result<Arc<dyn Provider>, String> {
    let mut configured = configured.cloned();
    if let Some(name) = provider {
        let kind: ProviderKind = name
            .parse()
            .map_err(|e: meanwhile_llm::LlmError| format!("{field}.provider: {e}"))?;
        if kind != config.provider {
            config.provider = kind;
            config.base_url = None;
            config.api_key = None;
            config.model = model
                .map(str::to_string)
                .or_else(|| default_model(kind).map(str::to_string))
                .ok_or_else(|| format!("{field}.model: {kind} needs a model name"))?;
            configured = None;
        }
    }
    match configured {
        Some(p) => Ok(p),
        None => config.build_provider().map_err(|e| e.to_string()),
    }
}

/// Why an answer does not satisfy a schema, or the answer's JSON.
fn check_answer(validator: &jsonschema::Validator, reply: &Response) -> Result<Value, String> {
    let text = reply.text();
    let value: Value = serde_json::from_str(text.trim()).map_err(|e| {
        if reply.stop_reason == StopReason::MaxTokens {
            format!("the answer was cut off at its token limit before its JSON ended ({e})")
        } else {
            format!("the answer is not JSON ({e})")
        }
    })?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(errors.join("; "))
    }
}

impl LlmExecutor {
    async fn run_task(self, task: TaskRecord, ctx: TaskContext) -> Result<Option<String>, String> {
        let spec: LlmSpec = task
            .spec
            .llm
            .clone()
            .ok_or_else(|| format!("task {} has no llm spec (prompt)", task.id))?;
        let validator = match &spec.schema {
            Some(schema) => Some(
                jsonschema::validator_for(schema)
                    .map_err(|e| format!("llm.schema: not a valid JSON Schema: {e}"))?,
            ),
            None => None,
        };
        let provider = provider_for(
            &mut self.config.clone(),
            self.provider.as_ref(),
            spec.provider.as_deref(),
            spec.model.as_deref(),
            "llm",
        )?;
        let mut request = Request::new(
            vec![Message::user(spec.prompt.clone())],
            spec.max_tokens.unwrap_or(DEFAULT_LLM_MAX_TOKENS),
        );
        request.model = spec.model.clone().filter(|m| m != provider.model());
        request.system = spec.system.clone();
        request.temperature = Some(spec.temperature.unwrap_or(0.0));
        request.cache_prompt = false;
        request.output_schema = spec.schema.clone();
        ctx.println(format!(
            "llm task {} with {} ({})\nprompt:\n{}",
            task.id,
            provider.kind(),
            request.model.as_deref().unwrap_or(provider.model()),
            spec.prompt
        ));

        let mut call = 0;
        loop {
            call += 1;
            // The queue's budget decides before every call, never after.
            ctx.budget_gate().await.inspect_err(|e| ctx.println(e))?;
            let reply = provider.complete(&request).await.map_err(|e| {
                let e = format!("the model call failed: {e}");
                ctx.println(&e);
                e
            })?;
            ctx.record_usage(reply.usage.total_tokens(), reply.cost.usd)
                .await;
            ctx.println(format!(
                "answer ({}, {} tokens, {}):\n{}",
                reply.model,
                reply.usage.total_tokens(),
                reply.cost,
                reply.text()
            ));
            let Some(validator) = &validator else {
                return Ok(Some(reply.text()));
            };
            match check_answer(validator, &reply) {
                Ok(value) => return Ok(Some(value.to_string())),
                Err(why) if call < CALLS_PER_ATTEMPT => {
                    ctx.println(format!(
                        "the answer does not satisfy the schema: {why}; asking again"
                    ));
                    request.messages.push(reply.to_message());
                    request.messages.push(Message::user(format!(
                        "Your answer does not satisfy the JSON Schema: {why}. Answer again, with only JSON that satisfies the schema."
                    )));
                }
                Err(why) => {
                    let e = format!(
                        "the answer does not satisfy the schema, asked {CALLS_PER_ATTEMPT} times: {why}"
                    );
                    ctx.println(&e);
                    return Err(e);
                }
            }
        }
    }
}
