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
    Timestamp::from(std::time::SystemTime::now())
}

/// A plain text table: columns padded to their widest cell; the last column is not
/// padded. Widths count characters, so symbols line up.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    table_fit(header, rows, None)
}

/// How wide `s` shows in a terminal: CJK and emoji take two columns.
pub fn width(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` cut to show at most `max` columns, ending with `…` when cut.
pub fn cut_to_width(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// [`table`], fitted to `fit`: `(columns, cell)`, the terminal's width and the
/// column to cut (with `…`) so that every line fits, when one is known.
pub fn table_fit(header: &[&str], rows: &[Vec<String>], fit: Option<(usize, usize)>) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(width(c));
        }
    }
    // The column cut to fit, and the width it gets: cells are cut as they are laid out.
    let mut cut_to = None;
    if let Some((columns, cut)) = fit
        && cut < n
    {
        // Two spaces between columns; the cut column keeps at least its header.
        let others: usize = widths
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != cut)
            .map(|(_, w)| w + 2)
            .sum();
        let room = columns.saturating_sub(others + 2).max(width(header[cut]));
        if widths[cut] > room {
            widths[cut] = room;
            cut_to = Some((cut, room));
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let cell;
            let c = match cut_to {
                Some((at, room)) if at == i => {
                    cell = cut_to_width(c, room);
                    cell.as_str()
                }
                _ => *c,
            };
            if i + 1 < n {
                l.push_str(c);
                l.push_str(&" ".repeat(widths[i].saturating_sub(width(c)) + 2));
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
    Timestamp::parse_rfc3339(s).map_err(|e| {
        format!(
            "expected a time like 2030-01-02T03:04:05Z or seconds since the epoch, got {s:?} ({e})"
        )
    })
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
    fn wide_characters_line_up_and_a_table_fits_its_terminal() {
        let rows = vec![
            vec!["1".into(), "部署する".into(), "q".into()],
            vec!["2".into(), "deploy 🚀".into(), "q".into()],
        ];
        let t = table(&["ID", "NAME", "QUEUE"], &rows);
        let at: Vec<usize> = t
            .lines()
            .map(|l| width(&l[..l.rfind('q').or(l.find("QUEUE")).unwrap()]))
            .collect();
        assert!(at.windows(2).all(|w| w[0] == w[1]), "{t}");
        let t = table_fit(
            &["ID", "NAME", "QUEUE"],
            &[vec![
                "1".into(),
                "a very long name indeed".into(),
                "q".into(),
            ]],
            Some((20, 1)),
        );
        assert!(t.lines().all(|l| width(l) <= 20), "{t}");
        assert!(t.contains("…"), "{t}");
        assert_eq!(cut_to_width("部署する", 5), "部署…");
    }

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
