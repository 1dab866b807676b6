//! `meanwhile budget`: set, list and remove the budgets of queues.

use super::Ctx;
use crate::fmt;
use meanwhile_client::ClientError;
use meanwhile_core::{
    ApiError, BudgetInfo, BudgetSpec, BudgetWindow, DEFAULT_ALARMS, ErrorCode, MAX_BUDGET_TOKENS,
    dollars, rfc3339_secs,
};
use std::process::ExitCode;

/// Arguments of `budget`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do; lists the budgets when absent.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Print as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A budget action.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Set a queue's budget: the tokens and/or US dollars its model calls may use
    /// per window.
    ///
    /// A `budget` alert fires at each alarm, once per window. When the budget is
    /// spent, the queue pauses (reason `budget`: no task of it starts) and each of
    /// its running tasks stops at its next model call, failing with the reason; the
    /// queue resumes by itself when the next window starts, or at once when the
    /// budget is raised above what was used or removed. Options left out keep their
    /// value (a new budget: --window day, --alarms 50,80,100); with the same window,
    /// what the current one used still counts. Prints the budget.
    Set(SetArgs),
    /// List the budgets: limit, what the current window used, when it started and
    /// ends, state (ok, alarm, exhausted) and the alarms fired in it.
    #[command(visible_alias = "list")]
    Ls,
    /// Remove a queue's budget: its alerts resolve, and a queue it paused resumes.
    #[command(visible_alias = "remove")]
    Rm {
        /// The queue.
        #[arg(add = crate::complete::budgets())]
        queue: String,
    },
}

/// Arguments of `budget set`.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The queue (created if it does not exist).
    #[arg(add = crate::complete::queues())]
    pub queue: String,
    /// Most tokens per window (input, cached or not, plus output, as the provider
    /// reports them); `none` removes the token limit.
    #[arg(long, value_name = "N|none", value_parser = tokens)]
    pub tokens: Option<Limit<u64>>,
    /// Most US dollars per window (`5`, `0.25`), by the provider's price table;
    /// `none` removes the cost limit. With --tokens too, the budget is spent when
    /// either is.
    #[arg(long, value_name = "USD|none", value_parser = cost)]
    pub cost: Option<Limit<f64>>,
    /// The window the usage counts over, on the UTC calendar: `hour`, `day` (from
    /// 00:00 UTC), `month` (from the 1st, 00:00 UTC), or `total` (from now, never
    /// reset).
    #[arg(long, value_name = "hour|day|month|total", value_parser = window)]
    pub window: Option<BudgetWindow>,
    /// Percentages of the budget at which a `budget` alert fires, once each per
    /// window: whole numbers from 1 to 100 separated by commas (`50,80,100`), or
    /// `none` for no alerts (the queue still pauses when the budget is spent).
    #[arg(long, value_name = "P,P,...|none", value_parser = alarms)]
    pub alarms: Option<Alarms>,
}

/// Alarms given on the command line, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarms(pub Vec<u32>);

/// A limit given on the command line: a value, or `none` to remove it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit<T>(pub Option<T>);

fn tokens(s: &str) -> Result<Limit<u64>, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    match s.parse::<u64>() {
        Ok(n) if (1..=MAX_BUDGET_TOKENS).contains(&n) => Ok(Limit(Some(n))),
        _ => Err(format!(
            "tokens must be a whole number from 1 to {MAX_BUDGET_TOKENS}, or none to remove the token limit, got {s:?}"
        )),
    }
}

fn cost(s: &str) -> Result<Limit<f64>, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    match s.strip_prefix('$').unwrap_or(s).parse::<f64>() {
        Ok(c) if c.is_finite() && c > 0.0 => Ok(Limit(Some(c))),
        _ => Err(format!(
            "cost must be a number of US dollars above 0, like 5 or 0.25, or none to remove the cost limit, got {s:?}"
        )),
    }
}

fn window(s: &str) -> Result<BudgetWindow, String> {
    BudgetWindow::parse(s)
        .ok_or_else(|| format!("window must be hour, day, month or total, got {s:?}"))
}

fn alarms(s: &str) -> Result<Alarms, String> {
    if s == "none" {
        return Ok(Alarms(Vec::new()));
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.trim().trim_end_matches('%').parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) => {
                if out.contains(&p) {
                    return Err(format!(
                        "alarms: {p}% is given twice; give each percentage once"
                    ));
                }
                out.push(p);
            }
            _ => {
                return Err(format!(
                    "alarms must be percentages from 1 to 100 separated by commas, like 50,80,100, or none, got {part:?}"
                ));
            }
        }
    }
    out.sort_unstable();
    Ok(Alarms(out))
}

/// The budget `args` ask for, from the one the queue has (options left out keep
/// their value).
fn merged(old: Option<BudgetSpec>, args: &SetArgs) -> BudgetSpec {
    let mut spec = old.unwrap_or(BudgetSpec {
        alarms: DEFAULT_ALARMS.to_vec(),
        ..BudgetSpec::default()
    });
    if let Some(Limit(t)) = args.tokens {
        spec.tokens = t;
    }
    if let Some(Limit(c)) = args.cost {
        spec.cost_usd = c;
    }
    if let Some(w) = args.window {
        spec.window = w;
    }
    if let Some(a) = &args.alarms {
        spec.alarms = a.0.clone();
    }
    spec
}

fn invalid(field: &str, message: String) -> anyhow::Error {
    ClientError::Api(ApiError {
        code: ErrorCode::InvalidArgument,
        message,
        field: Some(field.to_string()),
    })
    .into()
}

