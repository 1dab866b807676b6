//! `meanwhile show ID`: one task, its spec and its attempts.

use super::{Ctx, task_id};
use crate::fmt;
use meanwhile_core::{TaskId, format_duration, format_duration_exact};
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task.
    #[arg(value_parser = task_id, add = crate::complete::tasks())]
    pub id: TaskId,
    /// Print it as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `show`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let d = client.task(args.id).await?;
    if args.json {
        super::print_json(&d)?;
        return Ok(ExitCode::SUCCESS);
    }
    let t = &d.task;
    let now = fmt::now();
    let mut lines = vec![
        format!("task {}  {} {}", t.id, t.state.symbol(), t.state),
        format!("name      {}", t.name),
    ];
    if let Some(c) = &t.spec.command {
        lines.push(format!("command   {c}"));
    }
    if let Some(a) = &t.spec.argv {
        lines.push(format!("argv      {a:?}"));
    }
    if let Some(cwd) = &t.spec.cwd {
        lines.push(format!("cwd       {}", cwd.display()));
    }
    lines.push(format!("queue     {} (priority {})", t.queue, t.priority));
    if !t.labels.is_empty() {
        lines.push(format!("labels    {}", t.labels.join(", ")));
    }
    if let Some(c) = &t.spec.on_end {
        lines.push(format!("on end    {c}"));
    }
    if let Some(k) = &t.concurrency_key {
        lines.push(format!("key       {k}"));
    }
    if let Some(s) = &t.session {
        lines.push(format!("session   {s}"));
    }
    // Durations the user gave, written exactly as they parse back.
    if let Some(to) = t.spec.timeout {
        lines.push(format!("timeout   {}", format_duration_exact(to)));
    }
    if let Some(g) = t.spec.grace {
        lines.push(format!("grace     {}", format_duration_exact(g)));
    }
    if let Some(s) = t.spec.stall {
        let then = match t.spec.stall_action {
            Some(meanwhile_core::StallAction::Stop) => "an alert, and a stop",
            _ => "an alert",
        };
        lines.push(format!(
            "stall     {} without output: {then}",
            format_duration_exact(s)
        ));
    }
    let r = &t.spec.retry;
    if r.max_attempts > 1 {
        lines.push(format!(
            "retries   {} ({} attempts at most), backoff {} doubling up to {}",
            r.max_attempts - 1,
            r.max_attempts,
            format_duration_exact(r.backoff),
            format_duration_exact(r.backoff_max)
        ));
    }
    if let Some(d) = t.spec.delay {
        lines.push(format!("delay     {}", format_duration_exact(d)));
    }
    if let Some(tty) = t.spec.tty {
        lines.push(format!("terminal  {tty} (meanwhile attach {})", t.id));
    } else if t.spec.stdin {
        lines.push(format!("stdin     a pipe (meanwhile send {} TEXT)", t.id));
    }
    lines.extend(confinement(&t.spec));
    if t.waiting_for_input {
        let since = t
            .waiting_since
            .map(|s| format!(" since {}", fmt::ago(s, now)))
            .unwrap_or_default();
        lines.push(format!(
            "waiting   for input{since}: {} (answer with meanwhile send {} TEXT --key enter)",
            t.prompt.as_deref().unwrap_or("(no prompt shown)"),
            t.id
        ));
    }
    for l in &t.listening {
        lines.push(format!("listening {}", l.reach()));
    }
    lines.push(format!("created   {}", fmt::ago(t.created_at, now)));
    if let Some(r) = t.run_after {
        lines.push(format!("runs      {}", fmt::ago(r, now)));
    }
    lines.push(format!("time      {}", fmt::duration(t, now)));
    if let Some(c) = t.exit_code {
        lines.push(format!("exit code {c}"));
    }
    if let Some(s) = t.signal {
        lines.push(format!("signal    {s}"));
    }
    if let Some(r) = &t.reason {
        lines.push(format!("reason    {r}"));
    }
    if let Some(p) = &t.progress {
        let pct = p.percent.map(|x| format!("{x:.0}% ")).unwrap_or_default();
        lines.push(format!("progress  {pct}{}", p.message));
    }
    if t.model_calls > 0 || t.tokens > 0 {
        let calls = if t.model_calls == 1 { "call" } else { "calls" };
        lines.push(format!(
            "usage     {} model {calls}, {} tokens, {}",
            t.model_calls,
            t.tokens,
            meanwhile_core::dollars(t.cost_usd)
        ));
    }
    if t.kind == meanwhile_core::TaskKind::Agent {
        let transcript = client.transcript(t.id).await?;
        lines.push(format!(
            "steps     {}",
            agent_steps(t.attempts, &transcript.steps)
        ));
    }
    if let Some(r) = &t.result {
        lines.push(format!("result    {r}"));
    }
    for a in &d.attempts {
        let took = a
            .ended_at
            .map(|e| format_duration(Duration::from_millis(a.started_at.millis_until(e))))
            .unwrap_or_else(|| "running".into());
        let how = match (&a.outcome, a.exit_code, a.signal) {
            (_, Some(c), _) => format!("exit {c}"),
            (_, None, Some(s)) => format!("signal {s}"),
            (Some(o), _, _) => o.clone(),
            _ => "-".into(),
        };
        let mut l = format!(
            "attempt {} on {}: {how}, {took}, started {}",
            a.number,
            a.node,
            fmt::ago(a.started_at, now)
        );
        if let Some(r) = &a.reason {
            l.push_str(&format!(" ({r})"));
        }
        lines.push(l);
    }
    // The log's size, and what it dropped over max_output (a log on a node that
    // does not answer is only named).
    let size = client
        .output(
            t.id,
            &meanwhile_core::OutputQuery {
                tail: Some(0),
                ..Default::default()
            },
        )
        .await
        .ok()
        .filter(|o| o.total_bytes > 0)
        .map(|o| {
            let dropped = match o.dropped_bytes {
                0 => String::new(),
                n => format!(", {} dropped over max_output", fmt::bytes(n)),
            };
            format!("{}{dropped}, ", fmt::bytes(o.total_bytes))
        })
        .unwrap_or_default();
    lines.push(format!("output    {size}meanwhile logs {}", t.id));
    outln!("{}", lines.join("\n"));
    Ok(ExitCode::SUCCESS)
}

