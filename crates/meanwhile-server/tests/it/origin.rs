//! DNS rebinding: the TCP listener serves only requests whose Host is this listener
//! and whose Origin, if any, is too; the Unix socket is not concerned.

use crate::support::*;
use std::net::TcpStream;

fn request(path: &str, host: Option<&str>, origin: Option<&str>, token: Option<&str>) -> String {
    let mut r = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if let Some(h) = host {
        r.push_str(&format!("Host: {h}\r\n"));
    }
    if let Some(o) = origin {
        r.push_str(&format!("Origin: {o}\r\n"));
    }
    if let Some(t) = token {
        r.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    r.push_str("\r\n");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_or_origin_is_refused_on_tcp() {
    let port = free_port();
    let d = daemon_with(|s| s.listen = Some(([127, 0, 0, 1], port).into())).await;
    let token = std::fs::read_to_string(meanwhile_server::token_path(&d.home)).unwrap();
    let token = token.trim().to_string();
    let local = format!("127.0.0.1:{port}");
    let localhost = format!("localhost:{port}");
    let v6 = format!("[::1]:{port}");
    let other_port = format!("localhost:{}", port.wrapping_add(1));
    let page = format!("http://localhost:{port}");
    // (path, Host, Origin, token, status, field of the error)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        bool,
        u16,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        ("/v1/status", Some(&local), None, true, 200, None),
        ("/v1/status", Some(&localhost), None, true, 200, None),
        ("/v1/status", Some(&v6), None, true, 200, None),
        ("/v1/status", Some(&local), Some(&page), true, 200, None),
        (
            "/v1/status",
            Some("evil.example.com"),
            None,
            true,
            403,
            Some("Host"),
        ),
        (
            "/v1/status",
            Some("evil.example.com"),
            None,
            false,
            403,
            Some("Host"),
        ),
        (
            "/v1/status",
            Some(&other_port),
            None,
            true,
            403,
            Some("Host"),
        ),
        (
            "/v1/status",
            Some("localhost"),
            None,
            true,
            403,
            Some("Host"),
        ),
        ("/v1/status", None, None, true, 403, Some("Host")),
        (
            "/v1/status",
            Some(&local),
            Some("http://evil.example.com"),
            true,
            403,
            Some("Origin"),
        ),
        (
            "/v1/status",
            Some(&local),
            Some("null"),
            true,
            403,
            Some("Origin"),
        ),
        (
            "/mcp",
            Some("evil.example.com"),
            None,
            true,
            403,
            Some("Host"),
        ),
        (
            "/mcp",
            Some(&local),
            Some("http://evil.example.com"),
            true,
            403,
            Some("Origin"),
        ),
        // Host and Origin pass; the token is still needed.
        ("/v1/status", Some(&local), None, false, 401, None),
    ];
    for (path, host, origin, with_token, status, field) in cases {
        let req = request(path, host, origin, with_token.then_some(token.as_str()));
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (got, body) = tokio::task::spawn_blocking(move || http1(stream, &req))
            .await
            .unwrap();
        assert_eq!(
            got, status,
            "{path} Host {host:?} Origin {origin:?}: {body}"
        );
        if status == 403 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["code"], "forbidden", "{body}");
            assert_eq!(v["error"]["field"].as_str(), field, "{body}");
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("127.0.0.1"),
                "{body}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unix_socket_ignores_host_and_origin() {
    let d = daemon().await;
    let sock = meanwhile_server::socket_path(&d.home);
    for (host, origin) in [
        (Some("evil.example.com"), Some("http://evil.example.com")),
        (None, None),
    ] {
        let req = request("/v1/status", host, origin, None);
        let stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let (status, body) = tokio::task::spawn_blocking(move || http1(stream, &req))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
}
