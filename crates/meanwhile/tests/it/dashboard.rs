//! The dashboard: nothing is served without the token or a login, the login's
//! cookie and its Origin checks, and the page itself driven in a real Chromium.

use crate::support::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

/// An answer read off the wire.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to the listener on `port`, with `headers`, over a
/// connection of its own.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn token(home: &Home) -> String {
    std::fs::read_to_string(home.home.join("token"))
        .unwrap()
        .trim()
        .to_string()
}

/// `name=value` of the cookie an answer sets.
fn cookie_of(a: &Answer) -> String {
    let set = a.header("set-cookie").expect("a cookie is set");
    set.split(';').next().unwrap().to_string()
}

fn serve_on_tcp(home: &mut Home) -> u16 {
    let port = free_port();
    home.serve(&[("MEANWHILE_LISTEN", &format!("127.0.0.1:{port}"))]);
    port
}

#[test]
fn every_route_refuses_a_request_without_the_token() {
    let mut home = Home::new();
    let port = serve_on_tcp(&mut home);
    let bearer = format!("Bearer {}", token(&home));
    let doc: Value = serde_json::from_str(
        &http(
            port,
            "GET",
            "/v1/openapi.json",
            &[("Authorization", &bearer)],
            "",
        )
        .body,
    )
    .unwrap();
    let mut routes: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let path = path
            .replace("{id}", "1")
            .replace("{name}", "default")
            .replace("{queue}", "default")
            .replace("{schedule}", "nightly")
            .replace("{session}", "s1")
            .replace("{node}", "n1");
        for method in ops.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    assert!(routes.len() > 35, "{routes:?}");
    for extra in ["/mcp", "/logout", "/nowhere", "/v1/dashboard", "/v1/tokens"] {
        routes.push(("POST".into(), extra.into()));
    }
    let cookie = format!("meanwhile_{port}=guess");
    let refusals: [&[(&str, &str)]; 3] = [
        &[],
        &[("Cookie", &cookie)],
        &[("Authorization", "Bearer guess")],
    ];
    for (method, path) in &routes {
        for headers in refusals {
            let a = http(port, method, path, headers, "{}");
            assert_eq!(
                a.status, 401,
                "{method} {path} with {headers:?}: {}",
                a.body
            );
            assert!(
                a.body.contains("unauthorized"),
                "{method} {path}: {}",
                a.body
            );
        }
    }
    // The page and its files send a person to the login form, and show nothing.
    for path in [
        "/",
        "/ui",
        "/ui/",
        "/ui/static/app.js",
        "/ui/static/style.css",
        "/ui/tasks/1",
        "/ui/queues",
    ] {
        for headers in &refusals[..2] {
            let a = http(port, "GET", path, headers, "");
            assert_eq!(a.status, 303, "GET {path}: {}", a.body);
            assert!(
                a.header("location").unwrap().starts_with("/login"),
                "{path}"
            );
            assert!(!a.body.contains("import"), "{path}: {}", a.body);
        }
    }
    // The login form is the one thing open, and it holds nothing of the daemon's.
    let form = http(port, "GET", "/login", &[], "");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"token\""));
    assert!(!form.body.contains(&token(&home)));
    // Socket-only endpoints are not on TCP, even with the token.
    for path in ["/v1/dashboard", "/v1/tokens"] {
        let a = http(port, "POST", path, &[("Authorization", &bearer)], "{}");
        assert_eq!(a.status, 404, "{path}: {}", a.body);
    }
}

