//! The agent against a real in-process runtime (temp home, real processes, real
//! SQLite) and a scripted provider speaking the real wire formats over HTTP.

mod background;
mod confinement;
mod failures;
mod notices;
mod resume;
mod subagents;
mod support;
