//! `POST /v1/shutdown`: the daemon stops on request, as on SIGTERM.

use crate::support::*;
use meanwhile_client::Method;
use meanwhile_client::core::http::SOCKET_FILE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_request_stops_the_daemon() {
    let mut d = daemon_with(|s| s.stop_tasks = false).await;
    let bad = br#"{"stop_tasks": "yes"}"#.to_vec();
    let r = d
        .client
        .raw(Method::POST, "/v1/shutdown", Some(bad))
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, 400, "{body}");
    assert!(body.contains("stop_tasks"), "{body}");
    assert!(
        d.client.status().await.is_ok(),
        "a bad request changes nothing"
    );

    let answer = d.client.shutdown(false).await.unwrap();
    assert_eq!((answer.pid, answer.stop_tasks), (std::process::id(), false));
    d.exited().await.unwrap();
    assert!(!d.home.join(SOCKET_FILE).exists());
    assert!(d.client.status().await.unwrap_err().is_unreachable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_stop_the_tasks_says_so() {
    let mut d = daemon_with(|s| s.stop_tasks = false).await;
    let r = d
        .client
        .raw(
            Method::POST,
            "/v1/shutdown",
            Some(br#"{"stop_tasks": true}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["stop_tasks"], true, "{v}");
    d.exited().await.unwrap();
}