/// Runs `budget`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let budgets = match args.action.unwrap_or(Action::Ls) {
        Action::Ls => client.budgets().await?,
        Action::Rm { queue } => {
            client.remove_budget(&queue).await?;
            if args.json {
                super::print_json(&serde_json::json!({ "removed": queue }))?;
            } else {
                outln!("removed the budget of queue {queue}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Action::Set(set) => {
            let old = match client.budget(&set.queue).await {
                Ok(b) => Some(b.spec),
                Err(ClientError::Api(e)) if e.code == ErrorCode::NotFound => None,
                Err(e) => return Err(e.into()),
            };
            let spec = merged(old, &set);
            if spec.tokens.is_none() && spec.cost_usd.is_none() {
                return Err(invalid(
                    "tokens",
                    format!(
                        "give a limit: --tokens N, --cost USD or both (see 'meanwhile budget set --help'); queue {} would have none",
                        set.queue
                    ),
                ));
            }
            vec![client.set_budget(&set.queue, &spec).await?]
        }
    };
    if args.json {
        super::print_json(&budgets)?;
        return Ok(ExitCode::SUCCESS);
    }
    if budgets.is_empty() {
        outln!("no budgets (see 'meanwhile budget set --help')");
        return Ok(ExitCode::SUCCESS);
    }
    out!("{}", table(&budgets));
    Ok(ExitCode::SUCCESS)
}

fn table(budgets: &[BudgetInfo]) -> String {
    let rows: Vec<Vec<String>> = budgets
        .iter()
        .map(|b| {
            let mut used = Vec::new();
            if b.spec.tokens.is_some() {
                used.push(format!("{} tokens", b.used_tokens));
            }
            if b.spec.cost_usd.is_some() {
                used.push(dollars(b.used_cost_usd));
            }
            let alarms = if b.spec.alarms.is_empty() {
                "none".to_string()
            } else {
                b.spec
                    .alarms
                    .iter()
                    .map(|a| {
                        if b.alarms_fired.contains(a) {
                            format!("{a}!")
                        } else {
                            a.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                b.queue.clone(),
                b.spec.limit_text(),
                format!("{} ({:.0}%)", used.join(", "), b.used_percent.floor()),
                b.model_calls.to_string(),
                b.spec.window.to_string(),
                rfc3339_secs(b.window_start),
                b.window_end.map_or("never".to_string(), rfc3339_secs),
                b.state.as_str().to_string(),
                alarms,
            ]
        })
        .collect();
    let mut t = fmt::table(
        &[
            "QUEUE",
            "LIMIT",
            "USED",
            "CALLS",
            "WINDOW",
            "WINDOW START",
            "NEXT WINDOW",
            "STATE",
            "ALARMS",
        ],
        &rows,
    );
    if budgets.iter().any(|b| !b.alarms_fired.is_empty()) {
        t.push_str("(an alarm marked ! fired in this window)\n");
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_or_say_what_is_wrong() {
        assert_eq!(tokens("1000"), Ok(Limit(Some(1000))));
        assert_eq!(tokens("none"), Ok(Limit(None)));
        for bad in ["0", "-5", "1e3", "", "9223372036854775808"] {
            let e = tokens(bad).unwrap_err();
            assert!(
                e.starts_with("tokens must be a whole number from 1 to"),
                "{bad}: {e}"
            );
        }
        assert_eq!(cost("0.25"), Ok(Limit(Some(0.25))));
        assert_eq!(cost("$5"), Ok(Limit(Some(5.0))));
        assert_eq!(cost("none"), Ok(Limit(None)));
        for bad in ["0", "-1", "NaN", "inf", "five"] {
            let e = cost(bad).unwrap_err();
            assert!(
                e.starts_with("cost must be a number of US dollars above 0"),
                "{bad}: {e}"
            );
        }
        assert_eq!(window("month"), Ok(BudgetWindow::Month));
        assert_eq!(
            window("week").unwrap_err(),
            "window must be hour, day, month or total, got \"week\""
        );
        assert_eq!(alarms("80,50%, 100"), Ok(Alarms(vec![50, 80, 100])));
        assert_eq!(alarms("none"), Ok(Alarms(vec![])));
        assert_eq!(
            alarms("50,50").unwrap_err(),
            "alarms: 50% is given twice; give each percentage once"
        );
        for bad in ["0", "101", "50,,80", "half"] {
            let e = alarms(bad).unwrap_err();
            assert!(
                e.starts_with("alarms must be percentages from 1 to 100"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn options_left_out_keep_their_value() {
        let args = |tokens, cost| SetArgs {
            queue: "llm".into(),
            tokens,
            cost,
            window: None,
            alarms: None,
        };
        let new = merged(None, &args(Some(Limit(Some(10))), None));
        assert_eq!(new.tokens, Some(10));
        assert_eq!(new.window, BudgetWindow::Day);
        assert_eq!(new.alarms, vec![50, 80, 100]);
        let old = BudgetSpec {
            tokens: Some(10),
            cost_usd: Some(1.0),
            window: BudgetWindow::Month,
            alarms: vec![90],
        };
        let raised = merged(Some(old.clone()), &args(Some(Limit(Some(20))), None));
        assert_eq!(
            raised,
            BudgetSpec {
                tokens: Some(20),
                ..old.clone()
            }
        );
        let cost_only = merged(Some(old.clone()), &args(Some(Limit(None)), None));
        assert_eq!((cost_only.tokens, cost_only.cost_usd), (None, Some(1.0)));
    }
}
