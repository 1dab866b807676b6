//! What calls use and cost: the tokens of one call or many, the cost of one call,
//! and the running total of a run.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Tokens counted for one call, or summed over many.
///
/// `input_tokens` counts only input that was neither written to nor read from the
/// prompt cache, as Anthropic reports it. OpenAI counts cached tokens inside its
/// prompt tokens; the OpenAI adapter subtracts them so that the four fields never
/// overlap and each is priced once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens billed at the plain input price.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: u64,
}

impl Usage {
    /// All input tokens, cached or not.
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_creation_input_tokens)
            .saturating_add(self.cache_read_input_tokens)
    }

    /// All tokens, input and output.
    pub fn total_tokens(&self) -> u64 {
        self.total_input_tokens().saturating_add(self.output_tokens)
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_creation_input_tokens = self
            .cache_creation_input_tokens
            .saturating_add(other.cache_creation_input_tokens);
        self.cache_read_input_tokens = self
            .cache_read_input_tokens
            .saturating_add(other.cache_read_input_tokens);
    }
}

/// The cost of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// The model that was billed.
    pub model: String,
    /// USD; 0 when the model has no price.
    pub usd: f64,
    /// The price table key used, or `None` when the model has no price.
    pub priced_as: Option<String>,
}

impl Cost {
    /// Whether a price was found for the model.
    pub fn is_priced(&self) -> bool {
        self.priced_as.is_some()
    }
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.priced_as {
            Some(_) => write!(f, "${:.4}", self.usd),
            None => write!(
                f,
                "$0 (no price known for model {}; add it to the price table)",
                self.model
            ),
        }
    }
}

/// Token usage and cost summed over the calls of a run.
///
/// It is a plain value: an agent running calls concurrently keeps it behind a mutex.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// Number of calls recorded.
    pub calls: u64,
    /// Tokens summed over all calls.
    pub usage: Usage,
    /// USD summed over the priced calls.
    pub cost_usd: f64,
    /// Models called that had no price: `cost_usd` leaves them out.
    pub unpriced_models: BTreeSet<String>,
}

impl RunUsage {
    /// An empty total.
    pub fn new() -> Self {
        RunUsage::default()
    }

    /// Adds one call given its usage and cost.
    pub fn add(&mut self, usage: &Usage, cost: &Cost) {
        self.calls += 1;
        self.usage += *usage;
        self.cost_usd += cost.usd;
        if !cost.is_priced() {
            self.unpriced_models.insert(cost.model.clone());
        }
    }

    /// Whether every recorded call was priced, so `cost_usd` is the whole bill.
    pub fn is_fully_priced(&self) -> bool {
        self.unpriced_models.is_empty()
    }
}

impl fmt::Display for RunUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls, {} input + {} output tokens ({} cache write, {} cache read), ${:.4}",
            self.calls,
            self.usage.input_tokens,
            self.usage.output_tokens,
            self.usage.cache_creation_input_tokens,
            self.usage.cache_read_input_tokens,
            self.cost_usd
        )?;
        if !self.is_fully_priced() {
            let models: Vec<&str> = self.unpriced_models.iter().map(String::as_str).collect();
            write!(f, " (not counted, no price known: {})", models.join(", "))?;
        }
        Ok(())
    }
}
