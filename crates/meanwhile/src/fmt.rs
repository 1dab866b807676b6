//! Formatting for people: durations, times, tables.

use meanwhile_core::{TaskRecord, Timestamp, format_duration};
use std::time::Duration;

/// How long a task ran (or has been running), or `-`.
pub fn duration(t: &TaskRecord, now: Timestamp) -> String {
    match t.duration_ms(now) {
        Some(ms) => format_duration(Duration::from_millis(ms)),
        None => "-".into(),
    }
}

/// `3m ago`, `in 20s`.
pub fn ago(at: Timestamp, now: Timestamp) -> String {
    if at.0 <= now.0 {
        format!(
            "{} ago",
            format_duration(Duration::from_millis(at.millis_until(now)))
        )
    } else {
        format!(
            "in {}",
            format_duration(Duration::from_millis(now.millis_until(at)))
        )
    }
}

/// The current time.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_millis() as i64)
}

/// A plain text table: columns padded to their widest cell; the last column is not
/// padded. Widths count characters, so symbols line up.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 < n {
                l.push_str(c);
                l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            } else {
                l.push_str(c);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Parses `--at`: seconds since the epoch, or an RFC 3339 time
/// (`2030-01-02T03:04:05Z`, `2030-01-02T03:04:05+02:00`, or without seconds).
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(Timestamp(secs.saturating_mul(1000)));
    }
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => Ok(Timestamp(t.as_millisecond())),
        Err(e) => {
            let hint = if s.parse::<jiff::civil::DateTime>().is_ok() {
                "; give a zone (Z or +02:00)"
            } else {
                ""
            };
            Err(format!(
                "expected a time like 2030-01-02T03:04:05Z or seconds since the epoch, got {s:?} ({e}){hint}"
            ))
        }
    }
}

/// A number of bytes for people: `812 B`, `3.4 KiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("0"), Ok(Timestamp(0)));
        assert_eq!(
            parse_time("1970-01-02T00:00:00Z"),
            Ok(Timestamp(86_400_000))
        );
        assert_eq!(
            parse_time("2024-03-01T12:30+01:00"),
            Ok(Timestamp(1_709_292_600_000))
        );
        assert!(parse_time("tomorrow").is_err());
        assert!(parse_time("2030-13-45T99:99Z").is_err());
        assert!(parse_time("2030-02-30T00:00Z").is_err());
        assert_eq!(
            parse_time("2030-01-02T03:04:05.250Z"),
            Ok(Timestamp(1_893_553_445_250))
        );
        assert!(parse_time("2024-03-01T12:30").unwrap_err().contains("zone"));
    }

    #[test]
    fn tables_align() {
        let t = table(&["ID", "NAME"], &[vec!["7".into(), "build".into()]]);
        assert_eq!(t, "ID  NAME\n7   build\n");
    }
}
