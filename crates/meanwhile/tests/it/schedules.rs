//! Schedules through the CLI against a real daemon: tasks at each time, none twice
//! across a crash of the daemon, the `missed` policies after downtime, pausing,
//! firing by hand, and the errors a user gets. The daemon runs on a test clock
//! (`MEANWHILE_TEST_CLOCK`) that each test moves: hourly schedules fire when the
//! test says, and downtime is hours long without a wait.

use crate::support::*;
use std::collections::BTreeSet;

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

/// Moves the daemon's clock to schedule `name`'s next time, so that it fires then,
/// on time; how far the clock is then ahead of the system's, in ms.
fn advance_to_next(h: &Home, name: &str) -> i64 {
    let now = h.advance("0s")["now"].as_i64().unwrap();
    let next = schedule(h, name)["next_fire"].as_i64().unwrap();
    let moved = h.advance(&format!("{}ms", (next - now).max(0)));
    moved["ahead_ms"].as_i64().unwrap()
}

/// The daemon's environment with its clock `ahead_ms` ahead of the system's.
fn clock_ahead(ahead_ms: i64) -> String {
    format!("{ahead_ms}ms")
}

#[test]
fn a_schedule_fires_each_time_once_across_a_crash() {
    let mut h = Home::new();
    h.serve(&[("MEANWHILE_TEST_CLOCK", "0s")]);
    let fires = h.dir.path().join("fires.txt");
    let line = format!(
        "echo \"$MEANWHILE_SCHEDULE $MEANWHILE_SCHEDULED_AT\" >> {}",
        fires.display()
    );
    let out = h.ok(&["schedule", "add", "tick", "--every", "1h", "--", &line]);
    assert!(
        out.starts_with("added schedule tick: every 1h, first at "),
        "{out}"
    );
    // Not due yet: nothing fires until its time.
    h.advance("0s");
    assert!(tasks_of(&h, "tick").is_empty());
    let mut ahead = 0;
    for n in 1..=3 {
        ahead = advance_to_next(&h, "tick");
        assert_eq!(tasks_of(&h, "tick").len(), n);
    }

    // The daemon dies and comes back two and a half hours later: the times it was
    // down were missed (the default policy, skip, runs none of them), and the
    // schedule goes on.
    h.kill_daemon();
    let later = clock_ahead(ahead + 150 * 60_000);
    h.serve(&[("MEANWHILE_TEST_CLOCK", &later)]);
    h.advance("0s");
    let before = tasks_of(&h, "tick").len();
    assert_eq!(before, 3);
    for n in 1..=3 {
        advance_to_next(&h, "tick");
        assert_eq!(tasks_of(&h, "tick").len(), before + n);
    }
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
    assert_eq!(s["missed_count"], 2, "{s}");

    // Paused, it fires nothing, however long.
    let s = schedule(&h, "tick");
    assert_eq!(s["paused"], true, "{s}");
    assert!(s.get("next_fire").is_none(), "{s}");
    h.advance("5h");
    assert_eq!(tasks_of(&h, "tick").len(), tasks.len());

    // By hand: a task at once, and the schedule stays paused.
    let id = h.ok(&["schedule", "run", "tick"]).trim().to_string();
    let t = h.json(&["wait", "--json", &id]);
    assert_eq!(t["tasks"][0]["state"], "succeeded", "{t}");
    assert_eq!(schedule(&h, "tick")["paused"], true);
    assert_eq!(tasks_of(&h, "tick").len(), tasks.len() + 1);

    // Resumed, it fires again at its next time; removed, its tasks stay.
    h.ok(&["schedule", "resume", "tick"]);
    advance_to_next(&h, "tick");
    assert_eq!(tasks_of(&h, "tick").len(), tasks.len() + 2);
    assert_eq!(h.ok(&["schedule", "rm", "tick"]), "removed schedule tick\n");
    assert_eq!(h.json(&["schedule", "--json"]), serde_json::json!([]));
    assert_eq!(tasks_of(&h, "tick").len(), tasks.len() + 2);
}

#[test]
fn after_downtime_skip_runs_nothing_and_once_runs_one_catch_up() {
    let mut h = Home::new();
    h.serve(&[("MEANWHILE_TEST_CLOCK", "0s")]);
    for policy in ["skip", "once"] {
        h.ok(&[
            "schedule", "add", policy, "--every", "1h", "--missed", policy, "--", "true",
        ]);
    }
    // Down from before the first time (1 h) to 2 min after it: that time is later
    // than the minute a firing may be late, and the next (2 h) has not come.
    h.kill_daemon();
    h.serve(&[("MEANWHILE_TEST_CLOCK", "62m")]);
    h.advance("0s");
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
    // Its catch-up task is for the time that was missed.
    assert_eq!(
        once["last_fire"].as_i64().unwrap(),
        once["created_at"].as_i64().unwrap() + 3_600_000
    );
    // Both missed a time: a schedule_missed alert each, resolved when they next
    // fire on time (2 h).
    let missed = |state: &str| {
        h.json(&["alerts", "--all", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "schedule_missed" && a["state"] == state)
            .count()
    };
    assert_eq!(missed("firing"), 2);
    // `once` was added last: its next time is the later one, by milliseconds.
    advance_to_next(&h, "once");
    assert_eq!(missed("resolved"), 2);
    assert_eq!(missed("firing"), 0);
    let once = schedule(&h, "once");
    assert_eq!(once["fired"], 2, "{once}");
    assert_eq!(
        once["last_fire"].as_i64().unwrap(),
        once["created_at"].as_i64().unwrap() + 2 * 3_600_000
    );
}

#[test]
fn only_a_daemon_on_a_test_clock_lets_its_clock_be_moved() {
    let mut h = Home::new();
    h.serve(&[]);
    let o = h.run(&["daemon", "clock", "--advance", "1h"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("this daemon keeps the system's time"),
        "{}",
        stderr(&o)
    );
    let o = h.run(&["daemon", "clock", "--advance", "soon"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--advance"), "{}", stderr(&o));
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
