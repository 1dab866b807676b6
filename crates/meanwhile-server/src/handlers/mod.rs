//! The request handlers, one file per kind of request.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod budgets;
pub(crate) mod clock;
pub(crate) mod control;
pub(crate) mod events;
pub(crate) mod nodes;
pub(crate) mod notifications;
pub(crate) mod output;
pub(crate) mod queues;
pub(crate) mod schedules;
pub(crate) mod sessions;
pub(crate) mod shutdown;
pub(crate) mod status;
pub(crate) mod tasks;
pub(crate) mod tokens;
pub(crate) mod wait;
