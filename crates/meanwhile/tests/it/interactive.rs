//! Interactive tasks through the CLI and a real daemon: a pipe or a pseudo-terminal
//! as the task's input, `send`, waiting for input, listening sockets, and a
//! terminal that outlives a SIGKILLed daemon.

use crate::support::*;

fn log(h: &Home, id: &str) -> String {
    h.ok(&["logs", id, "--strip-ansi"])
}

fn until_logged(h: &Home, id: &str, text: &str) {
    until(&format!("task {id} printed {text:?}"), || {
        log(h, id).contains(text)
    });
}

#[test]
fn a_python_repl_under_a_terminal_answers() {
    let h = Home::new();
    let id = h.ok(&["run", "--tty", "100x30", "--", "python3", "-q"]);
    let id = id.trim();
    let o = h.ok(&["wait", id, "--until", "input", "--timeout", "2m"]);
    assert!(o.contains("waiting for input: >>>"), "{o}");
    let o = h.ok(&["send", id, "print(6*7)", "--key", "enter"]);
    assert_eq!(o, format!("{id} sent 11 bytes\n"));
    until_logged(&h, id, "\n42");
    // The terminal has the size asked for.
    h.ok(&[
        "send",
        id,
        "import os; print(os.get_terminal_size())",
        "-k",
        "enter",
    ]);
    until_logged(&h, id, "columns=100, lines=30");
    h.ok(&["send", id, "--resize", "120x40"]);
    h.ok(&["send", id, "print(os.get_terminal_size())", "-k", "enter"]);
    until_logged(&h, id, "columns=120, lines=40");
    // Ctrl-D at the prompt ends the REPL.
    h.ok(&["send", id, "--key", "ctrl-d"]);
    let t = wait_end(&h, id);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(
        t["waiting_for_input"],
        serde_json::Value::Null,
        "cleared at the end"
    );
}

#[test]
fn a_prompt_is_seen_waiting_with_a_notice_and_continued_with_send() {
    let h = Home::new();
    let script = "echo 'about to delete 3 files'; printf 'Proceed? [y/N] '; read answer; echo \"answer=$answer\"";
    let id = h.ok(&[
        "run",
        "--stdin",
        "--session",
        "s1",
        "--",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim();
    let o = h.ok(&["wait", id, "--until", "input", "--timeout", "2m"]);
    assert_eq!(o, format!("{id} waiting for input: Proceed? [y/N]\n"));
    let t = show(&h, id);
    assert_eq!(t["state"], "running");
    assert_eq!(t["waiting_for_input"], true, "{t}");
    assert_eq!(t["prompt"], "Proceed? [y/N]", "{t}");
    assert!(t["waiting_since"].is_i64(), "{t}");
    let ls = h.ok(&["ls"]);
    assert!(ls.contains("[waiting for input]"), "{ls}");
    let shown = h.ok(&["show", id]);
    assert!(shown.contains("waiting   for input"), "{shown}");
    // The session hears of it, with the lines before the prompt.
    let n = h.json(&["notifications", "--session", "s1", "--json"]);
    let notice = &n.as_array().unwrap()[0];
    assert_eq!(notice["kind"], "waiting_for_input", "{n}");
    assert_eq!(notice["prompt"], "Proceed? [y/N]", "{n}");
    assert!(
        notice["tail"]
            .as_str()
            .unwrap()
            .contains("about to delete 3 files")
    );
    // Enter on a pipe is a newline.
    h.ok(&["send", id, "y", "--key", "enter"]);
    let t = wait_end(&h, id);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert!(log(&h, id).ends_with("answer=y\n"), "{}", log(&h, id));
    // The session then hears of the end, once.
    let n = h.json(&["notifications", "--session", "s1", "--json"]);
    let kinds: Vec<&str> = n
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ended"], "{n}");
}

#[test]
fn the_end_of_input_closes_a_pipe() {
    let h = Home::new();
    let id = h.ok(&["run", "--stdin", "--", "sh", "-c", "wc -l"]);
    let id = id.trim();
    let o = h.ok(&["send", id, "a\nb\nc\n", "--eof"]);
    assert_eq!(o, format!("{id} sent 6 bytes, input ended\n"));
    let t = wait_end(&h, id);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(log(&h, id).trim(), "3");
}

#[test]
fn ctrl_c_stops_the_foreground_program_and_the_shell_goes_on() {
    let h = Home::new();
    let id = h.ok(&["run", "--tty", "--", "bash", "--norc", "--noprofile", "-i"]);
    let id = id.trim();
    h.ok(&["wait", id, "--until", "input", "--timeout", "2m"]);
    h.ok(&["send", id, "sleep 1000; echo slept", "--key", "enter"]);
    // The sleep runs: the shell is not waiting for input then.
    until("the sleep to start", || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x001000\x00")
        })
    });
    h.ok(&["send", id, "--key", "ctrl-c"]);
    h.ok(&["send", id, "echo alive-$((6*7))", "--key", "enter"]);
    until_logged(&h, id, "alive-42");
    // The typed line is echoed; what it would have printed is not there.
    assert!(
        !log(&h, id).lines().any(|l| l.trim() == "slept"),
        "the interrupt ended the whole line"
    );
    assert_eq!(show(&h, id)["state"], "running", "the shell goes on");
    h.ok(&["send", id, "exit 5", "--key", "enter"]);
    let t = wait_end(&h, id);
    assert_eq!(t["exit_code"], 5, "{t}");
}

