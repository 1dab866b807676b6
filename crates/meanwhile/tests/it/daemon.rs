//! `meanwhile daemon`: stopping the daemon leaves its tasks running for the next one
//! (or stops them when asked), status tells scripts whether it runs, and install
//! writes a systemd user unit.

use crate::support::*;
use std::io::Write;
use std::path::Path;

/// Submits `read x < GATE; exit CODE` and returns its id with the gate's writing
/// end, opened once the task has opened the reading end: the task is running then.
fn gated_task(h: &Home, name: &str, exit: u8) -> (String, std::fs::File) {
    let gate = fifo(h, name);
    let script = format!("read x < {}; exit {exit}", gate.display());
    let id = h.ok(&["run", "-n", name, "--", "sh", "-c", &script]);
    let w = std::fs::OpenOptions::new().write(true).open(&gate).unwrap();
    (id.trim().to_string(), w)
}

fn pid(h: &Home) -> i32 {
    h.daemon_pid().expect("a daemon runs")
}

#[test]
fn stop_leaves_tasks_running_for_the_next_daemon() {
    let h = Home::new();
    assert_eq!(code(&h.run(&["daemon", "status"])), 69, "none runs yet");
    assert!(
        h.ok(&["daemon", "start"])
            .starts_with("started the daemon (pid ")
    );
    assert!(
        h.ok(&["daemon", "start"])
            .starts_with("the daemon already runs")
    );
    let status = h.ok(&["daemon", "status"]);
    assert!(
        status.contains("daemon running: pid") && status.contains("socket"),
        "{status}"
    );

    let (id, mut gate) = gated_task(&h, "gated", 5);
    let first = pid(&h);
    let out = h.ok(&["daemon", "restart"]);
    assert!(out.contains("its 1 running task keeps running"), "{out}");
    assert_ne!(pid(&h), first, "a new daemon");
    assert_eq!(h.json(&["status", "--json"])["counts"]["running"], 1);

    let before = pid(&h);
    let out = h.ok(&["daemon", "stop"]);
    assert_eq!(
        out,
        format!(
            "stopped the daemon (pid {before}); its 1 running task keeps running and the next daemon adopts it\n"
        )
    );
    let o = h.run(&["daemon", "status"]);
    assert_eq!(code(&o), 69, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no daemon is running"));
    assert_eq!(
        h.ok(&["daemon", "stop"]),
        format!("no daemon runs for {}\n", h.home.display())
    );

    // The task still reads its gate (a dead reader would make this write fail), and
    // the daemon started now adopts it and records its true end.
    h.ok(&["daemon", "start"]);
    gate.write_all(b"go\n").unwrap();
    drop(gate);
    assert_eq!(code(&h.run(&["wait", &id])), 5);
    let t = &h.json(&["show", &id, "--json"])["task"];
    assert_eq!(
        (
            t["state"].as_str(),
            t["exit_code"].as_i64(),
            t["attempts"].as_i64()
        ),
        (Some("failed"), Some(5), Some(1)),
        "{t}"
    );
}

#[test]
fn stop_tasks_stops_them_first() {
    let h = Home::new();
    h.ok(&["daemon", "start"]);
    let (id, mut gate) = gated_task(&h, "gated", 5);
    let out = h.ok(&["daemon", "stop", "--stop-tasks"]);
    assert!(out.contains("and its 1 running task"), "{out}");
    assert_eq!(code(&h.run(&["daemon", "status"])), 69);
    // Its reader is gone: the task was stopped, not left.
    let e = gate.write_all(b"go\n").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    let t = &h.json(&["show", &id, "--json"])["task"];
    assert_eq!(t["state"], "cancelled", "{t}");
}

/// `daemon install` under a made-up home and config directory, with `PATH` holding
/// only `bin` (so the machine's own systemctl is never run).
fn install(h: &Home, config: &Path, bin: &Path, args: &[&str]) -> std::process::Output {
    let mut c = h.cmd(&[&["daemon", "install"][..], args].concat());
    c.env("XDG_CONFIG_HOME", config)
        .env("HOME", h.dir.path())
        .env("PATH", bin);
    c.output().unwrap()
}

fn check_unit(unit: &Path, h: &Home) {
    let text = std::fs::read_to_string(unit).unwrap();
    assert!(
        text.contains(&format!("ExecStart=\"{BIN}\" serve\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Environment=\"MEANWHILE_HOME={}\"\n",
            h.home.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("KillMode=process\n"),
        "tasks outlive the service: {text}"
    );
    assert!(text.contains("WantedBy=default.target\n"), "{text}");
}

#[test]
fn install_without_systemctl_writes_the_unit_and_says_how_to_enable_it() {
    let h = Home::new();
    let config = h.dir.path().join("config");
    let empty = h.dir.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let o = install(&h, &config, &empty, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    // Not enabled is a failure, said with what to do; the unit is written.
    assert_eq!(code(&o), 1, "{out}{}", stderr(&o));
    let unit = config.join("systemd/user/meanwhile.service");
    assert!(out.contains(&format!("wrote {}", unit.display())), "{out}");
    let err = stderr(&o);
    assert!(
        err.contains("not enabled: systemctl is not installed"),
        "{err}"
    );
    assert!(
        err.contains("systemctl --user enable --now meanwhile"),
        "{err}"
    );
    check_unit(&unit, &h);
    let again = install(&h, &config, &empty, &["--no-enable"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("is up to date"));
    // Uninstall removes what install wrote.
    let mut c = h.cmd(&["daemon", "uninstall"]);
    c.env("XDG_CONFIG_HOME", &config).env("PATH", &empty);
    let o = c.output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!unit.exists(), "the unit file is removed");
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("removed {}", unit.display())));
}

#[test]
fn install_runs_systemctl_for_the_user() {
    let h = Home::new();
    let bin = h.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = h.dir.path().join("calls");
    // Records how it was called, as systemctl would be, and has no service running.
    let fake = bin.join("systemctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\n[ \"$2\" = show ] && echo 0\nexit 0\n",
            calls.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    // XDG_CONFIG_HOME empty: the unit goes under $HOME/.config.
    let o = install(&h, Path::new(""), &bin, &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
    check_unit(
        &h.dir.path().join(".config/systemd/user/meanwhile.service"),
        &h,
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "--user daemon-reload\n--user show --property=MainPID --value meanwhile.service\n--user enable --now meanwhile.service\n"
    );
    assert!(out.contains("enable --now meanwhile.service"), "{out}");
    let mut c = h.cmd(&["daemon", "uninstall"]);
    c.env("XDG_CONFIG_HOME", "")
        .env("HOME", h.dir.path())
        .env("PATH", &bin);
    let o = c.output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        !h.dir
            .path()
            .join(".config/systemd/user/meanwhile.service")
            .exists()
    );
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert!(
        calls.ends_with(
            "--user disable --now meanwhile.service
--user daemon-reload
"
        ),
        "{calls}"
    );
}

#[test]
fn a_relative_home_is_made_absolute_once() {
    let h = Home::new();
    let mut c = h.cmd(&[
        "run",
        "--wait",
        "--",
        "sh",
        "-c",
        "echo \"$MEANWHILE_HOME\"",
    ]);
    c.env("MEANWHILE_HOME", "rel/home");
    let o = c.output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let home = h.dir.path().join("rel/home");
    // From another directory, the same home is found by its absolute path.
    let o = h.run(&["--home", home.to_str().unwrap(), "logs", "1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        home.display().to_string()
    );
    let mut c = h.cmd(&["daemon", "stop"]);
    c.env("MEANWHILE_HOME", home.to_str().unwrap());
    assert_eq!(code(&c.output().unwrap()), 0);
}

/// Whether process `pid` catches SIGINT (its handler is installed).
fn catches_sigint(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGINT - 1)) != 0)
}

#[test]
fn ctrl_c_while_waiting_says_the_task_keeps_running_and_how_to_stop_it() {
    let h = Home::new();
    let id = h.ok(&["run", "--", "sleep", "300"]).trim().to_string();
    for args in [vec!["wait", &id], vec!["logs", "-f", &id]] {
        let child = h
            .cmd(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        until("the CLI catches Ctrl-C", || catches_sigint(child.id()));
        signal(child.id() as i32, rustix::process::Signal::INT);
        let o = child.wait_with_output().unwrap();
        assert_eq!(code(&o), 130, "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(
                "task {id} keeps running; meanwhile stop {id} stops it"
            )),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(show(&h, &id)["state"], "running");
    h.ok(&["stop", &id]);
}

#[test]
fn a_wait_that_ends_over_a_limit_says_why_on_stderr() {
    let h = Home::new();
    let o = h.run(&[
        "run",
        "--wait",
        "--memory",
        "64M",
        "--",
        "python3",
        "-c",
        "b = bytearray(512 << 20); import time; time.sleep(60)",
    ]);
    assert_eq!(code(&o), 137, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("memory limit 64M exceeded"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_word_after_tty_that_is_no_size_suggests_the_double_dash() {
    let h = Home::new();
    let o = h.run(&["run", "--tty", "python3"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("meanwhile run --tty -- python3"),
        "{}",
        stderr(&o)
    );
}
