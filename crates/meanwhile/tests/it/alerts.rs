//! Alerts against a real daemon: a stalled task that fires and then resolves when it
//! prints again, one that is stopped for its stall, a queue failing in a row, a
//! quarantined task; each told to a command sink once when it fires and once when it
//! resolves, and `meanwhile health` exiting 1 while one fires that no one
//! acknowledged (`alerts ack`).

use crate::support::*;

/// The alerts sink's lines: `KIND STATE TASK QUEUE`.
fn told(h: &Home) -> Vec<String> {
    std::fs::read_to_string(h.dir.path().join("alerts.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn alerted_daemon() -> Home {
    let mut h = Home::new();
    std::fs::create_dir_all(&h.home).unwrap();
    let sink = h.dir.path().join("alerts.txt");
    std::fs::write(
        h.home.join("config.toml"),
        format!(
            "[[alerts.sinks]]\ncommand = 'echo \"$MEANWHILE_ALERT_KIND $MEANWHILE_ALERT_STATE $MEANWHILE_ALERT_TASK $MEANWHILE_ALERT_QUEUE\" >> {}'\n",
            sink.display()
        ),
    )
    .unwrap();
    // On a test clock, so that a stall is an hour of the daemon's time, not a wait.
    h.serve(&[("MEANWHILE_TEST_CLOCK", "0s")]);
    h
}

/// Lets a task blocked reading `gate` go on.
fn open_gate(gate: &std::path::Path) {
    std::fs::write(gate, "go\n").unwrap();
}

/// The output the daemon has of task `id`.
fn output(h: &Home, id: &str) -> String {
    h.ok(&["logs", id])
}

/// Waits for a task; its record (the exit code is the task's).
fn wait(h: &Home, id: &str) -> serde_json::Value {
    serde_json::from_slice(&h.run(&["wait", "--json", id]).stdout).unwrap()
}

fn alerts(h: &Home) -> Vec<serde_json::Value> {
    h.json(&["alerts", "--all", "--json"])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_stall_fires_once_and_resolves_once_when_the_task_prints_again() {
    let h = alerted_daemon();
    let (go, end) = (fifo(&h, "go"), fifo(&h, "end"));
    let script = format!(
        "echo a; read l < {}; echo b; read l < {}",
        go.display(),
        end.display()
    );
    let id = h
        .ok(&["run", "--stall", "1h", "--", "sh", "-c", &script])
        .trim()
        .to_string();
    until("the task printed", || output(&h, &id).contains('a'));
    // Seen by a look before the clock moves, as a daemon on the system's clock sees
    // a task each second.
    until("the task runs", || show(&h, &id)["state"] == "running");
    h.advance("0s");
    // Quiet for less than its stall time: no alert.
    h.advance("59m");
    assert!(alerts(&h).is_empty(), "{:?}", alerts(&h));
    h.advance("2m");
    let firing = alerts(&h);
    assert_eq!(firing.len(), 1, "{firing:?}");
    assert_eq!(
        (&firing[0]["kind"], &firing[0]["state"]),
        (&"stalled".into(), &"firing".into())
    );
    let o = h.run(&["health"]);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("printed nothing for 1h"));
    // It prints again while it runs: the stall resolves at the next look.
    open_gate(&go);
    until("the task printed again", || output(&h, &id).contains('b'));
    h.advance("0s");
    assert!(
        alerts(&h)
            .iter()
            .any(|a| a["kind"] == "stalled" && a["state"] == "resolved")
    );
    open_gate(&end);
    wait(&h, &id);
    assert_eq!(code(&h.run(&["health"])), 0);
    let all = alerts(&h);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["task"].to_string(), id);
    assert!(
        all[0]["message"]
            .as_str()
            .unwrap()
            .contains("printed again"),
        "{all:?}"
    );
    until("the sink told of both", || told(&h).len() >= 2);
    assert_eq!(
        told(&h),
        vec![
            format!("stalled firing {id} default"),
            format!("stalled resolved {id} default")
        ]
    );
}

#[test]
fn a_stall_can_stop_the_task() {
    let h = alerted_daemon();
    let id = h
        .ok(&[
            "run",
            "--stall",
            "1h",
            "--stall-action",
            "stop",
            "--",
            "sleep",
            "600",
        ])
        .trim()
        .to_string();
    until("the task runs", || show(&h, &id)["state"] == "running");
    h.advance("0s");
    h.advance("1h");
    let w = wait(&h, &id);
    assert_eq!(w["tasks"][0]["state"], "cancelled", "{w}");
    until("the stall resolved", || {
        alerts(&h).iter().any(|a| a["state"] == "resolved")
    });
    let all = alerts(&h);
    assert!(
        all[0]["message"].as_str().unwrap().contains("ended"),
        "{all:?}"
    );
    let o = h.run(&["run", "--stall-action", "stop", "--", "true"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

#[test]
fn a_queue_failing_in_a_row_fires_and_a_success_resolves_it() {
    let h = alerted_daemon();
    h.ok(&["queue", "set", "llm", "--alert-after", "2"]);
    let q = h.json(&["queue", "--json"]);
    let llm = q
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "llm")
        .unwrap()
        .clone();
    assert_eq!(llm["alert_after"], 2, "{q}");
    for _ in 0..2 {
        h.run(&["run", "-q", "llm", "--wait", "--", "false"]);
    }
    until("a failures alert", || {
        alerts(&h)
            .iter()
            .any(|a| a["kind"] == "failures" && a["state"] == "firing")
    });
    // A third failure does not fire it again.
    h.run(&["run", "-q", "llm", "--wait", "--", "false"]);
    h.ok(&["run", "-q", "llm", "--wait", "--", "true"]);
    until("it resolved", || {
        alerts(&h)
            .iter()
            .any(|a| a["kind"] == "failures" && a["state"] == "resolved")
    });
    let all = alerts(&h);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["queue"], "llm");
    until("the sink told of both", || told(&h).len() >= 2);
    assert_eq!(
        told(&h),
        vec!["failures firing  llm", "failures resolved  llm"]
    );
}

#[test]
fn a_quarantined_task_fires_until_it_is_retried() {
    let h = alerted_daemon();
    let id = h
        .ok(&["run", "-r", "1", "--backoff", "10ms", "--", "false"])
        .trim()
        .to_string();
    let w = wait(&h, &id);
    assert_eq!(w["tasks"][0]["state"], "quarantined", "{w}");
    until("a quarantined alert", || {
        alerts(&h)
            .iter()
            .any(|a| a["kind"] == "quarantined" && a["state"] == "firing")
    });
    assert_eq!(code(&h.run(&["health"])), 1);
    h.ok(&["retry", &id]);
    until("it resolved", || {
        alerts(&h)
            .iter()
            .any(|a| a["kind"] == "quarantined" && a["state"] == "resolved")
    });
    wait(&h, &id);
    until("quarantined again: a new alert", || {
        alerts(&h)
            .iter()
            .filter(|a| a["kind"] == "quarantined")
            .count()
            == 2
    });
}

#[test]
fn the_dead_mans_switch_is_fetched_while_the_daemon_runs() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ping/abc", listener.local_addr().unwrap());
    let pings = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = pings.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.lock()
                .unwrap()
                .push(head.lines().next().unwrap_or_default().to_string());
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK");
        }
    });
    let mut h = Home::new();
    std::fs::create_dir_all(&h.home).unwrap();
    std::fs::write(
        h.home.join("config.toml"),
        format!("[alerts]\nheartbeat_url = \"{url}\"\nheartbeat_every = \"1h\"\n"),
    )
    .unwrap();
    h.serve(&[("MEANWHILE_TEST_CLOCK", "0s")]);
    // One at start, then one each hour of the daemon's clock, and no more.
    until("the first heartbeat", || !pings.lock().unwrap().is_empty());
    h.advance("59m");
    assert_eq!(pings.lock().unwrap().len(), 1);
    for n in 2..=4 {
        h.advance("1h");
        assert_eq!(pings.lock().unwrap().len(), n);
    }
    assert!(
        pings
            .lock()
            .unwrap()
            .iter()
            .all(|l| l == "GET /ping/abc HTTP/1.1"),
        "{:?}",
        pings.lock().unwrap()
    );
    // Stopping sends none on the way down.
    h.ok(&["daemon", "stop"]);
    assert_eq!(pings.lock().unwrap().len(), 4);
}

