//! Durations, exact to the millisecond: `500ms`, `30s`, `10.5s`, `5m`, `1h30m45s`, `2d`,
//! or a plain number of seconds. What is parsed is what is stored and served again:
//! [`format_duration_exact`] writes a string that parses back to the same value.

use std::fmt;
use std::time::Duration;

/// The largest duration accepted anywhere (about 73 million years): far beyond any
/// useful timeout, yet with room to add it to a clock reading in milliseconds.
pub const MAX_DURATION_MS: u64 = (i64::MAX / 4) as u64;

/// The grammar of a duration string, as an ECMA-262 / Rust regex: either a plain
/// number of seconds (`2.5`), or units from the largest to the smallest, each at most
/// once, without spaces (`1d2h30m15.5s`, `250ms`). Only seconds take a fraction, of at
/// most three digits, so every accepted string is a whole number of milliseconds.
/// The digit counts keep the sum below [`MAX_DURATION_MS`]. The OpenAPI document
/// publishes this pattern (with a minimum length of 1, since every group is optional),
/// and [`parse_duration`] accepts exactly the non-empty strings it matches.
pub const DURATION_PATTERN: &str = r"^([0-9]{1,12}(\.[0-9]{1,3})?|([0-9]{1,9}d)?([0-9]{1,10}h)?([0-9]{1,11}m)?([0-9]{1,12}(\.[0-9]{1,3})?s)?([0-9]{1,15}ms)?)$";

/// Why a duration was refused; the message says what a good one looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    input: String,
    why: &'static str,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "expected a duration like 30s, 10.5s, 5m or 1h30m (units d, h, m, s, ms, largest first), got {:?}",
            self.input
        )?;
        if !self.why.is_empty() {
            write!(f, ": {}", self.why)?;
        }
        Ok(())
    }
}

impl std::error::Error for DurationError {}

/// The units, largest first, with their size in milliseconds and the most digits
/// the grammar allows before them.
const UNITS: [(&str, u64, usize); 5] = [
    ("d", 86_400_000, 9),
    ("h", 3_600_000, 10),
    ("m", 60_000, 11),
    ("s", 1_000, 12),
    ("ms", 1, 15),
];

/// Parses a duration written like `30s`, `10.5s`, `5m`, `1h30m`, `250ms` or `2.5`
/// (seconds). Exact: the result is a whole number of milliseconds, and nothing that
/// [`DURATION_PATTERN`] does not match is accepted.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |why: &'static str| DurationError {
        input: input.to_owned(),
        why,
    };
    if input.is_empty() {
        return Err(err("it is empty"));
    }
    // A plain number: seconds.
    if input.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let ms = seconds_to_ms(input, 12).ok_or_else(|| err(""))?;
        return Ok(Duration::from_millis(ms));
    }
    let mut rest = input;
    let mut total: u64 = 0;
    // Index into UNITS of the next unit allowed: each at most once, largest first.
    let mut next = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("a number needs a unit after it"))?;
        if digits == 0 {
            return Err(err("each unit needs a number before it"));
        }
        let number = &rest[..digits];
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(pos) = UNITS.iter().position(|(u, _, _)| *u == unit) else {
            return Err(err("units are d, h, m, s and ms"));
        };
        if pos < next {
            return Err(err("units go from the largest to the smallest, each once"));
        }
        next = pos + 1;
        let (_, scale, max_digits) = UNITS[pos];
        let ms = if unit == "s" {
            seconds_to_ms(number, max_digits).ok_or_else(|| err(""))?
        } else {
            if number.len() > max_digits || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("only seconds take a fraction"));
            }
            number.parse::<u64>().map_err(|_| err(""))? * scale
        };
        total += ms;
    }
    debug_assert!(total <= MAX_DURATION_MS);
    Ok(Duration::from_millis(total))
}

/// `12.345` seconds as 12345 ms: at most `max_digits` whole digits, at most three
/// after the point.
fn seconds_to_ms(number: &str, max_digits: usize) -> Option<u64> {
    let (whole, frac) = match number.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (number, None),
    };
    if whole.is_empty() || whole.len() > max_digits || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut ms = whole.parse::<u64>().ok()? * 1000;
    if let Some(frac) = frac {
        if frac.is_empty() || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let scale = [100, 10, 1];
        for (i, b) in frac.bytes().enumerate() {
            ms += u64::from(b - b'0') * scale[i];
        }
    }
    Some(ms)
}

