//! The store's conformance suite: every `Store` implementation must pass these.

mod conformance;
mod schedules;
