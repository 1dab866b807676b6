//! Bad requests get a JSON error with the right status, code and field, and change
//! nothing: no panic, no half-made task.

use crate::support::*;
use meanwhile_client::Method;
use meanwhile_core::ListFilter;
use serde_json::Value;

struct Case {
    method: Method,
    path: &'static str,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
    message: &'static str,
}

fn case(
    method: Method,
    path: &'static str,
    body: &str,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
    message: &'static str,
) -> Case {
    Case {
        method,
        path,
        body: (!body.is_empty()).then(|| body.as_bytes().to_vec()),
        status,
        code,
        field,
        message,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_clear_errors_and_change_nothing() {
    let d = daemon_with(|s| s.max_body_bytes = 10_000).await;
    let id = d.client.submit(&sh("echo hi")).await.unwrap();
    finished(&d.client, id).await;
    let big = format!(r#"{{"command": "{}"}}"#, "x".repeat(20_000));
    let cases = vec![
        case(
            Method::POST,
            "/v1/tasks",
            "{\"command\": ",
            400,
            "invalid_argument",
            None,
            "not valid JSON",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            "not json",
            400,
            "invalid_argument",
            None,
            "not valid JSON",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            r#"{"command": "x", "colour": 1}"#,
            400,
            "invalid_argument",
            Some("colour"),
            "unknown field `colour`",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            r#"{"command": "x", "priority": "high"}"#,
            400,
            "invalid_argument",
            Some("priority"),
            "invalid type",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            r#"{"command": "x", "retry": {"max_attempts": -1}}"#,
            400,
            "invalid_argument",
            Some("retry.max_attempts"),
            "out of range",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            r#"{"command": "x", "timeout": "fast"}"#,
            400,
            "invalid_argument",
            Some("timeout"),
            "like 30s",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            r#"{"command": "x", "cwd": "relative"}"#,
            400,
            "invalid_argument",
            Some("cwd"),
            "absolute",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            r#"{}"#,
            400,
            "invalid_argument",
            Some("command"),
            "command",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            "",
            400,
            "invalid_argument",
            Some("body"),
            "JSON body",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            &big,
            413,
            "payload_too_large",
            None,
            "larger than the limit",
        ),
        case(
            Method::POST,
            "/v1/tasks/batch",
            r#"{"tasks": [{"command": "true"}, {"command": "x", "queue": "a b"}]}"#,
            400,
            "invalid_argument",
            Some("tasks[1].queue"),
            "tasks[1].queue",
        ),
        case(
            Method::GET,
            "/v1/tasks/1/output?grep=(",
            "",
            400,
            "invalid_argument",
            Some("grep"),
            "not a valid regex",
        ),
        case(
            Method::GET,
            "/v1/tasks/1/output?match=%5Ba-",
            "",
            400,
            "invalid_argument",
            Some("wait"),
            "not a valid regex",
        ),
        case(
            Method::GET,
            "/v1/tasks/1/output?wait=soon",
            "",
            400,
            "invalid_argument",
            Some("wait"),
            "exit, output, match, listening or input",
        ),
        case(
            Method::GET,
            "/v1/tasks/1/output?since=abc",
            "",
            400,
            "invalid_argument",
            Some("since"),
            "bad query parameter",
        ),
        case(
            Method::GET,
            "/v1/tasks/1/output?colour=red",
            "",
            400,
            "invalid_argument",
            Some("colour"),
            "unknown field `colour`",
        ),
        case(
            Method::GET,
            "/v1/tasks?state=runing",
            "",
            400,
            "invalid_argument",
            Some("state"),
            "unknown state",
        ),
        case(
            Method::GET,
            "/v1/tasks/42",
            "",
            404,
            "not_found",
            None,
            "unknown task 42 (see 'meanwhile ls')",
        ),
        case(
            Method::GET,
            "/v1/tasks/abc",
            "",
            400,
            "invalid_argument",
            Some("id"),
            "positive integers",
        ),
        case(
            Method::GET,
            "/v1/tasks/42/output",
            "",
            404,
            "not_found",
            None,
            "unknown task 42",
        ),
        case(
            Method::POST,
            "/v1/tasks/42/stop",
            "",
            404,
            "not_found",
            None,
            "unknown task 42",
        ),
        case(
            Method::POST,
            "/v1/tasks/1/stop",
            r#"{"mode": "gently"}"#,
            400,
            "invalid_argument",
            Some("mode"),
            "unknown variant",
        ),
        case(
            Method::POST,
            "/v1/tasks/42/retry",
            "",
            404,
            "not_found",
            None,
            "unknown task 42",
        ),
        case(
            Method::POST,
            "/v1/wait",
            r#"{"ids": []}"#,
            400,
            "invalid_argument",
            Some("ids"),
            "at least one",
        ),
        case(
            Method::POST,
            "/v1/wait",
            r#"{"ids": [42], "timeout": "1s"}"#,
            404,
            "not_found",
            None,
            "unknown task 42",
        ),
        case(
            Method::PUT,
            "/v1/queues/a%20b",
            r#"{"max_parallel": 2}"#,
            400,
            "invalid_argument",
            Some("queue"),
            "may only contain",
        ),
        case(
            Method::PUT,
            "/v1/queues/q",
            r#"{"max_parallel": 0}"#,
            400,
            "invalid_argument",
            Some("max_parallel"),
            "at least 1",
        ),
        case(
            Method::PUT,
            "/v1/queues/q",
            r#"{"per_key": 0}"#,
            400,
            "invalid_argument",
            Some("per_key"),
            "at least 1",
        ),
        case(
            Method::PUT,
            "/v1/queues/q",
            r#"{"rate": "60 a minute"}"#,
            400,
            "invalid_argument",
            Some("rate"),
            "rate must be N/s, N/m, N/h, N/d or N/<duration>",
        ),
        case(
            Method::PUT,
            "/v1/queues/q",
            r#"{"rate": 60}"#,
            400,
            "invalid_argument",
            Some("rate"),
            "expected a rate written N/s, N/m, N/h, N/d or N/<duration>",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            r#"{"command": "true", "concurrency_key": "a b"}"#,
            400,
            "invalid_argument",
            Some("concurrency_key"),
            "may only contain",
        ),
        case(
            Method::POST,
            "/v1/tasks/1/progress",
            r#"{"percent": 300}"#,
            400,
            "invalid_argument",
            Some("percent"),
            "a number from 0 to 100",
        ),
        case(
            Method::POST,
            "/v1/tasks/remove",
            r#"{"ids": [42]}"#,
            404,
            "not_found",
            None,
            "unknown task 42",
        ),
        case(
            Method::GET,
            "/v1/nothing",
            "",
            404,
            "not_found",
            None,
            "no endpoint /v1/nothing",
        ),
        // Issue 28.15: a negative number of seconds as small as -1e-323 rounded to
        // -0.0, passed as zero, and the clean removed every finished task.
        case(
            Method::POST,
            "/v1/clean",
            r#"{"older_than": -1e-323}"#,
            400,
            "invalid_argument",
            Some("older_than"),
            "must be between 0",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            r#"{"command": "true", "timeout": -0.0001}"#,
            400,
            "invalid_argument",
            Some("timeout"),
            "must be between 0",
        ),
        case(
            Method::POST,
            "/v1/wait",
            r#"{"ids": [1], "timeout": -1e-300}"#,
            400,
            "invalid_argument",
            Some("timeout"),
            "must be between 0",
        ),
        // Issue 28.16: bytes that are not UTF-8 were read as U+FFFD.
        case(
            Method::GET,
            "/v1/tasks?name=%FF",
            "",
            400,
            "invalid_argument",
            Some("query"),
            "not UTF-8",
        ),
        // Issue 28.17: a valid request that this daemon's state refuses.
        case(
            Method::POST,
            "/v1/tasks",
            r#"{"llm": {"prompt": "Say hi"}}"#,
            409,
            "no_provider",
            Some("llm"),
            "no LLM provider configured for llm tasks",
        ),
        case(
            Method::POST,
            "/v1/tasks",
            r#"{"agent": {"prompt": "Fix the build"}}"#,
            409,
            "no_provider",
            Some("agent"),
            "no LLM provider configured for agent tasks",
        ),
        case(
            Method::DELETE,
            "/v1/tasks",
            "",
            405,
            "invalid_argument",
            Some("method"),
            "does not take DELETE",
        ),
    ];
    for c in cases {
        let what = format!(
            "{} {} {:?}",
            c.method,
            c.path,
            c.body
                .as_ref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned())
        );
        let r = d.client.raw(c.method, c.path, c.body).await.unwrap();
        let body: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| panic!("{what}: not JSON: {}", String::from_utf8_lossy(&r.body)));
        let e = &body["error"];
        assert_eq!(r.status, c.status, "{what}: {body}");
        assert_eq!(e["code"], c.code, "{what}: {body}");
        assert_eq!(e["field"].as_str(), c.field, "{what}: {body}");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains(c.message),
            "{what}: {msg:?} lacks {:?}",
            c.message
        );
    }
    // Nothing was made by any of them: only the first task exists.
    let page = d.client.list(&ListFilter::default()).await.unwrap();
    assert_eq!(page.tasks.len(), 1, "{:?}", page.tasks);
    // And the daemon still works.
    let id = d.client.submit(&sh("true")).await.unwrap();
    finished(&d.client, id).await;
}

