//! The commands, as a person or a script uses them.

use crate::support::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn on_a_fresh_machine_run_follow_just_works() {
    let h = Home::new();
    let o = h.run(&["run", "--follow", "--", "echo", "hi"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "1\nhi\n",
        "{}",
        stderr(&o)
    );
    assert_eq!(code(&o), 0);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&h.home), 0o700);
    assert_eq!(mode(&h.home.join("meanwhile.sock")), 0o600);
    assert!(h.home.join("daemon.log").exists());
    // The daemon left the CLI's session: it outlives the command that started it.
    assert!(h.run(&["status"]).status.success());
}

#[test]
fn exit_codes_tell_how_the_task_ended() {
    let mut h = Home::new();
    h.serve(&[]);
    let o = h.run(&["run", "--wait", "--", "sh", "-c", "exit 7"]);
    assert_eq!(code(&o), 7);
    let id = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert_eq!(code(&h.run(&["wait", &id])), 7);
    let o = h.run(&["run", "-f", "--", "echo one; exit 0"]);
    assert_eq!(
        (code(&o), String::from_utf8_lossy(&o.stdout).lines().nth(1)),
        (0, Some("one"))
    );
    let slow = h.ok(&["run", "--", "sleep 300"]).trim().to_string();
    let o = h.run(&["wait", &slow, "--timeout", "200ms"]);
    assert_eq!(code(&o), 124, "{}", stderr(&o));
    let o = h.run(&["run", "-w", "--timeout", "300ms", "--", "sleep 300"]);
    assert_eq!(code(&o), 124, "a task that hit its timeout");
    h.ok(&["stop", "--force", &slow]);
    let o = h.run(&["wait", &slow]);
    assert_eq!(code(&o), 137, "stopped by SIGKILL: 128 + 9");
    // Several: 0 only when all succeeded.
    let a = h.ok(&["run", "--", "true"]).trim().to_string();
    let b = h.ok(&["run", "--", "false"]).trim().to_string();
    assert_eq!(code(&h.run(&["wait", &a, &b])), 1);
    assert_eq!(code(&h.run(&["wait", &a])), 0);
}

