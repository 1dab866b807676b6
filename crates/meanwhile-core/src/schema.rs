//! JSON Schemas of the wire values whose rules serde does not show (durations,
//! identifiers, ids, text that must not be blank), for the daemon's OpenAPI
//! document. Each says exactly what the decoding and validation accept, no more
//! and no less. Compiled only with the `schema` feature.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;

/// The grammar of a duration string (see the duration module).
const DURATION_PATTERN: &str = crate::DURATION_PATTERN;
/// The most seconds a duration written as a number may have.
const MAX_SECONDS: f64 = crate::MAX_DURATION_MS as f64 / 1000.0;
/// The most seconds a duration that a spec keeps may have, as a JSON number: the
/// float just below 130399999909940 (130399999909939.984375), the largest that
/// rounds to at most `MAX_STORED_DURATION_MS` milliseconds.
const MAX_STORED_SECONDS: f64 = f64::from_bits((130_399_999_909_940f64).to_bits() - 1);

/// The characters `str::trim` removes (Unicode `White_Space`), as a regex class body.
pub(crate) const WHITESPACE_CLASS: &str =
    r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// Text with at least one character that is not white space (`trim` leaves something).
fn not_blank() -> String {
    format!("[^{WHITESPACE_CLASS}]")
}

/// Text without NUL that is not blank.
fn command_pattern() -> String {
    format!(r"^[^\u0000]*[^\u0000{WHITESPACE_CLASS}][^\u0000]*$")
}

/// A duration a spec keeps: a string in the duration grammar, or seconds up to the
/// most its exact string form can write (so that it parses back).
pub(crate) struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: \"30s\", \"10.5s\", \"5m\", \"1h30m\", \"250ms\" (units d, h, m, s, ms, largest first, each once; only seconds take up to three decimals), or a number of seconds from 0 to 130399999909939.98 (about 1.5 billion days), rounded to the millisecond. Served back as an exact string.",
            "anyOf": [
                {"type": "string", "minLength": 1, "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0, "maximum": MAX_STORED_SECONDS}
            ],
            "examples": ["30s", "1h30m45s", 1.5]
        })
    }
}

/// A duration of a request that is not kept (a wait, an age): a string in the
/// duration grammar, or seconds.
pub(crate) struct WireDurationText;

impl JsonSchema for WireDurationText {
    fn schema_name() -> Cow<'static, str> {
        "WireDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: \"30s\", \"10.5s\", \"5m\", \"1h30m\", \"250ms\" (units d, h, m, s, ms, largest first, each once; only seconds take up to three decimals), or a number of seconds from 0 to about 2.3e15, rounded to the millisecond. Served back as an exact string.",
            "anyOf": [
                {"type": "string", "minLength": 1, "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}
            ],
            "examples": ["30s", "1h30m45s", 1.5]
        })
    }
}

/// A duration in a query string: the duration grammar only (a number there is
/// a string of digits, which the grammar covers).
pub(crate) struct DurationString;

impl JsonSchema for DurationString {
    fn schema_name() -> Cow<'static, str> {
        "DurationString".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: \"30s\", \"10.5s\", \"5m\", \"1h30m\", \"250ms\" or a number of seconds",
            "type": "string",
            "minLength": 1,
            "pattern": DURATION_PATTERN,
        })
    }
}

/// A regular expression (Rust `regex` syntax, which shares its common core with
/// ECMA-262).
pub(crate) struct Regex;

impl JsonSchema for Regex {
    fn schema_name() -> Cow<'static, str> {
        "Regex".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "regex",
        })
    }
}

/// A duration longer than zero (a timeout).
pub(crate) struct PositiveDurationText;

impl JsonSchema for PositiveDurationText {
    fn schema_name() -> Cow<'static, str> {
        "PositiveDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration longer than zero (at least 1ms): \"30s\", \"5m\", \"1h30m\", or a number of seconds from 0.0005 to 130399999909939.98 (about 1.5 billion days), rounded to the millisecond. Served back as an exact string.",
            "anyOf": [
                {"type": "string", "minLength": 1, "allOf": [{"pattern": DURATION_PATTERN}, {"pattern": "[1-9]"}]},
                {"type": "number", "minimum": 0.0005, "maximum": MAX_STORED_SECONDS}
            ],
            "examples": ["30m", 90]
        })
    }
}

/// A queue, label or session name.
pub(crate) struct Identifier;

impl JsonSchema for Identifier {
    fn schema_name() -> Cow<'static, str> {
        "Identifier".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "1 to 100 letters, digits and - _ . : / @",
            "type": "string",
            "pattern": "^[A-Za-z0-9_.:/@-]{1,100}$",
            "examples": ["default", "ci-1"]
        })
    }
}

/// A task's concurrency key: an identifier of up to 200 characters.
pub(crate) struct ConcurrencyKey;

