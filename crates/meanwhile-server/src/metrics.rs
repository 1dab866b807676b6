//! `GET /metrics` in the Prometheus text format, from the store's counters (never a
//! scan of the tasks) and the runtime's.

use crate::error::Answer;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use std::fmt::Write;

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Answer<impl IntoResponse> {
    let store = state.rt.store();
    let counts = store
        .counts()
        .await
        .map_err(meanwhile_runtime::Error::from)?;
    let queues = state.rt.queues().await?;
    let mut out = String::new();
    let loops = state.rt.loop_health();
    header(
        &mut out,
        "meanwhile_loop_errors_total",
        "counter",
        "Failed rounds of each long-running loop (each logged), since the daemon started.",
    );
    for l in &loops {
        let _ = writeln!(
            out,
            "meanwhile_loop_errors_total{{loop=\"{}\"}} {}",
            label(&l.name),
            l.errors
        );
    }
    header(
        &mut out,
        "meanwhile_loop_restarts_total",
        "counter",
        "Times each long-running loop panicked and was started again.",
    );
    for l in &loops {
        let _ = writeln!(
            out,
            "meanwhile_loop_restarts_total{{loop=\"{}\"}} {}",
            label(&l.name),
            l.restarts
        );
    }
    header(
        &mut out,
        "meanwhile_requests_waiting",
        "gauge",
        "Long requests (waits for tasks or output) being served.",
    );
    let _ = writeln!(
        out,
        "meanwhile_requests_waiting {}",
        state.waiting.load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Some(n) = meanwhile_runtime::store::statements_written() {
        header(
            &mut out,
            "meanwhile_store_statements_total",
            "counter",
            "Statements the SQLite store's writer ran (with MEANWHILE_COUNT_STATEMENTS set).",
        );
        let _ = writeln!(out, "meanwhile_store_statements_total {n}");
    }
    header(
        &mut out,
        "meanwhile_tasks",
        "gauge",
        "Tasks by queue and state.",
    );
    for (queue, s, n) in &counts {
        let _ = writeln!(
            out,
            "meanwhile_tasks{{queue=\"{}\",state=\"{}\"}} {n}",
            label(queue),
            s.as_str()
        );
    }
    header(
        &mut out,
        "meanwhile_queue_depth",
        "gauge",
        "Tasks waiting in each queue.",
    );
    for q in &queues {
        let _ = writeln!(
            out,
            "meanwhile_queue_depth{{queue=\"{}\"}} {}",
            label(&q.name),
            q.pending
        );
    }
    header(
        &mut out,
        "meanwhile_queue_running",
        "gauge",
        "Tasks running in each queue.",
    );
    for q in &queues {
        let _ = writeln!(
            out,
            "meanwhile_queue_running{{queue=\"{}\"}} {}",
            label(&q.name),
            q.running
        );
    }
    header(
        &mut out,
        "meanwhile_queue_max_parallel",
        "gauge",
        "Each queue's parallelism limit.",
    );
    for q in &queues {
        let _ = writeln!(
            out,
            "meanwhile_queue_max_parallel{{queue=\"{}\"}} {}",
            label(&q.name),
            q.max_parallel
        );
    }
    header(
        &mut out,
        "meanwhile_queue_paused",
        "gauge",
        "1 when the queue is paused.",
    );
    for q in &queues {
        let _ = writeln!(
            out,
            "meanwhile_queue_paused{{queue=\"{}\"}} {}",
            label(&q.name),
            u8::from(q.paused)
        );
    }
    connections(&state, &mut out);
    crate::metrics_runtime::write(&state, &mut out).await;
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// Each listener's open connections, its cap, its refusals and its failed accepts.
fn connections(state: &AppState, out: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    let listeners = state.connections.all();
    let mut family =
        |name: &str,
         kind: &str,
         help: &str,
         value: &dyn Fn(&crate::conn::ListenerStats) -> Option<u64>| {
            header(out, name, kind, help);
            for l in &listeners {
                if let Some(v) = value(l) {
                    let _ = writeln!(out, "{name}{{listener=\"{}\"}} {v}", label(&l.name));
                }
            }
        };
    family(
        "meanwhile_connections_open",
        "gauge",
        "Connections open on each listener (the Unix socket, each TCP address).",
        &|l| Some(l.open.load(Relaxed) as u64),
    );
    family(
        "meanwhile_connections_max",
        "gauge",
        "The cap on a TCP listener's open connections (max_connections).",
        &|l| l.max.map(|m| m as u64),
    );
    family(
        "meanwhile_connections_refused_total",
        "counter",
        "Connections answered 503 and closed because their listener was at its cap.",
        &|l| l.max.map(|_| l.refused.load(Relaxed)),
    );
    family(
        "meanwhile_accept_errors_total",
        "counter",
        "Accepts that failed (out of file descriptors, most likely); each was logged and retried with backoff.",
        &|l| Some(l.accept_errors.load(Relaxed)),
    );
}
