//! Interactive tasks through the library: input to a pipe and a terminal, what the
//! runtime sees a task doing (waiting for input, a Unix socket it listens on), and
//! one attached writer at a time.

use crate::support::*;
use meanwhile_runtime::core::{
    ErrorCode, Key, OutputQuery, TaskInput, TaskState, Terminal, WaitFor,
};
use std::time::Duration;

async fn wait_for(
    env: &Env,
    id: meanwhile_runtime::core::TaskId,
    what: WaitFor,
) -> meanwhile_runtime::core::OutputChunk {
    let q = OutputQuery {
        wait: Some(what),
        timeout: Some(Duration::from_secs(120)),
        strip_ansi: true,
        ..OutputQuery::default()
    };
    let c = env.rt.read_output(id, q).await.unwrap();
    assert!(!c.timed_out, "{c:?}");
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipe_takes_lines_and_its_end() {
    let env = runtime().await;
    let mut spec = sh("while read l; do echo \"got $l\"; done; echo done");
    spec.stdin = true;
    let id = env.rt.submit(spec).await.unwrap();
    let c = wait_for(&env, id, WaitFor::Input).await;
    assert!(c.waiting_for_input, "{c:?}");
    let sent = env
        .rt
        .send_input(
            id,
            TaskInput {
                text: Some("a".into()),
                keys: vec![Key::Enter],
                ..TaskInput::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((sent.bytes, sent.eof), (2, false));
    // Ctrl-D on a pipe is its end.
    env.rt
        .send_input(
            id,
            TaskInput {
                text: Some("b\n".into()),
                keys: vec![Key::CtrlD],
                ..TaskInput::default()
            },
        )
        .await
        .unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
    let out = env
        .rt
        .read_output(id, OutputQuery::default())
        .await
        .unwrap();
    assert_eq!(out.text, "got a\ngot b\ndone\n");
    let e = env
        .rt
        .send_input(id, TaskInput::text("late"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("only a running task takes input"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unix_socket_is_seen_listening_and_one_terminal_writes_at_a_time() {
    let env = runtime().await;
    let path = env.dir.path().join("app.sock");
    let script = format!(
        "import socket; s = socket.socket(socket.AF_UNIX); s.bind({:?}); s.listen(); input('ready> ')",
        path.to_str().unwrap()
    );
    let mut spec = meanwhile_runtime::core::TaskSpec::argv(["python3", "-c", script.as_str()]);
    spec.tty = Some(Terminal {
        cols: 100,
        rows: 20,
    });
    let id = env.rt.submit(spec).await.unwrap();
    let c = wait_for(&env, id, WaitFor::Listening).await;
    assert_eq!(c.listening.len(), 1, "{c:?}");
    assert_eq!(c.listening[0].address, path.to_str().unwrap());
    assert_eq!(
        (c.listening[0].port, c.listening[0].url.clone()),
        (None, None)
    );
    let c = wait_for(&env, id, WaitFor::Input).await;
    assert_eq!(c.prompt.as_deref(), Some("ready>"), "{c:?}");
    // One attached terminal holds the input; another is refused meanwhile, input
    // without a writer is not, and a detach lets the other one in.
    let hold = |w: &str| TaskInput {
        writer: Some(w.into()),
        ..TaskInput::default()
    };
    env.rt.send_input(id, hold("a")).await.unwrap();
    let e = env.rt.send_input(id, hold("b")).await.unwrap_err();
    assert_eq!(
        meanwhile_runtime::core::ApiError::from(e).code,
        ErrorCode::Conflict
    );
    env.rt
        .send_input(
            id,
            TaskInput {
                detach: true,
                ..hold("a")
            },
        )
        .await
        .unwrap();
    env.rt.send_input(id, hold("b")).await.unwrap();
    env.rt
        .send_input(
            id,
            TaskInput {
                keys: vec![Key::Enter],
                ..hold("b")
            },
        )
        .await
        .unwrap();
    let t = finished(&env.rt, id).await;
    assert_eq!(t.state, TaskState::Succeeded, "{t:?}");
    assert!(t.listening.is_empty() && !t.waiting_for_input);
}