impl JsonSchema for ConcurrencyKey {
    fn schema_name() -> Cow<'static, str> {
        "ConcurrencyKey".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "1 to 200 letters, digits and - _ . : / @; tasks of a queue with the same key share its per_key limit",
            "type": "string",
            "pattern": "^[A-Za-z0-9_.:/@-]{1,200}$",
            "examples": ["customer-42"]
        })
    }
}

/// A queue's `per_key` in an update: a limit, or null to remove it.
pub(crate) struct PerKeyUpdate;

impl JsonSchema for PerKeyUpdate {
    fn schema_name() -> Cow<'static, str> {
        "PerKeyUpdate".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "At most this many tasks with the same concurrency key run at once; null removes the limit",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": u32::MAX},
                {"type": "null"}
            ]
        })
    }
}

/// A queue's `alert_after` in an update: a count, or null to remove it.
pub(crate) struct AlertAfterUpdate;

impl JsonSchema for AlertAfterUpdate {
    fn schema_name() -> Cow<'static, str> {
        "AlertAfterUpdate".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A failures alert fires when this many of the queue's tasks in a row failed; null removes it",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": u32::MAX},
                {"type": "null"}
            ]
        })
    }
}

/// A queue's `rate` in an update: a limit, or null to remove it.
pub(crate) struct RateUpdate;

impl JsonSchema for RateUpdate {
    fn schema_name() -> Cow<'static, str> {
        "RateUpdate".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let rate = generator.subschema_for::<crate::RateLimit>();
        json_schema!({
            "description": "At most N task starts in any window of the given length (\"60/m\", \"10/30s\"); null removes the limit",
            "anyOf": [rate, {"type": "null"}]
        })
    }
}

/// A command line: not blank, no NUL.
pub(crate) struct CommandText;

impl JsonSchema for CommandText {
    fn schema_name() -> Cow<'static, str> {
        "CommandText".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Text that is not blank and has no NUL character",
            "type": "string",
            "pattern": command_pattern(),
            "examples": ["cargo test"]
        })
    }
}

/// A program and its arguments: at least the program, no NUL anywhere.
pub(crate) struct ArgvText;

impl JsonSchema for ArgvText {
    fn schema_name() -> Cow<'static, str> {
        "Argv".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A program (not empty) and its arguments, none with a NUL character",
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "pattern": r"^[^\u0000]*$"},
            "prefixItems": [{"type": "string", "minLength": 1, "pattern": r"^[^\u0000]*$"}],
            "examples": [["make", "-j4"]]
        })
    }
}

/// A name or prompt: not blank, at most `MAX` characters (0 for no limit).
pub(crate) struct NonBlank<const MAX: usize>;

impl<const MAX: usize> JsonSchema for NonBlank<MAX> {
    fn schema_name() -> Cow<'static, str> {
        format!("NonBlank{MAX}").into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut s = json_schema!({
            "type": "string",
            "pattern": not_blank(),
        });
        if MAX > 0 {
            s.insert("maxLength".into(), MAX.into());
        }
        s
    }
}

/// An absolute path without NUL.
pub(crate) struct AbsolutePath;

impl JsonSchema for AbsolutePath {
    fn schema_name() -> Cow<'static, str> {
        "AbsolutePath".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^/[^\u0000]*$",
        })
    }
}

/// Environment variables: names without `=` or NUL, values without NUL.
pub(crate) struct EnvMap;

impl JsonSchema for EnvMap {
    fn schema_name() -> Cow<'static, str> {
        "Env".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "propertyNames": {"pattern": r"^[^=\u0000]+$"},
            "additionalProperties": {"type": "string", "pattern": r"^[^\u0000]*$"},
        })
    }
}

/// A budget's alarms: percentages from 1 to 100, each once, in any order.
pub(crate) struct Alarms;

impl JsonSchema for Alarms {
    fn schema_name() -> Cow<'static, str> {
        "BudgetAlarms".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Percentages of the budget at which a budget alert fires, once per window each: whole numbers from 1 to 100, each once (kept in ascending order)",
            "type": "array",
            "items": {"type": "integer", "minimum": 1, "maximum": 100},
            "uniqueItems": true,
            "maxItems": 100,
            "examples": [[50, 80, 100]]
        })
    }
}

/// A schedule's name.
pub(crate) struct ScheduleName;

impl JsonSchema for ScheduleName {
    fn schema_name() -> Cow<'static, str> {
        "ScheduleName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "1 to 64 letters, digits and - _ .",
            "type": "string",
            "pattern": "^[A-Za-z0-9_.-]{1,64}$",
            "examples": ["nightly-report"]
        })
    }
}

/// A cron expression: five or six fields. The pattern gives its shape; the fields
/// must also be ones croner reads (ranges, lists, steps, names, `L`, `W`, `#`).
pub(crate) struct CronText;

