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
    let bad = || {
        format!("expected a time like 2030-01-02T03:04:05Z or seconds since the epoch, got {s:?}")
    };
    if let Ok(secs) = s.trim().parse::<i64>() {
        return Ok(Timestamp(secs.saturating_mul(1000)));
    }
    let s = s.trim();
    let (date, rest) = s.split_once(['T', ' ']).ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if d.len() != 3 {
        return Err(bad());
    }
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (t, off) = rest.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':').ok_or_else(bad)?;
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        (t, sign * (h * 60 + m))
    } else {
        return Err(format!("{}; give a zone (Z or +02:00)", bad()));
    };
    let t: Vec<f64> = time
        .split(':')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if t.len() < 2 || t.len() > 3 {
        return Err(bad());
    }
    let days = days_from_civil(d[0], d[1], d[2]);
    let secs = days * 86400 + t[0] as i64 * 3600 + t[1] as i64 * 60 - offset_min * 60;
    let ms = (t.get(2).copied().unwrap_or(0.0) * 1000.0) as i64;
    Ok(Timestamp(secs * 1000 + ms))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
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
        assert!(parse_time("2024-03-01T12:30").unwrap_err().contains("zone"));
    }

    #[test]
    fn tables_align() {
        let t = table(&["ID", "NAME"], &[vec!["7".into(), "build".into()]]);
        assert_eq!(t, "ID  NAME\n7   build\n");
    }
}
