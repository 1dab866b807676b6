//! A queue's rate limit: at most N task starts in any stretch of time of one length,
//! written `60/m`, `10/30s` or `1000/d`, and served back in the same form.

use crate::duration::{MAX_DURATION_MS, format_duration_exact, parse_duration};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The most starts a rate limit may allow per window: nine digits, so that the
/// grammar ([`rate_pattern`]) can state the bound.
pub const MAX_RATE_COUNT: u32 = 999_999_999;

/// The grammar of a rate limit, as an ECMA-262 / Rust regex: a count from 1 to
/// [`MAX_RATE_COUNT`] without leading zeros, a slash, and either a bare unit (`s`,
/// `m`, `h`, `d`: one of it) or a duration in the duration grammar. The window must
/// also be longer than zero, which [`RATE_POSITIVE_PATTERN`] says.
pub fn rate_pattern() -> String {
    let duration = crate::DURATION_PATTERN
        .trim_start_matches('^')
        .trim_end_matches('$');
    format!("^[1-9][0-9]{{0,8}}/([smhd]|{duration})$")
}

/// What a rate's window must also match to be longer than zero: a bare unit, or a
/// duration with a digit that is not 0 (a duration is zero exactly when all its
/// digits are).
pub const RATE_POSITIVE_PATTERN: &str = "/([smhd]$|.*[1-9])";

/// A rate limit: at most `count` task starts in any `window`-long stretch of time.
/// Each claim of a task counts, retries included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    count: u32,
    window: Duration,
}

/// Why a rate limit was refused; the message says what a good one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "rate must be N/s, N/m, N/h, N/d or N/<duration> (like 60/m or 10/30s, N from 1 to {MAX_RATE_COUNT}), or none; got {input:?}: {why}"
)]
pub struct RateError {
    input: String,
    why: String,
}

impl RateLimit {
    /// At most `count` starts in any `window`. The count is 1 to [`MAX_RATE_COUNT`];
    /// the window a whole number of milliseconds from 1 ms to [`MAX_DURATION_MS`].
    pub fn new(count: u32, window: Duration) -> Result<RateLimit, RateError> {
        let text = || format!("{count}/{}", format_duration_exact(window));
        let bad = |why: &str| RateError {
            input: text(),
            why: why.to_string(),
        };
        if count == 0 {
            return Err(bad(
                "the count must be at least 1 (pause the queue to start nothing)",
            ));
        }
        if count > MAX_RATE_COUNT {
            return Err(bad("the count is too large"));
        }
        if window.is_zero() {
            return Err(bad("the window must be longer than 0s"));
        }
        if !window.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(bad("the window must be a whole number of milliseconds"));
        }
        if window.as_millis() > u128::from(MAX_DURATION_MS) {
            return Err(bad("the window is too long"));
        }
        Ok(RateLimit { count, window })
    }

    /// Starts allowed per window.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The window's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The window in whole milliseconds, as the store keeps it.
    pub fn window_ms(&self) -> i64 {
        // `new` keeps the window within MAX_DURATION_MS, which fits an i64.
        self.window.as_millis() as i64
    }
}

