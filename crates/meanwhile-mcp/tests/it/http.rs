//! Over streamable HTTP: `/mcp` on a daemon listening on TCP, behind its token.

use crate::stdio::{check_flow, check_tasks};
use crate::support::{Daemon, Home, scenario, submitter};

#[test]
fn tools_output_notices_and_errors_over_http() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let mut cfg = daemon.config(&home);
    cfg["session"] = "flow".into();
    let obs = scenario("flow.py", &cfg);
    assert_eq!(obs["protocol"], "2026-07-28");
    check_flow(&obs);
    // The audit trail names the token and the MCP session of the tool call.
    let id = obs["id"].as_i64().unwrap();
    assert_eq!(submitter(&home, id), "token default session flow");

    // The legacy lifecycle, with resources/subscribe, on a session of its own.
    cfg["session"] = "legacy".into();
    cfg["mode"] = "legacy".into();
    let obs = scenario("flow.py", &cfg);
    assert_eq!(obs["protocol"], "2025-11-25");
    check_flow(&obs);
}

#[test]
fn mcp_tasks_round_trip_over_http() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let mut cfg = daemon.config(&home);
    cfg["session"] = "tasks".into();
    check_tasks(&scenario("tasks.py", &cfg));
}

#[test]
fn the_endpoint_needs_the_token_on_tcp() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let mut cfg = daemon.config(&home);
    cfg["token"] = "wrong".into();
    let obs = scenario("unauthorized.py", &cfg);
    assert_eq!(obs["status"], 401, "{obs}");
}
