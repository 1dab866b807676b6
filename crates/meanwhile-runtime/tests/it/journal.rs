//! The supervisors' journal stays small while long tasks run.

use crate::support::*;
use meanwhile_runtime::WaitMode;
use meanwhile_runtime::core::TaskState;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A dev server running for a week must not keep the journal growing: it is
/// compacted while the long task runs, and the long task's end is still recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_is_compacted_while_a_long_task_runs() {
    const SHORT: usize = 2000;
    let env = runtime().await;
    let stop_file = env.dir.path().join("stop");
    let long = env
        .rt
        .submit(sh(&format!(
            "while [ ! -e {} ]; do sleep 0.05; done; exit 4",
            stop_file.display()
        )))
        .await
        .unwrap();
    pid_of(&env.rt, long).await;
    let journal = env.rt.home().journal();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (journal, done) = (journal.clone(), done.clone());
        tokio::spawn(async move {
            let mut largest = 0;
            while !done.load(Ordering::SeqCst) {
                let len = std::fs::metadata(&journal).map(|m| m.len()).unwrap_or(0);
                largest = largest.max(len);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            largest
        })
    };
    let mut ids = Vec::with_capacity(SHORT);
    for _ in 0..SHORT {
        ids.push(env.rt.submit(sh("true")).await.unwrap());
    }
    let w = env
        .rt
        .wait(&ids, WaitMode::All, Some(Duration::from_secs(600)))
        .await
        .unwrap();
    assert!(!w.timed_out);
    assert!(w.tasks.iter().all(|t| t.state == TaskState::Succeeded));
    done.store(true, Ordering::SeqCst);
    let largest = sampler.await.unwrap();
    // Each short attempt wrote two lines of some 35 bytes, 140 KB in all: far more
    // than the journal ever held.
    assert!(
        largest < 80 << 10,
        "the journal grew to {largest} bytes over {SHORT} attempts: not compacted"
    );
    // The long task's start survived every compaction, and its end is recorded.
    let (pid, _) = journalled_pids(env.rt.home(), long, 1);
    assert!(alive(pid));
    std::fs::write(&stop_file, "").unwrap();
    let t = finished(&env.rt, long).await;
    assert_eq!((t.state, t.exit_code), (TaskState::Failed, Some(4)));
    let attempts = env.rt.attempts(long).await.unwrap();
    assert!(
        attempts[0].cpu_ms.is_some(),
        "its end came from its supervisor"
    );
}
