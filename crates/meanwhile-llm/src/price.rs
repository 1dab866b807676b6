//! Prices per model, and what one call costs by them.
//!
//! Prices are USD per million tokens. A few current models are built in; a user's
//! TOML configuration can add models or replace built-in prices. A model without a
//! price costs 0 and the [`Cost`] says it was not priced, so a budget never silently
//! believes an unknown model is free.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::LlmError;
use crate::usage::{Cost, Usage};

/// USD per million tokens of each kind, for one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModelPrice {
    /// Plain input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input tokens written to the prompt cache.
    pub cache_write: f64,
    /// Input tokens read from the prompt cache.
    pub cache_read: f64,
}

impl ModelPrice {
    /// A price with all four rates given.
    pub const fn new(input: f64, output: f64, cache_write: f64, cache_read: f64) -> Self {
        ModelPrice {
            input,
            output,
            cache_write,
            cache_read,
        }
    }

    /// What `usage` costs at this price, in USD.
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        // u64 to f64 loses precision only beyond 2^53 tokens, which no bill reaches.
        (usage.input_tokens as f64 * self.input
            + usage.output_tokens as f64 * self.output
            + usage.cache_creation_input_tokens as f64 * self.cache_write
            + usage.cache_read_input_tokens as f64 * self.cache_read)
            / 1_000_000.0
    }
}

/// One entry as written in TOML: the cache rates may be left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceEntry {
    input: f64,
    output: f64,
    cache_write: Option<f64>,
    cache_read: Option<f64>,
}

/// Built-in prices (USD per million tokens), from the providers' public price lists.
/// Anthropic's cache write is the 5-minute rate; OpenAI does not charge for cache
/// writes beyond the input price, so its cache write equals its input price.
const BUILTIN: &[(&str, ModelPrice)] = &[
    ("claude-opus-4-1", ModelPrice::new(15.0, 75.0, 18.75, 1.5)),
    ("claude-sonnet-4-5", ModelPrice::new(3.0, 15.0, 3.75, 0.3)),
    ("claude-haiku-4-5", ModelPrice::new(1.0, 5.0, 1.25, 0.1)),
    ("gpt-4.1", ModelPrice::new(2.0, 8.0, 2.0, 0.5)),
    ("gpt-4.1-mini", ModelPrice::new(0.4, 1.6, 0.4, 0.1)),
    ("gpt-4o", ModelPrice::new(2.5, 10.0, 2.5, 1.25)),
    ("gpt-4o-mini", ModelPrice::new(0.15, 0.6, 0.15, 0.075)),
    ("o4-mini", ModelPrice::new(1.1, 4.4, 1.1, 0.275)),
];

/// Prices by model name.
///
/// A model is found by its exact name, else by the longest key that is a prefix of
/// it ending at a separator (`-`, `:`, `@`), so `claude-sonnet-4-5-20250929` is
/// priced as `claude-sonnet-4-5` and `gpt-4o-mini-2024-07-18` as `gpt-4o-mini`, not
/// `gpt-4o`. A `vendor/` prefix as OpenRouter writes it (`openai/gpt-4o`) is ignored
/// when the full name has no price.
///
/// As a serde type it reads the TOML (or JSON) form of [`PriceTable::from_toml_str`],
/// so a larger configuration can embed it as its `[prices]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, PriceEntry>")]
pub struct PriceTable {
    prices: BTreeMap<String, ModelPrice>,
}

impl TryFrom<BTreeMap<String, PriceEntry>> for PriceTable {
    type Error = LlmError;

