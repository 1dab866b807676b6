//! Helpers: each test gets its own home directory and runtime.

use meanwhile_runtime::core::{TaskId, TaskRecord, TaskSpec};
use meanwhile_runtime::{Runtime, RuntimeConfig, WaitMode};
use meanwhile_store::prelude::*;
use std::time::Duration;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub rt: Runtime,
}

pub fn config(dir: &std::path::Path) -> RuntimeConfig {
    let mut c = RuntimeConfig::new(dir.join("home"));
    c.grace = Duration::from_millis(500);
    c.default_cwd = Some(dir.to_path_buf());
    c
}

pub async fn runtime() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::start(config(dir.path()), std::future::pending())
        .await
        .unwrap();
    Env { dir, rt }
}

pub fn sh(cmd: &str) -> TaskSpec {
    TaskSpec::shell(cmd)
}

/// Waits (generously: machines here are slow and busy) for one task to end.
pub async fn finished(rt: &Runtime, id: TaskId) -> TaskRecord {
    let w = rt
        .wait(&[id], WaitMode::All, Some(Duration::from_secs(120)))
        .await
        .unwrap();
    assert!(!w.timed_out, "task {id} did not end: {:?}", w.tasks[0]);
    w.tasks.into_iter().next().unwrap()
}

pub async fn run(rt: &Runtime, spec: TaskSpec) -> TaskRecord {
    let id = rt.submit(spec).await.unwrap();
    finished(rt, id).await
}

pub async fn output(rt: &Runtime, id: TaskId) -> String {
    rt.read_output(id, Default::default()).await.unwrap().text
}

/// Polls `f` until it is true; for conditions no event announces (a process
/// appearing in /proc). No deadline of its own: nextest's slow-timeout ends a test
/// that hangs, and this says on stderr every 30 s what it still waits for.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    let mut said = Duration::ZERO;
    while !f() {
        if start.elapsed() >= said + Duration::from_secs(30) {
            said = start.elapsed();
            eprintln!("still waiting after {}s for: {what}", said.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // fields[0] is the state, fields[2] the process group.
        if fields.len() > 2 && fields[0] != "Z" && fields[2].parse::<i32>() == Ok(pgid) {
            out.push(pid);
        }
    }
    out
}

pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let close = stat.rfind(')').unwrap_or(0);
            !stat[close + 2..].starts_with('Z')
        }
        Err(_) => false,
    }
}

/// The task's process id, once its attempt has started: from the spawner's journal,
/// which has it before the task runs (the store has it only once the task has run a
/// while, or ended).
pub async fn pid_of(rt: &Runtime, id: TaskId) -> i32 {
    for _ in 0..2400 {
        if let Ok(a) = rt.attempts(id).await
            && let Some(last) = a.last()
            && let Some((pid, _)) = journalled(rt.home(), id, last.number)
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("task {id} never started");
}

/// The (task pid, supervisor pid) the spawner journalled for an attempt, once it has.
fn journalled(
    home: &meanwhile_runtime::Home,
    id: meanwhile_runtime::core::TaskId,
    attempt: u32,
) -> Option<(i32, i32)> {
    let text = std::fs::read_to_string(home.journal()).ok()?;
    let prefix = format!("S {id} {attempt} ");
    let line = text.lines().find(|l| l.starts_with(&prefix))?;
    let nums: Vec<i32> = line[prefix.len()..]
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    Some((*nums.first()?, *nums.get(1)?))
}

/// The (task pid, supervisor pid) the spawner journalled for an attempt.
pub fn journalled_pids(
    home: &meanwhile_runtime::Home,
    id: meanwhile_runtime::core::TaskId,
    attempt: u32,
) -> (i32, i32) {
    journalled(home, id, attempt).expect("a journal line")
}

/// Runs a task in a queue of its own to its end: proof that the dispatcher has made
/// a claim since everything submitted before it.
pub async fn probe(rt: &Runtime) {
    let mut s = sh("true");
    s.queue = Some("probe".into());
    let t = run(rt, s).await;
    assert_eq!(t.state, meanwhile_runtime::core::TaskState::Succeeded);
}

/// Leaves `spec` claimed in the store of `home` by a runtime (node `gone`) that died
/// before anything else happened, and returns its id.
pub async fn claimed_by_a_dead_runtime(home: &meanwhile_runtime::Home, spec: TaskSpec) -> TaskId {
    use meanwhile_runtime::store::{ClaimRequest, NewTask, SqliteStore};
    let store = SqliteStore::open(&home.database()).unwrap();
    let spec = spec.validate().unwrap();
    let now = meanwhile_runtime::now();
    let r = store.submit(vec![NewTask::new(spec, now)]).await.unwrap();
    let id = r[0].as_ref().unwrap().id();
    let claim = ClaimRequest {
        node: "gone".into(),
        now,
        lease_until: now,
        kinds: vec![meanwhile_runtime::core::TaskKind::Shell],
        limit: 1,
        share_since: None,
    };
    assert_eq!(store.claim(claim).await.unwrap().tasks.len(), 1);
    id
}

/// Waits until the task's output matches `pattern`.
pub async fn output_matches(rt: &Runtime, id: TaskId, pattern: &str) {
    rt.read_output(
        id,
        meanwhile_runtime::OutputQuery {
            wait: Some(meanwhile_runtime::WaitFor::Match(pattern.into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}
