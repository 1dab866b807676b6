//! The audit trail and the named tokens, end to end: a real daemon on a real
//! SQLite file, the CLI over the Unix socket and over TCP with a named token, and
//! the database edited directly while no daemon runs.

use crate::support::*;
use serde_json::Value;

fn records(home: &Home, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    home.json(&all).as_array().unwrap().clone()
}

fn find<'a>(records: &'a [Value], action: &str, subject: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["action"] == action && r["subject"] == subject)
        .unwrap_or_else(|| panic!("no {action} of {subject} in {records:#?}"))
}

/// Runs the CLI against the daemon's TCP listener with `token`.
fn over_tcp(home: &Home, port: u16, token: &str, args: &[&str]) -> std::process::Output {
    let mut c = home.cmd(args);
    c.env("MEANWHILE_URL", format!("http://127.0.0.1:{port}"))
        .env("MEANWHILE_TOKEN", token);
    c.output().unwrap()
}

#[test]
fn audit_names_who_did_what_and_verify_names_the_record_edited_in_the_database() {
    let mut home = Home::new();
    let port = free_port();
    home.serve(&[("MEANWHILE_LISTEN", &format!("127.0.0.1:{port}"))]);
    let ran = home.ok(&["run", "--wait", "--", "true"]).trim().to_string();
    let long = home.ok(&["run", "--", "sleep 600"]).trim().to_string();
    home.ok(&["stop", &long]);
    home.ok(&["queue", "set", "gpu", "-j", "1"]);
    let token = home.ok(&["token", "add", "ci"]).trim().to_string();
    let o = over_tcp(&home, port, &token, &["queue", "set", "remote", "-j", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Answered, then killed as a crash would: what was answered is recorded.
    home.kill_daemon();

    let all = records(&home, &[]);
    let uid = rustix::process::getuid().as_raw();
    let me = format!("uid {uid} (meanwhile)");
    let task = |id: &str| format!("task {id}");
    let submitted = find(&all, "submitted", &task(&ran));
    assert_eq!(submitted["who"], me.as_str(), "{submitted:#}");
    assert_eq!(submitted["actor"]["kind"], "socket");
    assert_eq!(submitted["actor"]["uid"], uid);
    assert_eq!(submitted["actor"]["process"], "meanwhile");
    // The attempt's start and end are meanwhile's own doing.
    assert_eq!(find(&all, "started", &task(&ran))["who"], "meanwhile");
    assert_eq!(find(&all, "finished", &task(&ran))["who"], "meanwhile");
    assert!(
        find(&all, "finished", &task(&ran))["summary"]
            .as_str()
            .unwrap()
            .contains("succeeded")
    );
    assert_eq!(
        find(&all, "stop_requested", &task(&long))["who"],
        me.as_str()
    );
    assert_eq!(find(&all, "queue_set", "queue gpu")["who"], me.as_str());
    assert_eq!(find(&all, "token_added", "token ci")["who"], me.as_str());
    let remote = find(&all, "queue_set", "queue remote");
    assert_eq!(remote["who"], "token ci", "{remote:#}");
    assert_eq!(remote["actor"]["kind"], "token");
    // Oldest first, numbered without gaps.
    let seqs: Vec<i64> = all.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    // One task's records only.
    let one = records(&home, &["--task", &long]);
    assert!(!one.is_empty());
    assert!(one.iter().all(|r| r["subject"] == task(&long).as_str()));
    assert!(records(&home, &["--since", "2100-01-01T00:00:00Z"]).is_empty());

    let o = home.run(&["audit", "verify"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("intact"));

    // A field of one record changed in the file, with no daemon running.
    home.ok(&["daemon", "stop"]);
    let target = find(&all, "queue_set", "queue gpu")["seq"]
        .as_i64()
        .unwrap();
    sql(
        &home,
        &format!("UPDATE audit SET summary = 'max_parallel 64' WHERE seq = {target}"),
    );
    let o = home.run(&["audit", "verify"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("record {target} was changed")),
        "{}",
        stderr(&o)
    );
    let v = home.run(&["audit", "verify", "--json"]);
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(
        (v["intact"].as_bool(), v["first_bad_seq"].as_i64()),
        (Some(false), Some(target))
    );

    // Put back as it was, it verifies again; one record removed breaks the chain
    // where it was.
    home.ok(&["daemon", "stop"]);
    let summary = find(&all, "queue_set", "queue gpu")["summary"]
        .as_str()
        .unwrap()
        .to_string();
    sql(
        &home,
        &format!("UPDATE audit SET summary = '{summary}' WHERE seq = {target}"),
    );
    assert_eq!(code(&home.run(&["audit", "verify"])), 0);
    home.ok(&["daemon", "stop"]);
    sql(&home, "DELETE FROM audit WHERE seq = 3");
    let o = home.run(&["audit", "verify"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("record 3 is missing"), "{}", stderr(&o));
}

#[test]
fn tokens_are_added_listed_and_removed_and_a_removed_one_is_refused_at_once() {
    let mut home = Home::new();
    let port = free_port();
    home.serve(&[("MEANWHILE_LISTEN", &format!("127.0.0.1:{port}"))]);
    let token = home.ok(&["token", "add", "ci-bot"]).trim().to_string();
    assert_eq!(token.len(), 64, "{token}");
    // Works at once, without a restart.
    let o = over_tcp(&home, port, &token, &["ls"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let ls = home.ok(&["token", "ls", "--json"]);
    assert!(!ls.contains(&token), "a listing never shows a secret: {ls}");
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&ls)
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["default", "ci-bot"]);
    let db = std::fs::read(home.home.join("meanwhile.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(&token),
        "the store keeps only the hash"
    );

    // Mistakes get clear errors.
    let o = home.run(&["token", "add", "ci-bot"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("exists"), "{}", stderr(&o));
    let o = home.run(&["token", "add", "has space"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("token name"), "{}", stderr(&o));
    let o = home.run(&["token", "rm", "default"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("token file"), "{}", stderr(&o));
    // Tokens are not managed over TCP, not even with a valid token.
    let o = over_tcp(&home, port, &token, &["token", "ls"]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("Unix socket"), "{}", stderr(&o));

    home.ok(&["token", "rm", "ci-bot"]);
    let o = over_tcp(&home, port, &token, &["ls"]);
    assert_ne!(code(&o), 0, "a removed token is refused at once");
    assert!(stderr(&o).contains("wrong bearer token"), "{}", stderr(&o));
    let o = home.run(&["token", "rm", "ci-bot"]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let names = home.json(&["token", "ls", "--json"]);
    assert_eq!(names.as_array().unwrap().len(), 1);
    let all = records(&home, &[]);
    assert_eq!(
        find(&all, "token_removed", "token ci-bot")["actor"]["kind"],
        "socket"
    );
}