#[test]
fn an_acknowledged_alert_is_kept_from_the_sinks_and_health_and_recorded_in_the_audit() {
    let h = alerted_daemon();
    let id = h
        .ok(&["run", "-r", "1", "--backoff", "10ms", "--", "false"])
        .trim()
        .to_string();
    wait(&h, &id);
    until("a quarantined alert", || {
        alerts(&h)
            .iter()
            .any(|a| a["kind"] == "quarantined" && a["state"] == "firing")
    });
    let alert = alerts(&h)[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(code(&h.run(&["health"])), 1);

    let said = h.ok(&["alerts", "ack", &alert, "--for", "1h"]);
    assert!(
        said.starts_with(&format!("alert {alert} acknowledged until ")),
        "{said}"
    );
    let listed = h.ok(&["alerts"]);
    assert!(listed.contains("acked"), "{listed}");
    assert!(listed.contains("[acknowledged by uid "), "{listed}");
    let o = h.run(&["health"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}");
    assert!(
        out.starts_with("ok: 1 alert(s) firing, all acknowledged"),
        "{out}"
    );
    let health = h.json(&["health", "--json"]);
    assert_eq!(health["ok"], true, "{health}");
    assert!(health["firing"][0]["acked"]["until"].is_i64(), "{health}");

    // Acknowledged again, until it resolves; then it resolves by a retry.
    h.ok(&["alerts", "ack", &alert]);
    h.ok(&["retry", &id]);
    until("it resolved", || {
        alerts(&h).iter().any(|a| {
            a["id"].as_i64().map(|n| n.to_string()).as_deref() == Some(alert.as_str())
                && a["state"] == "resolved"
        })
    });
    // The sink heard the firing and the resolution, and neither acknowledgement.
    until("the sink told of both", || told(&h).len() >= 2);
    assert_eq!(
        told(&h),
        vec![
            format!("quarantined firing {id} default"),
            format!("quarantined resolved {id} default")
        ]
    );

    // A resolved alert, or one that is not there, is refused with the reason.
    let o = h.run(&["alerts", "ack", &alert]);
    assert_eq!(code(&o), 4, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("only a firing alert can be acknowledged"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = h.run(&["alerts", "ack", "9999"]);
    assert_eq!(code(&o), 3, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown alert 9999"));
    let o = h.run(&["alerts", "ack", &alert, "--for", "0s"]);
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));

    // The audit trail names who acknowledged it, and for how long.
    let trail = h.json(&["audit", "--json"]);
    let acks: Vec<&serde_json::Value> = trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "alert_acked")
        .collect();
    assert_eq!(acks.len(), 2, "{trail:#}");
    assert!(
        acks.iter()
            .all(|r| r["who"].as_str().unwrap().starts_with("uid "))
    );
    let summaries: Vec<&str> = acks
        .iter()
        .map(|r| r["summary"].as_str().unwrap())
        .collect();
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("acknowledged until 20")),
        "{summaries:?}"
    );
    assert!(
        summaries
            .iter()
            .any(|s| s.ends_with("acknowledged until it resolves")),
        "{summaries:?}"
    );
}
