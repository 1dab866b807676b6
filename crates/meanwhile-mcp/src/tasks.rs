//! MCP tasks (`io.modelcontextprotocol/tasks`) backed by meanwhile tasks.
//!
//! A client that declares the extension gets a task handle from `background_wait`
//! instead of a blocked call. The handle's id names the meanwhile tasks and the wait
//! mode (`wait-all-7-8`), so `tasks/get` and `tasks/cancel` are answered from the
//! store alone: a handle stays valid across restarts of this server and across the
//! stateless requests of streamable HTTP.

use crate::error::to_mcp;
use meanwhile_agent::call_background_tool;
use meanwhile_agent::tools::defs;
use meanwhile_core::{Backend, ErrorCode, StopMode, TaskId, TaskRecord, TaskState, WaitMode};
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, DetailedTask, JsonObject, Task, TaskPayload, TaskStatus};
use serde_json::{Value, json};
use std::time::Duration;

/// How often a client should poll `tasks/get`: a task's end is a human-scale event.
const POLL_INTERVAL_MS: u64 = 1_000;
/// Most tasks one handle may wait on, so that its id stays short.
const MAX_IDS: usize = 64;

/// A wait on some meanwhile tasks, as an MCP task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WaitTask {
    pub ids: Vec<TaskId>,
    pub mode: WaitMode,
}

impl WaitTask {
    /// The MCP task id: `wait-all-7-8` or `wait-any-7-8`.
    pub fn id(&self) -> String {
        let mode = match self.mode {
            WaitMode::All => "all",
            WaitMode::Any => "any",
        };
        let ids: Vec<String> = self.ids.iter().map(|i| i.to_string()).collect();
        format!("wait-{mode}-{}", ids.join("-"))
    }

    /// Reads a task id made by [`WaitTask::id`].
    pub fn parse(task_id: &str) -> Result<WaitTask, ErrorData> {
        let unknown = || {
            ErrorData::invalid_params(
                format!(
                    "unknown task {task_id:?}: meanwhile's MCP task ids look like wait-all-7 (from a background_wait call)"
                ),
                None,
            )
        };
        let rest = task_id.strip_prefix("wait-").ok_or_else(unknown)?;
        let (mode, ids) = rest.split_once('-').ok_or_else(unknown)?;
        let mode = match mode {
            "all" => WaitMode::All,
            "any" => WaitMode::Any,
            _ => return Err(unknown()),
        };
        let ids = ids
            .split('-')
            .map(|i| i.parse::<TaskId>().map_err(|_| unknown()))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() || ids.len() > MAX_IDS {
            return Err(unknown());
        }
        Ok(WaitTask { ids, mode })
    }

