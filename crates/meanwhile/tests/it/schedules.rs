//! Schedules through the CLI against a real daemon: tasks at each time, none twice
//! across a crash of the daemon, the `missed` policies after downtime, pausing,
//! firing by hand, and the errors a user gets.

use crate::support::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// Firings later than this are missed: short, so that a test's downtime counts.
const ENV: &[(&str, &str)] = &[("MEANWHILE_SCHEDULE_LATE_AFTER", "1s")];

fn schedule(h: &Home, name: &str) -> serde_json::Value {
    let all = h.json(&["schedule", "ls", "--json"]);
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no schedule {name} in {all}"))
        .clone()
}

fn tasks_of(h: &Home, name: &str) -> Vec<serde_json::Value> {
    let label = format!("schedule:{name}");
    let page = h.json(&["ls", "--json", "--limit", "1000", "--label", &label]);
    page["tasks"].as_array().unwrap().clone()
}

#[test]
fn a_schedule_fires_each_time_once_across_a_crash() {
    let mut h = Home::new();
    h.serve(ENV);
    let fires = h.dir.path().join("fires.txt");
    let line = format!(
        "echo \"$MEANWHILE_SCHEDULE $MEANWHILE_SCHEDULED_AT\" >> {}",
        fires.display()
    );
    let out = h.ok(&["schedule", "add", "tick", "--every", "1s", "--", &line]);
    assert!(
        out.starts_with("added schedule tick: every 1s, first at "),
        "{out}"
    );
    until("three firings", || tasks_of(&h, "tick").len() >= 3);

    // The daemon dies and comes back: the times it was down are not run twice, and
    // the schedule goes on.
    h.kill_daemon();
    std::thread::sleep(Duration::from_secs(2));
    h.serve(ENV);
    let before = tasks_of(&h, "tick").len();
    until("three more firings", || {
        tasks_of(&h, "tick").len() >= before + 3
    });
    h.ok(&["schedule", "pause", "tick"]);
    let tasks = tasks_of(&h, "tick");
    let ids: Vec<String> = tasks.iter().map(|t| t["id"].to_string()).collect();
    let mut args = vec!["wait", "--timeout", "5m", "--json"];
    args.extend(ids.iter().map(String::as_str));
    h.ok(&args);
    let text = std::fs::read_to_string(&fires).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let distinct: BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(lines.len(), tasks.len(), "{text}");
    assert_eq!(distinct.len(), lines.len(), "a time ran twice:\n{text}");
    assert!(lines.iter().all(|l| l.starts_with("tick 20")), "{text}");
    let s = schedule(&h, "tick");
    assert_eq!(s["fired"], tasks.len(), "{s}");
    assert!(s["missed_count"].as_u64().unwrap() >= 1, "{s}");

    // Paused, it fires nothing.
    let s = schedule(&h, "tick");
    assert_eq!(s["paused"], true, "{s}");
    assert!(s.get("next_fire").is_none(), "{s}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(tasks_of(&h, "tick").len(), tasks.len());

    // By hand: a task at once, and the schedule stays paused.
    let id = h.ok(&["schedule", "run", "tick"]).trim().to_string();
    let t = h.json(&["wait", "--json", &id]);
    assert_eq!(t["tasks"][0]["state"], "succeeded", "{t}");
    assert_eq!(schedule(&h, "tick")["paused"], true);
    assert_eq!(tasks_of(&h, "tick").len(), tasks.len() + 1);

    // Resumed, it fires again; removed, its tasks stay.
    h.ok(&["schedule", "resume", "tick"]);
    until("a firing after resume", || {
        tasks_of(&h, "tick").len() > tasks.len() + 1
    });
    assert_eq!(h.ok(&["schedule", "rm", "tick"]), "removed schedule tick\n");
    assert_eq!(h.json(&["schedule", "--json"]), serde_json::json!([]));
    assert!(tasks_of(&h, "tick").len() > tasks.len() + 1);
}

#[test]
fn after_downtime_skip_runs_nothing_and_once_runs_one_catch_up() {
    let mut h = Home::new();
    h.serve(ENV);
    for policy in ["skip", "once"] {
        h.ok(&[
            "schedule", "add", policy, "--every", "5s", "--missed", policy, "--", "true",
        ]);
    }
    // Down from before the first time (5 s) to 2 s after it: that time is 2 s late,
    // later than the daemon's 1 s, and the next (10 s) has not come.
    h.kill_daemon();
    std::thread::sleep(Duration::from_secs(7));
    h.serve(ENV);
    until("both schedules looked at", || {
        ["skip", "once"].iter().all(|p| {
            let s = schedule(&h, p);
            s["fired"].as_u64().unwrap() + s["missed_count"].as_u64().unwrap() >= 1
        })
    });
    let skip = schedule(&h, "skip");
    assert_eq!(
        (skip["fired"].as_u64(), skip["missed_count"].as_u64()),
        (Some(0), Some(1)),
        "{skip}"
    );
    assert!(tasks_of(&h, "skip").is_empty());
    let once = schedule(&h, "once");
    assert_eq!(
        (once["fired"].as_u64(), once["missed_count"].as_u64()),
        (Some(1), Some(0)),
        "{once}"
    );
    let tasks = tasks_of(&h, "once");
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    // Both missed a time: a schedule_missed alert each, resolved when they next
    // fire on time (10 s).
    let missed = |state: &str| {
        h.json(&["alerts", "--all", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "schedule_missed" && a["state"] == state)
            .count()
    };
    assert_eq!(missed("firing"), 2);
    until("both fired on time again", || missed("resolved") == 2);
    // Its task is for the time that was missed.
    assert_eq!(
        once["last_fire"].as_i64().unwrap(),
        once["created_at"].as_i64().unwrap() + 5000
    );
}

#[test]
fn wrong_schedules_get_errors_that_name_the_fix() {
    let h = Home::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["schedule", "add", "x", "--cron", "61 * * * *", "--", "true"],
            "cron: \"61 * * * *\" is not a cron expression",
        ),
        (
            &["schedule", "add", "x", "--cron", "0 9 * *", "--", "true"],
            "cron: \"0 9 * *\" has 4 fields",
        ),
        (
            &[
                "schedule",
                "add",
                "x",
                "--cron",
                "0 9 * * *",
                "--tz",
                "Mars/Base",
                "--",
                "true",
            ],
            "tz: \"Mars/Base\" is not an IANA time zone",
        ),
        (
            &["schedule", "add", "a b", "--every", "1m", "--", "true"],
            "name: \"a b\" may only contain",
        ),
        (
            &[
                "schedule", "add", "x", "--every", "1m", "--missed", "twice", "--", "true",
            ],
            "expected skip or once",
        ),
        (&["schedule", "add", "x", "--every", "1m"], "<CMD>"),
        (
            &["schedule", "add", "x", "--", "true"],
            "--cron <CRON>|--every <EVERY>",
        ),
        (
            &["schedule", "rm", "nope"],
            "unknown schedule \"nope\" (see 'meanwhile schedule ls')",
        ),
        (&["schedule", "run", "nope"], "unknown schedule \"nope\""),
    ];
    for (args, message) in cases {
        let o = h.run(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
    }
    h.ok(&[
        "schedule",
        "add",
        "nightly",
        "--cron",
        "0 3 * * *",
        "--tz",
        "Europe/Berlin",
        "--",
        "true",
    ]);
    let o = h.run(&["schedule", "add", "nightly", "--every", "1h", "--", "true"]);
    assert!(
        stderr(&o).contains("a schedule named \"nightly\" exists"),
        "{}",
        stderr(&o)
    );
    let s = schedule(&h, "nightly");
    assert_eq!(s["tz"], "Europe/Berlin");
    assert_eq!(s["cron"], "0 3 * * *");
    // Its next time is 03:00 in Berlin: 01:00 or 02:00 UTC.
    let next = s["next_fire"].as_i64().unwrap();
    assert_eq!(next % 3_600_000, 0, "{s}");
    let hour = (next / 3_600_000) % 24;
    assert!(hour == 1 || hour == 2, "{s}");
}
