//! What confines a task: sizes of resource limits, and secrets, which are passed to
//! the task but never shown.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What a secret's value is shown as, everywhere but the task's environment.
pub const SECRET_MASK: &str = "***";

/// The units a size may be written in, largest first, with their bytes.
const UNITS: [(char, u64); 4] = [
    ('T', 1 << 40),
    ('G', 1 << 30),
    ('M', 1 << 20),
    ('K', 1 << 10),
];
/// Most digits of a size in each unit (none, K, M, G, T), so that every size the
/// grammar accepts fits in 64 bits.
const MAX_DIGITS: [(char, usize); 5] = [('B', 18), ('K', 15), ('M', 12), ('G', 9), ('T', 6)];

/// A number of bytes, written as people do: `512M`, `2G` (binary units: K is 1024
/// bytes), or a plain number of bytes. Served back in the largest unit that
/// divides it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `2G`, `512M`, `64KiB`, `1000` (case of the unit ignored).
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "{text:?} is not a size; write a whole number with K, M, G or T (binary units, such as 512M or 2G), or a number of bytes"
            )
        };
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(digits_end);
        if digits.is_empty() {
            return Err(bad());
        }
        let unit = unit.trim_start();
        let letter = match unit.to_ascii_uppercase().as_str() {
            "" | "B" => 'B',
            u => {
                let mut chars = u.chars();
                let l = chars.next().ok_or_else(bad)?;
                if !matches!(chars.as_str(), "" | "B" | "IB") {
                    return Err(bad());
                }
                l
            }
        };
        let per = match letter {
            'B' => 1,
            l => UNITS.iter().find(|(u, _)| *u == l).ok_or_else(bad)?.1,
        };
        let significant = digits.trim_start_matches('0');
        let most = MAX_DIGITS
            .iter()
            .find(|(u, _)| *u == letter)
            .map_or(0, |d| d.1);
        if significant.len() > most {
            return Err(format!(
                "{text:?} is too large; at most {} digits with {}",
                most,
                if letter == 'B' {
                    "no unit".to_string()
                } else {
                    letter.to_string()
                }
            ));
        }
        let n: u64 = if significant.is_empty() {
            0
        } else {
            significant.parse().map_err(|_| bad())?
        };
        if n == 0 {
            return Err(format!("{text:?}: a size must be more than 0"));
        }
        Ok(ByteSize(n * per))
    }
}

impl fmt::Display for ByteSize {
    /// In the largest unit that divides the size exactly: `2G`, `1536M`, `1000B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, per) in UNITS {
            if self.0 >= per && self.0.is_multiple_of(per) {
                return write!(f, "{}{unit}", self.0 / per);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            // `239` or `239.0`, as JSON Schema's integers are.
            Number(#[serde(deserialize_with = "crate::de::int")] u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(0) => Err(serde::de::Error::custom("a size must be more than 0")),
            Raw::Number(n) if n > MAX_PLAIN_BYTES => Err(serde::de::Error::custom(format!(
                "a size in bytes must be at most {MAX_PLAIN_BYTES}; write larger ones with a unit, such as 2T"
            ))),
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
#[test]
fn a_size_is_a_number_of_bytes_or_text() {
    for (json, bytes) in [("239", 239), ("239.0", 239), ("\"2G\"", 2 << 30)] {
        assert_eq!(
            serde_json::from_str::<ByteSize>(json).unwrap().0,
            bytes,
            "{json}"
        );
    }
    for bad in ["0", "239.5", "-1", "\"\"", "1e30", "null"] {
        assert!(serde_json::from_str::<ByteSize>(bad).is_err(), "{bad}");
    }
}

/// The largest size accepted as a plain number of bytes.
pub const MAX_PLAIN_BYTES: u64 = 999_999_999_999_999_999;

/// The grammar of a size string, as [`ByteSize::parse`] accepts it.
pub fn size_pattern() -> String {
    let alternatives: Vec<String> = MAX_DIGITS
        .iter()
        .map(|(unit, most)| {
            let digits = format!("0*[1-9][0-9]{{0,{}}}", most - 1);
            match unit {
                'B' => format!("{digits} *[Bb]?"),
                u => format!("{digits} *[{}{}]([Ii]?[Bb])?", u, u.to_ascii_lowercase()),
            }
        })
        .collect();
    format!("^[ \\t]*({})[ \\t]*$", alternatives.join("|"))
}

/// A secret's value: given to the task in its environment, and shown as `***`
/// everywhere else (serialized, debugged, displayed). Only [`Secret::expose`] and
/// serialization inside [`expose_secrets`] read it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// A secret of this value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The value, for the task's environment, the masking of its output and the
    /// store.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_MASK)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_MASK)
    }
}

impl Serialize for Secret {
    /// `***`, except inside [`expose_secrets`].
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if EXPOSED.get() {
            s.serialize_str(&self.0)
        } else {
            s.serialize_str(SECRET_MASK)
        }
    }
}

thread_local! {
    static EXPOSED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with secrets serialized as their values, on this thread: for the two
/// places a secret must travel, the store's record of a spec and a client's request
/// to its own daemon. Everywhere else a secret serializes as `***`.
pub fn expose_secrets<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            EXPOSED.set(self.0);
        }
    }
    let _restore = Restore(EXPOSED.replace(true));
    f()
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Replaces every occurrence of each of `secrets` in `text` with `***`, the
/// longest first where they overlap.
pub fn mask_secrets(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_string();
    let mut sorted: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        if out.contains(s) {
            out = out.replace(s, SECRET_MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_come_back_in_their_largest_exact_unit() {
        for (text, bytes, back) in [
            ("2G", 2 << 30, "2G"),
            ("2g", 2 << 30, "2G"),
            ("512M", 512 << 20, "512M"),
            ("1536MiB", 1536 << 20, "1536M"),
            ("64KB", 64 << 10, "64K"),
            ("1000", 1000, "1000B"),
            ("1024", 1024, "1K"),
            (" 3 T ", 3 << 40, "3T"),
            ("007M", 7 << 20, "7M"),
        ] {
            let s = ByteSize::parse(text).unwrap();
            assert_eq!(s.0, bytes, "{text}");
            assert_eq!(s.to_string(), back, "{text}");
            assert_eq!(ByteSize::parse(&s.to_string()).unwrap(), s);
        }
        for bad in [
            "",
            "G",
            "0",
            "0M",
            "2X",
            "2GG",
            "-1G",
            "1.5G",
            "9999999999G",
        ] {
            assert!(ByteSize::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_pattern_and_the_parser_agree() {
        let re = regex::Regex::new(&size_pattern()).unwrap();
        for text in [
            "2G",
            "2g",
            "512M",
            "1536MiB",
            "64KB",
            "1000",
            "1000B",
            "0001K",
            "999999T",
            "999999999999999999",
            "999999999999999999B",
        ] {
            assert!(re.is_match(text), "{text}");
            assert!(ByteSize::parse(text).is_ok(), "{text}");
        }
        for text in [
            "0",
            "0G",
            "1.5G",
            "1000000T",
            "X",
            "2Gb2",
            "1000000000000000000",
        ] {
            assert!(!re.is_match(text), "{text}");
            assert!(ByteSize::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_secret_is_never_shown() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(
            expose_secrets(|| serde_json::to_string(&s).unwrap()),
            "\"hunter2\""
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"", "only inside");
        assert_eq!(
            mask_secrets("pw=hunter2 hunter23 abc", &["hunter2", "hunter23", ""]),
            "pw=*** *** abc"
        );
    }
}
