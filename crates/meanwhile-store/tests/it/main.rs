//! The store's conformance suite: every `Store` implementation must pass these.

mod audit;
mod budgets;
mod conformance;
mod schedules;
