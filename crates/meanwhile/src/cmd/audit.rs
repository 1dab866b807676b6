//! `meanwhile audit`: the audit trail (who did what and when), oldest first, paged
//! through the API; `meanwhile audit verify` checks its hash chain.

use super::Ctx;
use crate::fmt;
use meanwhile_core::{AuditFilter, AuditVerdict, MAX_AUDIT_LIMIT, TaskId, Timestamp};
use std::process::ExitCode;

/// Arguments of `audit`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// `verify`; lists the records when absent.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Only records from this time on: an RFC 3339 time (2030-01-02T03:04:05Z),
    /// seconds since the epoch, or a duration meaning that long ago (1h, 7d).
    #[arg(long, value_name = "TIME", value_parser = since)]
    pub since: Option<Timestamp>,
    /// Only records about this task.
    #[arg(long, value_name = "ID", value_parser = super::task_id, add = crate::complete::tasks())]
    pub task: Option<TaskId>,
    /// Print as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// An audit action.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Check the hash chain from the checkpoint retention left (its signature
    /// included) to the last record; exits 1 naming the first record that was
    /// changed or removed.
    Verify,
}

fn since(s: &str) -> Result<Timestamp, String> {
    if let Ok(d) = meanwhile_core::parse_duration(s)
        && !s.trim().chars().all(|c| c.is_ascii_digit())
    {
        return Ok(Timestamp(fmt::now().0.saturating_sub(d.as_millis() as i64)));
    }
    fmt::parse_time(s).map_err(|e| format!("{e}, or a duration meaning that long ago like 1h"))
}

/// A time for people: RFC 3339 in UTC, to the second.
fn time(t: Timestamp) -> String {
    meanwhile_core::rfc3339_secs(t)
}

/// Runs `audit`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    if let Some(Action::Verify) = args.action {
        let v = client.verify_audit().await?;
        return report(&v, args.json);
    }
    let mut filter = AuditFilter {
        since: args.since,
        task: args.task,
        after: None,
        limit: Some(MAX_AUDIT_LIMIT),
        newest_first: false,
    };
    let mut records = Vec::new();
    loop {
        let page = client.audit(&filter).await?;
        records.extend(page.records);
        match page.next {
            Some(next) => filter.after = Some(next),
            None => break,
        }
    }
    if args.json {
        super::print_json(&records)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                time(r.at),
                r.who.clone(),
                r.action.clone(),
                r.subject.clone(),
                r.summary.clone(),
            ]
        })
        .collect();
    out!(
        "{}",
        fmt::table(
            &["SEQ", "TIME", "WHO", "ACTION", "SUBJECT", "SUMMARY"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// The verdict in one line: `audit trail intact: ...` or `audit trail broken ...`.
pub fn verdict_line(v: &AuditVerdict) -> String {
    if v.intact {
        let from = match &v.checkpoint {
            Some(cp) => format!(" after the checkpoint at record {}", cp.seq),
            None => String::new(),
        };
        format!("audit trail intact: {} records{from}", v.records)
    } else {
        let at = v
            .first_bad_seq
            .map(|s| format!(" at record {s}"))
            .unwrap_or_default();
        format!(
            "audit trail broken{at}: {}",
            v.problem.as_deref().unwrap_or("unknown problem")
        )
    }
}

fn report(v: &AuditVerdict, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        super::print_json(v)?;
    } else if v.intact {
        outln!("{}", verdict_line(v));
    } else {
        errln!("{}", verdict_line(v));
    }
    Ok(if v.intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        assert_eq!(since("1970-01-02T00:00:00Z"), Ok(Timestamp(86_400_000)));
        assert_eq!(since("60"), Ok(Timestamp(60_000)));
        let ago = since("1h").unwrap();
        assert!(fmt::now().0 - ago.0 >= 3_600_000);
        let e = since("yesterday").unwrap_err();
        assert!(e.contains("like 1h"), "{e}");
    }
}