/// A number of seconds from JSON as whole milliseconds (rounded to the nearest),
/// refusing negative, non-finite and too large values.
pub fn duration_from_secs_f64(secs: f64) -> Result<Duration, DurationError> {
    let ms = (secs * 1000.0).round();
    // The sign is judged on the number given: `-1e-323` rounds to `-0.0`, which
    // compares equal to 0 and would pass as "no time at all".
    if !secs.is_finite() || secs < 0.0 || ms > MAX_DURATION_MS as f64 {
        return Err(DurationError {
            input: secs.to_string(),
            why: "a number of seconds must be between 0 and about 2.3e15 (MAX_DURATION_MS)",
        });
    }
    Ok(Duration::from_millis(ms as u64))
}

/// The largest duration the grammar can write: each unit with all the digits it
/// takes (`999999999d9999999999h99999999999m999999999999.999s999999999999999ms`).
/// Every string [`DURATION_PATTERN`] matches is at most this long, and
/// [`format_duration_exact`] writes every duration up to it.
pub const MAX_WRITABLE_DURATION_MS: u64 = 999_999_999 * 86_400_000
    + 9_999_999_999 * 3_600_000
    + 99_999_999_999 * 60_000
    + 999_999_999_999_999
    + 999_999_999_999_999;

/// Writes a duration exactly, to the millisecond, in the form [`parse_duration`]
/// reads: `0s`, `250ms`, `10.5s`, `1h30m45s`, `1d1h30m`. Each unit takes as much as
/// its digits allow, so every duration up to [`MAX_WRITABLE_DURATION_MS`] is written
/// (past a billion days the hours go on counting). Sub-millisecond parts are dropped
/// (specs refuse them at validation).
pub fn format_duration_exact(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let cap = |digits: usize| 10u64.pow(digits as u32) - 1;
    let mut out = String::new();
    for (unit, scale, digits) in &UNITS[..3] {
        let n = (ms / scale).min(cap(*digits));
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            ms -= n * scale;
        }
    }
    let (_, _, s_digits) = UNITS[3];
    let secs = (ms / 1000).min(cap(s_digits));
    let frac = if secs == cap(s_digits) {
        (ms - secs * 1000).min(999)
    } else {
        ms % 1000
    };
    if secs > 0 || frac > 0 {
        if frac == 0 {
            out.push_str(&format!("{secs}s"));
        } else {
            let frac = format!("{frac:03}");
            out.push_str(&format!("{secs}.{}s", frac.trim_end_matches('0')));
        }
    }
    let rest = ms - secs * 1000 - frac;
    if rest > 0 {
        out.push_str(&format!("{rest}ms"));
    }
    out
}

/// Formats a duration for people, rounded: `850ms`, `41s`, `2m03s`, `1h02m`. Never
/// stored: use [`format_duration_exact`] for anything that is read back.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if secs < 60 {
        let tenths = (ms % 1000) / 100;
        return if secs < 10 && tenths > 0 {
            format!("{secs}.{tenths}s")
        } else {
            format!("{secs}s")
        };
    }
    if secs < 3600 {
        return format!("{}m{:02}s", secs / 60, secs % 60);
    }
    if secs < 86400 {
        return format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60);
    }
    format!("{}d{:02}h", secs / 86400, (secs % 86400) / 3600)
}

/// Serde support for a `Duration` written as `"30s"` or as a number of seconds, and
/// served as an exact string.
pub mod serde_duration {
    use super::{duration_from_secs_f64, format_duration_exact, parse_duration};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }

    /// Serializes as an exact duration string.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration_exact(*d))
    }

    /// Accepts `"30s"`-style strings and plain numbers of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Secs(s) => duration_from_secs_f64(s).map_err(serde::de::Error::custom),
            Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Serde support for an optional `Duration` (see [`serde_duration`]).
