//! Queue limits from the command line: concurrency keys with `--per-key`, and
//! `--rate`, against a real daemon running real processes.

use crate::support::*;

/// Each line of the log: `start KEY ID` or `end KEY ID`, appended by the task itself
/// (one short `write` with O_APPEND each, so lines never mix).
fn keyed_task(h: &Home, log: &str, key: &str, n: usize) -> String {
    let script = format!("echo start {key} {n} >> {log}; sleep 0.1; echo end {key} {n} >> {log}");
    h.ok(&["run", "-q", "llm", "--key", key, "--", &script])
        .trim()
        .to_string()
}

#[test]
fn per_key_one_never_overlaps_tasks_of_a_key() {
    let mut h = Home::new();
    h.serve(&[]);
    let set = h.json(&["queue", "set", "llm", "-j", "4", "--per-key", "1", "--json"]);
    assert_eq!(set[0]["per_key"], 1);
    assert_eq!(set[0]["max_parallel"], 4);
    let log = h.dir.path().join("events.log");
    let log = log.to_str().unwrap();
    let mut ids = Vec::new();
    for (n, key) in ["a", "b", "a", "b", "a", "c", "a"].iter().enumerate() {
        ids.push(keyed_task(&h, log, key, n));
    }
    let mut args = vec!["wait"];
    args.extend(ids.iter().map(String::as_str));
    h.ok(&args);

    // What the processes saw: per key, every start is followed by its own end
    // before the next start of that key.
    let text = std::fs::read_to_string(log).unwrap();
    let mut running: std::collections::HashMap<&str, usize> = Default::default();
    let mut starts = 0;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let (what, key) = (w.next().unwrap(), w.next().unwrap());
        let n = running.entry(key).or_default();
        match what {
            "start" => {
                *n += 1;
                starts += 1;
                assert_eq!(*n, 1, "two tasks of key {key} at once:\n{text}");
            }
            _ => *n -= 1,
        }
    }
    assert_eq!(starts, ids.len(), "{text}");

    // What the store recorded: the attempts of one key follow each other.
    let mut spans: std::collections::HashMap<String, Vec<(i64, i64)>> = Default::default();
    for id in &ids {
        let d = h.json(&["show", id, "--json"]);
        let key = d["task"]["concurrency_key"].as_str().unwrap().to_string();
        assert_eq!(d["task"]["spec"]["concurrency_key"], key.as_str());
        assert_eq!(d["task"]["state"], "succeeded");
        let a = &d["attempts"][0];
        let span = (
            a["started_at"].as_i64().unwrap(),
            a["ended_at"].as_i64().unwrap(),
        );
        spans.entry(key).or_default().push(span);
    }
    for (key, mut s) in spans {
        s.sort();
        for w in s.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "attempts of key {key} overlap in the store: {w:?}"
            );
        }
    }
    assert!(h.ok(&["show", &ids[0]]).contains("key       a"));
}

#[test]
fn queue_limits_are_set_shown_and_removed() {
    let mut h = Home::new();
    h.serve(&[]);
    h.ok(&["queue", "set", "llm", "--rate", "60/m", "--per-key", "2"]);
    let qs = h.json(&["queue", "--json"]);
    let llm = qs
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "llm")
        .unwrap()
        .clone();
    assert_eq!((&llm["rate"], &llm["per_key"]), (&"60/m".into(), &2.into()));
    let ls = h.json(&["queue", "ls", "--json"]);
    assert!(ls.as_array().unwrap().contains(&llm), "{ls}");
    let table = h.ok(&["queue"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("PER KEY") && header.contains("RATE"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with("llm")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[..4], ["llm", "4", "2", "60/m"], "{table}");

    // A duration window is kept exactly and shown back as it parses.
    let q = h.json(&["queue", "set", "llm", "--rate", "10/30s", "--json"]);
    assert_eq!(
        (&q[0]["rate"], &q[0]["per_key"]),
        (&"10/30s".into(), &2.into())
    );
    let q = h.json(&["queue", "set", "llm", "--per-key", "none", "--json"]);
    assert_eq!(
        (&q[0]["rate"], &q[0]["per_key"]),
        (&"10/30s".into(), &serde_json::Value::Null)
    );
    let q = h.json(&["queue", "set", "llm", "--rate", "none", "--json"]);
    assert_eq!(q[0]["rate"], serde_json::Value::Null);
    let row = h.ok(&["queue"]);
    let row = row.lines().find(|l| l.starts_with("llm")).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>()[..4],
        ["llm", "4", "-", "-"]
    );

    // Bad input: a clear error naming the option and the form, and nothing changed.
    for (args, expect) in [
        (
            ["--rate", "60 a minute"],
            "rate must be N/s, N/m, N/h, N/d or N/<duration>",
        ),
        (["--rate", "0/m"], "count must be at least 1"),
        (["--per-key", "0"], "per-key must be a whole number from 1"),
    ] {
        let mut all = vec!["queue", "set", "llm"];
        all.extend(args);
        let o = h.run(&all);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{args:?}: {}", stderr(&o));
    }
    let o = h.run(&["run", "--key", "no spaces", "--", "true"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("concurrency_key"), "{}", stderr(&o));
    let q = h.json(&["queue", "--json"]);
    let llm = q
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "llm")
        .unwrap();
    assert_eq!(
        (&llm["rate"], &llm["per_key"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
}

/// A rate holds the second start back until the window lets it in. (That the
/// dispatcher's timer is set for that moment is pinned by the store's conformance
/// tests of `next_wakeup`: here, a missed timer would only show as a slow test.)
#[test]
fn a_rate_limited_start_comes_when_the_window_allows() {
    let mut h = Home::new();
    h.serve(&[]);
    h.ok(&["queue", "set", "slow", "--rate", "1/500ms"]);
    let a = h
        .ok(&["run", "-q", "slow", "--", "true"])
        .trim()
        .to_string();
    let b = h
        .ok(&["run", "-q", "slow", "--", "true"])
        .trim()
        .to_string();
    h.ok(&["wait", &a, &b]);
    let start = |id: &str| {
        h.json(&["show", id, "--json"])["attempts"][0]["started_at"]
            .as_i64()
            .unwrap()
    };
    let (sa, sb) = (start(&a), start(&b));
    assert!(
        (sa - sb).abs() >= 500,
        "two starts closer than the window allows: {sa} and {sb}"
    );
}
