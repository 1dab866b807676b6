//! The `meanwhile` binary against its real daemon: each test has its own home.

mod support;

mod agent;
mod agent_resume;
mod agent_sessions;
mod alerts;
mod audit;
mod backup;
mod batch;
mod budgets;
mod commands;
mod connections;
mod daemon;
mod dashboard;
mod edges;
mod fleet;
mod hooks;
mod interactive;
mod live_restore;
mod long_run;
mod node;
mod nodes;
mod python;
mod queues;
mod sandbox;
mod schedules;
mod specs;
mod unix;
