//! The runtime against real processes and a real SQLite file.

mod support;

mod functions;
mod lifecycle;
mod output;
mod recovery;
mod stop;
mod store_failures;
