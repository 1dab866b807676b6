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

/// Records, when dropped, whether its attempt was handed over.
struct Seen(TaskContext, std::sync::Arc<std::sync::Mutex<Option<bool>>>);

impl Drop for Seen {
    fn drop(&mut self) {
        *self.1.lock().unwrap() = Some(self.0.handed_over());
    }
}

/// An in-process attempt dropped because another node holds its task now is told
/// so before it goes (`TaskContext::handed_over`), so that it leaves what it
/// started to that node; one stopped on request is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_task_another_node_holds_is_told_it_was_handed_over() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RuntimeConfig::new(dir.path().join("a"));
    cfg.node = Some("a".into());
    cfg.database_url = Some(db.url());
    cfg.default_cwd = Some(dir.path().to_path_buf());
    // Renewals every 300 ms: the node soon looks at what it holds.
    cfg.lease = Duration::from_millis(900);
    let a = Runtime::start(cfg, std::future::pending()).await.unwrap();
    let run = |seen: std::sync::Arc<std::sync::Mutex<Option<bool>>>| {
        move |ctx: TaskContext| {
            let seen = seen.clone();
            async move {
                let _seen = Seen(ctx, seen);
                std::future::pending::<()>().await;
                Ok::<(), String>(())
            }
        }
    };
    let until_running = |id| {
        let a = a.clone();
        async move {
            while a.get(id).await.unwrap().state != TaskState::Running {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let until_seen = |seen: std::sync::Arc<std::sync::Mutex<Option<bool>>>| async move {
        loop {
            if let Some(v) = *seen.lock().unwrap() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    let moved = std::sync::Arc::new(std::sync::Mutex::new(None));
    let id = a
        .submit_fn(meanwhile_core::TaskSpec::default(), run(moved.clone()))
        .await
        .unwrap();
    until_running(id).await;
    // Another node took the task over, as `LifecycleStore::take_over` leaves it.
    db.execute(&format!(
        "UPDATE tasks SET node = 'b' WHERE id = {}; UPDATE attempts SET node = 'b' WHERE task_id = {}",
        id.0, id.0
    ))
    .await;
    assert!(until_seen(moved).await, "dropped as handed over");

    let stopped = std::sync::Arc::new(std::sync::Mutex::new(None));
    let id = a
        .submit_fn(meanwhile_core::TaskSpec::default(), run(stopped.clone()))
        .await
        .unwrap();
    until_running(id).await;
    a.stop(id, meanwhile_core::StopMode::Graceful)
        .await
        .unwrap();
    assert!(
        !until_seen(stopped).await,
        "a stop on request hands nothing over"
    );
    a.shutdown().await;
}