pub mod serde_opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    struct Wrap(#[serde(with = "super::serde_duration")] Duration);

    /// Serializes `None` as null and `Some` as an exact duration string.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serde_duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Accepts null, `"30s"`-style strings and plain numbers of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Option<u64>) {
        let got = parse_duration(input).ok().map(|d| d.as_millis() as u64);
        assert_eq!(got, expect, "parsing {input:?}");
    }

    #[test]
    fn parses_exact_durations() {
        check("30s", Some(30_000));
        check("5m", Some(300_000));
        check("1h30m", Some(5_400_000));
        check("1h30m45s", Some(5_445_000));
        check("10.5s", Some(10_500));
        check("25h30m", Some(91_800_000));
        check("250ms", Some(250));
        check("1s250ms", Some(1_250));
        check("2.5", Some(2_500));
        check("0.001", Some(1));
        check("1d", Some(86_400_000));
        check("2m03s", Some(123_000));
        check("fast", None);
        check("", None);
        check("5x", None);
        check("-3", None);
        check("1m 30s", None);
        check("30s1m", None);
        check("1m1m", None);
        check("1.5h", None);
        check("0.0005s", None);
        check(".5s", None);
        check("5.s", None);
        check("1..2", None);
        check("s", None);
        check("9999999999d", None);
    }

    #[test]
    fn exact_format_parses_back() {
        for ms in [
            0,
            1,
            999,
            1_000,
            10_500,
            5_445_000,
            91_800_000,
            86_400_001,
            123_456_789_012,
            MAX_DURATION_MS / 100_000,
        ] {
            let d = Duration::from_millis(ms);
            let text = format_duration_exact(d);
            assert_eq!(parse_duration(&text), Ok(d), "{ms} ms as {text:?}");
        }
        assert_eq!(
            format_duration_exact(Duration::from_millis(5_445_000)),
            "1h30m45s"
        );
        assert_eq!(
            format_duration_exact(Duration::from_millis(10_500)),
            "10.5s"
        );
        assert_eq!(
            format_duration_exact(Duration::from_millis(91_800_000)),
            "1d1h30m"
        );
    }

    #[test]
    fn the_pattern_and_the_parser_agree() {
        let re = regex::Regex::new(DURATION_PATTERN).unwrap();
        for s in [
            "30s",
            "10.5s",
            "1h30m45s",
            "250ms",
            "2.5",
            "1d",
            "0",
            "1m 30s",
            "30s1m",
            "1.5h",
            "",
            "5x",
            ".5",
            "5.",
            "1m1m",
            "0.0005",
            "999999999d9999999999h",
        ] {
            // The schema adds `minLength: 1`: the pattern's groups are all optional.
            assert_eq!(
                re.is_match(s) && !s.is_empty(),
                parse_duration(s).is_ok(),
                "pattern and parser disagree on {s:?}"
            );
        }
    }

    #[test]
    fn the_largest_pattern_match_fits() {
        let s = "999999999d9999999999h99999999999m999999999999.999s999999999999999ms";
        let d = parse_duration(s).unwrap();
        assert!(d.as_millis() as u64 <= MAX_DURATION_MS);
        assert_eq!(d.as_millis() as u64, MAX_WRITABLE_DURATION_MS);
        assert_eq!(format_duration_exact(d), s);
    }

    #[test]
    fn durations_past_a_billion_days_are_written_exactly() {
        for ms in [
            1_000_000_000 * 86_400_000 - 1,
            1_000_000_000 * 86_400_000,
            1_000_000_000 * 86_400_000 + 1,
            MAX_WRITABLE_DURATION_MS - 1_000_000_000_000_000,
            MAX_WRITABLE_DURATION_MS - 1_000_000,
            MAX_WRITABLE_DURATION_MS - 1,
            MAX_WRITABLE_DURATION_MS,
        ] {
            let d = Duration::from_millis(ms);
            let text = format_duration_exact(d);
            assert_eq!(parse_duration(&text), Ok(d), "{ms} ms as {text:?}");
        }
    }

    #[test]
    fn numbers_of_seconds_round_to_milliseconds() {
        assert_eq!(duration_from_secs_f64(1.5), Ok(Duration::from_millis(1500)));
        assert_eq!(duration_from_secs_f64(0.0004), Ok(Duration::ZERO));
        assert!(duration_from_secs_f64(-1.0).is_err());
        // Issue 28.15: a negative number too small to round away from zero.
        assert!(duration_from_secs_f64(-1e-323).is_err());
        assert!(duration_from_secs_f64(-0.0001).is_err());
        assert!(duration_from_secs_f64(f64::INFINITY).is_err());
        assert!(duration_from_secs_f64(f64::NAN).is_err());
        assert!(duration_from_secs_f64(1e300).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_string_parses_as_the_pattern_says(s in "\\PC{0,24}|[0-9.dhms]{1,24}") {
            let re = regex::Regex::new(DURATION_PATTERN).unwrap();
            proptest::prop_assert_eq!(re.is_match(&s) && !s.is_empty(), parse_duration(&s).is_ok());
        }

        #[test]
        fn every_duration_round_trips(ms in 0..=MAX_DURATION_MS / 1000) {
            let d = Duration::from_millis(ms);
            let text = format_duration_exact(d);
            proptest::prop_assert_eq!(parse_duration(&text), Ok(d));
            let json = serde_json::to_string(&Some(Wrap(d))).unwrap();
            let back: Option<Wrap> = serde_json::from_str(&json).unwrap();
            proptest::prop_assert_eq!(back.map(|w| w.0), Some(d));
        }
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Wrap(#[serde(with = "serde_duration")] Duration);

    #[test]
    fn formats_for_people() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(2300)), "2.3s");
        assert_eq!(format_duration(Duration::from_secs(41)), "41s");
        assert_eq!(format_duration(Duration::from_secs(123)), "2m03s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h02m");
    }
}