#[test]
fn a_dev_server_is_seen_listening_with_its_url() {
    let h = Home::new();
    let id = h.ok(&[
        "run",
        "--session",
        "dev",
        "--name",
        "web",
        "--",
        "python3",
        "-m",
        "http.server",
        "0",
        "--bind",
        "127.0.0.1",
    ]);
    let id = id.trim();
    // One call: start it, then wait until it is ready.
    let o = h.ok(&["wait", id, "--until", "listening", "--timeout", "2m"]);
    let url = o
        .trim()
        .strip_prefix(&format!("{id} listening on "))
        .unwrap_or_else(|| panic!("{o}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // It is the server's own socket: it answers there.
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let t = show(&h, id);
    let l = &t["listening"][0];
    assert_eq!(l["address"], "127.0.0.1", "{t}");
    assert_eq!(l["url"], url.as_str(), "{t}");
    assert_eq!(
        l["port"].as_u64().unwrap().to_string(),
        url.rsplit(':').next().unwrap()
    );
    let n = h.json(&["notifications", "--session", "dev", "--json"]);
    let text = n[0]["listening"][0]["url"].as_str().unwrap();
    assert_eq!(text, url);
    let shown = h.ok(&["show", id]);
    assert!(shown.contains(&format!("listening {url}")), "{shown}");
    h.ok(&["stop", id]);
    let t = wait_end(&h, id);
    assert_eq!(
        t["listening"],
        serde_json::Value::Null,
        "cleared at the end: {t}"
    );
}

#[test]
fn a_terminal_outlives_a_sigkilled_daemon_and_answers_after() {
    let mut h = Home::new();
    h.serve(&[]);
    let id = h.ok(&["run", "--tty", "--", "python3", "-q"]);
    let id = id.trim().to_string();
    h.ok(&["wait", &id, "--until", "input", "--timeout", "2m"]);
    h.ok(&["send", &id, "x = 6", "--key", "enter"]);
    h.kill_daemon();
    h.serve(&[]);
    // The same process, with what it was told before.
    h.ok(&["send", &id, "print(x*7)", "--key", "enter"]);
    until_logged(&h, &id, "\n42");
    let o = h.ok(&["wait", &id, "--until", "input", "--timeout", "2m"]);
    assert!(o.contains("waiting for input: >>>"), "{o}");
    h.ok(&["send", &id, "--key", "ctrl-d"]);
    let t = wait_end(&h, &id);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(t["attempts"], 1, "{t}");
}

#[test]
fn input_to_a_task_that_takes_none_is_refused_with_the_fix() {
    let h = Home::new();
    let id = h.ok(&["run", "--", "sleep", "60"]);
    let id = id.trim();
    let o = h.run(&["send", id, "y"]);
    assert_eq!(code(&o), 4, "a conflict");
    let e = stderr(&o);
    assert!(e.contains("takes no input"), "{e}");
    assert!(e.contains("--stdin") && e.contains("--tty"), "{e}");
    let id2 = h.ok(&["run", "--stdin", "--", "cat"]);
    let id2 = id2.trim();
    let o = h.run(&["send", id2, "--key", "ctrl-c"]);
    assert!(
        stderr(&o).contains("ctrl-c is a key of a terminal"),
        "{}",
        stderr(&o)
    );
    let o = h.run(&["send", id2, "--resize", "80x24"]);
    assert!(
        stderr(&o).contains("no terminal to resize"),
        "{}",
        stderr(&o)
    );
    h.ok(&["send", id2, "--eof"]);
    wait_end(&h, id2);
    let o = h.run(&["send", id2, "late"]);
    assert!(
        stderr(&o).contains("only a running task takes input"),
        "{}",
        stderr(&o)
    );
    let o = h.run(&["run", "--tty", "python3"]);
    assert!(stderr(&o).contains("COLSxROWS"), "{}", stderr(&o));
}

/// Drives `meanwhile attach` in real pseudo-terminals (Python's `pty`): types into
/// a REPL, sees the answer, detaches with Ctrl-]; a second terminal attached
/// meanwhile only watches.
const ATTACH_DRIVER: &str = r#"
import json, os, pty, select, sys, time
bin, home, tid = sys.argv[1:4]
env = dict(os.environ, MEANWHILE_HOME=home)

def attach(*extra):
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(bin, [bin, "attach", tid, *extra], env)
    return pid, fd

# What each terminal showed past the last needle found: a chunk may hold the next one.
pending = {}

def read_until(fd, needle):
    end = time.time() + 60
    buf = pending.pop(fd, b"")
    while time.time() < end:
        if needle in buf:
            cut = buf.index(needle) + len(needle)
            pending[fd] = buf[cut:]
            return buf[:cut]
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    raise SystemExit(f"never saw {needle!r}; got {buf!r}")

obs = {}
first, fd1 = attach()
obs["banner"] = read_until(fd1, b"detach with Ctrl-]").decode(errors="replace")
read_until(fd1, b">>> ")
second, fd2 = attach()
obs["second"] = read_until(fd2, b"detach with Ctrl-]").decode(errors="replace")
os.write(fd1, b"print(6*7)\r")
read_until(fd1, b"42")
# The watcher sees it too.
read_until(fd2, b"42")
os.write(fd2, b"\x1d")
read_until(fd2, b"it goes on")
os.waitpid(second, 0)
os.write(fd1, b"\x1d")
obs["detached"] = read_until(fd1, b"it goes on").decode(errors="replace")
_, status = os.waitpid(first, 0)
obs["status"] = status
print(json.dumps(obs))
"#;

#[test]
fn attach_types_into_a_terminal_and_detaches_with_ctrl_bracket() {
    let h = Home::new();
    let id = h.ok(&["run", "--tty", "--", "python3", "-q"]);
    let id = id.trim();
    h.ok(&["wait", id, "--until", "input", "--timeout", "2m"]);
    let script = h.dir.path().join("attach.py");
    std::fs::write(&script, ATTACH_DRIVER).unwrap();
    let o = std::process::Command::new("python3")
        .arg(&script)
        .args([BIN, h.home.to_str().unwrap(), id])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let obs: serde_json::Value = serde_json::from_slice(
        o.stdout
            .trim_ascii_end()
            .rsplit(|&b| b == b'\n')
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        obs["banner"]
            .as_str()
            .unwrap()
            .contains(&format!("attached to task {id} (python3 -q)"))
    );
    assert!(
        obs["second"].as_str().unwrap().contains("read-only"),
        "{obs}"
    );
    assert!(
        obs["detached"]
            .as_str()
            .unwrap()
            .contains(&format!("detached from task {id}"))
    );
    assert_eq!(obs["status"], 0, "{obs}");
    // The task goes on, and the attached terminal's keys reached it.
    assert_eq!(show(&h, id)["state"], "running");
    assert!(log(&h, id).contains("print(6*7)"));
    h.ok(&["send", id, "--key", "ctrl-d"]);
    assert_eq!(wait_end(&h, id)["state"], "succeeded");
    // A task without a terminal cannot be attached to.
    let plain = h.ok(&["run", "--", "sleep", "30"]);
    let o = h.run(&["attach", plain.trim()]);
    assert!(
        stderr(&o).contains("has no terminal to attach to"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_read_p_prompt_in_a_terminal_is_seen_and_answered() {
    let h = Home::new();
    let script = "read -p 'Proceed? [y/N] ' x; echo \"answer=$x\"";
    let id = h.ok(&["run", "--tty", "--", "bash", "-c", script]);
    let id = id.trim();
    let o = h.ok(&["wait", id, "--until", "input", "--timeout", "2m"]);
    assert_eq!(o, format!("{id} waiting for input: Proceed? [y/N]\n"));
    h.ok(&["send", id, "y", "--key", "enter"]);
    let t = wait_end(&h, id);
    assert_eq!(t["state"], "succeeded", "{t}");
    // The terminal echoed the answer after the prompt, then the script's line.
    assert_eq!(log(&h, id), "Proceed? [y/N] y\r\nanswer=y\r\n");
}
