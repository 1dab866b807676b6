//! The decisions both stores make from what they read inside a write: the claim's
//! limits, an end's reasons, a session's notices and a budget's alarms and pause.
//! Each store reads rows with `decode` and runs its SQL; what to write is decided
//! here, once, and none of it knows a database.

mod budget;
mod claim;
mod ends;
mod notices;

pub(crate) use budget::*;
pub(crate) use claim::*;
pub(crate) use ends::*;
pub(crate) use notices::*;

use crate::decode::{corrupt, outcome_name};
use crate::{AttemptEnd, NewAlert, StoreError};
use meanwhile_core::{
    AlertKind, AttemptOutcome, BudgetInfo, BudgetSpec, BudgetState, Notification, PauseReason,
    QueueInfo, TaskId, TaskRecord, TaskState, Timestamp, check_queue_name, rfc3339_secs,
};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};

type Result<T> = std::result::Result<T, StoreError>;
