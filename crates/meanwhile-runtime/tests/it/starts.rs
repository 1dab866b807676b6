//! Starts that fail say which step failed, and run nothing.

use crate::support::*;
use meanwhile_runtime::core::TaskState;

/// The start of a task is journalled before its program runs: when the journal
/// cannot be written, the start fails and the program never ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_cannot_be_journalled_fails_and_runs_nothing() {
    let env = runtime().await;
    let journal = env.rt.home().journal();
    let _ = std::fs::remove_file(&journal); // it may not exist yet
    std::fs::create_dir(&journal).unwrap();
    let marker = env.dir.path().join("ran");
    let t = run(&env.rt, sh(&format!("touch {}", marker.display()))).await;
    assert_eq!(t.state, TaskState::Failed);
    let reason = t.reason.unwrap_or_default();
    assert!(
        reason.contains("supervisors' journal") && reason.contains("nothing was run"),
        "{reason}"
    );
    assert!(!marker.exists(), "the program ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_failure_names_the_step_and_the_error() {
    let env = runtime().await;
    let bad = env.dir.path().join("not-a-program");
    std::fs::write(&bad, [0x7f, b'E', b'L', b'F', 0, 0, 0, 0]).unwrap();
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let spec = meanwhile_runtime::core::TaskSpec {
        argv: Some(vec![bad.display().to_string()]),
        ..Default::default()
    };
    let t = run(&env.rt, spec).await;
    assert_eq!(t.state, TaskState::Failed);
    let reason = t.reason.unwrap_or_default();
    assert!(
        reason.contains("executing the program: Exec format error"),
        "{reason}"
    );
}

fn spawner_pid(home: &meanwhile_runtime::Home) -> i32 {
    std::fs::read_to_string(home.spawner_pid_file())
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawner_that_died_is_replaced_by_a_new_exec() {
    let env = runtime().await;
    let home = env.rt.home();
    let first = spawner_pid(home);
    let pid = rustix::process::Pid::from_raw(first).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    eventually("the spawner to die", || !alive(first)).await;
    // The first start after that finds the channel broken and fails; the next one
    // starts a new spawner.
    let _ = run(&env.rt, sh("true")).await;
    let t = run(&env.rt, sh("true")).await;
    assert_eq!(t.state, TaskState::Succeeded);
    let second = spawner_pid(home);
    assert_ne!(first, second);
    let cmdline = std::fs::read(format!("/proc/{second}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"meanwhile-spawner\0"), "{cmdline:?}");
}
