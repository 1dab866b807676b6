//! A run's limits on model calls, tokens and money, checked before each model call.

use meanwhile_llm::RunUsage;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most a run may use. `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Most model calls.
    pub max_turns: Option<u32>,
    /// Most tokens, input (cached or not) plus output.
    pub max_tokens: Option<u64>,
    /// Most US dollars, by the provider's price table.
    pub max_cost_usd: Option<f64>,
}

/// Which limit a run reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "limit", rename_all = "snake_case")]
pub enum BudgetExceeded {
    /// All allowed model calls were made.
    Turns {
        /// Calls made.
        used: u32,
        /// The limit.
        max: u32,
    },
    /// The tokens used reached the limit.
    Tokens {
        /// Tokens used.
        used: u64,
        /// The limit.
        max: u64,
    },
    /// The money spent reached the limit.
    Cost {
        /// USD spent.
        used: f64,
        /// The limit.
        max: f64,
    },
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetExceeded::Turns { used, max } => write!(
                f,
                "the turn budget is spent: {used} of {max} model calls made"
            ),
            BudgetExceeded::Tokens { used, max } => {
                write!(f, "the token budget is spent: {used} of {max} tokens used")
            }
            BudgetExceeded::Cost { used, max } => {
                write!(f, "the cost budget is spent: ${used:.4} of ${max:.4} used")
            }
        }
    }
}

impl Budget {
    /// The first limit that `turns` model calls using `usage` have reached, if any.
    /// A limit reached exactly counts as spent: the next call would exceed it.
    pub fn exceeded(&self, turns: u32, usage: &RunUsage) -> Option<BudgetExceeded> {
        if let Some(max) = self.max_turns
            && turns >= max
        {
            return Some(BudgetExceeded::Turns { used: turns, max });
        }
        let tokens = usage.usage.total_tokens();
        if let Some(max) = self.max_tokens
            && tokens >= max
        {
            return Some(BudgetExceeded::Tokens { used: tokens, max });
        }
        if let Some(max) = self.max_cost_usd
            && usage.cost_usd >= max
        {
            return Some(BudgetExceeded::Cost {
                used: usage.cost_usd,
                max,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meanwhile_llm::{Cost, Usage};

    fn usage(tokens: u64, usd: f64) -> RunUsage {
        let mut u = RunUsage::new();
        u.add(
            &Usage {
                input_tokens: tokens,
                ..Usage::default()
            },
            &Cost {
                model: "m".into(),
                usd,
                priced_as: Some("m".into()),
            },
        );
        u
    }

    #[test]
    fn each_limit_stops_when_reached() {
        let b = Budget {
            max_turns: Some(3),
            max_tokens: Some(1000),
            max_cost_usd: Some(0.5),
        };
        assert_eq!(b.exceeded(2, &usage(999, 0.49)), None);
        assert_eq!(
            b.exceeded(3, &usage(0, 0.0)),
            Some(BudgetExceeded::Turns { used: 3, max: 3 })
        );
        assert_eq!(
            b.exceeded(1, &usage(1000, 0.0)),
            Some(BudgetExceeded::Tokens {
                used: 1000,
                max: 1000
            })
        );
        let e = b.exceeded(1, &usage(10, 0.5)).unwrap();
        assert_eq!(
            e.to_string(),
            "the cost budget is spent: $0.5000 of $0.5000 used"
        );
        assert_eq!(
            Budget::default().exceeded(u32::MAX, &usage(u64::MAX, 1e9)),
            None
        );
    }
}
