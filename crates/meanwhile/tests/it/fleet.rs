//! A fleet: several `meanwhile serve` nodes on one real PostgreSQL database, started
//! by the test (see `meanwhile-testpg`). Each node has a home of its own (its logs,
//! socket and journal) and a TCP listener the others reach it at.

use crate::support::{
    Home, allow_every_command, lines, message, provider_env, signal, stderr, tool, turn_of, until,
};
use meanwhile_testpg::TestDb;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio_postgres::config::Host;

/// The lease of the tests' nodes: short, so that a dead node's tasks move soon.
const LEASE: &str = "3s";

struct Fleet {
    db: TestDb,
    _rt: tokio::runtime::Runtime,
    /// The lease its nodes hold their tasks for.
    lease: &'static str,
}

impl Fleet {
    fn new() -> Fleet {
        Fleet::with_lease(LEASE)
    }

    /// A fleet whose nodes renew their leases on `lease` instead: for a test about
    /// throughput, where no node dies, and a loaded machine must not make a
    /// renewal late enough to lose a task.
    fn with_lease(lease: &'static str) -> Fleet {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = rt.block_on(TestDb::new());
        Fleet { db, _rt: rt, lease }
    }

    /// Starts node `name` on `url` (the database's by default).
    fn node_on(&self, name: &str, url: &str) -> Home {
        self.serve(Home::new(), name, url, &[])
    }

    /// Starts node `name` again on the home `home` had.
    fn node_again(&self, home: Home, name: &str) -> Home {
        self.serve(home, name, &self.db.url(), &[])
    }

    /// Starts node `name` able to run agent tasks, against the provider at
    /// `provider`, its agents allowed every command.
    fn agent_node(&self, name: &str, provider: &str) -> Home {
        let home = Home::new();
        allow_every_command(&home);
        let env = provider_env(provider);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.serve(home, name, &self.db.url(), &env)
    }

    fn serve(&self, mut home: Home, name: &str, url: &str, env: &[(&str, &str)]) -> Home {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.dir.path().join("serve.log"))
            .unwrap();
        let mut c = home.cmd(&["serve", "--node", name, "--listen", "127.0.0.1:0"]);
        c.env("MEANWHILE_DATABASE_URL", url)
            .env("MEANWHILE_LEASE", self.lease)
            .env("MEANWHILE_NODE_SILENT_AFTER", "2s")
            .env("RUST_LOG", "meanwhile=debug")
            .envs(env.iter().copied())
            .stderr(log);
        home.daemon = Some(c.spawn().unwrap());
        until(&format!("node {name} answers"), || {
            home.run(&["status"]).status.success()
        });
        home
    }

    /// Attempts per node, counted in the database.
    fn attempts_by_node(&self) -> HashMap<String, i64> {
        self._rt.block_on(async {
            let (client, conn) = self
                .db
                .config()
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query("SELECT node, COUNT(*) FROM attempts GROUP BY node", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        })
    }

    fn node(&self, name: &str) -> Home {
        self.node_on(name, &self.db.url())
    }

    /// Where the database's server listens.
    fn upstream(&self) -> Upstream {
        let config = self.db.config();
        let port = *config.get_ports().first().unwrap_or(&5432);
        match config.get_hosts().first() {
            Some(Host::Unix(dir)) => Upstream::Unix(dir.join(format!(".s.PGSQL.{port}"))),
            Some(Host::Tcp(h)) => Upstream::Tcp(format!("{h}:{port}")),
            None => panic!("the test database has no host"),
        }
    }

    /// The database's URL through `proxy`.
    fn url_through(&self, proxy: &Proxy) -> String {
        let config = self.db.config();
        let mut url = format!("host=127.0.0.1 port={}", proxy.port);
        if let Some(u) = config.get_user() {
            url += &format!(" user={u}");
        }
        if let Some(p) = config.get_password() {
            url += &format!(" password='{}'", String::from_utf8_lossy(p));
        }
        url + &format!(" dbname={}", self.db.name())
    }
}

#[derive(Clone)]
enum Upstream {
    Unix(PathBuf),
    Tcp(String),
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn try_clone(&self) -> Stream {
        match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone().unwrap()),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone().unwrap()),
        }
    }
    fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A TCP proxy in front of the database, whose connections can be cut: what a node
/// sees when the network between it and the database fails.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<Stream>>>,
}

