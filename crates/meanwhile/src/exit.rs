//! Exit codes that scripts can use.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (for `wait` and `run --wait`: the task succeeded) |
//! | N | the task exited with code N (`wait ID`, `run --wait`, `run --follow`) |
//! | 128+S | the task was killed by signal S |
//! | 1 | an error, or a task that failed without an exit code (cancelled, lost) |
//! | 2 | wrong arguments, or a command that does not apply (`backup` on PostgreSQL) |
//! | 3 | no such task (or queue) |
//! | 4 | the state does not allow it (removing a running task, attaching to an ended one, an idempotency key reused with another spec, an agent task without a provider) |
//! | 66 | an input file is missing or unreadable (`batch`) |
//! | 69 | no daemon answers and none could be started |
//! | 75 | the disk holding the home is full: free space and try again |
//! | 124 | timed out: the task hit its timeout, or `wait --timeout` passed |

use meanwhile_client::ClientError;
use meanwhile_core::{ErrorCode, TaskRecord, TaskState};
use std::process::ExitCode;

/// Wrong arguments, or a command that does not apply (`backup` of a PostgreSQL store).
pub const USAGE: u8 = 2;
/// No such task.
pub const NOT_FOUND: u8 = 3;
/// The task's state does not allow it.
pub const CONFLICT: u8 = 4;
/// An input file is missing or unreadable (sysexits' `EX_NOINPUT`).
pub const NO_INPUT: u8 = 66;
/// No daemon.
pub const UNAVAILABLE: u8 = 69;
/// The disk holding the home is full (`EX_TEMPFAIL`: try again later).
pub const DISK_FULL: u8 = 75;
/// Timed out.
pub const TIMED_OUT: u8 = 124;

/// An error the command line finds itself, with the exit code the table gives it.
#[derive(Debug)]
pub struct Refused {
    /// The exit code.
    pub code: u8,
    /// What was wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

/// Fails with `message` and exit code `code`.
pub fn refuse(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Refused {
        code,
        message: message.into(),
    })
}

/// The exit code of an error.
pub fn code_of(e: &anyhow::Error) -> u8 {
    if let Some(r) = e.chain().find_map(|c| c.downcast_ref::<Refused>()) {
        return r.code;
    }
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Unreachable { .. }) => UNAVAILABLE,
        Some(ClientError::Api(a)) => match a.code {
            ErrorCode::NotFound => NOT_FOUND,
            ErrorCode::Conflict | ErrorCode::IdempotencyConflict | ErrorCode::NoProvider => {
                CONFLICT
            }
            ErrorCode::InvalidArgument => USAGE,
            ErrorCode::Unavailable => UNAVAILABLE,
            ErrorCode::DiskFull => DISK_FULL,
            _ => 1,
        },
        _ => 1,
    }
}

/// The exit code that tells how a task ended.
pub fn of_task(t: &TaskRecord) -> u8 {
    match (t.state, t.exit_code, t.signal) {
        (TaskState::Succeeded, _, _) => 0,
        (TaskState::TimedOut, _, _) => TIMED_OUT,
        (_, Some(c), _) => (c & 0xff) as u8,
        (_, None, Some(s)) => (128 + s).clamp(0, 255) as u8,
        _ => 1,
    }
}

/// [`of_task`] as an [`ExitCode`].
pub fn task_exit(t: &TaskRecord) -> ExitCode {
    ExitCode::from(of_task(t))
}
