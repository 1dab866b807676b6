//! Writes the database refuses: never silent, never leaving a task `running`.

use crate::support::*;
use meanwhile_runtime::core::TaskState;

/// Regression: an end whose commit kept failing was given up after eight tries,
/// leaving the task `running` until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_the_store_refuses_is_recorded_bare_with_the_reason() {
    let env = runtime().await;
    // A real SQLite failure: a trigger in the runtime's own database refuses every
    // notification that quotes the poison (the task's output does, its command not).
    let db = rusqlite::Connection::open(env.rt.home().database()).unwrap();
    db.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON notifications
         WHEN NEW.body LIKE '%poison-pill%'
         BEGIN SELECT RAISE(ABORT, 'refusing this notification'); END;",
    )
    .unwrap();
    let mut spec = sh("printf 'poison-%s\\n' pill");
    spec.session = Some("s1".into());
    let t = run(&env.rt, spec).await;
    assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
    assert_eq!(t.exit_code, Some(0));
    let reason = t.reason.unwrap_or_default();
    assert!(
        reason.contains("recording this end failed at first")
            && reason.contains("refusing this notification"),
        "{reason}"
    );
    assert!(
        env.rt.metrics().commit_failures >= 4,
        "{:?}",
        env.rt.metrics()
    );
    // The session still hears of it, without the refused tail.
    let notes = env.rt.drain_notifications("s1", 10).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert!(!notes[0].text().contains("poison-pill"));
}