impl Proxy {
    fn start(upstream: Upstream) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<Stream>>> = Arc::default();
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let server = match &upstream {
                    Upstream::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
                    Upstream::Tcp(a) => TcpStream::connect(a).map(Stream::Tcp),
                };
                let Ok(server) = server else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let client = Stream::Tcp(client);
                {
                    let mut open = o.lock().unwrap();
                    open.push(client.try_clone());
                    open.push(server.try_clone());
                }
                pipe(client.try_clone(), server.try_clone());
                pipe(server, client);
            }
        });
        Proxy { port, cut, open }
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            s.shutdown();
        }
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: Stream, mut to: Stream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        from.shutdown();
        to.shutdown();
    });
}

/// A task as `show` gives it.
fn show(home: &Home, id: &str) -> Value {
    home.json(&["show", "--json", id])["task"].clone()
}

fn attempts(home: &Home, id: &str) -> Vec<Value> {
    home.json(&["show", "--json", id])["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The marks a task wrote, without the pid on its `start` lines.
fn marks_in(path: &std::path::Path) -> String {
    read(path)
        .lines()
        .map(|l| match l.strip_prefix("start ") {
            Some(rest) => format!("start {}\n", rest.split(' ').next().unwrap_or("")),
            None => format!("{l}\n"),
        })
        .collect()
}

/// The pid a task wrote into its log as `start ATTEMPT PID` (its own `$$`: the
/// task's main process), once it has.
fn started_pid(log: &std::path::Path, attempt: u32) -> i32 {
    let prefix = format!("start {attempt} ");
    let mut pid = None;
    until("the task says its pid", || {
        pid = read(log)
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).and_then(|p| p.trim().parse().ok()));
        pid.is_some()
    });
    pid.unwrap()
}

/// SIGKILL to a process and, for a task, its whole group.
fn kill(pid: i32, group: bool) {
    if group && let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
    }
    signal(pid, rustix::process::Signal::KILL);
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn alive(pid: i32) -> bool {
    // A zombie has no more to do: it counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s[s.rfind(')').unwrap_or(0)..].starts_with(") Z"))
        .unwrap_or(false)
}

#[test]
fn three_nodes_run_ten_thousand_tasks_each_once() {
    const TASKS: usize = 10_000;
    // With the 3 s lease of the other tests, a renewal that waits over 2.5 s behind
    // the submits on a loaded 2-core machine loses tasks, as a lease should.
    let fleet = Fleet::with_lease("30s");
    let nodes: Vec<Home> = ["a", "b", "c"].iter().map(|n| fleet.node(n)).collect();
    nodes[0].ok(&["queue", "set", "default", "--max-parallel", "48"]);
    let marks = tempfile::tempdir().unwrap();
    let ran = marks.path().join("ran");
    // Each node takes a third of the submits, in batches, all at once.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut submits = Vec::new();
        for (i, home) in nodes.iter().enumerate() {
            let client = meanwhile_client::Client::for_home(&home.home);
            let ran = ran.clone();
            submits.push(tokio::spawn(async move {
                let mine: Vec<usize> = (0..TASKS).filter(|t| t % 3 == i).collect();
                for chunk in mine.chunks(500) {
                    let specs = chunk
                        .iter()
                        .map(|t| {
                            serde_json::from_value(serde_json::json!({
                                "command": format!("echo {t} $MEANWHILE_ATTEMPT >> {}", ran.display()),
                                "labels": ["fleet"],
                            }))
                            .unwrap()
                        })
                        .collect();
                    for r in client.submit_batch(specs).await.unwrap() {
                        r.unwrap();
                    }
                }
            }));
        }
        for s in submits {
            s.await.unwrap();
        }
    });
    until("every task succeeded", || {
        let counts = nodes[1].json(&["status", "--json"]);
        counts["counts"]["succeeded"].as_u64() == Some(TASKS as u64)
    });

    // Each task's command ran exactly once, on the first attempt.
    let lines = read(&ran);
    let mut seen = vec![0u32; TASKS];
    for line in lines.lines() {
        let mut parts = line.split_whitespace();
        let t: usize = parts.next().unwrap().parse().unwrap();
        assert_eq!(parts.next(), Some("1"), "a second attempt ran: {line}");
        seen[t] += 1;
    }
    let twice: Vec<usize> = (0..TASKS).filter(|&t| seen[t] > 1).collect();
    let never: Vec<usize> = (0..TASKS).filter(|&t| seen[t] == 0).collect();
    assert!(twice.is_empty(), "ran twice: {twice:?}");
    assert!(never.is_empty(), "never ran: {never:?}");

    // Every node took its share of the work.
    let nodes_json = nodes[2].json(&["nodes", "--json"]);
    for n in ["a", "b", "c"] {
        let node = nodes_json
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .unwrap();
        assert_eq!(node["alive"], true, "{node}");
    }
    // The fleet shared the work: each node ran a fair part of it.
    let by_node = fleet.attempts_by_node();
    assert_eq!(by_node.values().sum::<i64>(), TASKS as i64, "{by_node:?}");
    for n in ["a", "b", "c"] {
        let ran = by_node.get(n).copied().unwrap_or(0);
        assert!(
            ran >= TASKS as i64 / 10,
            "node {n} ran {ran} tasks: {by_node:?}"
        );
    }
}

