//! What an end decides besides the state machine, the same on both stores: the
//! reason a task keeps, the one a retry shows, and the record an end leaves.

use super::*;

/// An end in words: "exit code 1", "signal 9", "timed out".
pub(crate) fn describe_end(end: &AttemptEnd) -> String {
    match (end.exit_code, end.signal, end.outcome) {
        (_, _, AttemptOutcome::TimedOut) => "timed out".to_string(),
        (_, _, AttemptOutcome::Lost) => "lost".to_string(),
        (Some(c), _, _) => format!("exit code {c}"),
        (None, Some(s), _) => format!("signal {s}"),
        _ => outcome_name(end.outcome).to_string(),
    }
}

/// The reason a task keeps after an end that moved it to `to`: why it was
/// quarantined, or what the attempt said.
pub(crate) fn end_reason(end: &AttemptEnd, to: TaskState, relative: u32) -> Option<String> {
    match to {
        TaskState::Quarantined => Some(format!(
            "quarantined after {relative} attempts; the last ended with {}{}",
            describe_end(end),
            end.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )),
        _ => end.reason.clone(),
    }
}

/// The reason a task waiting for its next attempt shows.
pub(crate) fn retry_reason(end: &AttemptEnd) -> String {
    format!(
        "attempt {} ended with {}; retrying",
        end.attempt,
        describe_end(end)
    )
}

/// The reason a task that never ran because of `dep` keeps.
pub(crate) fn dependency_reason(dep: TaskId, dep_state: TaskState) -> String {
    format!("dependency {dep} ended {dep_state}, so this task never ran")
}

/// The record as an end's update left it (beyond its time, reason and result),
/// without reading it back.
pub(crate) fn ended(task: &mut TaskRecord, to: TaskState, end: &AttemptEnd) {
    task.state = to;
    task.node = None;
    task.exit_code = end.exit_code;
    task.signal = end.signal;
    task.stop_requested = false;
}
