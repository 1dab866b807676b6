//! The store's conformance suite: every `Store` implementation must pass these, and
//! each test runs against both, SQLite on a file and PostgreSQL on a real server
//! the harness starts (`meanwhile-testpg`).

#[macro_use]
mod support;

mod alerts;
mod audit;
mod bounds;
mod budgets;
mod conformance;
mod fleet;
mod migration;
mod plans;
mod schedules;
