//! The statements of the stores' `ops/` that both run alike, one module per topic.

pub(crate) mod alerts;
pub(crate) mod budgets;
pub(crate) mod events;
pub(crate) mod lifecycle;
pub(crate) mod nodes;
pub(crate) mod notifications;
pub(crate) mod queues;
pub(crate) mod rows;
pub(crate) mod schedules;
pub(crate) mod steps;
pub(crate) mod tasks;
