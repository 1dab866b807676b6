//! The runtime against real processes and a real SQLite file.

mod support;

mod budgets;
mod descendants;
mod fleet;
mod functions;
mod interactive;
mod journal;
mod lifecycle;
mod output;
mod ownership;
mod pool;
mod recovery;
mod starts;
mod stop;
mod store_failures;
