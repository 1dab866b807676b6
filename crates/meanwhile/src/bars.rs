//! Progress bars on stderr, one per task being waited on: the percent and message a
//! task reported (`::progress 40 compiling`), or a spinner with its running time
//! when it reported none, and how it ended once it has. Only for a terminal.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use meanwhile_core::{TaskRecord, TaskState, Timestamp};
use std::time::Duration;

/// How often a spinner turns and an elapsed time moves.
const TICK: Duration = Duration::from_millis(120);
/// Width of a task's label (`7 cargo test`).
const LABEL: usize = 28;

/// What a bar shows, to switch styles only when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    Pending,
    Percent,
    Spinner,
    Ended,
}

struct Bar {
    bar: ProgressBar,
    look: Option<Look>,
}

/// One bar per task, drawn together on stderr.
pub struct Bars {
    multi: MultiProgress,
    bars: Vec<Bar>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("█▉▊▋▌▍▎▏ ")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

fn label(t: &TaskRecord) -> String {
    let full = format!("{} {}", t.id, t.name);
    if full.chars().count() <= LABEL {
        return format!("{full:<LABEL$}");
    }
    let mut cut: String = full.chars().take(LABEL - 1).collect();
    cut.push('…');
    cut
}

fn ended_message(t: &TaskRecord) -> String {
    let how = match (t.exit_code, t.signal) {
        (Some(c), _) if t.state != TaskState::Succeeded => format!(" (exit {c})"),
        (None, Some(s)) => format!(" (signal {s})"),
        _ => String::new(),
    };
    format!("{} {}{how}", t.state.symbol(), t.state)
}

impl Bars {
    /// Bars for `tasks`, drawn on stderr.
    pub fn new(tasks: &[TaskRecord], now: Timestamp) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bars = tasks
            .iter()
            .map(|t| {
                let started = t.started_at.map(|s| s.millis_until(now)).unwrap_or(0);
                let bar =
                    multi.add(ProgressBar::new(100).with_elapsed(Duration::from_millis(started)));
                bar.set_prefix(label(t));
                let mut b = Bar { bar, look: None };
                b.show(t);
                b
            })
            .collect();
        Bars { multi, bars }
    }

    /// Shows task `i` as `t` says it is now.
    pub fn update(&mut self, i: usize, t: &TaskRecord) {
        if let Some(b) = self.bars.get_mut(i) {
            b.show(t);
        }
    }

    /// Leaves the bars as they are on the screen, each on its own line.
    pub fn finish(self) {
        for b in &self.bars {
            if !b.bar.is_finished() {
                b.bar.abandon();
            }
        }
        // Every bar is finished or abandoned: nothing draws after this.
        drop(self.multi);
    }
}

impl Bar {
    fn show(&mut self, t: &TaskRecord) {
        let percent = t.progress.as_ref().and_then(|p| p.percent);
        let message = t
            .progress
            .as_ref()
            .map(|p| p.message.clone())
            .filter(|m| !m.is_empty());
        let look = match t.state {
            s if s.is_terminal() => Look::Ended,
            TaskState::Pending => Look::Pending,
            _ if percent.is_some() => Look::Percent,
            _ => Look::Spinner,
        };
        if self.look != Some(look) {
            if self.look == Some(Look::Pending) {
                // It started now: its running time counts from here.
                self.bar.reset_elapsed();
            }
            self.bar.set_style(match look {
                Look::Pending => style("{prefix} {spinner} {msg}"),
                Look::Percent => style("{prefix} {bar:30} {pos:>3}% {msg}"),
                Look::Spinner => style("{prefix} {spinner} {elapsed:>4} {msg}"),
                Look::Ended => style("{prefix} {msg}"),
            });
            match look {
                Look::Ended => {}
                _ => self.bar.enable_steady_tick(TICK),
            }
            self.look = Some(look);
        }
        match look {
            Look::Pending => self.bar.set_message("pending"),
            Look::Percent => {
                self.bar.set_position(percent.unwrap_or(0.0).round() as u64);
                self.bar.set_message(message.unwrap_or_default());
            }
            Look::Spinner => self
                .bar
                .set_message(message.unwrap_or_else(|| "running".into())),
            Look::Ended => self.bar.finish_with_message(ended_message(t)),
        }
    }
}
