//! Budgets: a limit on the tokens and the money the model calls of a queue's tasks may
//! use in a window of time (an hour, a day or a month of the UTC calendar, or in
//! total), with alarms at percentages of it. This module does the window arithmetic
//! and decides which alarms a usage reaches and whether it is spent; the store keeps
//! the usage, and the runtime asks it before each model call.

use crate::ident::Timestamp;
use crate::spec::SpecError;
use chrono::{DateTime, Datelike as _, NaiveDate, SecondsFormat};
use serde::{Deserialize, Serialize};

/// The alarms of a budget that names none: at half, at four fifths, and when spent.
pub const DEFAULT_ALARMS: [u32; 3] = [50, 80, 100];
/// The largest token limit (the store keeps counts as signed 64-bit integers).
pub const MAX_BUDGET_TOKENS: u64 = i64::MAX as u64;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The stretch of time a budget's usage counts over. Windows follow the UTC
/// calendar: an hour starts at minute 0, a day at 00:00 UTC, a month at 00:00 UTC on
/// its first day; `total` never starts again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum BudgetWindow {
    /// A clock hour, UTC.
    Hour,
    /// A calendar day, UTC.
    #[default]
    Day,
    /// A calendar month, UTC.
    Month,
    /// From when the budget was set, for ever.
    Total,
}

impl BudgetWindow {
    /// The name used on the wire, in the store and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetWindow::Hour => "hour",
            BudgetWindow::Day => "day",
            BudgetWindow::Month => "month",
            BudgetWindow::Total => "total",
        }
    }

    /// Parses a window's name.
    pub fn parse(s: &str) -> Option<BudgetWindow> {
        match s {
            "hour" => Some(BudgetWindow::Hour),
            "day" => Some(BudgetWindow::Day),
            "month" => Some(BudgetWindow::Month),
            "total" => Some(BudgetWindow::Total),
            _ => None,
        }
    }

    /// The start of the window that holds `t`. A `total` window starts at `since`
    /// (when the budget was set), whatever `t` is.
    pub fn start_of(self, t: Timestamp, since: Timestamp) -> Timestamp {
        match self {
            BudgetWindow::Hour => floor(t, HOUR_MS),
            BudgetWindow::Day => floor(t, DAY_MS),
            BudgetWindow::Month => month_start(t).unwrap_or(t),
            BudgetWindow::Total => since,
        }
    }

    /// The end of the window that starts at `start`, which is the start of the next
    /// one; `None` for `total`, and for a time beyond the calendar.
    pub fn end_of(self, start: Timestamp) -> Option<Timestamp> {
        match self {
            BudgetWindow::Hour => start.0.checked_add(HOUR_MS).map(Timestamp),
            BudgetWindow::Day => start.0.checked_add(DAY_MS).map(Timestamp),
            BudgetWindow::Month => next_month_start(start),
            BudgetWindow::Total => None,
        }
    }

    /// How a usage in this window is said: `this hour`, `this day`, `this month`,
    /// `in total`.
    pub fn phrase(self) -> &'static str {
        match self {
            BudgetWindow::Hour => "this hour",
            BudgetWindow::Day => "this day",
            BudgetWindow::Month => "this month",
            BudgetWindow::Total => "in total",
        }
    }
}

impl std::fmt::Display for BudgetWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `t` rounded down to a multiple of `len` (itself when that is out of range).
fn floor(t: Timestamp, len: i64) -> Timestamp {
    t.0.checked_sub(t.0.rem_euclid(len)).map_or(t, Timestamp)
}

fn date_of(t: Timestamp) -> Option<NaiveDate> {
    Some(DateTime::from_timestamp_millis(t.0)?.date_naive())
}

fn midnight(d: NaiveDate) -> Option<Timestamp> {
    Some(Timestamp(
        d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis(),
    ))
}

/// 00:00 UTC on the first day of `t`'s month.
fn month_start(t: Timestamp) -> Option<Timestamp> {
    let d = date_of(t)?;
    midnight(NaiveDate::from_ymd_opt(d.year(), d.month(), 1)?)
}

/// 00:00 UTC on the first day of the month after `t`'s.
fn next_month_start(t: Timestamp) -> Option<Timestamp> {
    let d = date_of(t)?;
    let (y, m) = if d.month() == 12 {
        (d.year().checked_add(1)?, 1)
    } else {
        (d.year(), d.month() + 1)
    };
    midnight(NaiveDate::from_ymd_opt(y, m, 1)?)
}

