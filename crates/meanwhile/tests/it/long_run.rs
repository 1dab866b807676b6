//! The daemon left alone: a loop that fails does its work once it can, the death of
//! the store's writer ends the daemon loudly for the next one to take over, and a
//! killed process spawner is replaced without failing a task.

use crate::support::*;

/// The pids of processes whose command line starts with `prefix`.
fn pids_of(prefix: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with(prefix) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_killed_spawner_is_replaced_and_no_task_fails_because_of_it() {
    let mut h = Home::new();
    h.serve(&[]);
    assert_eq!(code(&h.run(&["run", "--wait", "--", "true"])), 0);
    let spawner = format!("meanwhile-spawner {}", h.home.display());
    let pids = pids_of(&spawner);
    assert_eq!(pids.len(), 1, "one spawner for the home: {pids:?}");
    // As an operator, or the kernel's out-of-memory killer, would.
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    until("the spawner gone", || {
        !std::path::Path::new(&format!("/proc/{}/cmdline", pids[0])).exists()
            || std::fs::read(format!("/proc/{}/cmdline", pids[0])).is_ok_and(|c| c.is_empty())
    });
    let o = h.run(&["run", "--wait", "--", "echo", "after the spawner died"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = h.ok(&["ls", "--json"]);
    let tasks: serde_json::Value = serde_json::from_str(&id).unwrap();
    let failed: Vec<_> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] != "succeeded")
        .collect();
    assert!(failed.is_empty(), "every task succeeded: {failed:?}");
    let new = pids_of(&spawner);
    assert_eq!(new.len(), 1, "a new spawner: {new:?}");
    assert_ne!(new[0], pids[0]);
    h.kill_daemon();
}

#[test]
fn a_dead_store_writer_ends_the_daemon_and_the_next_one_adopts_its_tasks() {
    let mut h = Home::new();
    // The writer panics once startup and the first task's writes are behind it.
    h.serve(&[("MEANWHILE_FAULTS", "store.writer=panic@40")]);
    let gate = h.dir.path().join("go");
    let long = h
        .ok(&[
            "run",
            "--",
            &format!(
                "while [ ! -e {} ]; do sleep 0.05; done; echo done",
                gate.display()
            ),
        ])
        .trim()
        .to_string();
    until("the long task running", || {
        show(&h, &long)["state"] == "running"
    });
    let mut daemon = h.daemon.take().unwrap();
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = daemon.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        // Each submit is a write batch or more; one of them meets the fault.
        let _ = h.run(&["run", "--", "true"]);
    }
    let status = match status {
        Some(s) => s,
        None => daemon.wait().unwrap(),
    };
    assert!(!status.success(), "the daemon exited non-zero: {status}");
    let log = std::fs::read_to_string(h.dir.path().join("serve.log")).unwrap();
    assert!(
        log.contains("the store can no longer write"),
        "the daemon said why: {log}"
    );
    // The task kept running under its supervisor; a new daemon adopts it and
    // records its true end.
    h.serve(&[]);
    std::fs::write(&gate, "").unwrap();
    let t = wait_end(&h, &long);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert!(h.ok(&["logs", &long]).contains("done"));
    h.kill_daemon();
}