/// The lines saying how a task is confined: its sandbox, network, limits, secrets.
pub fn confinement(spec: &meanwhile_core::TaskSpec) -> Vec<String> {
    let mut lines = Vec::new();
    match spec.sandbox {
        Some(true) => {
            let mut places = vec!["its working directory".to_string()];
            places.extend(spec.allow_write.iter().map(|p| p.display().to_string()));
            places.push("$TMPDIR".into());
            lines.push(format!("sandbox   writes only in {}", places.join(", ")));
        }
        Some(false) => lines.push("sandbox   off (--no-sandbox)".into()),
        None => {}
    }
    if spec.no_network == Some(true) {
        lines.push("network   none (loopback only)".into());
    }
    if let Some(parent) = spec.started_by {
        lines.push(format!("started   by task {parent}, from inside it"));
    }
    let mut limits = Vec::new();
    if let Some(m) = spec.memory {
        limits.push(format!("memory {m}"));
    }
    if let Some(c) = spec.cpu_time {
        limits.push(format!("cpu time {}", format_duration_exact(c)));
    }
    if let Some(n) = spec.max_procs {
        limits.push(format!("{n} processes"));
    }
    if let Some(n) = spec.max_files {
        limits.push(format!("{n} open files"));
    }
    if let Some(m) = spec.max_output {
        limits.push(format!("output {m}"));
    }
    if !limits.is_empty() {
        lines.push(format!("limits    {}", limits.join(", ")));
    }
    if !spec.secrets.is_empty() {
        let keys: Vec<String> = spec
            .secrets
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.push(format!("secrets   {}", keys.join(" ")));
    }
    lines
}

/// An agent task's recorded steps in one line: how many in its latest attempt, its
/// turns, and the step it is on.
fn agent_steps(attempt: u32, steps: &[meanwhile_core::Step]) -> String {
    let current: Vec<_> = steps.iter().filter(|s| s.attempt == attempt).collect();
    let Some(last) = current.last() else {
        return "none recorded yet".into();
    };
    let turns = current.iter().filter(|s| s.kind == "model").count();
    let name = |s: &meanwhile_core::Step| {
        s.data
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_string()
    };
    let on = match last.kind.as_str() {
        "user" | "notices" => "waiting for the model".to_string(),
        "model" => {
            let calls: Vec<String> = last
                .data
                .get("content")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
                .filter(|b| b.get("type").and_then(|t| t.as_str()) == Some("tool_use"))
                .filter_map(|b| b.get("name").and_then(|n| n.as_str()).map(str::to_string))
                .collect();
            if calls.is_empty() {
                "answered".to_string()
            } else {
                format!("the model called {}", calls.join(", "))
            }
        }
        "tool_start" => format!("running {}", name(last)),
        "tool_result" => format!("{} returned", name(last)),
        other => other.to_string(),
    };
    let plural = |n: usize, one: &str| {
        if n == 1 {
            format!("{n} {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    format!(
        "{} in attempt {attempt}, {}; step {}: {on}",
        plural(current.len(), "step"),
        plural(turns, "turn"),
        last.n
    )
}