/// A budget as a user sets it on a queue: the body of `PUT /v1/budgets/{queue}`.
///
/// At least one of `tokens` and `cost_usd`; when both are given, the budget is spent
/// when either is. The usage of every model call of the queue's tasks counts: the
/// tokens the provider reports (input, cached or not, plus output) and their cost
/// by the provider's price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend(
        // A limit that is null counts as absent.
        "anyOf" = [
            {"required": ["tokens"], "properties": {"tokens": {"type": "integer"}}},
            {"required": ["cost_usd"], "properties": {"cost_usd": {"type": "number"}}}
        ]
    ))
)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Most tokens per window (input, cached or not, plus output), from 1.
    #[serde(
        default,
        deserialize_with = "crate::de::opt_int",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = i64::MAX)))]
    pub tokens: Option<u64>,
    /// Most US dollars per window, by the provider's price table; above 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(extend("exclusiveMinimum" = 0)))]
    pub cost_usd: Option<f64>,
    /// The window the usage counts over: `hour`, `day` (the default), `month` (of
    /// the UTC calendar) or `total`.
    #[serde(default)]
    pub window: BudgetWindow,
    /// Percentages of the budget at which a `budget` alert fires, once per window
    /// each: whole numbers from 1 to 100, each once (kept in ascending order). 50, 80
    /// and 100 when absent; an empty list fires none (the queue still pauses when the
    /// budget is spent).
    #[serde(default = "default_alarms", deserialize_with = "crate::de::ints")]
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::Alarms"))]
    pub alarms: Vec<u32>,
}

fn default_alarms() -> Vec<u32> {
    DEFAULT_ALARMS.to_vec()
}

impl Default for BudgetSpec {
    fn default() -> BudgetSpec {
        BudgetSpec {
            tokens: None,
            cost_usd: None,
            window: BudgetWindow::default(),
            alarms: default_alarms(),
        }
    }
}

fn err(field: &'static str, message: impl Into<String>) -> SpecError {
    SpecError {
        field,
        message: message.into(),
    }
}

impl BudgetSpec {
    /// Checks every field and puts the alarms in ascending order; the error names
    /// the first wrong field and says how to fix it.
    pub fn validate(mut self) -> Result<BudgetSpec, SpecError> {
        if self.tokens.is_none() && self.cost_usd.is_none() {
            return Err(err(
                "tokens",
                "give a token limit (tokens), a cost limit in USD (cost_usd), or both",
            ));
        }
        if let Some(t) = self.tokens
            && !(1..=MAX_BUDGET_TOKENS).contains(&t)
        {
            return Err(err(
                "tokens",
                format!("must be a whole number from 1 to {MAX_BUDGET_TOKENS}, got {t}"),
            ));
        }
        if let Some(c) = self.cost_usd
            && !(c.is_finite() && c > 0.0)
        {
            return Err(err(
                "cost_usd",
                format!("must be a number of US dollars above 0, like 5 or 0.25, got {c}"),
            ));
        }
        if let Some(a) = self.alarms.iter().find(|a| !(1..=100).contains(*a)) {
            return Err(err(
                "alarms",
                format!("{a} is not a percentage from 1 to 100; give alarms like 50,80,100"),
            ));
        }
        self.alarms.sort_unstable();
        if let Some(w) = self.alarms.windows(2).find(|w| w[0] == w[1]) {
            return Err(err(
                "alarms",
                format!("{}% is given twice; give each percentage once", w[0]),
            ));
        }
        Ok(self)
    }

    /// Whether a usage reaches `percent` of a limit (of either, when both are set).
    pub fn reaches(&self, percent: u32, used_tokens: u64, used_cost_usd: f64) -> bool {
        let tokens = self.tokens.is_some_and(|max| {
            u128::from(used_tokens) * 100 >= u128::from(percent) * u128::from(max)
        });
        let cost = self
            .cost_usd
            .is_some_and(|max| used_cost_usd * 100.0 >= f64::from(percent) * max);
        tokens || cost
    }

    /// Whether a usage spends the budget: the next model call would go past it.
    pub fn is_spent(&self, used_tokens: u64, used_cost_usd: f64) -> bool {
        self.reaches(100, used_tokens, used_cost_usd)
    }

