//! The SQL behind each store operation, one module per topic. Writers run inside the
//! writer thread's transaction; every state change goes through
//! `meanwhile_core::transition`.

mod alerts;
mod budgets;
mod events;
mod lifecycle;
mod nodes;
mod notifications;
mod queues;
mod rows;
mod schedules;
mod steps;
mod tasks;

pub(crate) use alerts::*;
pub(crate) use budgets::*;
pub(crate) use events::*;
pub(crate) use lifecycle::*;
pub(crate) use nodes::*;
pub(crate) use notifications::*;
pub(crate) use queues::*;
pub(crate) use rows::*;
pub(crate) use schedules::*;
pub(crate) use steps::*;
pub(crate) use tasks::*;
