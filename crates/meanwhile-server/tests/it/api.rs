//! Every endpoint doing its job, through the typed client.

use crate::support::*;
use meanwhile_client::{Client, Method};
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{ListFilter, OutputQuery, StopMode, TaskId, TaskState, WaitFor, WaitMode};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_list_and_page() {
    let d = daemon().await;
    let c = &d.client;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut s = sh(&format!("echo {i}"));
        s.labels = vec![if i % 2 == 0 { "even" } else { "odd" }.into()];
        ids.push(c.submit(&s).await.unwrap());
    }
    let batch = c
        .submit_batch(vec![sh("true"), sh("exit 2")])
        .await
        .unwrap();
    assert!(batch.iter().all(|r| r.is_ok()));
    for id in ids.iter().chain(batch.iter().map(|r| r.as_ref().unwrap())) {
        finished(c, *id).await;
    }
    let page = c
        .list(&ListFilter {
            limit: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.tasks.len(), 3);
    assert_eq!(page.tasks[0].id, TaskId(7), "newest first");
    let next = c
        .list(&ListFilter {
            before: page.next,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.tasks.len(), 4);
    assert_eq!(next.tasks[0].id, TaskId(4));
    let even = c
        .list(&ListFilter {
            label: Some("even".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(even.tasks.len(), 3);
    let failed = c
        .list(&ListFilter {
            states: vec![TaskState::Failed],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.tasks.len(), 1);
    assert_eq!(failed.tasks[0].exit_code, Some(2));
    let detail = c.task(ids[0]).await.unwrap();
    assert_eq!(detail.attempts.len(), 1);
    assert_eq!(detail.attempts[0].exit_code, Some(0));
    let status = c.status().await.unwrap();
    assert_eq!(status.counts.get("succeeded"), Some(&6));
    assert_eq!(status.counts.get("failed"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_with_every_reading_option() {
    let d = daemon().await;
    let c = &d.client;
    let id = c
        .submit(&sh("for i in 1 2 3 4 5; do echo line $i; done; printf '\\033[31mred\\033[0m\\n'; echo listening on 8080; sleep 300"))
        .await
        .unwrap();
    let q = OutputQuery {
        wait: Some(WaitFor::Match("listening on \\d+".into())),
        timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let m = c.output(id, &q).await.unwrap();
    assert_eq!(m.matched.as_deref(), Some("listening on 8080"));
    assert_eq!(m.state, TaskState::Running);
    let tail = c
        .output(
            id,
            &OutputQuery {
                tail: Some(2),
                strip_ansi: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail.text, "red\nlistening on 8080\n");
    let grep = c
        .output(
            id,
            &OutputQuery {
                grep: Some("line [24]".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(grep.text, "line 2\nline 4\n");
    assert_eq!(grep.skipped_lines, 5);
    let since = c
        .output(
            id,
            &OutputQuery {
                since: Some(tail.cursor),
                wait: Some(WaitFor::Output),
                timeout: Some(Duration::from_millis(300)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(since.timed_out && since.text.is_empty(), "{since:?}");
    let small = c
        .output(
            id,
            &OutputQuery {
                max_bytes: Some(20),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(small.elided_bytes > 0, "{small:?}");
    let stopped = c.stop(id, StopMode::Force).await.unwrap();
    assert_eq!(stopped.id, id);
    let t = finished(c, id).await;
    assert_eq!(t.state, TaskState::Cancelled);
    let exit = c
        .output(
            id,
            &OutputQuery {
                wait: Some(WaitFor::Exit),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(exit.state, TaskState::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_stop_retry_remove_clean() {
    let d = daemon().await;
    let c = &d.client;
    let slow = c.submit(&sh("sleep 300")).await.unwrap();
    let quick = c.submit(&sh("exit 5")).await.unwrap();
    let w = c
        .wait(
            &[slow, quick],
            WaitMode::Any,
            Some(Duration::from_secs(120)),
        )
        .await
        .unwrap();
    assert!(!w.timed_out);
    assert_eq!(w.tasks[1].exit_code, Some(5));
    let w = c
        .wait(&[slow], WaitMode::All, Some(Duration::from_millis(200)))
        .await
        .unwrap();
    assert!(w.timed_out);
    let e = c.remove(vec![slow]).await.unwrap_err();
    assert!(e.to_string().contains("stop it before removing it"), "{e}");
    c.stop(slow, StopMode::Graceful).await.unwrap();
    assert_eq!(finished(c, slow).await.state, TaskState::Cancelled);
    let again = c.retry(quick).await.unwrap();
    assert_eq!(again.state, TaskState::Pending);
    let t = finished(c, quick).await;
    assert_eq!((t.state, t.attempts), (TaskState::Failed, 2));
    assert_eq!(c.remove(vec![slow]).await.unwrap(), vec![slow]);
    assert!(c.get(slow).await.is_err());
    let keep = c.clean(None, Some(1)).await.unwrap();
    assert!(
        keep.is_empty(),
        "one finished task left, and it is kept: {keep:?}"
    );
    assert_eq!(c.clean(None, None).await.unwrap(), vec![quick]);
    assert!(!d.home.join("tasks").join(quick.to_string()).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_notifications_progress_and_metrics() {
    let d = daemon_with(|s| {
        s.queues.insert(
            "gpu".into(),
            meanwhile_server::QueueSettings {
                max_parallel: Some(1),
                paused: Some(true),
                ..Default::default()
            },
        );
    })
    .await;
    let c = &d.client;
    let queues = c.queues().await.unwrap();
    let gpu = queues.iter().find(|q| q.name == "gpu").unwrap();
    assert!(gpu.paused);
    let mut s = sh("echo trained; exit 0");
    s.queue = Some("gpu".into());
    s.session = Some("agent-1".into());
    let id = c.submit(&s).await.unwrap();
    let w = c
        .wait(&[id], WaitMode::All, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(
        w.tasks[0].state,
        TaskState::Pending,
        "a paused queue starts nothing"
    );
    let q = c
        .set_queue(
            "gpu",
            QueueUpdate {
                max_parallel: Some(2),
                paused: Some(false),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((q.max_parallel, q.paused), (2, false));
    finished(c, id).await;
    let peeked = c.peek_notifications("agent-1", 10).await.unwrap();
    assert_eq!(peeked.len(), 1);
    assert!(peeked[0].text().contains("trained"));
    let drained = c.drain_notifications("agent-1", 10).await.unwrap();
    assert_eq!(drained, peeked);
    assert!(
        c.drain_notifications("agent-1", 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut unread = sh("sleep 300");
    unread.session = Some("agent-2".into());
    let running = c.submit(&unread).await.unwrap();
    crate::support::eventually_running(c, running).await;
    c.report_progress(running, Some(40.0), "compiling")
        .await
        .unwrap();
    let p = c.get(running).await.unwrap().progress.unwrap();
    assert_eq!((p.percent, p.message.as_str()), (Some(40.0), "compiling"));

    // The task counts as running once claimed; its spawn is counted a moment later.
    let mut m = c.metrics().await.unwrap();
    for _ in 0..600 {
        if m.contains("meanwhile_spawns_total 2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = c.metrics().await.unwrap();
    }
    for want in [
        "meanwhile_tasks{queue=\"gpu\",state=\"succeeded\"} 1",
        "meanwhile_tasks{queue=\"default\",state=\"running\"} 1",
        "meanwhile_queue_depth{queue=\"gpu\"} 0",
        "meanwhile_queue_max_parallel{queue=\"gpu\"} 2",
        "# TYPE meanwhile_tasks gauge",
        "meanwhile_spawns_total 2",
        "meanwhile_spawn_seconds_count 2",
        "meanwhile_output_bytes_total 8",
        "meanwhile_attempts_ended_total 1",
        "# TYPE meanwhile_notifications_pending gauge",
    ] {
        assert!(m.contains(want), "{want} missing from:\n{m}");
    }
    c.stop(running, StopMode::Force).await.unwrap();
    finished(c, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_needs_the_bearer_token() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let a = addr.clone();
    let d = daemon_with(move |s| s.listen = Some(a.parse().unwrap())).await;
    let token = std::fs::read_to_string(meanwhile_server::token_path(&d.home)).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(meanwhile_server::token_path(&d.home))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let without = Client::tcp(&addr, "");
    for path in ["/v1/status", "/v1/tasks", "/metrics", "/v1/openapi.json"] {
        let r = without.raw(Method::GET, path, None).await.unwrap();
        assert_eq!(r.status, 401, "{path}");
        assert!(String::from_utf8_lossy(&r.body).contains("\"unauthorized\""));
    }
    let wrong = Client::tcp(&addr, "0".repeat(64));
    assert_eq!(
        wrong.status().await.unwrap_err().api().unwrap().code,
        meanwhile_core::ErrorCode::Unauthorized
    );
    let with = Client::tcp(&addr, token.trim());
    let id = with.submit(&sh("echo over tcp")).await.unwrap();
    finished(&with, id).await;
    let out = with.output(id, &OutputQuery::default()).await.unwrap();
    assert_eq!(out.text, "over tcp\n");
    // The socket needs no token: its 0600 mode is the guard.
    let sock_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(meanwhile_server::socket_path(&d.home))
            .unwrap()
            .permissions(),
    );
    assert_eq!(sock_mode & 0o777, 0o600);
    let home_mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&d.home).unwrap().permissions());
    assert_eq!(home_mode & 0o777, 0o700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_finished_tasks_and_logs() {
    let d = daemon_with(|s| {
        s.retention.max_age = None;
        s.retention.keep_last = Some(2);
        s.retention.interval = Duration::from_millis(200);
    })
    .await;
    let c = &d.client;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = c.submit(&sh(&format!("echo {i}"))).await.unwrap();
        finished(c, id).await;
        ids.push(id);
    }
    let mut left = usize::MAX;
    for _ in 0..600 {
        left = c.list(&ListFilter::default()).await.unwrap().tasks.len();
        if left == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 2);
    assert!(!d.home.join("tasks").join(ids[0].to_string()).exists());
    assert!(c.get(ids[4]).await.is_ok());
}

/// Queue limits over the wire: set, shown in every listing, left alone when not
/// named, removed with null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_limits_are_set_shown_and_removed_with_null() {
    let d = daemon_with(|s| {
        s.queues.insert(
            "llm".into(),
            meanwhile_server::QueueSettings {
                per_key: Some(Some(2)),
                rate: Some(Some("60/m".parse().unwrap())),
                ..Default::default()
            },
        );
    })
    .await;
    let c = &d.client;
    let llm =
        |qs: Vec<meanwhile_core::QueueInfo>| qs.into_iter().find(|q| q.name == "llm").unwrap();
    let q = llm(c.queues().await.unwrap());
    assert_eq!(q.per_key, Some(2), "from config.toml's settings");
    assert_eq!(q.rate.map(|r| r.to_string()).as_deref(), Some("60/m"));
    let r = c
        .raw(
            Method::PUT,
            "/v1/queues/llm",
            Some(br#"{"rate": "10/30s"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["rate"], "10/30s");
    assert_eq!(body["per_key"], 2, "not named, so kept");
    let r = c
        .raw(
            Method::PUT,
            "/v1/queues/llm",
            Some(br#"{"per_key": null, "rate": null}"#.to_vec()),
        )
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r.status, &body["per_key"], &body["rate"]),
        (200, &serde_json::Value::Null, &serde_json::Value::Null)
    );
    let status = c.status().await.unwrap();
    let q = llm(status.queues);
    assert_eq!((q.per_key, q.rate), (None, None));
    let change = QueueUpdate {
        per_key: Some(Some(1)),
        ..QueueUpdate::default()
    };
    assert_eq!(c.set_queue("llm", change).await.unwrap().per_key, Some(1));
    // A task's key is kept, served, and shown in its record.
    let mut spec = sh("true");
    spec.queue = Some("llm".into());
    spec.concurrency_key = Some("customer-42".into());
    let id = c.submit(&spec).await.unwrap();
    let t = c.task(id).await.unwrap().task;
    assert_eq!(t.concurrency_key.as_deref(), Some("customer-42"));
    assert_eq!(t.spec.concurrency_key.as_deref(), Some("customer-42"));
}
