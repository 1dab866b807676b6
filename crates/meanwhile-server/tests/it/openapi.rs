//! The OpenAPI document names every route the daemon serves, and every route it names
//! is served.

use crate::support::*;
use meanwhile_client::core::http::SOCKET_FILE;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_served() {
    let d = daemon().await;
    let doc = d.client.openapi().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = meanwhile_server::route_infos();
    assert!(routes.len() >= 18, "{routes:?}");
    for r in &routes {
        let op = &doc["paths"][&r.path][r.method.to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is not in the document",
            r.method,
            r.path
        );
        assert!(op["summary"].is_string());
    }
    // Every documented operation is routed: an unrouted one would answer "no endpoint".
    let paths = doc["paths"].as_object().unwrap();
    let mut n = 0;
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            n += 1;
            if path == "/v1/events" {
                continue; // a stream: checked in the events tests
            }
            if path == "/v1/shutdown" {
                continue; // it stops the daemon: checked in the shutdown tests
            }
            let concrete = path
                .replace("{id}", "999")
                .replace("{name}", "q")
                .replace("{session}", "s");
            let m: meanwhile_client::Method = method.to_ascii_uppercase().parse().unwrap();
            let r = d.client.raw(m, &concrete, None).await.unwrap();
            let body = String::from_utf8_lossy(&r.body);
            assert!(!body.contains("no endpoint"), "{method} {path}: {body}");
            assert_ne!(r.status, 405, "{method} {path}: {body}");
        }
    }
    assert_eq!(n, routes.len());
    // The schemas of the request and answer types are in it, with their fields.
    let spec = &doc["components"]["schemas"]["TaskSpec"];
    assert!(spec["properties"]["command"].is_object(), "{spec}");
    assert_eq!(spec["additionalProperties"], false);
    // The refusals of a valid submit are declared, for schemathesis and for clients.
    let conflict = &doc["paths"]["/v1/tasks"]["post"]["responses"]["409"];
    let meaning = conflict["description"].as_str().unwrap_or_default();
    assert!(
        meaning.contains("idempotency_conflict") && meaning.contains("no_provider"),
        "{conflict}"
    );
    let codes = doc["components"]["schemas"]["ErrorCode"].to_string();
    assert!(
        codes.contains("idempotency_conflict") && codes.contains("no_provider"),
        "{codes}"
    );
    assert!(d.home.join(SOCKET_FILE).exists());
}
