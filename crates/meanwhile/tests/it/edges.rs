//! The edges a new user trips over (issue 28): several ids at once, durations shown
//! as given, keys a pipe cannot take, and exit codes and words that follow the
//! README's table.

use crate::support::*;

fn id_of(out: String) -> String {
    out.trim().to_string()
}

#[test]
fn stop_rm_and_retry_try_every_id_and_exit_with_the_worst_code() {
    let mut h = Home::new();
    h.serve(&[]);
    let done = id_of(h.ok(&["run", "--", "true"]));
    wait_end(&h, &done);
    let slow = id_of(h.ok(&["run", "--", "sleep 300"]));
    // Issue 28.1: the ended task first used to leave the running one running.
    let o = h.run(&["stop", &done, &slow]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{slow} stopping\n")
    );
    assert!(
        stderr(&o).contains(&format!(
            "task {done}: a succeeded task cannot be cancelled"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(wait_end(&h, &slow)["state"], "cancelled");

    let running = id_of(h.ok(&["run", "--", "sleep 300"]));
    let o = h.run(&["rm", &running, &done, "999"]);
    assert_eq!(code(&o), 4, "the worst of 4 and 3: {}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{done} removed\n")
    );
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "meanwhile: task {running} is running; stop it before removing it\n"
        )),
        "rm names the task it refused, and why, in words: {e}"
    );
    assert!(e.contains("unknown task 999"), "{e}");
    assert!(!e.contains("task 999: unknown task 999"), "{e}");

    let o = h.run(&["retry", "999", &slow]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with(&format!("{slow} ")),
        "the second id was still retried"
    );
    h.ok(&["stop", "--force", &running, &slow]);
}