#[test]
fn errors_say_what_to_do() {
    let mut h = Home::new();
    h.serve(&[]);
    let o = h.run(&["logs", "42"]);
    assert_eq!(code(&o), 3);
    assert!(
        stderr(&o).contains("unknown task 42 (see 'meanwhile ls')"),
        "{}",
        stderr(&o)
    );
    let o = h.run(&["run", "--timeout", "fast", "--", "true"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("like 30s"), "{}", stderr(&o));
    let o = h.run(&["show", "abc"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("positive integers"), "{}", stderr(&o));
    let o = h.run(&["logs", "1", "--grep", "("]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = h.run(&["run", "-q", "bad queue", "--", "true"]);
    assert!(stderr(&o).contains("queue"), "{}", stderr(&o));
    let slow = h.ok(&["run", "--", "sleep 300"]).trim().to_string();
    let o = h.run(&["rm", &slow]);
    assert!(
        stderr(&o).contains("stop it before removing it"),
        "{}",
        stderr(&o)
    );
    h.ok(&["stop", "--force", &slow]);
}

#[test]
fn ls_show_logs_and_the_rest() {
    let mut h = Home::new();
    h.serve(&[]);
    let id = h
        .ok(&[
            "run",
            "-n",
            "count",
            "-l",
            "demo",
            "-s",
            "me",
            "-e",
            "WHO=you",
            "--",
            "for i in 1 2 3; do echo $WHO $i; done",
        ])
        .trim()
        .to_string();
    h.ok(&["wait", &id]);
    let ls = h.ok(&["ls"]);
    assert!(ls.starts_with("ID  ST  NAME"), "{ls}");
    assert!(ls.contains("1   ✔   count  default"), "{ls}");
    assert!(ls.contains("1 task: 1 ✔ succeeded"), "{ls}");
    let page = h.json(&["ls", "--json", "--label", "demo"]);
    assert_eq!(page["tasks"][0]["name"], "count");
    assert_eq!(
        h.json(&["ls", "--json", "--state", "failed"])["tasks"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(h.ok(&["logs", &id]), "you 1\nyou 2\nyou 3\n");
    assert_eq!(h.ok(&["logs", &id, "--tail", "1"]), "you 3\n");
    assert_eq!(h.ok(&["logs", &id, "--grep", "[12]$"]), "you 1\nyou 2\n");
    assert_eq!(h.ok(&["logs", &id, "--since", "6"]), "you 2\nyou 3\n");
    let show = h.ok(&["show", &id]);
    assert!(
        show.contains("exit code 0") && show.contains("attempt 1 on"),
        "{show}"
    );
    let cwd = h.json(&["show", &id, "--json"])["task"]["spec"]["cwd"].clone();
    assert_eq!(
        cwd.as_str(),
        h.dir.path().to_str(),
        "the caller's cwd by default"
    );
    let notes = h.ok(&["notifications", "--session", "me"]);
    assert!(notes.contains("task 1 (count) succeeded"), "{notes}");
    assert_eq!(
        h.ok(&["notifications", "--session", "me"]),
        "",
        "each notice once"
    );
    assert!(h.ok(&["retry", &id]).contains("pending"));
    h.ok(&["wait", &id]);
    h.ok(&["queue", "set", "gpu", "--max-parallel", "2"]);
    h.ok(&["queue", "pause", "gpu"]);
    let qs = h.ok(&["queue"]);
    assert!(
        qs.contains("gpu      2    -        -     0        0        paused"),
        "{qs}"
    );
    h.ok(&["queue", "resume", "gpu"]);
    let later = h
        .ok(&["run", "--delay", "1h", "--", "true"])
        .trim()
        .to_string();
    h.ok(&["stop", &later]);
    assert_eq!(h.ok(&["rm", &later]), format!("{later} removed\n"));
    assert!(h.ok(&["clean"]).contains("removed 1"));
    assert!(h.ok(&["ls"]).contains("no tasks yet"));
    let status = h.ok(&["status"]);
    assert!(
        status.contains("daemon running") && status.contains("version"),
        "{status}"
    );
    assert!(h.ok(&["completions", "bash"]).contains("meanwhile"));
}

#[test]
fn ls_lines_up_wide_names_and_counts_what_its_filters_match() {
    let h = Home::new();
    for name in ["部署する", "deploy 🚀", "plain"] {
        h.ok(&["run", "--wait", "-n", name, "--", "true"]);
    }
    assert_eq!(
        code(&h.run(&["run", "--wait", "-n", "broken", "--", "false"])),
        1
    );
    let table = h.ok(&["ls"]);
    // The QUEUE column starts at the same display column on every row.
    let starts: Vec<usize> = table
        .lines()
        .filter(|l| l.contains("default") || l.contains("QUEUE"))
        .map(|l| {
            let at = l.find("default").or(l.find("QUEUE")).unwrap();
            unicode_width::UnicodeWidthStr::width(&l[..at])
        })
        .collect();
    assert_eq!(starts.len(), 5, "{table}");
    assert!(starts.windows(2).all(|w| w[0] == w[1]), "{table}");
    assert!(
        table.ends_with("4 tasks: 3 ✔ succeeded, 1 ✘ failed\n"),
        "{table}"
    );
    let ok = h.ok(&["ls", "--state", "succeeded"]);
    assert!(ok.ends_with("3 tasks match: 3 ✔ succeeded\n"), "{ok}");
    assert_eq!(
        h.ok(&["ls", "--text", "nothing like it"]),
        "no tasks match\n"
    );
}

/// What bash offers after `meanwhile WORDS...` and a Tab, through the script of
/// `meanwhile completions bash`, sourced in a real bash.
fn tab(h: &Home, words: &[&str]) -> Vec<String> {
    let script = h.ok(&["completions", "bash"]);
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let current = words.last().copied().unwrap_or("");
    let previous = words.len().checked_sub(2).map_or("meanwhile", |i| words[i]);
    let line = format!(
        "{script}\nCOMP_WORDS=(meanwhile {}); COMP_CWORD={}; COMP_TYPE=9\n\
         _clap_complete_meanwhile meanwhile '{current}' '{previous}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        quoted.join(" "),
        words.len()
    );
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(line)
        .env("MEANWHILE_HOME", &h.home)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn tab_completes_task_ids_and_names_from_the_daemon_and_never_starts_one() {
    let h = Home::new();
    // No daemon: a Tab completes the options only, and starts none.
    let offered = tab(&h, &["stop", ""]);
    assert!(offered.contains(&"--force".to_string()), "{offered:?}");
    assert!(
        !h.home.join("meanwhile.sock").exists(),
        "a Tab started a daemon"
    );

    let long = h
        .ok(&["run", "-n", "build all", "--", "sleep", "60"])
        .trim()
        .to_string();
    let done = h
        .ok(&["run", "--wait", "-q", "gpu", "--", "true"])
        .trim()
        .to_string();
    h.ok(&["schedule", "add", "nightly", "--every", "1d", "--", "true"]);
    h.ok(&["schedule", "add", "weekly", "--every", "7d", "--", "true"]);
    h.ok(&["budget", "set", "gpu", "--tokens", "1000"]);

    let ids = tab(&h, &["stop", ""]);
    assert!(ids.contains(&long) && ids.contains(&done), "{ids:?}");
    // Newest first, before the options.
    assert_eq!(ids[..2], [done.clone(), long.clone()], "{ids:?}");
    assert!(tab(&h, &["logs", ""]).contains(&long));
    assert!(tab(&h, &["run", "--after", ""]).contains(&long));
    let queues = tab(&h, &["queue", "pause", ""]);
    assert!(
        queues.contains(&"default".into()) && queues.contains(&"gpu".into()),
        "{queues:?}"
    );
    assert!(tab(&h, &["run", "-q", "g"]).contains(&"gpu".into()));
    assert_eq!(tab(&h, &["schedule", "run", "n"]), ["nightly"]);
    assert_eq!(tab(&h, &["budget", "rm", ""])[0], "gpu");
    h.ok(&["stop", &long]);
}

/// Whether process `pid` catches SIGTERM (its `SigCgt` mask in /proc).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (15 - 1)) != 0)
}

/// `meanwhile mcp` with stdin held open, as an MCP client keeps it: silent (no
/// `initialize` yet), or after the handshake and an answered request.
fn mcp_held_open(h: &Home, handshake: bool) -> std::process::Child {
    use std::io::{BufRead, Write};
    let mut child = h
        .cmd(&["mcp"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if handshake {
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        for message in [
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        ] {
            writeln!(stdin, "{message}").unwrap();
            if message.contains("\"id\"") {
                line.clear();
                out.read_line(&mut line).unwrap();
                assert!(line.contains("\"result\""), "{line}");
            }
        }
    }
    let pid = child.id();
    until("the server catches SIGTERM", || catches_sigterm(pid));
    // Held open for the child's whole life, as a client holds it.
    std::mem::forget(stdin);
    child
}

#[test]
fn mcp_ends_on_sigterm_while_its_client_holds_stdin_open() {
    let h = Home::new();
    for handshake in [false, true] {
        let mut child = mcp_held_open(&h, handshake);
        signal(child.id() as i32, rustix::process::Signal::TERM);
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{status} (after a handshake: {handshake})"
        );
    }
}