    /// The wait `background_wait`'s arguments ask for, when they are well formed;
    /// `None` otherwise (the plain tool call then explains what is wrong).
    pub fn from_args(args: &Value) -> Option<WaitTask> {
        let ids = args.get("ids")?.as_array()?;
        let ids = ids
            .iter()
            .map(|v| match v {
                Value::Number(n) => n.as_i64().filter(|n| *n > 0).map(TaskId),
                Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .collect::<Option<Vec<TaskId>>>()?;
        let mode = match args.get("mode") {
            None | Some(Value::Null) => WaitMode::All,
            Some(Value::String(m)) if m == "all" => WaitMode::All,
            Some(Value::String(m)) if m == "any" => WaitMode::Any,
            Some(_) => return None,
        };
        (!ids.is_empty() && ids.len() <= MAX_IDS).then_some(WaitTask { ids, mode })
    }

    fn args(&self) -> Value {
        let mode = match self.mode {
            WaitMode::All => "all",
            WaitMode::Any => "any",
        };
        let ids: Vec<i64> = self.ids.iter().map(|i| i.0).collect();
        json!({"ids": ids, "mode": mode, "timeout_seconds": 0})
    }
}

/// The state of the MCP task `w`: working while the wait would still block, then
/// the `background_wait` answer, or cancelled when every task it waits on was
/// cancelled. The caller adds the notices not seen yet where a model will read them.
pub(crate) async fn state(
    backend: &dyn Backend,
    session: &str,
    w: &WaitTask,
) -> Result<DetailedTask, ErrorData> {
    let outcome = match backend
        .wait(w.ids.clone(), w.mode, Some(Duration::ZERO))
        .await
    {
        Ok(o) => o,
        Err(e) if e.code == ErrorCode::NotFound || e.code == ErrorCode::InvalidArgument => {
            // The handle was valid but a task is gone (removed): the wait failed.
            let task = base(w, &[], TaskStatus::Failed).with_status_message(e.message.clone());
            let error = to_mcp(&e);
            let error = match serde_json::to_value(&error) {
                Ok(Value::Object(o)) => o,
                _ => JsonObject::new(),
            };
            return Ok(DetailedTask::new(task, TaskPayload::Failed { error }));
        }
        Err(e) => return Err(to_mcp(&e)),
    };
    if outcome.timed_out {
        let states: Vec<String> = outcome
            .tasks
            .iter()
            .map(|t| format!("task {} {}", t.id, t.state.as_str()))
            .collect();
        let task = base(w, &outcome.tasks, TaskStatus::Working)
            .with_status_message(format!("waiting: {}", states.join(", ")));
        return Ok(DetailedTask::new(task, TaskPayload::Working));
    }
    if outcome
        .tasks
        .iter()
        .all(|t| t.state == TaskState::Cancelled)
    {
        let task = base(w, &outcome.tasks, TaskStatus::Cancelled)
            .with_status_message("every task it waited on was cancelled");
        return Ok(DetailedTask::new(task, TaskPayload::Cancelled));
    }
    let (text, is_error) =
        match call_background_tool(backend, Some(session), defs::BACKGROUND_WAIT, w.args()).await {
            Ok(t) => (t, false),
            Err(e) => (e.to_string(), true),
        };
    let content = crate::tools::content(text, None);
    let result = if is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    let result = match serde_json::to_value(&result) {
        Ok(Value::Object(o)) => o,
        _ => JsonObject::new(),
    };
    let task = base(w, &outcome.tasks, TaskStatus::Completed).with_status_message("done");
    Ok(DetailedTask::new(task, TaskPayload::Completed { result }))
}

/// Stops every task of `w` that has not ended: cancelling a wait's handle cancels
/// the work it stands for, as the handle is all the client holds of it.
pub(crate) async fn cancel(backend: &dyn Backend, w: &WaitTask) -> Result<(), ErrorData> {
    for id in &w.ids {
        match backend.get(*id).await {
            Ok(t) if !t.state.is_terminal() => {
                backend
                    .stop(*id, StopMode::Graceful)
                    .await
                    .map_err(|e| to_mcp(&e))?;
            }
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::NotFound => {}
            Err(e) => return Err(to_mcp(&e)),
        }
    }
    Ok(())
}

/// Blocks until the wait `w` would no longer block (in slices, so that a gone
/// client is noticed between them through `gone`).
pub(crate) async fn until_done(backend: &dyn Backend, w: &WaitTask, gone: impl Fn() -> bool) {
    while !gone() {
        match backend
            .wait(w.ids.clone(), w.mode, Some(Duration::from_secs(300)))
            .await
        {
            Ok(o) if o.timed_out => {}
            _ => return,
        }
    }
}

/// The seed state of a new handle.
pub(crate) fn created(w: &WaitTask) -> Task {
    base(w, &[], TaskStatus::Working)
        .with_status_message(format!("waiting for {}", describe_ids(&w.ids)))
}

fn describe_ids(ids: &[TaskId]) -> String {
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    format!("task {}", ids.join(", "))
}

fn base(w: &WaitTask, tasks: &[TaskRecord], status: TaskStatus) -> Task {
    let now = now_ms();
    let created = tasks.iter().map(|t| t.created_at.0).min().unwrap_or(now);
    let updated = tasks
        .iter()
        .map(|t| t.finished_at.or(t.started_at).unwrap_or(t.created_at).0)
        .max()
        .unwrap_or(now);
    Task::new(w.id(), status, rfc3339(created), rfc3339(updated))
        .with_poll_interval_ms(POLL_INTERVAL_MS)
}

fn now_ms() -> i64 {
    meanwhile_core::Timestamp::from(std::time::SystemTime::now()).0
}

/// Milliseconds since the epoch as RFC 3339 in UTC (`2026-05-01T12:00:00.250Z`).
pub(crate) fn rfc3339(ms: i64) -> String {
    meanwhile_core::Timestamp(ms).rfc3339_clamped()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_round_trip_and_strangers_are_refused() {
        let w = WaitTask {
            ids: vec![TaskId(7), TaskId(12)],
            mode: WaitMode::Any,
        };
        assert_eq!(w.id(), "wait-any-7-12");
        assert_eq!(WaitTask::parse(&w.id()).unwrap(), w);
        for bad in [
            "",
            "7",
            "wait-all-",
            "wait-some-7",
            "wait-all-x",
            "wait-all-0",
            "wait-all-7--8",
        ] {
            let e = WaitTask::parse(bad).unwrap_err();
            assert!(e.message.contains("wait-all-7"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn wait_arguments_become_a_handle_only_when_well_formed() {
        let w = WaitTask::from_args(&json!({"ids": [3, "4", "#5"], "mode": "any"})).unwrap();
        assert_eq!(w.ids, vec![TaskId(3), TaskId(4), TaskId(5)]);
        assert_eq!(w.mode, WaitMode::Any);
        assert_eq!(
            WaitTask::from_args(&json!({"ids": [3]})).unwrap().mode,
            WaitMode::All
        );
        assert!(WaitTask::from_args(&json!({"ids": []})).is_none());
        assert!(WaitTask::from_args(&json!({"ids": [-1]})).is_none());
        assert!(WaitTask::from_args(&json!({"ids": "3"})).is_none());
        assert!(WaitTask::from_args(&json!({"ids": [3], "mode": "most"})).is_none());
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_250), "2000-02-29T00:00:00.250Z");
        assert_eq!(rfc3339(1_777_636_800_000), "2026-05-01T12:00:00.000Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00.000Z");
    }
}
