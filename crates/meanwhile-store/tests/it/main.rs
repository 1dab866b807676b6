//! The store's conformance suites, one per topic trait (`tasks`, `lifecycle`, `queues`,
//! `sessions`, `events`, `alerts`, `schedules`, `budgets`, `audit` with the tokens,
//! `nodes`), and its bounds, fleet, migration and plan tests: every `Store`
//! implementation must pass them, and each test runs against both, SQLite on a file
//! and PostgreSQL on a real server the harness starts (`meanwhile-testpg`).

#[macro_use]
mod support;

mod alerts;
mod audit;
mod bounds;
mod budgets;
mod events;
mod fleet;
mod lifecycle;
mod migration;
mod nodes;
mod plans;
mod queues;
mod schedules;
mod sessions;
mod tasks;
