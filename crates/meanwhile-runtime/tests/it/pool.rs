//! The spawner's pool of supervisors: reused, clean between attempts, no larger than
//! the attempts that ran at once, shrunk when idle, and never trusted once dead.

use crate::support::*;
use meanwhile_runtime::core::http::QueueUpdate;
use meanwhile_runtime::core::{TaskId, TaskState};
use meanwhile_runtime::{Clock, Home, Runtime, WaitMode};
use std::collections::BTreeSet;
use std::time::Duration;

/// The spawner of `home`, from its pid file.
fn spawner(home: &Home) -> i32 {
    let text = std::fs::read_to_string(home.spawner_pid_file()).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// The live children of `pid` (a spawner's: its supervisors).
fn children(pid: i32) -> Vec<i32> {
    let text =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace()
        .filter_map(|s| s.parse().ok())
        .filter(|&c| alive(c))
        .collect()
}

fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .to_string()
}

/// Where each of a process's descriptors points.
fn fds(pid: i32) -> BTreeSet<(i32, String)> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            let to = std::fs::read_link(e.path()).ok()?;
            Some((n, to.display().to_string()))
        })
        .collect()
}

/// Lets `n` tasks of the default queue run at once.
async fn slots(rt: &Runtime, n: u32) {
    let update = QueueUpdate {
        max_parallel: Some(n),
        ..QueueUpdate::default()
    };
    rt.set_queue("default", update).await.unwrap();
}

fn read(path: String) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// An idle supervisor keeps nothing of the attempt it ran: a task with a terminal
/// and input socket, a watched memory limit (a thread in the supervisor), a CPU
/// limit, an environment and a directory of its own, and children that outlive it
/// (swept). The next task runs under the same supervisor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_returns_to_the_pool_clean_and_runs_the_next_task() {
    let env = runtime().await;
    let home = env.rt.home().clone();
    let first = run(&env.rt, sh("true")).await;
    assert_eq!(first.state, TaskState::Succeeded);
    let supervisor = journalled_pids(&home, first.id, 1).1;
    eventually("the supervisor to be idle", || {
        cmdline(supervisor) == "meanwhile-supervise idle"
    })
    .await;
    let clean = (
        fds(supervisor),
        read(format!("/proc/{supervisor}/limits")),
        std::fs::read_link(format!("/proc/{supervisor}/cwd")).unwrap(),
    );
    assert_eq!(
        clean
            .0
            .iter()
            .filter(|(_, to)| to.starts_with("socket:"))
            .count(),
        1,
        "an idle supervisor holds its socket to the spawner and nothing else: {:?}",
        clean.0
    );

    let workdir = env.dir.path().join("work");
    std::fs::create_dir(&workdir).unwrap();
    let mut spec = sh("echo $POOL_MARK; sleep 300 & setsid sleep 300 & exit 3");
    spec.env
        .insert("POOL_MARK".into(), "carried-over-if-seen".into());
    spec.cwd = Some(workdir);
    spec.tty = Some(meanwhile_runtime::core::Terminal { cols: 80, rows: 24 });
    spec.memory = Some(meanwhile_runtime::core::ByteSize(1 << 30));
    spec.cpu_time = Some(Duration::from_secs(600));
    let busy = run(&env.rt, spec).await;
    assert_eq!((busy.state, busy.exit_code), (TaskState::Failed, Some(3)));
    assert_eq!(
        journalled_pids(&home, busy.id, 1).1,
        supervisor,
        "the idle supervisor ran it"
    );
    eventually("the supervisor to be idle again", || {
        cmdline(supervisor) == "meanwhile-supervise idle"
    })
    .await;
    assert_eq!(fds(supervisor), clean.0, "the same descriptors as before");
    assert_eq!(read(format!("/proc/{supervisor}/limits")), clean.1);
    assert_eq!(
        std::fs::read_link(format!("/proc/{supervisor}/cwd")).unwrap(),
        clean.2
    );
    let threads = std::fs::read_dir(format!("/proc/{supervisor}/task"))
        .unwrap()
        .count();
    assert_eq!(threads, 1, "the memory watch's thread has ended");
    assert_eq!(
        children(supervisor),
        Vec::<i32>::new(),
        "the tree was swept"
    );
    assert!(
        !read(format!("/proc/{supervisor}/environ")).contains("carried-over-if-seen"),
        "the task's environment is not the supervisor's"
    );
    let next = run(&env.rt, sh("true")).await;
    assert_eq!(next.state, TaskState::Succeeded);
    assert_eq!(journalled_pids(&home, next.id, 1).1, supervisor);
}

/// With two slots, every task runs under one of two supervisors however many
/// tasks there are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_grows_no_larger_than_the_attempts_that_run_at_once() {
    let env = runtime().await;
    slots(&env.rt, 2).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(env.rt.submit(sh("true")).await.unwrap());
    }
    let w = env
        .rt
        .wait(&ids, WaitMode::All, Some(Duration::from_secs(300)))
        .await
        .unwrap();
    assert!(w.tasks.iter().all(|t| t.state == TaskState::Succeeded));
    let supervisors: BTreeSet<i32> = ids
        .iter()
        .map(|&id| journalled_pids(env.rt.home(), id, 1).1)
        .collect();
    assert!(
        (1..=2).contains(&supervisors.len()),
        "30 tasks two at a time ran under {supervisors:?}"
    );
}

