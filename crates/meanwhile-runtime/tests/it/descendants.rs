//! No process outlives its task: whatever the task started, in whatever session or
//! however daemonised, is gone once its end is recorded. And `ps` tells the
//! spawner and each supervisor apart from the program that embeds the runtime.

use crate::support::*;
use meanwhile_runtime::StopMode;
use meanwhile_runtime::core::TaskState;

/// Starts, in the background, processes that escape the task's process group or
/// its parentage, each writing its pid to `pids`: a `setsid` sleep, a shell that
/// ignores SIGTERM (and its sleep), a double-forked sleep whose parent has exited,
/// and a `setsid` shell with a child of its own. Then `then`.
fn escapees(then: &str) -> String {
    format!(
        r#"setsid sh -c 'echo $$ >> pids; exec sleep 300' &
sh -c 'trap "" TERM; echo $$ >> pids; sleep 300 & echo $! >> pids; wait' &
sh -c '(sh -c "echo \$\$ >> pids; exec sleep 300" &) &' &
setsid sh -c 'sleep 300 & echo $! >> pids; echo $$ >> pids; wait' &
while [ "$(wc -l < pids 2>/dev/null || echo 0)" -lt {ESCAPEES} ]; do sleep 0.05; done
echo ready
{then}"#
    )
}

const ESCAPEES: usize = 6;

fn pids(dir: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_leaves_no_descendant_however_it_escaped() {
    let env = runtime().await;
    let id = env.rt.submit(sh(&escapees("sleep 300"))).await.unwrap();
    output_matches(&env.rt, id, "ready").await;
    let started = pids(env.dir.path());
    assert_eq!(started.len(), ESCAPEES, "{started:?}");
    assert!(started.iter().all(|&p| alive(p)));
    env.rt.stop(id, StopMode::Graceful).await.unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Cancelled);
    // The end is recorded only after the supervisor has killed and reaped them all.
    let left: Vec<i32> = started.into_iter().filter(|&p| alive(p)).collect();
    assert_eq!(left, Vec::<i32>::new(), "processes outlived their task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_main_process_that_exits_takes_every_descendant_with_it() {
    let env = runtime().await;
    let t = run(&env.rt, sh(&escapees("exit 0"))).await;
    assert_eq!((t.state, t.exit_code), (TaskState::Succeeded, Some(0)));
    let started = pids(env.dir.path());
    assert_eq!(started.len(), ESCAPEES, "{started:?}");
    let left: Vec<i32> = started.into_iter().filter(|&p| alive(p)).collect();
    assert_eq!(left, Vec::<i32>::new(), "processes outlived their task");
}

fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let text = String::from_utf8_lossy(&raw).replace('\0', " ");
    text.trim_end().to_string()
}

/// `pkill -f 'meanwhile serve'` must hit the daemon only: neither the spawner nor
/// a supervisor shows the embedding program's command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spawner_and_each_supervisor_have_command_lines_of_their_own() {
    let env = runtime().await;
    let id = env.rt.submit(sh("sleep 300")).await.unwrap();
    pid_of(&env.rt, id).await;
    let home = env.rt.home();
    let spawner: i32 = std::fs::read_to_string(home.spawner_pid_file())
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (_, supervisor) = journalled_pids(home, id, 1);
    let ours = cmdline(std::process::id() as i32);
    let spawner_line = cmdline(spawner);
    let supervisor_line = cmdline(supervisor);
    assert_eq!(
        spawner_line,
        format!("meanwhile-spawner {}", home.root().display())
    );
    assert_eq!(
        supervisor_line,
        format!("meanwhile-supervise task {id} attempt 1")
    );
    for line in [&spawner_line, &supervisor_line] {
        assert!(!line.contains(&ours), "{line:?} contains {ours:?}");
    }
    env.rt.stop(id, StopMode::Force).await.unwrap();
    finished(&env.rt, id).await;
}
