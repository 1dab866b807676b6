//! The command line as a Unix tool: quiet on a closed pipe, strict about options,
//! progress bars only on a terminal.

use crate::support::*;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// Regression: `meanwhile ls --json | head -c 100` panicked with "failed printing to
/// stdout: Broken pipe".
#[test]
fn every_command_exits_quietly_on_a_closed_pipe() {
    let mut h = Home::new();
    h.serve(&[]);
    let id = h.ok(&["run", "--wait", "--", "seq", "1", "1000"]);
    let id = id.trim();
    let id2 = h.ok(&["run", "--", "true"]);
    let id2 = id2.trim();
    h.ok(&["wait", id2]);
    let commands: &[&[&str]] = &[
        &["ls"],
        &["ls", "--json"],
        &["show", id],
        &["show", id, "--json"],
        &["logs", id],
        &["logs", "-f", id],
        &["logs", id, "--json"],
        &["wait", id, id2],
        &["wait", id, "--json"],
        &["status"],
        &["daemon", "status"],
        &["queue", "ls"],
        &["run", "--", "true"],
        &["completions", "bash"],
        &["--help"],
        &["run", "--help"],
        &["--version"],
    ];
    for args in commands {
        let o = h.cmd(args).stdout(closed_pipe()).output().unwrap();
        assert_eq!(
            (code(&o), stderr(&o)),
            (0, String::new()),
            "meanwhile {args:?}"
        );
    }
}

/// As `| head -c 100` does it: the reader takes a little, then goes away while the
/// command still has much more to write (more than a pipe holds).
#[test]
fn a_reader_that_leaves_early_ends_the_command_quietly() {
    let mut h = Home::new();
    h.serve(&[]);
    let id = h.ok(&["run", "--wait", "--", "seq", "1", "200000"]);
    let id = id.trim();
    for args in [&["logs", id][..], &["logs", "-f", id], &["ls", "--json"]] {
        let mut child = h
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 100];
        let mut stdout = child.stdout.take().unwrap();
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            (code(&o), stderr(&o)),
            (0, String::new()),
            "meanwhile {args:?}"
        );
    }
}

fn task_count(h: &Home) -> usize {
    h.json(&["ls", "--json"])["tasks"].as_array().unwrap().len()
}

/// Regression: `meanwhile run --timout 5m -- make` submitted a task whose argv was
/// `["--timout", "5m", "--", "make"]`.
#[test]
fn an_unknown_option_before_the_command_is_an_error_and_submits_nothing() {
    let mut h = Home::new();
    h.serve(&[]);
    for (args, expect) in [
        (
            &["run", "--timout", "5m", "--", "make"][..],
            "meanwhile: unknown option --timout; did you mean --timeout? (see 'meanwhile run --help')\n",
        ),
        (
            &["run", "--mem-limit", "64M", "--", "make"],
            "meanwhile: unknown option --mem-limit (see 'meanwhile run --help'; a value that starts with '-' goes after '--')\n",
        ),
        (
            &["run", "-t", "5m", "--wiat", "make"],
            "meanwhile: unknown option --wiat; did you mean --wait? (see 'meanwhile run --help')\n",
        ),
    ] {
        let o = h.run(args);
        assert_eq!((code(&o), stderr(&o).as_str()), (2, expect), "{args:?}");
        assert!(o.stdout.is_empty());
    }
    assert_eq!(task_count(&h), 0, "no task was submitted");
}

#[test]
fn the_command_keeps_its_own_options() {
    let mut h = Home::new();
    h.serve(&[]);
    for (args, argv) in [
        (&["run", "--", "ls", "-la"][..], &["ls", "-la"][..]),
        (&["run", "ls", "-la"], &["ls", "-la"]),
        (
            &["run", "-n", "x", "ls", "--timeout", "-l"],
            &["ls", "--timeout", "-l"],
        ),
        (
            &["run", "--", "--odd-program", "-v"],
            &["--odd-program", "-v"],
        ),
    ] {
        let id = h.ok(args);
        let spec = &h.json(&["show", id.trim(), "--json"])["task"]["spec"];
        assert_eq!(spec["argv"], serde_json::json!(argv), "{args:?}");
    }
    assert_eq!(task_count(&h), 4);
}

#[test]
fn wait_draws_no_bars_when_not_on_a_terminal() {
    let mut h = Home::new();
    h.serve(&[]);
    let a = h.ok(&["run", "--", "sh", "-c", "echo '::progress 40 compiling'"]);
    let b = h.ok(&["run", "-n", "two", "--", "false"]);
    let o = h.run(&["wait", a.trim(), b.trim()]);
    assert_eq!(code(&o), 1, "one failed");
    assert_eq!(stderr(&o), "", "no bars, nothing else on stderr");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "{} ✔ succeeded sh -c echo '::progress 40 compiling'\n{} ✘ failed two\n",
            a.trim(),
            b.trim()
        )
    );
    let o = h.run(&["wait", "--quiet", a.trim(), b.trim()]);
    assert_eq!(
        (code(&o), o.stdout.len(), stderr(&o)),
        (1, 0, String::new())
    );
}

/// Reads `from` into `seen` until `needle` shows; false if the stream ended first.
fn read_until(from: &mut impl Read, seen: &mut Vec<u8>, needle: &str) -> bool {
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Through a real pseudo-terminal (`script` from util-linux runs the command on one):
/// a bar per task, showing the percent and message the task reported.
#[test]
fn wait_shows_a_bar_per_task_on_a_terminal() {
    let mut h = Home::new();
    h.serve(&[]);
    let gate = fifo(&h, "gate");
    let script = format!(
        "echo '::progress 40 compiling'; read x < {}",
        gate.display()
    );
    let a = h.ok(&["run", "-n", "build", "--", "sh", "-c", &script]);
    let b = h.ok(&["run", "-n", "quick", "--", "true"]);
    let line = format!("{BIN} wait {} {}", a.trim(), b.trim());
    let mut child = Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .env("MEANWHILE_HOME", &h.home)
        .env_remove("MEANWHILE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs a command on a pseudo-terminal");
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    assert!(
        read_until(&mut out, &mut seen, "40% compiling"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    assert!(read_until(&mut out, &mut seen, "quick"));
    assert!(read_until(&mut out, &mut seen, "succeeded"));
    // Let the task end; its bar says so and wait exits with success.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&gate)
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
    out.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(status.success(), "{status}: {text}");
    let last = text.rsplit("40% compiling").next().unwrap();
    assert!(
        last.contains("build") && last.contains("✔ succeeded"),
        "{text}"
    );
}