#[test]
fn the_alerts_follower_fails_and_still_fires_the_quarantine_alert_once() {
    let mut h = Home::new();
    h.serve(&[("MEANWHILE_FAULTS", "alerts.take=error*3")]);
    let id = h
        .ok(&["run", "-r", "1", "--backoff", "10ms", "--", "false"])
        .trim()
        .to_string();
    assert_eq!(wait_end(&h, &id)["state"], "quarantined");
    until("the quarantined alert", || {
        h.json(&["alerts", "--all", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .any(|a| {
                a["kind"] == "quarantined"
                    && a["task"].as_i64().map(|t| t.to_string()) == Some(id.clone())
            })
    });
    let quarantined = h
        .json(&["alerts", "--all", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "quarantined")
        .count();
    assert_eq!(quarantined, 1, "fired once");
    // The failures were counted for the loop, and /metrics says so.
    // A quarantined alert fires, so health exits 1: read its answer all the same.
    let health: serde_json::Value =
        serde_json::from_slice(&h.run(&["health", "--json"]).stdout).unwrap();
    let alerts_loop = health["loops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "alerts")
        .cloned()
        .unwrap_or_default();
    assert!(alerts_loop["errors"].as_u64().unwrap_or(0) >= 3, "{health}");
    assert_eq!(alerts_loop["failing"], false, "it recovered: {health}");
    h.kill_daemon();
}

#[test]
fn a_clean_stop_leaves_an_empty_wal() {
    let mut h = Home::new();
    h.serve(&[]);
    for _ in 0..20 {
        h.ok(&["run", "--wait", "--", "true"]);
    }
    let mut daemon = h.daemon.take().unwrap();
    h.ok(&["daemon", "stop"]);
    daemon.wait().unwrap();
    let wal = h.home.join("meanwhile.db-wal");
    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(size, 0, "the WAL after a clean stop");
}

#[test]
fn a_killed_supervisor_leaves_its_task_lost_and_no_process_beside_a_retry() {
    let mut h = Home::new();
    h.serve(&[]);
    let id = h
        .ok(&["run", "-r", "1", "--backoff", "10ms", "--", "sleep 317"])
        .trim()
        .to_string();
    let supervisor = format!("meanwhile-supervise task {id} attempt 1");
    until("the first attempt's supervisor", || {
        pids_of(&supervisor).len() == 1
    });
    until("the task's sleep", || pids_of("sleep 317").len() == 1);
    let first_sleep = pids_of("sleep 317")[0];
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids_of(&supervisor)[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The retry starts; the first attempt's process is gone, never beside it.
    until("the second attempt", || {
        h.json(&["show", "--json", &id])["task"]["attempts"].as_u64() == Some(2)
    });
    until("the first attempt's sleep gone", || {
        !pids_of("sleep 317").contains(&first_sleep)
    });
    let detail = h.json(&["show", "--json", &id]);
    let first = &detail["attempts"][0];
    assert_eq!(first["outcome"], "lost", "{detail}");
    assert!(
        first["reason"]
            .as_str()
            .is_some_and(|r| r.contains("supervisor ended without recording an exit status")),
        "the first attempt says why it was lost: {detail}"
    );
    assert!(
        pids_of("sleep 317").len() <= 1,
        "one attempt's process at a time"
    );
    h.ok(&["stop", "--force", &id]);
    h.kill_daemon();
}

#[test]
fn a_chatty_task_keeps_its_head_and_newest_output_within_max_output() {
    use std::os::unix::fs::MetadataExt;
    let mut h = Home::new();
    h.serve(&[]);
    // About 15 MB of numbered lines against a bound of 256 KiB.
    let id = h
        .ok(&["run", "--max-output", "256K", "--", "seq", "1", "2000000"])
        .trim()
        .to_string();
    let t = wait_end(&h, &id);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["spec"]["max_output"], "256K");
    let log = h.home.join("tasks").join(&id).join("output.log");
    let meta = std::fs::metadata(&log).unwrap();
    let on_disk = meta.blocks() * 512;
    assert!(
        on_disk <= (256 << 10) + (64 << 10) + 2 * meta.blksize(),
        "{on_disk} bytes on disk for a log bounded by 256K"
    );
    // The head, one marker line, the newest lines.
    let text = h.ok(&["logs", &id]);
    assert!(text.starts_with("1\n2\n3\n"), "{}", &text[..40]);
    assert!(text.ends_with("1999999\n2000000\n"));
    let markers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("[meanwhile: "))
        .collect();
    assert_eq!(markers.len(), 1, "one marker");
    assert!(
        markers[0].ends_with(" bytes of output dropped: over max_output]"),
        "{}",
        markers[0]
    );
    assert!(text.len() < 300 << 10, "{} bytes read back", text.len());
    // The API and `show` report what was dropped.
    let chunk = h.json(&["logs", &id, "--tail", "1", "--json"]);
    let dropped = chunk["dropped_bytes"].as_u64().unwrap();
    assert!(dropped > 14_000_000, "{chunk}");
    assert_eq!(chunk["total_bytes"].as_u64().unwrap(), meta.len());
    let shown = h.ok(&["show", &id]);
    assert!(shown.contains("dropped over max_output"), "{shown}");
    assert!(shown.contains("output 256K"), "{shown}");
    h.kill_daemon();
}

/// Mounts a tmpfs of `size` at `at` for a test; false (and why, on stderr) where this
/// process may not mount (not root).
fn mount_tmpfs(at: &std::path::Path, size: &str) -> bool {
    std::fs::create_dir_all(at).unwrap();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs to fill needs root (CI runs as root)");
        return false;
    }
    let o = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .unwrap();
    if !o.status.success() {
        eprintln!(
            "skipped: mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return false;
    }
    true
}

/// Writes zeros to `path` until the file system holding it is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let zeros = vec![0u8; 64 << 10];
    loop {
        match f.write(&zeros) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    // A smaller write may still fit in the last block.
    while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
}

/// The status line of a raw HTTP request on the daemon's socket.
fn http_status(h: &Home, body: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(h.home.join("meanwhile.sock")).unwrap();
    write!(
        s,
        "POST /v1/tasks HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_string();
    (status, answer)
}

#[test]
fn a_full_disk_refuses_submits_clearly_keeps_tasks_running_and_recovers_without_restart() {
    full_disk_survived(&["--tty"]);
}

/// The same with a task that has no terminal: it writes into a pipe its supervisor
/// empties into the log, so its own writes never fail on the full disk.
#[test]
fn a_task_without_a_terminal_keeps_running_on_a_full_disk() {
    full_disk_survived(&[]);
}

fn full_disk_survived(how: &[&str]) {
    let mut h = Home::new();
    if !mount_tmpfs(&h.home, "12m") {
        return;
    }
    h.serve(&[]);
    let flags = h.dir.path();
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.02; done; \
         head -c 1048576 /dev/zero | tr '\\0' x; echo; touch {printed}; \
         while [ ! -e {go2} ]; do sleep 0.02; done; echo after the disk was freed",
        go = flags.join("go").display(),
        printed = flags.join("printed").display(),
        go2 = flags.join("go2").display(),
    );
    // Its supervisor copies its output into the log, from a terminal or a pipe.
    let mut args = vec!["run"];
    args.extend_from_slice(how);
    args.extend_from_slice(&["--", "sh", "-c", &script]);
    let id = h.ok(&args).trim().to_string();
    until("the task running", || show(&h, &id)["state"] == "running");

    fill(&h.home.join("filler"));
    // Submits are refused with the reason once the store cannot grow; what was
    // answered before is kept.
    let mut accepted = Vec::new();
    let mut refused = None;
    for _ in 0..3000 {
        let o = h.run(&["run", "--after", &id, "--", "true"]);
        if code(&o) == 0 {
            accepted.push(String::from_utf8(o.stdout).unwrap().trim().to_string());
        } else {
            refused = Some(o);
            break;
        }
    }
    let o = refused.expect("a submit refused on a full disk");
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("the disk holding {} is full", h.home.display())),
        "{}",
        stderr(&o)
    );
    let (status, answer) = http_status(&h, r#"{"command":"true"}"#);
    assert!(status.contains(" 507 "), "{answer}");
    assert!(answer.contains(r#""code":"disk_full""#), "{answer}");

    // The running task goes on; what its terminal showed meanwhile is counted.
    std::fs::write(flags.join("go"), "").unwrap();
    until("the task printed on the full disk", || {
        flags.join("printed").exists()
    });
    assert_eq!(code(&h.run(&["status"])), 0, "the daemon still answers");

    // Space comes back: everything works again, with no restart.
    std::fs::remove_file(h.home.join("filler")).unwrap();
    std::fs::write(flags.join("go2"), "").unwrap();
    let t = wait_end(&h, &id);
    assert_eq!(t["state"], "succeeded", "{t}");
    let log = h.ok(&["logs", &id]);
    let lost: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("[meanwhile: ") && l.contains("bytes of output lost"))
        .collect();
    assert_eq!(lost.len(), 1, "one line says what was lost: {lost:?}");
    assert!(
        lost[0].ends_with(" bytes of output lost: no space left on device]"),
        "{}",
        lost[0]
    );
    assert!(
        log.trim_end().ends_with("after the disk was freed"),
        "{}",
        &log[log.len().saturating_sub(200)..]
    );
    for a in &accepted {
        let t = wait_end(&h, a);
        assert_eq!(
            t["state"], "succeeded",
            "an answered submit is kept and runs: {t}"
        );
    }
    let o = h.run(&["run", "--wait", "--", "echo", "ok"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    h.kill_daemon();
    let _ = std::process::Command::new("umount")
        .args(["-l"])
        .arg(&h.home)
        .status();
}

/// Serves `h` with a file that arms fault points when written (see [`arm`]).
fn serve_armable(h: &mut Home, env: &[(&str, &str)]) -> std::path::PathBuf {
    let file = h.dir.path().join("faults");
    let mut all = vec![("MEANWHILE_FAULTS_FILE", file.to_str().unwrap())];
    all.extend_from_slice(env);
    h.serve(&all);
    file
}

/// Arms `spec` in the running daemon: its next pass through any fault point takes it in.
fn arm(file: &std::path::Path, spec: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, spec).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// The body of a GET of `path` on the daemon's socket.
fn http_get(h: &Home, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(h.home.join("meanwhile.sock")).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// The health record of loop `name` (empty when it never failed).
fn loop_health(h: &Home, name: &str) -> serde_json::Value {
    let health: serde_json::Value =
        serde_json::from_slice(&h.run(&["health", "--json"]).stdout).unwrap();
    health["loops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .cloned()
        .unwrap_or_default()
}

/// A task held until `gate` exists, whose end appends its id to `ends`.
fn held_task(h: &Home, gate: &std::path::Path, ends: &std::path::Path) -> String {
    h.ok(&[
        "run",
        "--on-end",
        &format!("echo $MEANWHILE_TASK_ID >> {}", ends.display()),
        "--",
        &format!("while [ ! -e {} ]; do sleep 0.02; done", gate.display()),
    ])
    .trim()
    .to_string()
}

/// How many lines of `file` are `line`.
fn lines_equal(file: &std::path::Path, line: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == line)
        .count()
}

/// A task's end met a failing dispatcher turn (an error, or a panic that restarts
/// the loop): the end is recorded once, and its end command runs once.
fn dispatcher_fails_once(fault: &str) {
    let mut h = Home::new();
    let faults = serve_armable(&mut h, &[]);
    let (gate, ends) = (h.dir.path().join("go"), h.dir.path().join("ends"));
    let id = held_task(&h, &gate, &ends);
    until("the task running", || show(&h, &id)["state"] == "running");
    arm(&faults, &format!("dispatcher.turn={fault}"));
    std::fs::write(&gate, "").unwrap();
    let t = wait_end(&h, &id);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["attempts"], 1, "{t}");
    until("the end command", || lines_equal(&ends, &id) == 1);
    let d = loop_health(&h, "dispatcher");
    let failed = d["errors"].as_u64().unwrap_or(0) + d["restarts"].as_u64().unwrap_or(0);
    assert_eq!(failed, 1, "the turn failed once: {d}");
    // One more task through the same dispatcher: it still claims and records.
    assert_eq!(code(&h.run(&["run", "--wait", "--", "true"])), 0);
    assert_eq!(lines_equal(&ends, &id), 1, "the end command ran once");
    h.kill_daemon();
}

#[test]
fn a_failed_dispatcher_turn_records_the_end_once() {
    dispatcher_fails_once("error");
}

#[test]
fn a_panicked_dispatcher_is_made_again_and_records_the_end_once() {
    dispatcher_fails_once("panic");
}

/// The end hooks' reader fails as an end arrives: the end command still runs, once,
/// and later ends are not held up.
fn hooks_fail_once(fault: &str) {
    let mut h = Home::new();
    let faults = serve_armable(&mut h, &[]);
    let (gate, ends) = (h.dir.path().join("go"), h.dir.path().join("ends"));
    let id = held_task(&h, &gate, &ends);
    until("the task running", || show(&h, &id)["state"] == "running");
    arm(&faults, fault);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(wait_end(&h, &id)["state"], "succeeded");
    until("the end command", || lines_equal(&ends, &id) == 1);
    // A later end is delivered too; by then a second delivery of the first would
    // have come, as the reader reads from its cursor in order.
    let next = held_task(&h, &gate, &ends);
    assert_eq!(wait_end(&h, &next)["state"], "succeeded");
    until("the next end command", || lines_equal(&ends, &next) == 1);
    assert_eq!(lines_equal(&ends, &id), 1, "the end command ran once");
    let l = loop_health(&h, "hooks");
    let failed = l["errors"].as_u64().unwrap_or(0) + l["restarts"].as_u64().unwrap_or(0);
    assert!(failed >= 1, "counted: {l}");
    assert_eq!(l["failing"], false, "{l}");
    h.kill_daemon();
}

#[test]
fn the_end_hooks_reader_fails_taking_an_end_and_runs_its_command_once() {
    hooks_fail_once("hooks.take=error");
}

#[test]
fn the_end_hooks_reader_panics_taking_an_end_and_runs_its_command_once() {
    hooks_fail_once("hooks.take=panic");
}

#[test]
fn the_end_hooks_reader_fails_reading_the_log_and_runs_the_command_once() {
    // An error on each read from the store until then: the reader reads again.
    hooks_fail_once("hooks.read=error*2,hooks.take=error");
}

#[test]
fn a_scheduler_that_fails_after_a_firing_never_fires_that_time_again() {
    let mut h = Home::new();
    let faults = serve_armable(&mut h, &[]);
    let fires = h.dir.path().join("fires");
    let line = format!("echo $MEANWHILE_SCHEDULED_AT >> {}", fires.display());
    // Each failure comes after the firing was written: an error, then a panic.
    arm(&faults, "schedules.fired=error,schedules.look=error@2");
    h.ok(&["schedule", "add", "tick", "--every", "1s", "--", &line]);
    let count = || {
        std::fs::read_to_string(&fires)
            .unwrap_or_default()
            .lines()
            .count()
    };
    until("two firings", || count() >= 2);
    arm(&faults, "schedules.fired=panic");
    let now = count();
    until("two more firings", || count() >= now + 2);
    h.ok(&["schedule", "pause", "tick"]);
    let ids: Vec<String> = h.json(&["ls", "--json", "--label", "schedule:tick"])["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].to_string())
        .collect();
    let mut args = vec!["wait", "--timeout", "5m"];
    args.extend(ids.iter().map(String::as_str));
    h.ok(&args);
    let text = std::fs::read_to_string(&fires).unwrap();
    let mut times: Vec<&str> = text.lines().collect();
    let all = times.len();
    times.sort();
    times.dedup();
    assert_eq!(times.len(), all, "no time fired twice: {text}");
    let s = loop_health(&h, "schedules");
    assert_eq!(s["errors"], 2, "{s}");
    assert_eq!(s["restarts"], 1, "{s}");
    h.kill_daemon();
}

#[test]
fn a_failing_checkpointer_is_counted_and_empties_the_wal_once_it_can() {
    let mut h = Home::new();
    h.serve(&[("MEANWHILE_FAULTS", "store.checkpoint=error*3")]);
    for _ in 0..5 {
        h.ok(&["run", "--wait", "--", "true"]);
    }
    let wal = h.home.join("meanwhile.db-wal");
    // Three idle looks fail (failing for a while), the fourth empties the WAL.
    until("the checkpointer's failures counted", || {
        loop_health(&h, "checkpointer")["errors"] == 3
    });
    until("the WAL emptied", || {
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0
    });
    let c = loop_health(&h, "checkpointer");
    assert_eq!(c["failing"], false, "it recovered: {c}");
    let metrics = http_get(&h, "/metrics");
    assert!(
        metrics.contains("meanwhile_loop_errors_total{loop=\"checkpointer\"} 3"),
        "{metrics}"
    );
    h.kill_daemon();
}

/// The spawner (or, for `supervisor.taken`, the supervisor) dies at `fault` while it
/// holds a start: the task still runs, once, and its end is recorded; after a
/// spawner died, the next task goes to a new spawner.
fn spawner_dies_holding_a_start(fault: &str) {
    let mut h = Home::new();
    let faults = serve_armable(&mut h, &[]);
    assert_eq!(code(&h.run(&["run", "--wait", "--", "true"])), 0);
    let spawner = format!("meanwhile-spawner {}", h.home.display());
    let before = pids_of(&spawner);
    assert_eq!(before.len(), 1, "{before:?}");
    let runs = h.dir.path().join("runs");
    arm(&faults, &format!("{fault}=exit"));
    let o = h.run(&[
        "run",
        "--wait",
        "--",
        &format!("echo ran >> {}; echo out", runs.display()),
    ]);
    assert_eq!(code(&o), 0, "the task succeeded: {}", stderr(&o));
    let id = h.ok(&["ls", "--json"]);
    let tasks: serde_json::Value = serde_json::from_str(&id).unwrap();
    let t = &tasks["tasks"][0];
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["attempts"], 1, "no retry: {t}");
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "ran\n",
        "the task ran once"
    );
    let tid = t["id"].to_string();
    assert!(h.ok(&["logs", &tid]).contains("out"), "its output is kept");
    assert_eq!(code(&h.run(&["run", "--wait", "--", "true"])), 0);
    let after = pids_of(&spawner);
    assert_eq!(after.len(), 1, "one spawner: {after:?}");
    if fault.starts_with("spawner.") {
        assert_ne!(after, before, "the next start went to a new spawner");
    } else {
        assert_eq!(after, before, "the spawner lives on");
    }
    h.kill_daemon();
}

#[test]
fn a_spawner_that_dies_holding_a_request_is_replaced_and_the_task_runs_once() {
    spawner_dies_holding_a_start("spawner.taken");
}

#[test]
fn a_spawner_that_dies_after_handing_a_start_over_leaves_it_run_once() {
    spawner_dies_holding_a_start("spawner.started");
}

#[test]
fn a_supervisor_that_dies_holding_an_unjournalled_start_leaves_it_sent_again_and_run_once() {
    spawner_dies_holding_a_start("supervisor.taken");
}

#[test]
fn a_daemon_that_dies_with_a_start_on_its_way_leaves_the_task_run_once() {
    let mut h = Home::new();
    let faults = serve_armable(&mut h, &[]);
    assert_eq!(code(&h.run(&["run", "--wait", "--", "true"])), 0);
    let runs = h.dir.path().join("runs");
    // The daemon exits right after it sent the start, before any answer.
    arm(&faults, "spawner.sent=exit");
    let _ = h.run(&["run", "--", &format!("echo ran >> {}", runs.display())]);
    let status = h.daemon.take().unwrap().wait().unwrap();
    assert_eq!(status.code(), Some(86), "the fault ended the daemon");
    // The next daemon finds the start in the journal, and records its end.
    h.serve(&[]);
    until("the task's end recorded", || {
        h.json(&["ls", "--json"])["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "succeeded")
    });
    let tasks = h.json(&["ls", "--json"]);
    assert_eq!(tasks["tasks"].as_array().unwrap().len(), 2, "{tasks}");
    for t in tasks["tasks"].as_array().unwrap() {
        assert_eq!(t["attempts"], 1, "no retry: {t}");
    }
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "ran\n",
        "the task ran once"
    );
    h.kill_daemon();
}

#[test]
fn failed_retention_passes_are_counted_and_retention_goes_on() {
    let mut h = Home::new();
    h.serve(&[
        ("MEANWHILE_RETENTION_KEEP_LAST", "1"),
        ("MEANWHILE_RETENTION_INTERVAL", "100ms"),
        ("MEANWHILE_FAULTS", "retention.pass=error*3"),
    ]);
    for _ in 0..3 {
        assert_eq!(code(&h.run(&["run", "--wait", "--", "true"])), 0);
    }
    until("retention keeps the last task only", || {
        h.json(&["ls", "--json"])["tasks"].as_array().unwrap().len() == 1
    });
    let r = loop_health(&h, "retention");
    assert_eq!(r["errors"], 3, "each failed pass counted: {r}");
    assert_eq!(r["failing"], false, "a pass succeeded since: {r}");
    h.kill_daemon();
}

/// `meanwhile_store_statements_total` in the metrics, or none.
fn statements_total(h: &Home) -> Option<u64> {
    http_get(h, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix("meanwhile_store_statements_total "))
        .map(|v| v.trim().parse().unwrap())
}

#[test]
fn the_store_counts_its_statements_in_the_metrics_only_when_asked() {
    let mut h = Home::new();
    h.serve(&[]);
    h.ok(&["run", "--wait", "--", "true"]);
    assert_eq!(statements_total(&h), None);
    h.kill_daemon();
    h.serve(&[("MEANWHILE_COUNT_STATEMENTS", "1")]);
    let before = statements_total(&h).unwrap();
    h.ok(&["run", "--wait", "--", "true"]);
    let after = statements_total(&h).unwrap();
    assert!(after >= before + 6, "{before} then {after}");
}