    fn try_from(entries: BTreeMap<String, PriceEntry>) -> Result<Self, LlmError> {
        let mut table = PriceTable::empty();
        for (model, entry) in entries {
            // A rate left out is charged as plain input: that overstates rather
            // than understates the cost of a model whose cache rates are unknown.
            let price = ModelPrice {
                input: entry.input,
                output: entry.output,
                cache_write: entry.cache_write.unwrap_or(entry.input),
                cache_read: entry.cache_read.unwrap_or(entry.input),
            };
            for (field, value) in [
                ("input", price.input),
                ("output", price.output),
                ("cache_write", price.cache_write),
                ("cache_read", price.cache_read),
            ] {
                if !value.is_finite() || value < 0.0 {
                    return Err(LlmError::InvalidPrice {
                        model,
                        what: format!("{field} must be a non-negative number, got {value}"),
                    });
                }
            }
            table.prices.insert(model, price);
        }
        Ok(table)
    }
}

impl PriceTable {
    /// A table with no prices: every model costs 0 and is reported unpriced.
    pub fn empty() -> Self {
        PriceTable::default()
    }

    /// The built-in prices of a few current Anthropic and OpenAI models.
    pub fn builtin() -> Self {
        PriceTable {
            prices: BUILTIN
                .iter()
                .map(|(model, price)| ((*model).to_owned(), *price))
                .collect(),
        }
    }

    /// Reads a table of prices from TOML, one table per model, USD per million
    /// tokens; `cache_write` and `cache_read` default to the `input` rate:
    ///
    /// ```toml
    /// ["claude-sonnet-4-5"]
    /// input = 3.0
    /// output = 15.0
    /// cache_write = 3.75
    /// cache_read = 0.3
    ///
    /// ["qwen3-coder"]
    /// input = 0.0
    /// output = 0.0
    /// ```
    ///
    /// The result holds only what the text lists; [`PriceTable::merge`] it over
    /// [`PriceTable::builtin`] to override the built-in prices.
    pub fn from_toml_str(text: &str) -> Result<Self, LlmError> {
        // Validation errors from `TryFrom` come back inside the TOML error, which
        // adds the line to fix.
        toml::from_str(text).map_err(LlmError::PriceTable)
    }

    /// Adds every price of `overrides`, replacing the ones already here.
    pub fn merge(&mut self, overrides: PriceTable) {
        self.prices.extend(overrides.prices);
    }

