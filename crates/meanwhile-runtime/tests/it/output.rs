//! Reading output: cursors, tail, grep, max_bytes, and the three kinds of wait.

use crate::support::*;
use meanwhile_runtime::core::TaskState;
use meanwhile_runtime::{OutputQuery, WaitFor};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_tail_grep_and_max_bytes() {
    let env = runtime().await;
    let t = run(
        &env.rt,
        sh("for i in 1 2 3 4 5 6; do echo line $i; done; echo error: boom"),
    )
    .await;
    let all = env
        .rt
        .read_output(t.id, OutputQuery::default())
        .await
        .unwrap();
    assert_eq!(all.text.lines().count(), 7);
    assert_eq!((all.state, all.exit_code), (TaskState::Succeeded, Some(0)));
    assert_eq!(all.cursor, all.total_bytes);
    let q = |f: fn(&mut OutputQuery)| {
        let mut q = OutputQuery::default();
        f(&mut q);
        q
    };
    let tail = env
        .rt
        .read_output(t.id, q(|q| q.tail = Some(2)))
        .await
        .unwrap();
    assert_eq!(tail.text, "line 6\nerror: boom\n");
    let grep = env
        .rt
        .read_output(t.id, q(|q| q.grep = Some("^line [24]".into())))
        .await
        .unwrap();
    assert_eq!(
        (grep.text.as_str(), grep.skipped_lines),
        ("line 2\nline 4\n", 5)
    );
    let since = env
        .rt
        .read_output(
            t.id,
            OutputQuery {
                since: Some(all.cursor - 12),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(since.text, "error: boom\n");
    let small = env
        .rt
        .read_output(t.id, q(|q| q.max_bytes = Some(40)))
        .await
        .unwrap();
    assert!(small.text.contains("bytes elided"), "{}", small.text);
    assert!(small.text.starts_with("line 1\nline 2"));
    assert!(small.text.ends_with("error: boom\n"));
    let bad = env
        .rt
        .read_output(t.id, q(|q| q.grep = Some("(".into())))
        .await
        .unwrap_err();
    assert_eq!(bad.field(), Some("grep"));
    assert!(bad.to_string().contains("not a valid regex"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_regex_returns_when_the_line_appears() {
    let env = runtime().await;
    let id = env
        .rt
        .submit(sh(
            "echo booting; sleep 0.5; echo 'listening on :8080'; sleep 300",
        ))
        .await
        .unwrap();
    let chunk = env
        .rt
        .read_output(
            id,
            OutputQuery {
                wait: Some(WaitFor::Match("listening on :\\d+".into())),
                timeout: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(chunk.matched.as_deref(), Some("listening on :8080"));
    assert_eq!(chunk.state, TaskState::Running);
    assert!(!chunk.timed_out);
    env.rt
        .stop(id, meanwhile_runtime::StopMode::Force)
        .await
        .unwrap();
    finished(&env.rt, id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_new_output_and_for_exit() {
    let env = runtime().await;
    let id = env
        .rt
        .submit(sh("sleep 0.3; echo one; sleep 0.3; echo two"))
        .await
        .unwrap();
    let first = env
        .rt
        .read_output(
            id,
            OutputQuery {
                wait: Some(WaitFor::Output),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(first.text.starts_with("one"), "{first:?}");
    let rest = env
        .rt
        .read_output(
            id,
            OutputQuery {
                since: Some(first.cursor),
                wait: Some(WaitFor::Exit),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.state, TaskState::Succeeded);
    assert_eq!(format!("{}{}", first.text, rest.text), "one\ntwo\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_times_out_with_what_there_is() {
    let env = runtime().await;
    let id = env.rt.submit(sh("echo partial; sleep 300")).await.unwrap();
    let chunk = env
        .rt
        .read_output(
            id,
            OutputQuery {
                wait: Some(WaitFor::Match("never".into())),
                timeout: Some(Duration::from_millis(300)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(chunk.timed_out);
    assert_eq!(chunk.matched, None);
    env.rt
        .stop(id, meanwhile_runtime::StopMode::Force)
        .await
        .unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ansi_is_stripped_on_request() {
    let env = runtime().await;
    let t = run(&env.rt, sh(r"printf '\033[1;32mgreen\033[0m\n'")).await;
    let raw = output(&env.rt, t.id).await;
    assert!(raw.contains('\u{1b}'));
    let clean = env
        .rt
        .read_output(
            t.id,
            OutputQuery {
                strip_ansi: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(clean.text, "green\n");
}
