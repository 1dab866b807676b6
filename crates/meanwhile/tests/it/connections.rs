//! Bounded connections: idle TCP clients beyond the open-files limit do not take the
//! Unix socket down, a TCP listener answers 503 beyond its cap, slow headers and
//! idle connections are closed, and a response in flight (an event stream) is not.

use crate::support::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::Duration;

fn config(home: &Home, text: &str) {
    std::fs::create_dir_all(&home.home).unwrap();
    std::fs::write(home.home.join("config.toml"), text).unwrap();
}

fn socket(home: &Home) -> UnixStream {
    let s = UnixStream::connect(home.home.join("meanwhile.sock")).unwrap();
    // A bound on failure, not a measure: a test that would hang fails instead.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

/// One answer with a Content-Length body: its status and body.
fn answer(r: &mut impl BufRead) -> (u16, String) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let mut length = 0;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// The daemon's metrics, read on its socket.
fn metrics(home: &Home) -> String {
    let mut s = socket(home);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, body) = answer(&mut BufReader::new(s));
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of `name{listener="LISTENER"}` in `metrics`.
fn metric(metrics: &str, name: &str, listener: &str) -> u64 {
    let prefix = format!("{name}{{listener=\"{listener}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
        .parse()
        .unwrap()
}

/// Whether the server closed `s`: its reads end (or it was reset).
fn closed_by_server(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// Regression (issue 23): under a 1,024 open-files limit, 1,100 idle TCP connections
/// made the daemon stop answering, on its Unix socket too.
#[test]
fn idle_tcp_connections_past_the_open_files_limit_leave_the_socket_answering() {
    // This test's own 1,100 connections need room.
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let own = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: own.maximum,
            maximum: own.maximum,
        },
    );
    let mut home = Home::new();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    home.serve_with(&[("MEANWHILE_LISTEN", &listen)], |c| {
        // SAFETY: the closure runs between fork and exec, and calls setrlimit only,
        // which is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                let l = Rlimit {
                    current: Some(1024),
                    maximum: Some(1024),
                };
                setrlimit(Resource::Nofile, l).map_err(std::io::Error::from)
            });
        }
    });
    let held: Vec<TcpStream> = (0..1100)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let o = home.run(&["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The cap is a quarter of the limit, and the listener keeps to it.
    let m = metrics(&home);
    assert_eq!(metric(&m, "meanwhile_connections_max", &listen), 256);
    until("connections refused at the cap", || {
        let m = metrics(&home);
        assert!(metric(&m, "meanwhile_connections_open", &listen) <= 256);
        metric(&m, "meanwhile_connections_refused_total", &listen) > 0
    });
    assert!(home.run(&["status"]).status.success());
    drop(held);
}

#[test]
fn a_connection_beyond_the_cap_is_answered_503() {
    let mut home = Home::new();
    // Long enough that the two held connections stay open for the whole test.
    config(&home, "max_connections = 2\nheader_timeout = \"10m\"\n");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    home.serve(&[("MEANWHILE_LISTEN", &listen)]);
    let _held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        third,
        "GET /v1/status HTTP/1.1\r\nHost: {listen}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (status, body) = answer(&mut BufReader::new(&third));
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "unavailable", "{body}");
    assert!(closed_by_server(&mut third));
    let m = metrics(&home);
    assert_eq!(
        metric(&m, "meanwhile_connections_refused_total", &listen),
        1
    );
    assert_eq!(metric(&m, "meanwhile_connections_open", &listen), 2);
    assert_eq!(metric(&m, "meanwhile_connections_max", &listen), 2);
}

#[test]
fn slow_headers_and_idle_connections_are_closed_but_an_event_stream_is_not() {
    let mut home = Home::new();
    config(
        &home,
        "header_timeout = \"200ms\"\nidle_timeout = \"300ms\"\n",
    );
    home.serve(&[]);

    // Half a request's headers, never finished.
    let mut half = socket(&home);
    half.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(closed_by_server(&mut half));

    // An event stream, its answer begun...
    let events = socket(&home);
    (&events)
        .write_all(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut events = BufReader::new(events);
    let mut line = String::new();
    events.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");

    // ...then a connection that asked once and stays idle: closed after the idle
    // timeout, so both timeouts have passed for the stream too.
    let mut idle = socket(&home);
    idle.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, _) = answer(&mut BufReader::new(&idle));
    assert_eq!(status, 200);
    assert!(closed_by_server(&mut idle));

    // The stream is still open and delivers the next event.
    let id = home.ok(&["run", "--", "true"]).trim().to_string();
    loop {
        line.clear();
        assert!(events.read_line(&mut line).unwrap() > 0, "the stream ended");
        if line.trim_end() == "event: submitted" {
            break;
        }
    }
    line.clear();
    events.read_line(&mut line).unwrap();
    assert!(line.contains(&format!("\"task_id\":{id}")), "{line}");
}