#[test]
fn a_dead_machines_task_runs_again_on_another_node_after_its_lease() {
    let fleet = Fleet::new();
    let a = fleet.node("a");
    let marks = tempfile::tempdir().unwrap();
    let log = marks.path().join("log");
    let cmd = format!(
        "echo start $MEANWHILE_ATTEMPT $$ >> {0}; sleep 4; echo done $MEANWHILE_ATTEMPT >> {0}",
        log.display()
    );
    let id = a.ok(&["run", "--retries", "2", &cmd]).trim().to_string();
    let task_pid = started_pid(&log, 1);
    let b = fleet.node("b");

    // The machine dies: the daemon, its spawner, the task's supervisor and the task.
    let supervisor = parent_of(task_pid).unwrap();
    let spawner = parent_of(supervisor);
    let mut a = a;
    a.kill_daemon();
    kill(task_pid, true);
    kill(supervisor, false);
    if let Some(s) = spawner.filter(|&s| s > 1) {
        kill(s, false);
    }
    until("the task processes are gone", || !alive(task_pid));

    // After the lease, b takes the attempt over as lost and runs the task again.
    until("the task succeeds on b", || {
        show(&b, &id)["state"] == "succeeded"
    });
    let atts = attempts(&b, &id);
    assert_eq!(atts.len(), 2, "{atts:?}");
    assert_eq!(atts[0]["node"], "a");
    assert_eq!(atts[0]["outcome"], "lost", "{atts:?}");
    let reason = atts[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("node \"a\" stopped renewing its lease") && reason.contains("\"b\""),
        "{reason}"
    );
    assert_eq!(atts[1]["node"], "b");
    assert_eq!(atts[1]["exit_code"], 0);
    assert_eq!(marks_in(&log), "start 1\nstart 2\ndone 2\n");
    drop(a);
}

#[test]
fn a_node_cut_from_its_database_stops_its_tasks_and_never_records_their_end() {
    let fleet = Fleet::new();
    let proxy = Proxy::start(fleet.upstream());
    let a = fleet.node_on("a", &fleet.url_through(&proxy));
    let marks = tempfile::tempdir().unwrap();
    let log = marks.path().join("log");
    let cmd = format!(
        "echo start $MEANWHILE_ATTEMPT $$ >> {0}; sleep 8; echo done $MEANWHILE_ATTEMPT >> {0}",
        log.display()
    );
    let id = a.ok(&["run", "--retries", "1", &cmd]).trim().to_string();
    let task_pid = started_pid(&log, 1);
    let b = fleet.node("b");

    proxy.cut();
    // a kills its task before its lease runs out, and b runs it again after.
    until("a killed the task it can no longer hold", || {
        !alive(task_pid)
    });
    until("b runs attempt 2", || read(&log).contains("start 2"));
    let atts = attempts(&b, &id);
    assert_eq!(atts[0]["outcome"], "lost", "{atts:?}");
    assert!(
        atts[0]["reason"]
            .as_str()
            .unwrap()
            .contains("took the task over"),
        "{atts:?}"
    );
    assert_eq!(atts[1]["node"], "b");

    // Back on the network, a records nothing of the attempt it lost, and claims
    // again.
    proxy.restore();
    until("the task succeeds on b", || {
        show(&b, &id)["state"] == "succeeded"
    });
    until("a answers through the database again", || {
        a.run(&["ls", "--json"]).status.success()
    });
    let atts = attempts(&b, &id);
    assert_eq!(atts.len(), 2, "{atts:?}");
    assert!(
        atts[0]["reason"]
            .as_str()
            .unwrap()
            .contains("took the task over"),
        "a's own end replaced b's record: {atts:?}"
    );
    assert_eq!(marks_in(&log), "start 1\nstart 2\ndone 2\n");
    a.ok(&["run", "--wait", "true"]);
}