/// Supervisors that no attempt used for a whole trim period are let go, on the
/// runtime's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_supervisors_are_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    let clock = Clock::ahead(Duration::ZERO);
    c.clock = clock.clone();
    let rt = Runtime::start(c, std::future::pending()).await.unwrap();
    slots(&rt, 3).await;
    // Three at once: each waits until all three have started.
    let gate = format!(
        "touch {d}/started.$$; while [ $(ls {d} | grep -c '^started') -lt 3 ]; do sleep 0.01; done",
        d = dir.path().display(),
    );
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(rt.submit(sh(&gate)).await.unwrap());
    }
    let w = rt
        .wait(&ids, WaitMode::All, Some(Duration::from_secs(300)))
        .await
        .unwrap();
    assert!(w.tasks.iter().all(|t| t.state == TaskState::Succeeded));
    let spawner = spawner(rt.home());
    eventually("three idle supervisors", || {
        children(spawner).len() == 3
            && children(spawner)
                .iter()
                .all(|&p| cmdline(p) == "meanwhile-supervise idle")
    })
    .await;
    // The first trim finds them used since the start; the second lets them go.
    for _ in 0..2 {
        let n = clock.advance(Duration::from_secs(31)).unwrap();
        clock.settled(n).await;
    }
    eventually("the idle supervisors to exit", || {
        children(spawner).is_empty()
    })
    .await;
    // The pool grows again on demand.
    assert_eq!(run(&rt, sh("true")).await.state, TaskState::Succeeded);
    assert_eq!(children(spawner).len(), 1);
}

/// Supervisors killed at random, idle or busy, while tasks run: every task ends
/// once. One whose supervisor died while it ran is `lost` and says why, with no
/// process of it left; every other ran once and succeeded; a supervisor that died
/// is never handed a task again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_killed_at_random_leave_each_task_ended_once_and_honestly() {
    let env = runtime().await;
    slots(&env.rt, 3).await;
    let runs = env.dir.path().join("runs");
    const TASKS: usize = 60;
    let mut ids: Vec<TaskId> = Vec::new();
    for i in 0..TASKS {
        let cmd = format!("echo {i} >> {}; sleep 0.0$(({i} % 5))", runs.display());
        ids.push(env.rt.submit(sh(&cmd)).await.unwrap());
    }
    let spawner = spawner(env.rt.home());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killer = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut killed = Vec::new();
            // Bounded: at most 200 rounds, and ended by the wait below.
            for _ in 0..200 {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let pool = children(spawner);
                if !pool.is_empty() && rand::random_bool(0.5) {
                    let victim = pool[rand::random_range(0..pool.len())];
                    let pid = rustix::process::Pid::from_raw(victim).unwrap();
                    if rustix::process::kill_process(pid, rustix::process::Signal::KILL).is_ok() {
                        killed.push(victim);
                    }
                }
                std::thread::sleep(Duration::from_millis(rand::random_range(5..40)));
            }
            killed
        })
    };
    let w = env
        .rt
        .wait(&ids, WaitMode::All, Some(Duration::from_secs(600)))
        .await
        .unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let killed = killer.join().unwrap();
    assert!(!w.timed_out);
    assert!(!killed.is_empty(), "no supervisor was killed");
    let text = std::fs::read_to_string(&runs).unwrap_or_default();
    let mut lost = 0;
    for (i, t) in w.tasks.iter().enumerate() {
        assert_eq!(t.attempts, 1, "one attempt each: {t:?}");
        let ran = text.lines().filter(|l| *l == i.to_string()).count();
        assert!(ran <= 1, "task {} ran {ran} times", t.id);
        match t.state {
            TaskState::Succeeded => assert_eq!(ran, 1, "succeeded without running: {t:?}"),
            TaskState::Lost => {
                lost += 1;
                let reason = t.reason.clone().unwrap_or_default();
                assert!(reason.contains("supervisor"), "{reason}");
            }
            _ => panic!("neither ran nor lost to its supervisor: {t:?}"),
        }
        if let Some((pid, supervisor)) = journalled(env.rt.home(), t.id) {
            assert_eq!(
                group_members(pid),
                Vec::<i32>::new(),
                "{t:?} left processes"
            );
            // A supervisor that ran this task and was killed ran nothing after it.
            if killed.contains(&supervisor) && t.state == TaskState::Lost {
                let later = ids[i + 1..]
                    .iter()
                    .filter_map(|&id| journalled(env.rt.home(), id))
                    .filter(|&(_, s)| s == supervisor)
                    .count();
                assert_eq!(later, 0, "a dead supervisor was handed task after {}", t.id);
            }
        }
    }
    eprintln!(
        "{} supervisors killed, {lost} of {TASKS} tasks lost",
        killed.len()
    );
    // The pool still works.
    assert_eq!(run(&env.rt, sh("true")).await.state, TaskState::Succeeded);
}

/// The (task pid, supervisor pid) of a task's first attempt, if it started.
fn journalled(home: &Home, id: TaskId) -> Option<(i32, i32)> {
    let text = std::fs::read_to_string(home.journal()).ok()?;
    let prefix = format!("S {id} 1 ");
    let line = text.lines().rev().find(|l| l.starts_with(&prefix))?;
    let nums: Vec<i32> = line[prefix.len()..]
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    Some((*nums.first()?, *nums.get(1)?))
}