#[test]
fn a_login_link_or_the_form_gives_a_strict_cookie_and_changes_need_this_origin() {
    let mut home = Home::new();
    // No TCP listener: `dashboard` opens a loopback port for the link.
    home.serve(&[]);
    let link: Value =
        serde_json::from_str(&home.ok(&["dashboard", "--no-open", "--json"])).unwrap();
    let login_url = link["login_url"].as_str().unwrap();
    let rest = login_url.strip_prefix("http://127.0.0.1:").unwrap();
    let (port, path) = rest.split_once('/').unwrap();
    let port: u16 = port.parse().unwrap();
    let path = format!("/{path}");
    assert_eq!(link["url"], format!("http://127.0.0.1:{port}/ui/"));
    // Asked again, the daemon gives a new link on the same port, not another port.
    let second: Value =
        serde_json::from_str(&home.ok(&["dashboard", "--no-open", "--json"])).unwrap();
    assert_eq!(second["url"], link["url"]);
    assert_ne!(second["login_url"], link["login_url"]);

    let first = http(port, "GET", &path, &[], "");
    assert_eq!(first.status, 200, "{}", first.body);
    let set = first.header("set-cookie").unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(first.body.contains("url=/ui/"), "{}", first.body);
    let cookie = cookie_of(&first);
    // The link works once.
    let again = http(port, "GET", &path, &[], "");
    assert_eq!(again.status, 401);
    assert!(again.header("set-cookie").is_none());

    let with = |extra: &[(&'static str, &str)]| {
        let mut h: Vec<(&str, String)> = vec![("Cookie", cookie.clone())];
        h.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        h
    };
    let call = |method: &str, path: &str, extra: &[(&'static str, &str)], body: &str| {
        let h = with(extra);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http(port, method, path, &h, body)
    };
    assert_eq!(call("GET", "/v1/tasks", &[], "").status, 200);
    let page = call("GET", "/ui/", &[], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/ui/static/app.js"));
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(call("GET", "/ui/static/app.js", &[], "").status, 200);

    let origin = format!("http://127.0.0.1:{port}");
    let json = ("Content-Type", "application/json");
    let spec = r#"{"command": "true", "name": "from the browser"}"#;
    let no_origin = call("POST", "/v1/tasks", &[json], spec);
    assert_eq!(no_origin.status, 403, "{}", no_origin.body);
    assert!(no_origin.body.contains("Origin"));
    let foreign = call(
        "POST",
        "/v1/tasks",
        &[json, ("Origin", "http://evil.example.com")],
        spec,
    );
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let ok = call("POST", "/v1/tasks", &[json, ("Origin", &origin)], spec);
    assert_eq!(ok.status, 201, "{}", ok.body);
    let id = serde_json::from_str::<Value>(&ok.body).unwrap()["id"].to_string();
    let found = home.json(&["ls", "--text", "FROM THE", "--json"]);
    assert_eq!(found["tasks"].as_array().unwrap().len(), 1, "{found}");
    // The audit trail names the person who asked for the link.
    let audit = home.json(&["audit", "--task", &id, "--json"]);
    let who = audit[0]["who"].as_str().unwrap().to_string();
    assert!(
        who.starts_with("uid ") && who.ends_with("(meanwhile)"),
        "{who}"
    );

    // The form: a browser's POST with its Origin, and a token.
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let body = format!("token={}&next=%2Fui%2Fqueues", token(&home));
    let o = origin.as_str();
    assert_eq!(http(port, "POST", "/login", &[form], &body).status, 403);
    assert_eq!(
        http(
            port,
            "POST",
            "/login",
            &[form, ("Origin", o)],
            "token=guess"
        )
        .status,
        401
    );
    let by_form = http(port, "POST", "/login", &[form, ("Origin", o)], &body);
    assert_eq!(by_form.status, 200, "{}", by_form.body);
    assert!(by_form.body.contains("url=/ui/queues"));
    assert!(
        by_form
            .header("set-cookie")
            .unwrap()
            .contains("SameSite=Strict")
    );

    // A session of a named token ends when the token is removed.
    let named = home.ok(&["token", "add", "web"]).trim().to_string();
    let as_web = http(
        port,
        "POST",
        "/login",
        &[form, ("Origin", o)],
        &format!("token={named}"),
    );
    let web = cookie_of(&as_web);
    assert_eq!(
        http(port, "GET", "/v1/queues", &[("Cookie", &web)], "").status,
        200
    );
    home.ok(&["token", "rm", "web"]);
    assert_eq!(
        http(port, "GET", "/v1/queues", &[("Cookie", &web)], "").status,
        401
    );
    // A token added again under the name is another token: the session stays ended.
    home.ok(&["token", "add", "web"]);
    assert_eq!(
        http(port, "GET", "/v1/queues", &[("Cookie", &web)], "").status,
        401
    );

    // Logging out ends the session.
    let out = call("POST", "/logout", &[("Origin", &origin)], "");
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(call("GET", "/v1/tasks", &[], "").status, 401);
}

/// Runs the browser script's `scene` against the daemon on `port`; its stdout.
fn browser(home: &Home, port: u16, scene: &str) -> String {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs");
    let o = Command::new("node")
        .arg(script)
        .env("MW_BASE", format!("http://127.0.0.1:{port}"))
        .env("MW_TOKEN", token(home))
        .env("MW_SHOTS", &shots)
        .env("MW_SCENE", scene)
        .env("MW_PLAYWRIGHT", playwright())
        .env("MW_CHROMIUM", chromium())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success() && out.trim_end().ends_with("ok"),
        "the browser scene {scene} failed:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[test]
fn the_dashboard_in_eight_tabs_and_on_a_phone() {
    let mut home = Home::new();
    let port = serve_on_tcp(&mut home);
    browser(&home, port, "tabs");
}

#[test]
fn the_dashboard_in_a_real_browser() {
    let mut home = Home::new();
    let port = serve_on_tcp(&mut home);
    browser(&home, port, "walk");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard");
    for shot in ["tasks.png", "task.png", "charts.png"] {
        assert!(shots.join(shot).exists(), "{shot} was saved");
    }
}

#[test]
fn a_store_of_100000_tasks_loads_its_first_page_with_one_call() {
    let mut home = Home::new();
    let port = serve_on_tcp(&mut home);
    home.ok(&["queue", "pause", "default"]);
    let bearer = format!("Bearer {}", token(&home));
    let spec = r#"{"command": "true", "name": "stored"}"#;
    let batch = format!("{{\"tasks\": [{}]}}", vec![spec; 10_000].join(","));
    for _ in 0..10 {
        let a = http(
            port,
            "POST",
            "/v1/tasks/batch",
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            &batch,
        );
        assert_eq!(a.status, 200, "{}", &a.body[..a.body.len().min(300)]);
    }
    let status = home.json(&["status", "--json"]);
    assert_eq!(status["counts"]["pending"], 100_000);
    let out = browser(&home, port, "big");
    // The figure, for the record: the page's first rows against the API's answer.
    println!("{out}");
}
