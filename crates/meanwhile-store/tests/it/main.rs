//! The store's conformance suite: every `Store` implementation must pass these.

mod audit;
mod conformance;
mod schedules;