impl JsonSchema for CronText {
    fn schema_name() -> Cow<'static, str> {
        "CronExpression".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let ws = WHITESPACE_CLASS;
        json_schema!({
            "description": "A cron expression: minute hour day-of-month month day-of-week, or six fields with seconds first. Each field is *, a number, a range (1-5), a list (1,15), a step (*/15), a name (MON, JAN), or L, W and # where cron allows them.",
            "type": "string",
            "pattern": format!("^[{ws}]*[^{ws}]+([{ws}]+[^{ws}]+){{4,5}}[{ws}]*$"),
            "examples": ["0 9 * * MON-FRI", "*/15 * * * *"]
        })
    }
}

/// An IANA time zone name, as the tz database spells it.
pub(crate) struct TimeZoneName;

impl JsonSchema for TimeZoneName {
    fn schema_name() -> Cow<'static, str> {
        "TimeZone".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        json_schema!({
            "description": "An IANA time zone (Europe/Berlin, America/New_York, UTC)",
            "type": "string",
            "enum": names,
        })
    }
}

/// The task of a schedule: a task spec without the fields a schedule sets itself
/// (`idempotency_key`, `run_after`, `delay`) or cannot have (`after`), which may
/// only be absent, null or empty.
pub(crate) struct ScheduledTask;

impl JsonSchema for ScheduledTask {
    fn schema_name() -> Cow<'static, str> {
        "ScheduledTaskSpec".into()
    }

    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let mut s = crate::TaskSpec::json_schema(g);
        if let Some(props) = s
            .get_mut("properties")
            .and_then(serde_json::Value::as_object_mut)
        {
            let only_null = serde_json::json!({"type": "null", "description": "Set by the schedule for each firing; leave it out"});
            for field in ["idempotency_key", "run_after", "delay"] {
                props.insert(field.into(), only_null.clone());
            }
            props.insert(
                "after".into(),
                serde_json::json!({"type": "array", "maxItems": 0, "description": "A scheduled task cannot wait for other tasks; leave it out"}),
            );
        }
        s
    }
}

/// Secrets: variable names, as in `env`, and values that are not empty.
pub(crate) struct SecretMap;

impl JsonSchema for SecretMap {
    fn schema_name() -> Cow<'static, str> {
        "Secrets".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Variables given to the task like env, whose values are never shown: every answer, event and audit record shows \"***\", and the task's output is read with each value masked",
            "type": "object",
            "propertyNames": {"pattern": r"^[^=\u0000]+$"},
            "additionalProperties": {"type": "string", "minLength": 1, "pattern": r"^[^\u0000]*$"},
        })
    }
}

/// A size: `2G`, `512M`, or a number of bytes.
pub(crate) struct SizeText;

impl JsonSchema for SizeText {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A size: a whole number with K, M, G or T (binary units: 512M, 2G, 64KiB), or a number of bytes. Served back in the largest unit that divides it exactly.",
            "anyOf": [
                {"type": "string", "pattern": crate::confine::size_pattern()},
                {"type": "integer", "minimum": 1, "maximum": crate::confine::MAX_PLAIN_BYTES}
            ],
            "examples": ["2G", "512M"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_STORED_SECONDS, WHITESPACE_CLASS};

    #[test]
    fn the_largest_stored_number_of_seconds_is_exact() {
        let ms = (MAX_STORED_SECONDS * 1000.0).round() as u64;
        assert!(ms <= crate::MAX_STORED_DURATION_MS);
        let next = f64::from_bits(MAX_STORED_SECONDS.to_bits() + 1);
        assert!((next * 1000.0).round() as u64 > crate::MAX_STORED_DURATION_MS);
    }

    /// The class lists exactly the characters `char::is_whitespace` (what `trim`
    /// removes) accepts, so the schema and the validation agree.
    #[test]
    fn whitespace_class_is_what_trim_removes() {
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        let mut rest = WHITESPACE_CLASS;
        let one = |rest: &mut &str| -> u32 {
            let (c, n) = match rest.as_bytes() {
                [b'\\', b'u', ..] => (u32::from_str_radix(&rest[2..6], 16).unwrap(), 6),
                [b'\\', b't', ..] => (9, 2),
                [b'\\', b'n', ..] => (10, 2),
                [b'\\', b'f', ..] => (12, 2),
                [b'\\', b'r', ..] => (13, 2),
                _ => (rest.chars().next().unwrap() as u32, 1),
            };
            *rest = &rest[n..];
            c
        };
        while !rest.is_empty() {
            let a = one(&mut rest);
            if let Some(r) = rest.strip_prefix('-') {
                rest = r;
                let b = one(&mut rest);
                ranges.push((a, b));
            } else {
                ranges.push((a, a));
            }
        }
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let listed = ranges.iter().any(|(a, b)| (*a..=*b).contains(&(c as u32)));
            assert_eq!(listed, c.is_whitespace(), "U+{:04X}", c as u32);
        }
    }
}
