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

/// Posts `body` to the daemon's `/mcp` as JSON with its token; the status and body.
fn post_mcp(daemon: &Daemon, body: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let url = daemon.url.strip_prefix("http://").unwrap();
    let (addr, path) = url.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /{path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        daemon.token,
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_default();
    (status, json)
}

#[test]
fn malformed_json_rpc_gets_400_with_the_json_rpc_error() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for (body, code) in [
        ("{not json", -32700),
        (deep.as_str(), -32700),
        (&format!("[{ping}]"), -32600),
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, -32600),
        (r#"{"jsonrpc":"2.0","id":1}"#, -32600),
        (r#"{"jsonrpc":"2.0","id":1,"method":{"a":1}}"#, -32600),
    ] {
        let (status, json) = post_mcp(&daemon, body);
        let shown = &body[..body.len().min(60)];
        assert_eq!(status, 400, "{shown}: {json}");
        assert_eq!(json["jsonrpc"], "2.0", "{shown}: {json}");
        assert_eq!(json["error"]["code"], code, "{shown}: {json}");
    }
    // A well-formed message still reaches the MCP service.
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let (status, json) = post_mcp(&daemon, init);
    assert_eq!(status, 200, "{json}");
}
