//! Nodes and their heartbeats: `meanwhile nodes`, `serve --node`, and the
//! `node_silent` alert raised for a node that died without a clean stop.

use crate::support::{Home, code, stderr, until};
use serde_json::Value;

fn node<'a>(nodes: &'a Value, name: &str) -> &'a Value {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {nodes}"))
}

fn firing_node_alerts(home: &Home) -> Vec<Value> {
    home.json(&["alerts", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "node_silent")
        .cloned()
        .collect()
}

#[test]
fn a_node_that_died_is_silent_to_the_next_and_one_that_stopped_is_not() {
    let mut home = Home::new();
    let env = [("MEANWHILE_NODE_SILENT_AFTER", "1s")];

    // Node "a" dies (SIGKILL): no clean stop is recorded.
    let mut a = home.cmd(&["serve", "--node", "a"]);
    a.envs(env);
    home.daemon = Some(a.spawn().unwrap());
    until("node a answers", || home.run(&["status"]).status.success());
    let nodes = home.json(&["nodes", "--json"]);
    assert_eq!(node(&nodes, "a")["alive"], true);
    assert_eq!(node(&nodes, "a")["version"], env!("CARGO_PKG_VERSION"));
    home.kill_daemon();

    // Node "c" stops cleanly.
    let mut c = home.cmd(&["serve", "--node", "c"]);
    c.envs(env);
    home.daemon = Some(c.spawn().unwrap());
    until("node c answers", || home.run(&["status"]).status.success());
    home.ok(&["daemon", "stop"]);
    home.daemon.take().unwrap().wait().unwrap();

    // Node "b" sees that a is silent, and says nothing of c.
    let mut b = home.cmd(&["serve", "--node", "b"]);
    b.envs(env);
    home.daemon = Some(b.spawn().unwrap());
    until("node b answers", || home.run(&["status"]).status.success());
    until("a node_silent alert for a", || {
        !firing_node_alerts(&home).is_empty()
    });
    let alerts = firing_node_alerts(&home);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let message = alerts[0]["message"].as_str().unwrap();
    assert!(message.starts_with("node a is silent"), "{message}");
    assert_eq!(code(&home.run(&["health"])), 1);

    let nodes = home.json(&["nodes", "--json"]);
    assert_eq!(node(&nodes, "a")["alive"], false);
    assert!(node(&nodes, "a").get("stopped_at").is_none());
    assert_eq!(node(&nodes, "b")["alive"], true);
    assert_eq!(node(&nodes, "c")["alive"], false);
    assert!(node(&nodes, "c")["stopped_at"].as_i64().is_some());
    let table = home.ok(&["nodes"]);
    assert!(table.contains("silent") && table.contains("alive") && table.contains("stopped"));

    // An alive node cannot be forgotten; a dead one can, and its alert resolves.
    let o = home.run(&["nodes", "rm", "b"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("is alive"), "{}", stderr(&o));
    let o = home.run(&["nodes", "rm", "nobody"]);
    assert!(
        stderr(&o).contains("unknown node \"nobody\""),
        "{}",
        stderr(&o)
    );
    home.ok(&["nodes", "rm", "a"]);
    until("the node_silent alert resolves", || {
        firing_node_alerts(&home).is_empty()
    });
    let all = home.json(&["alerts", "--all", "--json"]);
    let resolved = all
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "node_silent")
        .unwrap();
    assert_eq!(resolved["state"], "resolved");
    assert!(
        resolved["message"]
            .as_str()
            .unwrap()
            .contains("was removed")
    );
}

#[test]
fn a_node_name_that_cannot_be_one_is_refused_at_start() {
    let home = Home::new();
    let o = home.run(&["serve", "--node", "a/b"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("is not a node name"), "{}", stderr(&o));
}