#[test]
fn notices_are_drained_from_another_node_once_and_output_is_followed_through_it() {
    let fleet = Fleet::new();
    let mut a = fleet.node("a");
    let id = a
        .ok(&[
            "run",
            "--session",
            "s1",
            "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.5; done",
        ])
        .trim()
        .to_string();
    until("the task runs on a", || show(&a, &id)["state"] == "running");
    let b = fleet.node("b");

    // Followed through b while a runs it, to its end.
    let follow = b
        .cmd(&["logs", "-f", &id])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&follow.stdout);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(lines.len(), 6, "{out}{}", stderr(&follow));
    assert_eq!(attempts(&b, &id)[0]["node"], "a");
    // A wait through b hears of the end a recorded.
    b.ok(&["wait", &id]);

    // The notice is drained from b, which did not run the task, once.
    let notes = b.json(&["notifications", "--session", "s1", "--json"]);
    let notes = notes.as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["task_id"].to_string(), id);
    let again = a.json(&["notifications", "--session", "s1", "--json"]);
    assert!(again.as_array().unwrap().is_empty(), "{again}");

    // Read through b with a grep; once a is gone, the answer names it.
    let grep = b.ok(&["logs", &id, "--grep", "line [24]"]);
    assert_eq!(grep.lines().count(), 2, "{grep}");
    a.ok(&["daemon", "stop"]);
    a.daemon.take().unwrap().wait().unwrap();
    let o = b.run(&["logs", &id]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("node \"a\"") && err.contains("is gone"),
        "{err}"
    );
}

#[test]
fn input_sent_through_one_node_reaches_the_task_on_another() {
    let fleet = Fleet::new();
    let a = fleet.node("a");
    let id = a
        .ok(&[
            "run",
            "--stdin",
            "--",
            "sh",
            "-c",
            "printf 'name? '; read n; echo \"hello $n\"",
        ])
        .trim()
        .to_string();
    until("the task runs on a", || show(&a, &id)["state"] == "running");
    let b = fleet.node("b");
    // What a sees the task doing, b reads from the shared store.
    let o = b.ok(&["wait", &id, "--until", "input", "--timeout", "2m"]);
    assert_eq!(o, format!("{id} waiting for input: name?\n"));
    assert_eq!(
        b.ok(&["send", &id, "fleet", "--key", "enter"]),
        format!("{id} sent 6 bytes\n")
    );
    b.ok(&["wait", &id]);
    assert_eq!(b.ok(&["logs", &id]), "name? hello fleet\n");
    assert_eq!(attempts(&b, &id)[0]["node"], "a");
}

#[test]
fn a_stop_asked_on_one_node_stops_the_task_on_another() {
    let fleet = Fleet::new();
    let a = fleet.node("a");
    let marks = tempfile::tempdir().unwrap();
    let log = marks.path().join("log");
    let cmd = format!("echo start 1 $$ >> {}; sleep 300", log.display());
    let id = a.ok(&["run", &cmd]).trim().to_string();
    let task_pid = started_pid(&log, 1);
    let b = fleet.node("b");
    b.ok(&["stop", "--force", &id]);
    until("the task is cancelled", || {
        show(&b, &id)["state"] == "cancelled"
    });
    assert!(!alive(task_pid));
    assert_eq!(attempts(&b, &id)[0]["node"], "a");
}

#[test]
fn a_node_back_after_being_taken_for_dead_kills_what_it_no_longer_holds() {
    let fleet = Fleet::new();
    let mut a = fleet.node("a");
    let marks = tempfile::tempdir().unwrap();
    let log = marks.path().join("log");
    let cmd = format!(
        "echo start $MEANWHILE_ATTEMPT $$ >> {0}; sleep 300",
        log.display()
    );
    let id = a.ok(&["run", "--retries", "1", &cmd]).trim().to_string();
    let task_pid = started_pid(&log, 1);
    let b = fleet.node("b");
    // Only the daemon dies: its task and supervisor go on, but its lease is not
    // renewed, and b runs the task again.
    a.kill_daemon();
    until("b runs attempt 2", || read(&log).contains("start 2"));
    assert!(alive(task_pid), "the first attempt's process runs on");
    // Back under its name, a finds the attempt was taken over and kills it.
    let a = fleet.node_again(a, "a");
    until("a killed the attempt it lost", || !alive(task_pid));
    let atts = attempts(&a, &id);
    assert_eq!(atts[0]["outcome"], "lost");
    assert_eq!(atts[1]["node"], "b");
    assert_eq!(show(&b, &id)["state"], "running");
    b.ok(&["stop", "--force", &id]);
}