    /// Sets the price of one model.
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) {
        self.prices.insert(model.into(), price);
    }

    /// The price of `model` and the key it was found under.
    pub fn lookup(&self, model: &str) -> Option<(&str, &ModelPrice)> {
        self.lookup_name(model).or_else(|| {
            let (_, bare) = model.rsplit_once('/')?;
            self.lookup_name(bare)
        })
    }

    fn lookup_name(&self, model: &str) -> Option<(&str, &ModelPrice)> {
        if let Some((key, price)) = self.prices.get_key_value(model) {
            return Some((key.as_str(), price));
        }
        self.prices
            .iter()
            .filter(|(key, _)| {
                model.strip_prefix(key.as_str()).is_some_and(|rest| {
                    rest.starts_with('-') || rest.starts_with(':') || rest.starts_with('@')
                })
            })
            .max_by_key(|(key, _)| key.len())
            .map(|(key, price)| (key.as_str(), price))
    }

    /// What `usage` on `model` costs; 0 and marked unpriced when the model has no price.
    pub fn cost(&self, model: &str, usage: &Usage) -> Cost {
        match self.lookup(model) {
            Some((key, price)) => Cost {
                model: model.to_owned(),
                usd: price.cost_usd(usage),
                priced_as: Some(key.to_owned()),
            },
            None => Cost {
                model: model.to_owned(),
                usd: 0.0,
                priced_as: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::RunUsage;

    fn check_lookup(model: &str, expect: Option<&str>) {
        let table = PriceTable::builtin();
        assert_eq!(
            table.lookup(model).map(|(key, _)| key),
            expect,
            "lookup of {model}"
        );
    }

    #[test]
    fn dated_and_vendored_names_find_their_base_model() {
        check_lookup("claude-sonnet-4-5", Some("claude-sonnet-4-5"));
        check_lookup("claude-sonnet-4-5-20250929", Some("claude-sonnet-4-5"));
        check_lookup("claude-opus-4-1-20250805", Some("claude-opus-4-1"));
        check_lookup("claude-haiku-4-5@20251001", Some("claude-haiku-4-5"));
        check_lookup("gpt-4o-mini-2024-07-18", Some("gpt-4o-mini"));
        check_lookup("gpt-4o-2024-08-06", Some("gpt-4o"));
        check_lookup("gpt-4.1-mini-2025-04-14", Some("gpt-4.1-mini"));
        check_lookup("gpt-4.1", Some("gpt-4.1"));
        check_lookup("openai/gpt-4o", Some("gpt-4o"));
        check_lookup("o4-mini", Some("o4-mini"));
        // Not a separator after the key: a different model.
        check_lookup("gpt-4omni", None);
        check_lookup("llama3.1:8b", None);
    }

    #[test]
    fn cost_uses_all_four_rates() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cache_creation_input_tokens: 1_000_000,
            cache_read_input_tokens: 1_000_000,
        };
        let cost = PriceTable::builtin().cost("claude-sonnet-4-5-20250929", &usage);
        assert!(
            (cost.usd - (3.0 + 15.0 + 3.75 + 0.3)).abs() < 1e-9,
            "{cost:?}"
        );
        assert_eq!(cost.priced_as.as_deref(), Some("claude-sonnet-4-5"));
    }

    #[test]
    fn unknown_models_cost_nothing_and_say_so() {
        let cost = PriceTable::builtin().cost("my-local-model", &Usage::default());
        assert_eq!(cost.usd, 0.0);
        assert!(!cost.is_priced());
        assert!(
            cost.to_string()
                .contains("no price known for model my-local-model")
        );
    }

    #[test]
    fn toml_overrides_replace_and_add_prices() {
        let mut table = PriceTable::builtin();
        table.merge(
            PriceTable::from_toml_str(
                r#"
                ["gpt-4o"]
                input = 1.0
                output = 2.0
                cache_read = 0.5

                ["qwen3-coder"]
                input = 0.0
                output = 0.0
                "#,
            )
            .unwrap(),
        );
        let (_, gpt) = table.lookup("gpt-4o").unwrap();
        assert_eq!(*gpt, ModelPrice::new(1.0, 2.0, 1.0, 0.5));
        assert!(table.lookup("qwen3-coder:30b").is_some());
        // Built-ins not named in the overrides stay.
        assert!(table.lookup("o4-mini").is_some());
    }

    #[test]
    fn bad_toml_prices_name_the_problem() {
        let err = PriceTable::from_toml_str("[m]\ninput = 1.0\n").unwrap_err();
        assert!(
            format!("{:?}", err).contains("missing field `output`"),
            "{err:?}"
        );
        let err = PriceTable::from_toml_str("[m]\ninput = 1.0\noutput = 1\ncahce_read = 2\n")
            .unwrap_err();
        assert!(format!("{:?}", err).contains("cahce_read"), "{err:?}");
        let err = PriceTable::from_toml_str("[m]\ninput = -1.0\noutput = 1.0\n").unwrap_err();
        assert!(
            format!("{:?}", err).contains("input must be a non-negative number"),
            "{err:?}"
        );
    }

    #[test]
    fn run_usage_sums_calls_and_remembers_unpriced_models() {
        let table = PriceTable::builtin();
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 100,
            ..Usage::default()
        };
        let mut run = RunUsage::new();
        run.add(&usage, &table.cost("gpt-4o-mini", &usage));
        run.add(&usage, &table.cost("gpt-4o-mini", &usage));
        run.add(&usage, &table.cost("llama3", &usage));
        assert_eq!(run.calls, 3);
        assert_eq!(run.usage.input_tokens, 3000);
        let one = (1000.0 * 0.15 + 100.0 * 0.6) / 1e6;
        assert!((run.cost_usd - 2.0 * one).abs() < 1e-12);
        assert!(!run.is_fully_priced());
        assert!(run.to_string().contains("no price known: llama3"), "{run}");
    }
}
