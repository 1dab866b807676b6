//! What a task was asked to do is what it keeps, through the command line, the
//! daemon's API and the store.

use crate::support::*;

/// Regression: `-t 1h30m45s --delay 10.5s` came back as "1h30m" and "10s", and
/// `25h30m` as "1d01h".
#[test]
fn durations_come_back_exactly() {
    let mut h = Home::new();
    h.serve(&[]);
    let id = h
        .ok(&[
            "run",
            "-t",
            "1h30m45s",
            "--grace",
            "2.25s",
            "--delay",
            "10.5s",
            "-r",
            "2",
            "--backoff",
            "25h30m",
            "--",
            "true",
        ])
        .trim()
        .to_string();
    let task = h.json(&["show", &id, "--json"]);
    let spec = &task["task"]["spec"];
    assert_eq!(spec["timeout"], "1h30m45s", "{task}");
    assert_eq!(spec["grace"], "2.25s", "{task}");
    assert_eq!(spec["delay"], "10.5s", "{task}");
    assert_eq!(spec["retry"]["backoff"], "1d1h30m", "{task}");
    let o = h.run(&["run", "-t", "1.5h", "--", "true"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("only seconds take a fraction"),
        "{}",
        stderr(&o)
    );
    h.ok(&["stop", &id]);
}