/// The status and JSON body (null when none) of a request.
async fn request(
    client: &meanwhile_client::Client,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let r = client
        .raw(method, path, body.map(|b| b.as_bytes().to_vec()))
        .await
        .unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_reused_with_another_spec_is_a_conflict_naming_the_task() {
    let d = daemon().await;
    let submit = |body| request(&d.client, Method::POST, "/v1/tasks", Some(body));
    let (status, first) = submit(r#"{"command": "true", "idempotency_key": "k1"}"#).await;
    assert_eq!(status, 201, "{first}");
    let id = first["id"].as_i64().unwrap();
    // A resend of the same spec answers the same task.
    let (status, again) = submit(r#"{"command": "true", "idempotency_key": "k1"}"#).await;
    assert_eq!((status, again["id"].as_i64()), (201, Some(id)), "{again}");
    // Issue 28.9: another spec under the key was answered with the old task.
    let (status, body) = submit(r#"{"command": "false", "idempotency_key": "k1"}"#).await;
    assert_eq!(status, 409, "{body}");
    let e = &body["error"];
    assert_eq!(e["code"], "idempotency_conflict", "{body}");
    assert_eq!(e["field"], "idempotency_key", "{body}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains(&format!("belongs to task {id}")),
        "{body}"
    );
    let page = d.client.list(&ListFilter::default()).await.unwrap();
    assert_eq!(page.tasks.len(), 1, "{:?}", page.tasks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_is_removed_only_when_idle() {
    let d = daemon().await;
    let delete = |path| request(&d.client, Method::DELETE, path, None);
    let (status, body) = delete("/v1/queues/nosuch").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &"not_found".into()),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the queues are default"),
        "{body}"
    );
    let mut spec = sh("sleep 300");
    spec.queue = Some("gpu".into());
    let id = d.client.submit(&spec).await.unwrap();
    let (status, body) = delete("/v1/queues/gpu").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &"conflict".into()),
        "{body}"
    );
    assert_eq!(body["error"]["field"], "name", "{body}");
    d.client
        .stop(id, meanwhile_core::StopMode::Force)
        .await
        .unwrap();
    finished(&d.client, id).await;
    let (status, _) = delete("/v1/queues/gpu").await;
    assert_eq!(status, 204);
    let queues = d.client.queues().await.unwrap();
    assert!(queues.iter().all(|q| q.name != "gpu"), "{queues:?}");
    let (status, body) = delete("/v1/queues/a%20b").await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (400, &"queue".into()),
        "{body}"
    );
}