    /// The alarms a usage reaches, ascending.
    pub fn reached(&self, used_tokens: u64, used_cost_usd: f64) -> Vec<u32> {
        self.alarms
            .iter()
            .copied()
            .filter(|&a| self.reaches(a, used_tokens, used_cost_usd))
            .collect()
    }

    /// The share of the budget a usage takes, in percent: the larger of the two
    /// limits' shares.
    pub fn used_percent(&self, used_tokens: u64, used_cost_usd: f64) -> f64 {
        let tokens = self
            .tokens
            .map_or(0.0, |max| used_tokens as f64 * 100.0 / max as f64);
        let cost = self.cost_usd.map_or(0.0, |max| used_cost_usd * 100.0 / max);
        tokens.max(cost)
    }

    /// The limits, for people: `1000 tokens`, `$5.00`, `1000 tokens or $5.00`.
    pub fn limit_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.tokens {
            parts.push(format!("{t} tokens"));
        }
        if let Some(c) = self.cost_usd {
            parts.push(dollars(c));
        }
        parts.join(" or ")
    }
}

/// US dollars for people: cents when that is exact enough, else four decimals.
pub fn dollars(usd: f64) -> String {
    if (usd * 100.0).fract() == 0.0 {
        format!("${usd:.2}")
    } else {
        format!("${usd:.4}")
    }
}

/// How a budget stands in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum BudgetState {
    /// No alarm reached.
    Ok,
    /// An alarm below 100 % fired this window.
    Alarm,
    /// Spent: the queue is paused and no model call of its tasks starts until the
    /// next window, or until the budget is raised or removed.
    Exhausted,
}

impl BudgetState {
    /// The name used on the wire and in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetState::Ok => "ok",
            BudgetState::Alarm => "alarm",
            BudgetState::Exhausted => "exhausted",
        }
    }
}

/// A queue's budget as stored, with its current window and what was used in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BudgetInfo {
    /// The queue it limits.
    pub queue: String,
    /// The limits, window and alarms as set.
    #[serde(flatten)]
    pub spec: BudgetSpec,
    /// When the current window started.
    pub window_start: Timestamp,
    /// When it ends and the next starts (the usage counts from 0 again); null for
    /// a `total` window, which never ends.
    pub window_end: Option<Timestamp>,
    /// Tokens used in this window.
    pub used_tokens: u64,
    /// US dollars used in this window.
    pub used_cost_usd: f64,
    /// Model calls made in this window.
    pub model_calls: u64,
    /// The share of the budget used, in percent (of the limit most used).
    pub used_percent: f64,
    /// `ok`, `alarm` or `exhausted`.
    pub state: BudgetState,
    /// The alarms that fired in this window, ascending.
    pub alarms_fired: Vec<u32>,
}

/// An RFC 3339 form of `t` in UTC, to the second: `2026-11-27T00:00:00Z`.
pub fn rfc3339_secs(t: Timestamp) -> String {
    DateTime::from_timestamp_millis(t.0)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.0.to_string())
}

