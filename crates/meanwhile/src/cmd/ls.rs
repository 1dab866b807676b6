//! `meanwhile ls`: the newest tasks as a table, and a summary line of counts by state
//! from the daemon's counters (so it stays fast with millions of tasks).

use super::{Ctx, task_id};
use crate::fmt;
use meanwhile_core::{ListFilter, TaskId, TaskState, shorten};
use std::process::ExitCode;

/// Arguments of `ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only tasks in these states (comma-separated: running,pending,failed, ...).
    #[arg(long, short = 's', value_delimiter = ',', value_parser = state)]
    pub state: Vec<TaskState>,
    /// Only tasks in this queue.
    #[arg(long, short = 'q', add = crate::complete::queues())]
    pub queue: Option<String>,
    /// Only tasks with this label.
    #[arg(long, short = 'l')]
    pub label: Option<String>,
    /// Only tasks notifying this session.
    #[arg(long)]
    pub session: Option<String>,
    /// Only tasks with exactly this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only tasks whose name contains this text (ignoring case).
    #[arg(long, short = 't')]
    pub text: Option<String>,
    /// Show at most this many (at most 1000).
    #[arg(long, short = 'n', default_value_t = 50)]
    pub limit: u32,
    /// Only tasks with an id below this one (the next page).
    #[arg(long, value_parser = task_id)]
    pub before: Option<TaskId>,
    /// Print the page as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep the list on screen and redraw it whenever a task changes, as the
    /// daemon's event stream tells (no polling); Ctrl-C ends it.
    #[arg(long, short = 'w', conflicts_with_all = ["json", "before"])]
    pub watch: bool,
}

fn state(s: &str) -> Result<TaskState, String> {
    TaskState::parse(s).ok_or_else(|| {
        format!("unknown state {s:?}; use pending, running, succeeded, failed, timed_out, cancelled, quarantined or lost")
    })
}

/// The name, with what a running task is seen doing: waiting for input, or where
/// it listens.
fn name_with_live(t: &meanwhile_core::TaskRecord) -> String {
    if t.waiting_for_input {
        return format!("{}  [waiting for input]", shorten(&t.name, 40));
    }
    match t.listening.first() {
        Some(l) => format!("{}  [{}]", shorten(&t.name, 40), l.reach()),
        None => shorten(&t.name, 60),
    }
}

/// The width of the terminal standard output is, when it is one.
fn terminal_columns() -> Option<usize> {
    let out = std::io::stdout();
    if !std::io::IsTerminal::is_terminal(&out) {
        return None;
    }
    let size = rustix::termios::tcgetwinsize(&out).ok()?;
    (size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// Runs `ls`.
pub async fn run(ctx: &Ctx, args: Args) -> anyhow::Result<ExitCode> {
    let client = ctx.client()?;
    let filtered = !args.state.is_empty()
        || args.queue.is_some()
        || args.label.is_some()
        || args.session.is_some()
        || args.name.is_some()
        || args.text.is_some();
    let filter = ListFilter {
        states: args.state,
        queue: args.queue,
        label: args.label,
        session: args.session,
        name: args.name,
        text: args.text,
        before: args.before,
        limit: Some(args.limit.clamp(1, 1000)),
    };
    if args.json {
        super::print_json(&client.list(&filter).await?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.watch {
        return watch(&client, &filter, filtered).await;
    }
    out!("{}", render(&client, &filter, filtered).await?);
    Ok(ExitCode::SUCCESS)
}

/// Events that arrive this close together are drawn once.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(50);

/// `ls --watch`: the list drawn again after each burst of task events, until Ctrl-C.
/// On a terminal each frame replaces the last; elsewhere frames follow each other,
/// a blank line between.
async fn watch(
    client: &meanwhile_client::Client,
    filter: &ListFilter,
    filtered: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    // Subscribed before the first frame, so no change falls between the two.
    let mut events = client.events(None).await?;
    let work = async {
        loop {
            let text = render(client, filter, filtered).await?;
            if terminal {
                out!(
                    "\x1b[H\x1b[2J{}(redrawn as tasks change; Ctrl-C ends it)\n",
                    text
                );
            } else {
                out!("{text}\n");
            }
            // Wait for a change, then let a burst of them settle.
            loop {
                match events.next().await {
                    Some(Ok(e)) if e.task_id.is_some() => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(anyhow::Error::from(e)),
                    None => events = events.reconnect().await?,
                }
            }
            let settle = tokio::time::sleep(SETTLE);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    _ = &mut settle => break,
                    e = events.next() => match e {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Err(anyhow::Error::from(e)),
                        None => {
                            events = events.reconnect().await?;
                            break;
                        }
                    },
                }
            }
        }
    };
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
    }
}

/// The list as `ls` prints it: the table, then the counts line.
async fn render(
    client: &meanwhile_client::Client,
    filter: &ListFilter,
    filtered: bool,
) -> anyhow::Result<String> {
    let page = client.list(filter).await?;
    let now = fmt::now();
    let rows: Vec<Vec<String>> = page
        .tasks
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                t.state.symbol().to_string(),
                name_with_live(t),
                t.queue.clone(),
                fmt::duration(t, now),
                t.exit_code
                    .map(|c| c.to_string())
                    .or(t.signal.map(|s| format!("sig {s}")))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut out = String::new();
    if !rows.is_empty() {
        // On a terminal, names are cut (`…`) so that each row fits on one line.
        let fit = terminal_columns().map(|c| (c, 2));
        out.push_str(&fmt::table_fit(
            &["ID", "ST", "NAME", "QUEUE", "TIME", "EXIT"],
            &rows,
            fit,
        ));
    }
    if filtered {
        // The daemon's counters count every task: count what matched instead.
        if page.tasks.is_empty() {
            out.push_str("no tasks match\n");
        } else {
            let shown = page.tasks.len();
            let parts: Vec<String> = TaskState::ALL
                .iter()
                .filter_map(|s| {
                    let n = page.tasks.iter().filter(|t| t.state == *s).count();
                    (n > 0).then(|| format!("{n} {} {s}", s.symbol()))
                })
                .collect();
            let noun = if shown == 1 { "task" } else { "tasks" };
            match page.next {
                Some(next) => out.push_str(&format!(
                    "the newest {shown} {noun} that match: {} (older: meanwhile ls --before {next} with the same filters)\n",
                    parts.join(", ")
                )),
                None => out.push_str(&format!(
                    "{shown} {noun} match: {}\n",
                    parts.join(", ")
                )),
            }
        }
        return Ok(out);
    }
    let status = client.status().await?;
    let total: u64 = status.counts.values().sum();
    let parts: Vec<String> = TaskState::ALL
        .iter()
        .filter_map(|s| {
            let n = *status.counts.get(s.as_str())?;
            (n > 0).then(|| format!("{n} {} {s}", s.symbol()))
        })
        .collect();
    if total == 0 {
        out.push_str("no tasks yet; start one with 'meanwhile run -- CMD'\n");
    } else {
        let noun = if total == 1 { "task" } else { "tasks" };
        out.push_str(&format!("{total} {noun}: {}", parts.join(", ")));
        if let Some(next) = page.next {
            out.push_str(&format!(" (older: meanwhile ls --before {next})"));
        }
        out.push('\n');
    }
    Ok(out)
}
