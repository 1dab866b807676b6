//! What a session is told, the same on both stores: the body of the notification
//! an ended task leaves, and what a running task's live state changes (its events
//! and the notices of a task that waits for input or listens).

use super::*;

/// The notification an ended task leaves its session, as stored (its `seq` is the
/// row's).
pub(crate) fn notification_body(
    task: &TaskRecord,
    session: &str,
    now: Timestamp,
    duration_ms: u64,
    tail: &str,
    output_bytes: u64,
) -> Result<String> {
    let n = Notification {
        seq: 0,
        kind: meanwhile_core::NoticeKind::Ended,
        prompt: None,
        listening: Vec::new(),
        session: session.to_string(),
        task_id: task.id,
        name: task.name.clone(),
        state: task.state,
        exit_code: task.exit_code,
        signal: task.signal,
        reason: task.reason.clone(),
        duration_ms,
        attempts: task.attempts,
        tail: tail.to_string(),
        output_bytes,
        created_at: now,
    };
    serde_json::to_string(&n).map_err(|e| corrupt("notification", e))
}

/// What recording a running task's [`crate::LiveUpdate`] writes: its `live` column
/// (`None` when nothing is seen), the events, and the bodies of its session's notices.
pub(crate) struct LiveChanges {
    pub column: Option<String>,
    pub events: Vec<(meanwhile_core::EventKind, Value)>,
    pub notices: Vec<String>,
}

/// What changed between what `task` records and `update`; `None` when the update is
/// stale (another attempt, or the task no longer runs) or changes nothing.
pub(crate) fn live_changes(
    task: &TaskRecord,
    update: &crate::LiveUpdate,
) -> Result<Option<LiveChanges>> {
    use meanwhile_core::{EventKind, NoticeKind};
    if task.state != TaskState::Running || task.attempts != update.attempt {
        return Ok(None);
    }
    let live = &update.live;
    let was_waiting = task.waiting_for_input;
    let waiting = live.waiting_since.is_some();
    let prompt_changed = waiting && task.prompt != live.prompt;
    let listening_changed = task.listening != live.listening;
    if was_waiting == waiting && !prompt_changed && !listening_changed {
        return Ok(None);
    }
    let column = if live.is_empty() {
        None
    } else {
        Some(serde_json::to_string(live).map_err(|e| corrupt("live state", e))?)
    };
    let mut events = Vec::new();
    let mut notices = Vec::new();
    let notice = |kind: NoticeKind, prompt: Option<String>, listening, tail: &str| {
        let Some(session) = &task.session else {
            return Ok(None);
        };
        let n = Notification {
            seq: 0,
            kind,
            prompt,
            listening,
            session: session.clone(),
            task_id: task.id,
            name: task.name.clone(),
            state: task.state,
            exit_code: None,
            signal: None,
            reason: None,
            duration_ms: task.started_at.map_or(0, |s| s.millis_until(update.now)),
            attempts: task.attempts,
            tail: tail.to_string(),
            output_bytes: update.output_bytes,
            created_at: update.now,
        };
        serde_json::to_string(&n)
            .map(Some)
            .map_err(|e| corrupt("notification", e))
    };
    if was_waiting != waiting || prompt_changed {
        events.push((
            EventKind::WaitingForInput,
            json!({"waiting": waiting, "prompt": live.prompt}),
        ));
        if waiting && !was_waiting {
            notices.extend(notice(
                NoticeKind::WaitingForInput,
                live.prompt.clone(),
                Vec::new(),
                &update.tail,
            )?);
        }
    }
    if listening_changed {
        events.push((EventKind::Listening, json!({"listening": live.listening})));
        let new: Vec<_> = live
            .listening
            .iter()
            .filter(|l| !task.listening.contains(l))
            .cloned()
            .collect();
        if !new.is_empty() {
            notices.extend(notice(NoticeKind::Listening, None, new, "")?);
        }
    }
    Ok(Some(LiveChanges {
        column,
        events,
        notices,
    }))
}