/// A bare unit after the slash: `60/m` is sixty a minute.
const UNITS: [(&str, u64); 4] = [
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

impl FromStr for RateLimit {
    type Err = RateError;

    /// Parses `N/s`, `N/m`, `N/h`, `N/d` or `N/<duration>` (`10/30s`, `5/1h30m`).
    fn from_str(input: &str) -> Result<RateLimit, RateError> {
        let bad = |why: &str| RateError {
            input: input.to_string(),
            why: why.to_string(),
        };
        let (count, window) = input
            .split_once('/')
            .ok_or_else(|| bad("it needs a slash between the count and the window"))?;
        if !count.is_empty() && count.bytes().all(|b| b == b'0') {
            return Err(bad(
                "the count must be at least 1 (pause the queue to start nothing)",
            ));
        }
        let digits_ok = !count.is_empty()
            && count.len() <= 9
            && count.bytes().all(|b| b.is_ascii_digit())
            && !count.starts_with('0');
        if !digits_ok {
            return Err(bad(
                "the count must be a whole number from 1 to 999999999, without leading zeros",
            ));
        }
        let count: u32 = count
            .parse()
            .map_err(|_| bad("the count must be a whole number"))?;
        let window = match UNITS.iter().find(|(u, _)| *u == window) {
            Some((_, ms)) => Duration::from_millis(*ms),
            None => parse_duration(window).map_err(|e| bad(&e.to_string()))?,
        };
        RateLimit::new(count, window).map_err(|e| RateError {
            input: input.to_string(),
            why: e.why,
        })
    }
}

impl fmt::Display for RateLimit {
    /// `60/m` when the window is one unit, else `10/30s`: a form that parses back to
    /// the same limit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.window.as_millis();
        match UNITS.iter().find(|(_, u)| u128::from(*u) == ms) {
            Some((unit, _)) => write!(f, "{}/{unit}", self.count),
            None => write!(f, "{}/{}", self.count, format_duration_exact(self.window)),
        }
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RateLimit, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = RateLimit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rate written N/s, N/m, N/h, N/d or N/<duration>, like \"60/m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RateLimit, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for RateLimit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RateLimit".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "At most N task starts (each attempt counts) in any stretch of time of the window's length: \"N/s\", \"N/m\", \"N/h\", \"N/d\", or N/ and a duration longer than zero (\"10/30s\", \"5/1h30m\"); N from 1 to 999999999 without leading zeros. Served back as N/unit when the window is one unit, else N/ and the exact duration.",
            "type": "string",
            "allOf": [{"pattern": rate_pattern()}, {"pattern": RATE_POSITIVE_PATTERN}],
            "examples": ["60/m", "10/30s"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<(u32, u64, &str), &str>) {
        match (input.parse::<RateLimit>(), expect) {
            (Ok(r), Ok((count, ms, shown))) => {
                assert_eq!((r.count(), r.window_ms()), (count, ms as i64), "{input}");
                assert_eq!(r.to_string(), shown, "{input}");
                assert_eq!(shown.parse::<RateLimit>(), Ok(r), "{shown} parses back");
            }
            (Err(e), Err(why)) => {
                let e = e.to_string();
                assert!(e.starts_with("rate must be N/s"), "{input}: {e}");
                assert!(e.contains(why), "{input}: {e}");
            }
            (got, expect) => panic!("{input}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn rates_parse_and_print_back() {
        check("60/m", Ok((60, 60_000, "60/m")));
        check("1/s", Ok((1, 1_000, "1/s")));
        check("5/h", Ok((5, 3_600_000, "5/h")));
        check("1000/d", Ok((1000, 86_400_000, "1000/d")));
        check("10/30s", Ok((10, 30_000, "10/30s")));
        check("10/1m", Ok((10, 60_000, "10/m")));
        check("3/1h30m", Ok((3, 5_400_000, "3/1h30m")));
        check("2/500ms", Ok((2, 500, "2/500ms")));
        check("7/90", Ok((7, 90_000, "7/1m30s")));
        check("999999999/s", Ok((999_999_999, 1_000, "999999999/s")));
    }

    #[test]
    fn bad_rates_say_what_is_wrong() {
        check("", Err("slash"));
        check("fast", Err("slash"));
        check("60", Err("slash"));
        check("0/m", Err("at least 1"));
        check("060/m", Err("leading zeros"));
        check("-1/m", Err("count"));
        check("1000000000/s", Err("count"));
        check("/m", Err("count"));
        check("60/", Err("it is empty"));
        check("60/minute", Err("expected a duration"));
        check("60/ms", Err("a number"));
        check("60/0s", Err("longer than 0s"));
        check("1/0", Err("longer than 0s"));
        check("60/m ", Err("expected a duration"));
        check(" 60/m", Err("count"));
    }

    /// The schema's patterns accept exactly what parsing accepts.
    #[test]
    fn the_pattern_is_the_grammar() {
        let shape = regex::Regex::new(&rate_pattern()).unwrap();
        let positive = regex::Regex::new(RATE_POSITIVE_PATTERN).unwrap();
        let cases = [
            "60/m",
            "1/s",
            "5/h",
            "1/d",
            "10/30s",
            "2/500ms",
            "7/90",
            "3/1h30m",
            "1/0.5s",
            "1/0.000s",
            "1/00m",
            "0/m",
            "060/m",
            "60/",
            "60/ms",
            "60/0",
            "1/0s",
            "6/m6",
            "1/1d1d",
            "1/1.5m",
            "99999999999/s",
            "1/s/s",
            "a/m",
            "1/ 1s",
            "1/1s ",
        ];
        for case in cases {
            let by_pattern = shape.is_match(case) && positive.is_match(case);
            let by_parse = case.parse::<RateLimit>().is_ok();
            assert_eq!(by_pattern, by_parse, "{case:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_parses_as_the_patterns_say(s in "\\PC{0,16}|[0-9]{1,10}/[0-9.dhms]{0,12}") {
            let shape = regex::Regex::new(&rate_pattern()).unwrap();
            let positive = regex::Regex::new(RATE_POSITIVE_PATTERN).unwrap();
            proptest::prop_assert_eq!(
                shape.is_match(&s) && positive.is_match(&s),
                s.parse::<RateLimit>().is_ok()
            );
        }

        #[test]
        fn every_rate_round_trips(count in 1..=MAX_RATE_COUNT, ms in 1..=MAX_DURATION_MS / 1000) {
            let r = RateLimit::new(count, Duration::from_millis(ms)).unwrap();
            proptest::prop_assert_eq!(r.to_string().parse::<RateLimit>(), Ok(r));
        }
    }

    #[test]
    fn serde_uses_the_text_form() {
        let r: RateLimit = serde_json::from_str(r#""10/30s""#).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), r#""10/30s""#);
        let e = serde_json::from_str::<RateLimit>(r#""often""#).unwrap_err();
        assert!(e.to_string().contains("rate must be"), "{e}");
        let e = serde_json::from_str::<RateLimit>("60").unwrap_err();
        assert!(e.to_string().contains("expected a rate written N/s"), "{e}");
    }
}
