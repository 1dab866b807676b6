//! The daemon over its real socket, with a real runtime and SQLite file per test.

mod support;

mod api;
mod contract;
mod errors;
mod events;
mod lifecycle;
mod openapi;
mod origin;
mod roundtrip;
mod shutdown;