#[test]
fn an_agent_task_moves_to_another_node_as_the_same_attempt() {
    let fleet = Fleet::new();
    let marks = tempfile::tempdir().unwrap();
    let (first, second) = (marks.path().join("first"), marks.path().join("second"));
    let first_cmd = format!("echo first >> {}", first.display());
    let second_cmd = format!("echo second >> {}", second.display());
    // Turn 2's request is held until the test lets it go: the node running the agent
    // dies while that model call is in flight, after turn 1's command ran.
    let hold = Arc::new(AtomicBool::new(true));
    let held = hold.clone();
    let asked = Arc::new(AtomicBool::new(false));
    let asking = asked.clone();
    let (url, seen) = crate::support::fake_anthropic_with(std::time::Duration::ZERO, move |req| {
        match turn_of(req) {
            1 => tool("tu_1", "bash", serde_json::json!({"command": first_cmd})),
            2 => {
                asking.store(true, Ordering::SeqCst);
                while held.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                tool("tu_2", "bash", serde_json::json!({"command": second_cmd}))
            }
            3 => message(
                serde_json::json!([{"type": "text", "text": "Both written."}]),
                "end_turn",
            ),
            _ => {
                serde_json::json!({"type": "error", "error": {"type": "invalid_request_error", "message": "script ran out"}})
            }
        }
    });
    let mut a = fleet.agent_node("a", &url);
    a.ok(&["queue", "set", "default", "--max-parallel", "8"]);
    let id = a
        .ok(&["run", "--agent", "Write both lines."])
        .trim()
        .to_string();
    until("the agent task runs on a", || show(&a, &id)["node"] == "a");
    let b = fleet.agent_node("b", &url);

    until("the second model call", || asked.load(Ordering::SeqCst));
    assert_eq!(lines(&first), 1);
    a.kill_daemon();
    hold.store(false, Ordering::SeqCst);

    // After a's lease, b takes the attempt over and it goes on from its steps.
    let mut task = Value::Null;
    until("the agent task ends on b", || {
        task = show(&b, &id);
        task["state"] != "running" && task["state"] != "pending"
    });
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["result"], "Both written.", "{task}");
    assert_eq!(task["attempts"], 1, "taken over, not retried: {task}");
    let atts = attempts(&b, &id);
    assert_eq!(atts.len(), 1, "{atts:?}");
    assert_eq!(atts[0]["node"], "b", "{atts:?}");
    assert_eq!(atts[0]["outcome"], "exited", "{atts:?}");
    // Each command ran once.
    assert_eq!((lines(&first), lines(&second)), (1, 1));
    // Each turn's request reached the provider once, but the one in flight when a
    // died, which b made again once. (The provider counts a request once it has
    // answered, and it answers a's only after the test let it go.)
    let per_turn = || -> Vec<usize> {
        let seen = seen.lock().unwrap();
        (1..=3)
            .map(|t| seen.iter().filter(|r| turn_of(r) == t).count())
            .collect()
    };
    until("the provider answered a's held call", || per_turn()[1] >= 2);
    assert_eq!(per_turn(), [1, 2, 1], "requests per turn");
    // Usage counted once per recorded response (the lost call never answered).
    assert_eq!(task["model_calls"], 3, "{task}");
    assert_eq!(task["tokens"], 3 * 15, "{task}");

    // One record across both nodes: every step of attempt 1, numbered without a gap.
    let transcript = fleet
        ._rt
        .block_on(
            meanwhile_client::Client::for_home(&b.home)
                .transcript(meanwhile_core::TaskId(id.parse().unwrap())),
        )
        .unwrap();
    let steps = &transcript.steps;
    assert!(steps.iter().all(|s| s.attempt == 1), "{steps:?}");
    assert!(
        steps.iter().enumerate().all(|(i, s)| s.n as usize == i + 1),
        "{steps:?}"
    );
    assert_eq!(steps.iter().filter(|s| s.kind == "model").count(), 3);
    assert_eq!(steps.iter().filter(|s| s.kind == "tool_result").count(), 2);
    // The log, read from b, says where it resumed; b said why in its own.
    let logs = b.ok(&["logs", &id]);
    assert!(logs.contains("resumed attempt 1 on node \"b\""), "{logs}");
    let said = read(&b.dir.path().join("serve.log"));
    assert!(
        said.contains("attempt 1 of node \"a\" taken over as the same attempt"),
        "{said}"
    );
}
