//! Runtimes sharing one PostgreSQL database, in one process: what a library user
//! with `RuntimeConfig::database_url` sees.

use meanwhile_core::{TaskState, WaitMode};
use meanwhile_runtime::{Runtime, RuntimeConfig, TaskContext};
use meanwhile_testpg::TestDb;
use std::time::Duration;

async fn node(dir: &std::path::Path, name: &str, db: &TestDb) -> Runtime {
    let mut cfg = RuntimeConfig::new(dir.join(name));
    cfg.node = Some(name.into());
    cfg.database_url = Some(db.url());
    cfg.default_max_parallel = Some(8);
    cfg.default_cwd = Some(dir.to_path_buf());
    Runtime::start(cfg, std::future::pending()).await.unwrap()
}

/// A closure lives in the process that submitted it: another node, idle and eager
/// to claim, never takes one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closures_run_only_on_the_node_that_submitted_them() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), "a", &db).await;
    let b = node(dir.path(), "b", &db).await;
    let batch: Vec<_> = (0..40)
        .map(|_| {
            (
                meanwhile_core::TaskSpec::default(),
                |_ctx: TaskContext| async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<(), String>(())
                },
            )
        })
        .collect();
    let ids: Vec<_> = a
        .submit_fn_batch(batch)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    // And a shell task, which either node may run, seen ending from the other.
    let shell = a
        .submit(meanwhile_core::TaskSpec::shell("true"))
        .await
        .unwrap();
    let done = b
        .wait(&ids, WaitMode::All, Some(Duration::from_secs(120)))
        .await
        .unwrap();
    assert!(!done.timed_out);
    for t in &done.tasks {
        assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
        let attempts = b.attempts(t.id).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].node, "a");
    }
    let done = b
        .wait(&[shell], WaitMode::All, Some(Duration::from_secs(120)))
        .await
        .unwrap();
    assert_eq!(done.tasks[0].state, TaskState::Succeeded);
    a.shutdown().await;
    b.shutdown().await;
}
