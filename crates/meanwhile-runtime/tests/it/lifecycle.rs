//! Submit, run, exit codes, retries, dependencies, queues, notifications.

use crate::support::*;
use meanwhile_runtime::core::http::QueueUpdate;
use meanwhile_runtime::core::{RetryPolicy, TaskId, TaskSpec, TaskState};
use meanwhile_runtime::{Runtime, WaitMode};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_signals_and_resources_are_recorded() {
    let env = runtime().await;
    let ok = run(&env.rt, sh("echo hello; echo oops >&2")).await;
    assert_eq!(ok.state, TaskState::Succeeded);
    assert_eq!(ok.exit_code, Some(0));
    assert_eq!(output(&env.rt, ok.id).await, "hello\noops\n");
    let bad = run(&env.rt, sh("exit 3")).await;
    assert_eq!((bad.state, bad.exit_code), (TaskState::Failed, Some(3)));
    let killed = run(&env.rt, sh("kill -9 $$")).await;
    assert_eq!((killed.state, killed.signal), (TaskState::Failed, Some(9)));
    let argv = run(&env.rt, TaskSpec::argv(["printf", "%s-%s", "a b", "c"])).await;
    assert_eq!(output(&env.rt, argv.id).await, "a b-c");
    let attempts = env.rt.attempts(ok.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].peak_rss_kb.unwrap() > 0);
    assert!(attempts[0].cpu_ms.is_some());
    assert!(attempts[0].pid.unwrap() > 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_cwd_and_task_id_reach_the_process() {
    let env = runtime().await;
    let mut spec = sh("echo $GREETING $MEANWHILE_TASK_ID; pwd");
    spec.env.insert("GREETING".into(), "hi".into());
    spec.cwd = Some("/tmp".into());
    let t = run(&env.rt, spec).await;
    assert_eq!(output(&env.rt, t.id).await, format!("hi {}\n/tmp\n", t.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_failures_are_failed_attempts_with_a_reason() {
    let env = runtime().await;
    let t = run(&env.rt, TaskSpec::argv(["no-such-program-xyz"])).await;
    assert_eq!(t.state, TaskState::Failed);
    assert!(
        t.reason.as_deref().unwrap().contains("command not found"),
        "{t:?}"
    );
    assert!(output(&env.rt, t.id).await.contains("no-such-program-xyz"));
    let mut spec = sh("true");
    spec.cwd = Some("/no/such/dir".into());
    let t = run(&env.rt, spec).await;
    assert!(
        t.reason.as_deref().unwrap().contains("does not exist"),
        "{t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_name_the_field_and_leave_nothing() {
    let env = runtime().await;
    let mut spec = sh("true");
    spec.queue = Some("bad queue".into());
    let e = env.rt.submit(spec).await.unwrap_err();
    assert_eq!(e.field(), Some("queue"));
    let e = env.rt.submit(TaskSpec::default()).await.unwrap_err();
    assert_eq!(e.field(), Some("command"));
    let mut spec = sh("true");
    spec.after = vec![TaskId(77)];
    let e = env.rt.submit(spec).await.unwrap_err();
    assert_eq!(e.field(), Some("after"));
    assert!(e.to_string().contains("unknown task 77"));
    let page = env.rt.list(Default::default()).await.unwrap();
    assert!(page.tasks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_then_quarantine_and_manual_retry_reruns() {
    let env = runtime().await;
    let marker = env.dir.path().join("attempts");
    let mut spec = sh(&format!("echo x >> {}; exit 1", marker.display()));
    spec.retry = RetryPolicy {
        max_attempts: 3,
        backoff: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        jitter: 0.5,
    };
    let t = run(&env.rt, spec).await;
    assert_eq!(t.state, TaskState::Quarantined);
    assert_eq!(t.attempts, 3);
    assert!(
        t.reason
            .as_deref()
            .unwrap()
            .contains("quarantined after 3 attempts")
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 3);
    let attempts = env.rt.attempts(t.id).await.unwrap();
    for pair in attempts.windows(2) {
        let gap = pair[1].started_at.0 - pair[0].ended_at.unwrap().0;
        assert!(gap >= 20, "backoff between attempts, got {gap} ms");
    }
    env.rt.retry(t.id).await.unwrap();
    let t = finished(&env.rt, t.id).await;
    assert_eq!(t.attempts, 6);
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_run_in_order_and_failures_propagate() {
    let env = runtime().await;
    let order = env.dir.path().join("order");
    let a = env
        .rt
        .submit(sh(&format!("sleep 0.3; echo a >> {}", order.display())))
        .await
        .unwrap();
    let b = env
        .rt
        .submit(sh(&format!("echo b >> {}", order.display())))
        .await
        .unwrap();
    let mut c = sh(&format!("echo c >> {}", order.display()));
    c.after = vec![a, b];
    let c = env.rt.submit(c).await.unwrap();
    let t = finished(&env.rt, c).await;
    assert_eq!(t.state, TaskState::Succeeded);
    let lines = std::fs::read_to_string(&order).unwrap();
    assert!(lines.ends_with("c\n") && lines.len() == 6, "{lines}");

    let failing = env.rt.submit(sh("exit 2")).await.unwrap();
    let mut d = sh("echo never");
    d.after = vec![failing];
    d.session = Some("s1".into());
    let d = env.rt.submit(d).await.unwrap();
    let t = finished(&env.rt, d).await;
    assert_eq!(t.state, TaskState::Failed);
    assert!(
        t.reason
            .unwrap()
            .contains(&format!("dependency {failing} ended failed"))
    );
    assert_eq!(t.attempts, 0, "the dependent never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_limit_parallelism_pause_and_order_by_priority() {
    let env = runtime().await;
    env.rt
        .set_queue(
            "build",
            QueueUpdate {
                max_parallel: Some(1),
                paused: Some(true),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
    let log = env.dir.path().join("log");
    let mut ids = Vec::new();
    for (name, prio) in [("low", 0), ("high", 5), ("mid", 1)] {
        let mut s = sh(&format!(
            "echo start {name} >> {0}; sleep 0.1; echo end {name} >> {0}",
            log.display()
        ));
        s.queue = Some("build".into());
        s.priority = prio;
        ids.push(env.rt.submit(s).await.unwrap());
    }
    // A task submitted after them to another queue has run: the dispatcher has
    // looked at the paused queue since, and left it alone.
    probe(&env.rt).await;
    assert!(!log.exists(), "a paused queue starts nothing");
    for id in &ids {
        assert_eq!(env.rt.get(*id).await.unwrap().state, TaskState::Pending);
    }
    env.rt
        .set_queue(
            "build",
            QueueUpdate {
                paused: Some(false),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
    env.rt
        .wait(&ids, WaitMode::All, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text, "start high\nend high\nstart mid\nend mid\nstart low\nend low\n",
        "one at a time, highest priority first"
    );
    let q = env.rt.queues().await.unwrap();
    assert!(q.iter().any(|q| q.name == "default"));
    assert!(q.iter().any(|q| q.name == "build" && q.max_parallel == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_after_delays_the_start() {
    let env = runtime().await;
    let mut spec = sh("true");
    spec.delay = Some(Duration::from_millis(600));
    let id = env.rt.submit(spec).await.unwrap();
    let created = env.rt.get(id).await.unwrap().created_at;
    let t = finished(&env.rt, id).await;
    assert!(t.started_at.unwrap().0 - created.0 >= 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_drained_once_in_order_and_say_how_it_ended() {
    let env = runtime().await;
    let mut ids = Vec::new();
    for cmd in ["echo first; exit 0", "echo second; exit 101"] {
        let mut s = sh(cmd);
        s.session = Some("agent-7".into());
        s.name = Some(format!("job-{}", ids.len()));
        let id = env.rt.submit(s).await.unwrap();
        finished(&env.rt, id).await;
        ids.push(id);
    }
    let notes = env.rt.drain_notifications("agent-7", 10).await.unwrap();
    assert_eq!(notes.iter().map(|n| n.task_id).collect::<Vec<_>>(), ids);
    let text = notes[1].text();
    assert!(
        text.starts_with(&format!(
            "task {} (job-1) failed with exit code 101 after",
            ids[1]
        )),
        "{text}"
    );
    assert!(text.contains("last lines of output:\nsecond"), "{text}");
    assert!(
        env.rt
            .drain_notifications("agent-7", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_run_once_also_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let mut spec = sh(&format!("echo ran >> {}", marker.display()));
    spec.idempotency_key = Some("deploy-42".into());
    let first = {
        let rt = Runtime::start(config(dir.path()), std::future::pending())
            .await
            .unwrap();
        let a = rt.submit(spec.clone()).await.unwrap();
        let b = rt.submit(spec.clone()).await.unwrap();
        assert_eq!(a, b);
        finished(&rt, a).await;
        rt.shutdown().await;
        a
    };
    let rt = Runtime::start(config(dir.path()), std::future::pending())
        .await
        .unwrap();
    assert_eq!(rt.submit(spec).await.unwrap(), first);
    // A task submitted afterwards has run: had the first been queued again, it
    // would have run too.
    probe(&rt).await;
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
    assert_eq!(rt.get(first).await.unwrap().attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_after_commit() {
    let env = runtime().await;
    let ok = Arc::new(AtomicUsize::new(0));
    let err = Arc::new(AtomicUsize::new(0));
    let (o, e) = (ok.clone(), err.clone());
    env.rt.on_complete(move |t| {
        assert_eq!(t.state, TaskState::Succeeded);
        o.fetch_add(1, Ordering::SeqCst);
    });
    env.rt.on_error(move |_| {
        e.fetch_add(1, Ordering::SeqCst);
    });
    env.rt
        .on_error(|_| panic!("a broken hook must not stop the others"));
    run(&env.rt, sh("true")).await;
    run(&env.rt, sh("false")).await;
    eventually("hooks", || {
        ok.load(Ordering::SeqCst) == 1 && err.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_lines_and_api_progress_are_recorded() {
    let env = runtime().await;
    let id = env
        .rt
        .submit(sh("echo '::progress 40 compiling'; sleep 1; echo done"))
        .await
        .unwrap();
    let rt = env.rt.clone();
    let mut events = rt.subscribe();
    let mut got = None;
    while got.is_none() {
        let e = events.recv().await.unwrap();
        if e.task_id == Some(id) && e.kind == meanwhile_runtime::core::EventKind::Progress {
            got = Some(e.data);
        }
    }
    let data = got.unwrap();
    assert_eq!(data["percent"], 40.0);
    assert_eq!(data["message"], "compiling");
    let t = env.rt.get(id).await.unwrap();
    assert_eq!(t.progress.unwrap().message, "compiling");
    env.rt
        .report_progress(id, Some(90.0), "linking")
        .await
        .unwrap();
    assert_eq!(
        env.rt.get(id).await.unwrap().progress.unwrap().message,
        "linking"
    );
    let e = env
        .rt
        .report_progress(id, Some(140.0), "x")
        .await
        .unwrap_err();
    assert_eq!(e.field(), Some("percent"));
    finished(&env.rt, id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_filters_and_pages() {
    let env = runtime().await;
    for i in 0..7 {
        let mut s = sh("true");
        s.labels = vec![if i % 2 == 0 { "even" } else { "odd" }.into()];
        s.session = Some("lister".into());
        env.rt.submit(s).await.unwrap();
    }
    let page = env
        .rt
        .list(meanwhile_runtime::store::ListFilter {
            label: Some("even".into()),
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.tasks.len(), 3);
    let rest = env
        .rt
        .list(meanwhile_runtime::store::ListFilter {
            label: Some("even".into()),
            before: page.next,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.tasks.len(), 1);
    assert!(rest.next.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_tasks_are_refused_where_no_executor_runs_them() {
    let env = runtime().await;
    let spec = TaskSpec {
        agent: Some(meanwhile_runtime::core::AgentSpec {
            prompt: "summarise the logs".into(),
            ..Default::default()
        }),
        ..TaskSpec::default()
    };
    let e = env.rt.submit(spec).await.unwrap_err();
    assert_eq!(e.field(), Some("agent"));
    assert!(e.to_string().contains("no LLM provider"), "{e}");
    assert!(
        env.rt
            .list(Default::default())
            .await
            .unwrap()
            .tasks
            .is_empty()
    );
}

/// A submit that finds a free slot claims its task in the commit that records it, so
/// the task is no longer pending when the submit returns. One that finds the queue
/// full leaves its task pending, for the dispatcher to start once a slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_to_a_free_slot_claims_its_task_in_the_same_commit() {
    let env = runtime().await;
    env.rt
        .set_queue(
            "one",
            QueueUpdate {
                max_parallel: Some(1),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
    let gate = env.dir.path().join("gate");
    let mut first = sh(&format!(
        "while [ ! -e {} ]; do sleep 0.01; done",
        gate.display()
    ));
    first.queue = Some("one".into());
    let first = env.rt.submit(first).await.unwrap();
    let t = env.rt.get(first).await.unwrap();
    assert_eq!(
        t.state,
        TaskState::Running,
        "claimed with its submit: {t:?}"
    );
    assert_eq!(t.attempts, 1);

    let mut second = sh("echo second");
    second.queue = Some("one".into());
    let second = env.rt.submit(second).await.unwrap();
    assert_eq!(
        env.rt.get(second).await.unwrap().state,
        TaskState::Pending,
        "the queue's one slot is taken"
    );
    std::fs::write(&gate, "").unwrap();
    assert_eq!(finished(&env.rt, first).await.state, TaskState::Succeeded);
    let t = finished(&env.rt, second).await;
    assert_eq!(t.state, TaskState::Succeeded);
    assert_eq!(output(&env.rt, t.id).await, "second\n");
    assert_eq!(env.rt.attempts(first).await.unwrap().len(), 1);
}