#[test]
fn durations_are_shown_exactly_as_they_parse() {
    let mut h = Home::new();
    h.serve(&[]);
    for (given, shown) in [
        ("25h30m", "1d1h30m"),
        ("1h30m45s", "1h30m45s"),
        ("10.5s", "10.5s"),
        ("250ms", "250ms"),
    ] {
        let id = id_of(h.ok(&["run", "-t", given, "--cpu-time", given, "--", "true"]));
        let text = h.ok(&["show", &id]);
        assert!(
            text.contains(&format!("timeout   {shown}\n")),
            "{given}: {text}"
        );
        assert!(
            text.contains(&format!("cpu time {shown}")),
            "{given}: {text}"
        );
        // What is shown parses back to what was given.
        let again = id_of(h.ok(&["run", "-t", shown, "--", "true"]));
        assert_eq!(
            show(&h, &again)["spec"]["timeout"],
            show(&h, &id)["spec"]["timeout"]
        );
    }
    let id = id_of(h.ok(&[
        "run",
        "--grace",
        "1.5s",
        "--stall",
        "90m",
        "--stall-action",
        "stop",
        "--retries",
        "2",
        "--backoff",
        "1m30s",
        "--delay",
        "25h30m",
        "--",
        "true",
    ]));
    let text = h.ok(&["show", &id]);
    for line in [
        "grace     1.5s\n",
        "stall     1h30m without output: an alert, and a stop\n",
        "retries   2 (3 attempts at most), backoff 1m30s doubling up to 5m\n",
        "delay     1d1h30m\n",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    h.ok(&["stop", &id]);
    let out = h.ok(&["schedule", "add", "poll", "--every", "15m", "--", "true"]);
    assert!(out.contains("every 15m, "), "{out}");
    let list = h.ok(&["schedule"]);
    assert!(list.contains("every 15m "), "{list}");
}

#[test]
fn a_pipe_takes_only_the_keys_it_can_mean() {
    let mut h = Home::new();
    h.serve(&[]);
    let id = id_of(h.ok(&["run", "--stdin", "--", "cat"]));
    for key in ["up", "esc", "backspace", "ctrl-c"] {
        let o = h.run(&["send", &id, "x", "--key", key]);
        assert_eq!(code(&o), 2, "{key}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with(&format!("meanwhile: {key} is a key of a terminal")),
            "words, not the field's name: {}",
            stderr(&o)
        );
    }
    let o = h.run(&["send", &id, "--resize", "80x24"]);
    assert_eq!(code(&o), 2, "usage, not a conflict: {}", stderr(&o));
    h.ok(&["send", &id, "a", "--key", "tab", "--key", "enter", "--eof"]);
    assert_eq!(wait_end(&h, &id)["state"], "succeeded");
    // Nothing of the refused sends reached the task.
    assert_eq!(h.ok(&["logs", &id]), "a\t\n");
}

#[test]
fn exit_codes_and_messages_follow_the_table() {
    let mut h = Home::new();
    h.serve(&[]);
    let tty = id_of(h.ok(&["run", "--tty", "--", "true"]));
    wait_end(&h, &tty);
    let o = h.run(&["attach", &tty]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("task {tty} has succeeded")),
        "{}",
        stderr(&o)
    );

    let piped = id_of(h.ok(&["run", "--stdin", "--", "true"]));
    wait_end(&h, &piped);
    let o = h.run(&["send", &piped, "hi"]);
    assert_eq!(code(&o), 4);
    assert_eq!(
        stderr(&o),
        format!("meanwhile: task {piped} has succeeded; only a running task takes input\n")
    );

    let o = h.run(&["batch", "no-such-input.jsonl", "--prompt", "{text}"]);
    assert_eq!(code(&o), 66, "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-input.jsonl"), "{}", stderr(&o));

    for command in [&["nosuchprog"][..], &["nosuchprog", "--flag"]] {
        let mut args = vec!["run", "--wait", "--"];
        args.extend(command);
        let o = h.run(&args);
        assert_eq!(code(&o), 127, "{command:?}: {}", stderr(&o));
        let id = id_of(String::from_utf8_lossy(&o.stdout).into_owned());
        assert_eq!(
            stderr(&o),
            format!("meanwhile: command not found: nosuchprog (task {id} will end with 127)\n")
        );
        let t = show(&h, &id);
        assert_eq!(t["exit_code"], 127, "{t}");
        assert_eq!(t["reason"], "command not found: nosuchprog", "{t}");
        assert_eq!(
            h.ok(&["logs", &id]),
            "meanwhile: command not found: nosuchprog\n"
        );
    }
    // A shell builtin alone is still the shell's to run, and a program on PATH is
    // not announced.
    let o = h.run(&["run", "--wait", "--", "exit"]);
    assert_eq!((code(&o), stderr(&o)), (0, String::new()));
    assert_eq!(stderr(&h.run(&["run", "--", "true"])), "");
    let later = h.run(&["run", "--delay", "1h", "--", "nosuchprog"]);
    assert_eq!(stderr(&later), "", "its program may be there by then");
    h.ok(&[
        "stop",
        &id_of(String::from_utf8_lossy(&later.stdout).into_owned()),
    ]);

    let first = id_of(h.ok(&["run", "--idempotency-key", "k1", "--", "true"]));
    let again = id_of(h.ok(&["run", "--idempotency-key", "k1", "--", "true"]));
    assert_eq!(
        first, again,
        "a resend of the same spec answers the same task"
    );
    let o = h.run(&["run", "--idempotency-key", "k1", "--", "false"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("idempotency key \"k1\" belongs to task {first}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_typo_makes_no_queue_and_a_new_queue_is_announced() {
    let mut h = Home::new();
    h.serve(&[]);
    h.ok(&["queue", "set", "gpu", "-j", "1"]);
    for action in ["pause", "resume", "rm"] {
        let o = h.run(&["queue", action, "nosuch"]);
        assert_eq!(code(&o), 3, "{action}: {}", stderr(&o));
        assert_eq!(
            stderr(&o),
            "meanwhile: unknown queue \"nosuch\"; the queues are default, gpu (create one with 'meanwhile queue set nosuch')\n",
            "{action}"
        );
    }
    assert!(!h.ok(&["queue"]).contains("nosuch"));

    let o = h.run(&["run", "-q", "gpuu", "--", "true"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "meanwhile: new queue \"gpuu\" (max_parallel 4, from default); queues: default, gpu\n"
    );
    let o = h.run(&["run", "-q", "gpuu", "--", "true"]);
    assert_eq!(stderr(&o), "", "a queue that exists is not announced");
    let o = h.run(&["run", "-q", "gpu", "--", "true"]);
    assert_eq!(stderr(&o), "");
}

#[test]
fn queue_rm_removes_an_idle_queue_and_refuses_a_busy_one() {
    let mut h = Home::new();
    h.serve(&[]);
    h.ok(&["queue", "set", "gpu"]);
    h.ok(&["queue", "pause", "gpu"]);
    let held = id_of(h.ok(&["run", "-q", "gpu", "--", "true"]));
    let o = h.run(&["queue", "rm", "gpu"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("queue \"gpu\" has 1 pending and 0 running tasks"),
        "{}",
        stderr(&o)
    );
    let o = h.run(&["queue", "rm", "default"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    h.ok(&["stop", &held]);
    assert_eq!(h.ok(&["queue", "rm", "gpu"]), "removed queue gpu\n");
    let names: Vec<String> = h
        .json(&["queue", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["default"]);
    let audit = h.ok(&["audit"]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("queue_removed") && l.contains("queue gpu")),
        "{audit}"
    );
    // Its finished task stays, and a retry runs it in the queue made again.
    h.ok(&["retry", &held]);
    assert_eq!(wait_end(&h, &held)["state"], "succeeded");
}

#[test]
fn commands_that_change_something_print_json_when_asked() {
    let mut h = Home::new();
    h.serve(&[]);
    let done = id_of(h.ok(&["run", "--", "true"]));
    wait_end(&h, &done);
    let slow = id_of(h.ok(&["run", "--", "sleep 300"]));
    let o = h.run(&["stop", &done, &slow, "--json"]);
    assert_eq!(code(&o), 4);
    let stopped: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(stopped.as_array().unwrap().len(), 1, "{stopped}");
    assert_eq!(stopped[0]["id"].to_string(), slow);
    assert_eq!(wait_end(&h, &slow)["state"], "cancelled");
    let retried = h.json(&["retry", &done, "--json"]);
    assert_eq!(retried[0]["id"].to_string(), done);
    assert_eq!(wait_end(&h, &done)["state"], "succeeded");
    let removed = h.json(&["rm", &done, "--json"]);
    assert_eq!(removed["removed"][0].to_string(), done);
    assert_eq!(h.json(&["clean", "--json"])["removed"][0].to_string(), slow);

    let piped = id_of(h.ok(&["run", "--stdin", "--", "cat"]));
    // Input goes to a running task: under load it may not have started yet.
    until("the piped task running", || {
        show(&h, &piped)["state"] == "running"
    });
    let sent = h.json(&["send", &piped, "hi", "--eof", "--json"]);
    assert_eq!(
        (sent["bytes"].as_u64(), sent["eof"].as_bool()),
        (Some(2), Some(true))
    );

    h.ok(&["queue", "set", "gpu"]);
    assert_eq!(h.json(&["queue", "rm", "gpu", "--json"])["removed"], "gpu");
    h.ok(&[
        "budget", "set", "default", "--tokens", "1000", "--window", "day",
    ]);
    assert_eq!(
        h.json(&["budget", "rm", "default", "--json"])["removed"],
        "default"
    );
    h.ok(&["token", "add", "ci"]);
    assert_eq!(h.json(&["token", "rm", "ci", "--json"])["removed"], "ci");
}

#[test]
fn man_prints_a_page_per_command_and_writes_them_all() {
    let h = Home::new();
    let page = h.ok(&["man", "queue", "set"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH meanwhile-queue-set"),
        "{page}"
    );
    assert!(page.contains(".TH meanwhile-queue-set 1"), "{page}");
    assert!(page.contains("max\\-parallel"), "the options: {page}");
    assert!(h.ok(&["man"]).contains(".TH meanwhile 1"));
    let o = h.run(&["man", "nosuch"]);
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("no command \"nosuch\" in meanwhile; its commands: run,"),
        "{}",
        stderr(&o)
    );
    let dir = h.dir.path().join("man");
    let o = h.run(&["man", "--out-dir", dir.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for page in [
        "meanwhile.1",
        "meanwhile-run.1",
        "meanwhile-queue-set.1",
        "meanwhile-daemon-install.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(text.contains(".TH "), "{page} written");
    }
}

#[test]
fn ls_watch_redraws_as_tasks_change_and_text_folds_unicode_case() {
    let mut h = Home::new();
    h.serve(&[]);
    let shown = h.dir.path().join("watch.out");
    let mut watcher = h
        .cmd(&["ls", "--watch"])
        .stdout(std::fs::File::create(&shown).unwrap())
        .spawn()
        .unwrap();
    until("the first frame", || {
        std::fs::read_to_string(&shown)
            .unwrap()
            .contains("no tasks yet")
    });
    h.ok(&["run", "--wait", "-n", "déployer l'Été", "--", "true"]);
    until("a frame with the new task, ended", || {
        let text = std::fs::read_to_string(&shown).unwrap();
        text.contains("déployer l'Été") && text.contains("1 task: 1 ✔ succeeded")
    });
    watcher.kill().unwrap();
    watcher.wait().unwrap();
    let o = h.ok(&["ls", "--text", "DÉPLOYER"]);
    assert!(o.contains("déployer l'Été"), "{o}");
    assert!(o.contains("1 task match"), "{o}");
    let o = h.run(&["ls", "--watch", "--json"]);
    assert_eq!(code(&o), 2, "--watch draws a table");
}