impl BudgetInfo {
    /// A budget's record from what the store keeps; the percentage and the state
    /// are derived from the usage.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        queue: String,
        spec: BudgetSpec,
        window_start: Timestamp,
        window_end: Option<Timestamp>,
        used_tokens: u64,
        used_cost_usd: f64,
        model_calls: u64,
        alarms_fired: Vec<u32>,
    ) -> BudgetInfo {
        let state = if spec.is_spent(used_tokens, used_cost_usd) {
            BudgetState::Exhausted
        } else if alarms_fired.is_empty() {
            BudgetState::Ok
        } else {
            BudgetState::Alarm
        };
        BudgetInfo {
            used_percent: spec.used_percent(used_tokens, used_cost_usd),
            queue,
            spec,
            window_start,
            window_end,
            used_tokens,
            used_cost_usd,
            model_calls,
            state,
            alarms_fired,
        }
    }

    /// Whether the window ended by `now`: the usage counts from 0 in the next one.
    pub fn window_passed(&self, now: Timestamp) -> bool {
        self.window_end.is_some_and(|end| end <= now)
    }

    /// Whether a model call of the queue's tasks may start at `now`: the budget is
    /// not spent, or its window has ended.
    pub fn allows_call(&self, now: Timestamp) -> bool {
        self.window_passed(now) || !self.spec.is_spent(self.used_tokens, self.used_cost_usd)
    }

    /// The usage against each limit: `800 of 1000 tokens`, `$0.4000 of $1.00`.
    pub fn usage_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.spec.tokens {
            parts.push(format!("{} of {t} tokens", self.used_tokens));
        }
        if let Some(c) = self.spec.cost_usd {
            parts.push(format!("{} of {}", dollars(self.used_cost_usd), dollars(c)));
        }
        parts.join(" and ")
    }

    /// The window in words: `this day (from 2026-11-27T00:00:00Z)`, `in total
    /// (since 2026-11-27T10:03:12Z)`.
    pub fn window_text(&self) -> String {
        let start = rfc3339_secs(self.window_start);
        match self.spec.window {
            BudgetWindow::Total => format!("in total (since {start})"),
            w => format!("{} (from {start})", w.phrase()),
        }
    }

    /// Why a model call may not start: `queue "llm" is over its budget: 1000 of
    /// 1000 tokens used this day (from 2026-11-27T00:00:00Z); it resumes at
    /// 2026-11-28T00:00:00Z`.
    pub fn over_budget_reason(&self) -> String {
        let then = match self.window_end {
            Some(end) => format!("it resumes at {}", rfc3339_secs(end)),
            None => self.raise_hint(),
        };
        format!(
            "queue {:?} is over its budget: {} used {}; {then}",
            self.queue,
            self.usage_text(),
            self.window_text()
        )
    }

    /// How to raise or remove the budget: `raise it with 'meanwhile budget set llm
    /// --tokens N' or remove it with 'meanwhile budget rm llm'`.
    pub fn raise_hint(&self) -> String {
        let option = if self.spec.tokens.is_some() {
            "--tokens N"
        } else {
            "--cost USD"
        };
        format!(
            "raise it with 'meanwhile budget set {q} {option}' or remove it with 'meanwhile budget rm {q}'",
            q = self.queue
        )
    }

    /// Why a spent budget's queue cannot be resumed by hand.
    pub fn resume_refusal(&self) -> String {
        let until = match self.window_end {
            Some(end) => format!(" until {}", rfc3339_secs(end)),
            None => String::new(),
        };
        format!(
            "queue {:?} is over its budget ({} used {}) and stays paused{until}; to resume it now, {}",
            self.queue,
            self.usage_text(),
            self.window_text(),
            self.raise_hint()
        )
    }

    /// The message of the alarm at `percent`: `queue "llm" reached 80% of its
    /// budget: 800 of 1000 tokens used this day (from ...)`.
    pub fn alarm_message(&self, percent: u32) -> String {
        let mut s = format!(
            "queue {:?} reached {percent}% of its budget: {} used {}",
            self.queue,
            self.usage_text(),
            self.window_text()
        );
        if self.state == BudgetState::Exhausted {
            s.push_str("; the queue is paused until ");
            match self.window_end {
                Some(end) => s.push_str(&format!(
                    "{} or until the budget is raised",
                    rfc3339_secs(end)
                )),
                None => s.push_str("the budget is raised or removed"),
            }
        }
        s
    }

    /// The cause of the alarm at `percent`, one per queue and percentage.
    pub fn alarm_subject(queue: &str, percent: u32) -> String {
        format!("budget:{queue}:{percent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp(
            DateTime::parse_from_rfc3339(s)
                .unwrap_or_else(|e| panic!("{s}: {e}"))
                .timestamp_millis(),
        )
    }

    /// (window, a time in it) → (its start, its end).
    fn check(window: BudgetWindow, t: &str, start: &str, end: Option<&str>) {
        let since = at("2020-01-01T12:34:56Z");
        let s = window.start_of(at(t), since);
        assert_eq!(rfc3339_secs(s), start, "{window} start of {t}");
        assert_eq!(
            window.end_of(s).map(rfc3339_secs).as_deref(),
            end,
            "{window} end of {t}"
        );
    }

    #[test]
    fn windows_follow_the_utc_calendar() {
        use BudgetWindow::*;
        check(
            Hour,
            "2026-11-27T13:59:59.999Z",
            "2026-11-27T13:00:00Z",
            Some("2026-11-27T14:00:00Z"),
        );
        check(
            Hour,
            "2026-11-27T14:00:00Z",
            "2026-11-27T14:00:00Z",
            Some("2026-11-27T15:00:00Z"),
        );
        check(
            Day,
            "2026-11-27T23:59:59Z",
            "2026-11-27T00:00:00Z",
            Some("2026-11-28T00:00:00Z"),
        );
        // A time zone's offset does not move a UTC day.
        check(
            Day,
            "2026-11-28T00:30:00+01:00",
            "2026-11-27T00:00:00Z",
            Some("2026-11-28T00:00:00Z"),
        );
        check(
            Day,
            "2026-12-31T12:00:00Z",
            "2026-12-31T00:00:00Z",
            Some("2027-01-01T00:00:00Z"),
        );
        check(
            Month,
            "2026-11-27T10:00:00Z",
            "2026-11-01T00:00:00Z",
            Some("2026-12-01T00:00:00Z"),
        );
        check(
            Month,
            "2026-12-31T23:59:59Z",
            "2026-12-01T00:00:00Z",
            Some("2027-01-01T00:00:00Z"),
        );
        check(
            Month,
            "2027-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
            Some("2027-02-01T00:00:00Z"),
        );
        // February: 29 days in a leap year (2028, 2000), 28 otherwise (2027, 2100).
        check(
            Month,
            "2028-02-29T23:00:00Z",
            "2028-02-01T00:00:00Z",
            Some("2028-03-01T00:00:00Z"),
        );
        check(
            Day,
            "2028-02-29T23:00:00Z",
            "2028-02-29T00:00:00Z",
            Some("2028-03-01T00:00:00Z"),
        );
        check(
            Day,
            "2027-02-28T23:00:00Z",
            "2027-02-28T00:00:00Z",
            Some("2027-03-01T00:00:00Z"),
        );
        check(
            Day,
            "2000-02-28T10:00:00Z",
            "2000-02-28T00:00:00Z",
            Some("2000-02-29T00:00:00Z"),
        );
        check(
            Day,
            "2100-02-28T10:00:00Z",
            "2100-02-28T00:00:00Z",
            Some("2100-03-01T00:00:00Z"),
        );
        // Before the epoch too.
        check(
            Hour,
            "1969-12-31T23:30:00Z",
            "1969-12-31T23:00:00Z",
            Some("1970-01-01T00:00:00Z"),
        );
        check(
            Month,
            "1969-12-15T00:00:00Z",
            "1969-12-01T00:00:00Z",
            Some("1970-01-01T00:00:00Z"),
        );
        // A total window starts when the budget was set and never ends.
        check(Total, "2030-05-05T05:05:05Z", "2020-01-01T12:34:56Z", None);
    }

    #[test]
    fn a_month_window_is_its_calendar_length() {
        let days = |m: &str| {
            let s = BudgetWindow::Month.start_of(at(m), Timestamp(0));
            (BudgetWindow::Month.end_of(s).unwrap().0 - s.0) / DAY_MS
        };
        assert_eq!(days("2026-01-15T00:00:00Z"), 31);
        assert_eq!(days("2026-02-15T00:00:00Z"), 28);
        assert_eq!(days("2028-02-15T00:00:00Z"), 29);
        assert_eq!(days("2026-04-15T00:00:00Z"), 30);
    }

    #[test]
    fn times_beyond_the_calendar_do_not_panic() {
        for w in [
            BudgetWindow::Hour,
            BudgetWindow::Day,
            BudgetWindow::Month,
            BudgetWindow::Total,
        ] {
            for t in [i64::MIN, i64::MAX, i64::MAX - 1] {
                let s = w.start_of(Timestamp(t), Timestamp(0));
                let _ = w.end_of(s);
            }
        }
    }

    fn spec(json: &str) -> Result<BudgetSpec, String> {
        let s: BudgetSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        s.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn specs_validate_naming_the_field_and_the_fix() {
        let s = spec(r#"{"tokens": 1000}"#).unwrap();
        assert_eq!(s.window, BudgetWindow::Day);
        assert_eq!(s.alarms, vec![50, 80, 100]);
        let s = spec(r#"{"cost_usd": 2.5, "window": "month", "alarms": [100, 10.0, 75]}"#).unwrap();
        assert_eq!(s.alarms, vec![10, 75, 100]);
        assert!(
            spec(r#"{"tokens": 5, "alarms": []}"#)
                .unwrap()
                .alarms
                .is_empty()
        );
        for (json, expect) in [
            (
                "{}",
                "tokens: give a token limit (tokens), a cost limit in USD (cost_usd), or both",
            ),
            (r#"{"tokens": null}"#, "tokens: give a token limit"),
            (
                r#"{"tokens": 0}"#,
                "tokens: must be a whole number from 1 to",
            ),
            (
                r#"{"tokens": 9223372036854775808}"#,
                "tokens: must be a whole number from 1",
            ),
            (
                r#"{"cost_usd": 0}"#,
                "cost_usd: must be a number of US dollars above 0",
            ),
            (
                r#"{"cost_usd": -1.5}"#,
                "cost_usd: must be a number of US dollars above 0",
            ),
            (
                r#"{"tokens": 1, "alarms": [0]}"#,
                "alarms: 0 is not a percentage from 1 to 100",
            ),
            (
                r#"{"tokens": 1, "alarms": [101]}"#,
                "alarms: 101 is not a percentage",
            ),
            (
                r#"{"tokens": 1, "alarms": [80, 50, 80]}"#,
                "alarms: 80% is given twice",
            ),
            (
                r#"{"tokens": 1, "alarms": [50.5]}"#,
                "expected a whole number",
            ),
            (
                r#"{"tokens": 1, "window": "week"}"#,
                "unknown variant `week`",
            ),
            (r#"{"tokens": 1, "limit": 3}"#, "unknown field `limit`"),
        ] {
            let e = spec(json).unwrap_err();
            assert!(e.contains(expect), "{json}: {e}");
        }
    }

    #[test]
    fn alarms_are_reached_by_either_limit() {
        let s = BudgetSpec {
            tokens: Some(1000),
            cost_usd: Some(2.0),
            ..BudgetSpec::default()
        };
        assert_eq!(s.reached(499, 0.99), Vec::<u32>::new());
        assert_eq!(s.reached(500, 0.0), vec![50]);
        assert_eq!(s.reached(0, 1.6), vec![50, 80]);
        assert!(!s.is_spent(999, 1.99));
        assert!(s.is_spent(1000, 0.0));
        assert!(s.is_spent(0, 2.0));
        assert_eq!(s.used_percent(250, 1.0), 50.0);
        // No overflow at the largest limit and usage.
        let big = BudgetSpec {
            tokens: Some(MAX_BUDGET_TOKENS),
            ..BudgetSpec::default()
        };
        assert!(big.is_spent(u64::MAX, 0.0));
        assert!(!big.is_spent(MAX_BUDGET_TOKENS - 1, 0.0));
    }

    #[test]
    fn the_reason_says_what_was_used_and_when_it_resumes() {
        let s = BudgetSpec {
            tokens: Some(1000),
            ..BudgetSpec::default()
        };
        let start = at("2026-11-27T00:00:00Z");
        let info = BudgetInfo::new(
            "llm".into(),
            s.clone(),
            start,
            BudgetWindow::Day.end_of(start),
            1000,
            0.0,
            7,
            vec![50, 80, 100],
        );
        assert_eq!(info.state, BudgetState::Exhausted);
        assert_eq!(
            info.over_budget_reason(),
            "queue \"llm\" is over its budget: 1000 of 1000 tokens used this day (from 2026-11-27T00:00:00Z); it resumes at 2026-11-28T00:00:00Z"
        );
        assert!(!info.allows_call(at("2026-11-27T23:59:59Z")));
        assert!(info.allows_call(at("2026-11-28T00:00:00Z")));
        let total = BudgetInfo::new(
            "llm".into(),
            BudgetSpec {
                tokens: None,
                cost_usd: Some(5.0),
                window: BudgetWindow::Total,
                ..s
            },
            start,
            None,
            0,
            0.3,
            1,
            vec![],
        );
        assert_eq!(total.state, BudgetState::Ok);
        assert_eq!(total.usage_text(), "$0.30 of $5.00");
        assert!(total.allows_call(Timestamp(i64::MAX)));
        assert!(
            total
                .over_budget_reason()
                .ends_with("in total (since 2026-11-27T00:00:00Z); raise it with 'meanwhile budget set llm --cost USD' or remove it with 'meanwhile budget rm llm'")
        );
    }

    #[test]
    fn a_budget_survives_json() {
        let s = BudgetSpec {
            tokens: Some(10),
            cost_usd: Some(0.1 + 0.2),
            window: BudgetWindow::Hour,
            alarms: vec![25, 100],
        };
        let info = BudgetInfo::new("q".into(), s, Timestamp(0), None, 3, 0.1, 2, vec![25]);
        let text = serde_json::to_string(&info).unwrap();
        let back: BudgetInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(back, info);
        assert!(text.contains("\"window_end\":null"), "{text}");
    }
}
