//! The `meanwhile` binary against its real daemon: each test has its own home.

mod support;

mod agent;
mod commands;
mod daemon;
mod live_restore;
mod queues;
mod specs;
mod unix;
