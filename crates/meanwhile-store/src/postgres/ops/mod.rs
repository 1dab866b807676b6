//! The SQL behind each store operation on PostgreSQL, one module per topic, as for
//! SQLite. Writers run inside their write's transaction ([`super::Tx`]); every
//! state change goes through `meanwhile_core::transition`.

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
