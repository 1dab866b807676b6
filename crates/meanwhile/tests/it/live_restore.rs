//! Live restore with the real daemon and SIGKILL: tasks outlive the daemon, and the
//! next one records their true status and complete output, running none twice.

use crate::support::*;
use std::time::Duration;

const TASKS: usize = 20;

/// Submits the tasks, each `sh -c 'sleep 2; echo done; exit 3' <marker>` so that its
/// processes can be found by the marker.
fn submit(h: &Home, marker: &str) -> Vec<String> {
    (0..TASKS)
        .map(|_| {
            h.ok(&[
                "run",
                "--",
                "sh",
                "-c",
                "sleep 2; echo done; exit 3",
                marker,
            ])
            .trim()
            .to_string()
        })
        .collect()
}

/// Processes whose command line carries `marker`.
fn with_marker(marker: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(marker)
        {
            n += 1;
        }
    }
    n
}

fn check_all_failed_with_3(h: &Home, ids: &[String]) {
    let mut args = vec!["wait", "--timeout", "5m", "--json"];
    args.extend(ids.iter().map(String::as_str));
    let o = h.run(&args);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["timed_out"], false);
    for t in v["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "failed", "{t}");
        assert_eq!(t["exit_code"], 3, "{t}");
        assert_eq!(t["attempts"], 1, "no task runs twice: {t}");
        let id = t["id"].to_string();
        assert_eq!(h.ok(&["logs", &id]), "done\n", "task {id}");
    }
}

const ENV: &[(&str, &str)] = &[("MEANWHILE_MAX_PARALLEL", "32")];

#[test]
fn sigkilled_daemon_restarts_and_records_true_status() {
    let mut h = Home::new();
    h.serve(ENV);
    let marker = format!("mw-restore-{}", std::process::id());
    let ids = submit(&h, &marker);
    h.kill_daemon();
    h.serve(ENV);
    check_all_failed_with_3(&h, &ids);
}

#[test]
fn tasks_that_ended_while_the_daemon_was_down_get_their_true_status() {
    let mut h = Home::new();
    h.serve(ENV);
    let marker = format!("mw-down-{}", std::process::id());
    let ids = submit(&h, &marker);
    // All of them running: every attempt has a pid.
    for _ in 0..2400 {
        let v = h.json(&["ls", "--json", "--state", "running"]);
        if v["tasks"].as_array().unwrap().len() == TASKS {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    h.kill_daemon();
    // Wait until every task's processes are gone, then some.
    for _ in 0..2400 {
        if with_marker(&marker) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(with_marker(&marker), 0, "the tasks never ended");
    h.serve(ENV);
    check_all_failed_with_3(&h, &ids);
}
