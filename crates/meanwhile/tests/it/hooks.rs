//! End hooks against a real daemon: a task's `--on-end` command and the daemon's, each
//! run once per end with the end in its environment, and a webhook that fails, sees
//! the daemon killed, and still gets every end once it answers, signed.

use crate::support::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn end_commands_run_once_per_end_with_the_end_in_their_environment() {
    let mut h = Home::new();
    let all = h.dir.path().join("all.txt");
    let mine = h.dir.path().join("mine.txt");
    let global = format!(
        "echo \"$MEANWHILE_TASK_ID $MEANWHILE_TASK_STATE $MEANWHILE_EXIT_CODE\" >> {}",
        all.display()
    );
    h.serve(&[("MEANWHILE_HOOK_ON_END", &global)]);
    let own = format!(
        "echo \"$MEANWHILE_TASK_ID $MEANWHILE_TASK_STATE $MEANWHILE_EXIT_CODE $GREETING\" >> {}",
        mine.display()
    );
    let failing = h
        .ok(&[
            "run",
            "-e",
            "GREETING=hi",
            "--on-end",
            &own,
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .trim()
        .to_string();
    let ok = h.ok(&["run", "--", "true"]).trim().to_string();
    until("both ends seen by the daemon's command", || {
        lines(&all).len() >= 2
    });
    until("the task's own command", || !lines(&mine).is_empty());
    let mut seen = lines(&all);
    seen.sort();
    let mut want = vec![format!("{failing} failed 3"), format!("{ok} succeeded 0")];
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(lines(&mine), vec![format!("{failing} failed 3 hi")]);
    assert!(
        h.ok(&["show", &failing])
            .contains(&format!("on end    {own}"))
    );

    // Run again by hand, it ends again: one more line each.
    h.ok(&["retry", &failing]);
    until("the second end", || lines(&mine).len() >= 2);
    assert_eq!(lines(&mine)[1], format!("{failing} failed 3 hi"));
    until("the daemon's command for it", || lines(&all).len() >= 3);
    // Nothing runs twice: a later end's commands run after every earlier end was
    // taken from the log, and by then there is no repeat of any.
    let mark = format!("echo later >> {}", mine.display());
    let later = h
        .ok(&["run", "--on-end", &mark, "--", "true"])
        .trim()
        .to_string();
    until("the later end's commands", || {
        lines(&mine).contains(&"later".to_string())
            && lines(&all).iter().any(|l| l.starts_with(&later))
    });
    assert_eq!(lines(&mine).len(), 3, "{:?}", lines(&mine));
    assert_eq!(lines(&all).len(), 4, "{:?}", lines(&all));

    let o = h.run(&["run", "--on-end", " ", "--", "true"]);
    assert!(
        stderr(&o).contains("on_end: must not be empty"),
        "{}",
        stderr(&o)
    );
}

/// One request a webhook receiver got.
#[derive(Clone)]
struct Request {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    /// The task id in the body.
    task: String,
    /// Whether it was answered 200.
    accepted: bool,
}

/// A webhook receiver: records each request, and answers 500 until `accept` is set.
struct Receiver {
    url: String,
    accept: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let accept = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (a, s) = (accept.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = conn.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(i + 4);
                    }
                };
                let Some(head_end) = head_end else { continue };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let headers: BTreeMap<String, String> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = buf[head_end..].to_vec();
                while body.len() < len {
                    let n = conn.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                let ok = a.load(Ordering::SeqCst);
                let task = serde_json::from_slice::<serde_json::Value>(&body)
                    .map(|v| v["task"]["id"].to_string())
                    .unwrap_or_default();
                s.lock().unwrap().push(Request {
                    headers,
                    body,
                    task,
                    accepted: ok,
                });
                let status = if ok {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
                    )
                    .as_bytes(),
                );
            }
        });
        Receiver { url, accept, seen }
    }
}

#[test]
fn a_failing_webhook_gets_every_end_once_it_recovers_even_across_a_crash() {
    let rx = Receiver::start();
    let mut h = Home::new();
    let env = [
        ("MEANWHILE_HOOK_WEBHOOK", rx.url.as_str()),
        ("MEANWHILE_HOOK_SECRET", "s3cret"),
    ];
    h.serve(&env);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            h.ok(&["run", "--", "sh", "-c", &format!("exit {i}")])
                .trim()
                .to_string()
        })
        .collect();
    until("the webhook refused a delivery of each", || {
        let seen = rx.seen.lock().unwrap();
        ids.iter().all(|id| seen.iter().any(|r| r.task == *id))
    });
    // The daemon dies while the webhook refuses; the next one delivers again.
    h.kill_daemon();
    rx.accept.store(true, Ordering::SeqCst);
    h.serve(&env);
    until("every end delivered", || {
        let seen = rx.seen.lock().unwrap();
        ids.iter()
            .all(|id| seen.iter().any(|r| r.accepted && r.task == *id))
    });
    let seen = rx.seen.lock().unwrap().clone();
    for r in &seen {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["event"], "task_ended", "{v}");
        assert_eq!(r.headers["content-type"], "application/json");
        // Signed with the secret, and named by the end's delivery id, which stays the
        // same when the end is delivered again.
        assert_eq!(
            r.headers["x-meanwhile-signature"],
            meanwhile_server::webhook::signature("s3cret", &r.body),
            "{v}"
        );
        assert_eq!(r.headers["x-meanwhile-delivery"], v["id"].to_string());
        let i = ids.iter().position(|x| *x == r.task).expect("one of ours");
        assert_eq!(v["task"]["exit_code"], i, "{v}");
        assert_eq!(
            v["task"]["state"],
            if i == 0 { "succeeded" } else { "failed" }
        );
    }
    for id in &ids {
        let deliveries: std::collections::BTreeSet<&String> = seen
            .iter()
            .filter(|r| r.task == *id)
            .map(|r| &r.headers["x-meanwhile-delivery"])
            .collect();
        assert_eq!(
            deliveries.len(),
            1,
            "one delivery id per end: {deliveries:?}"
        );
    }
}
