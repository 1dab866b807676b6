//! `GET /v1/events`: every event as server-sent events, resumable with
//! `Last-Event-ID` from the durable event log, then live, without gaps or repeats.

use crate::error::{Answer, Fail};
use crate::extract::Params;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use meanwhile_core::http::EventParams;
use meanwhile_core::{ApiError, Event};
use meanwhile_runtime::Runtime;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{broadcast, mpsc};

/// The stream handed to axum: what the producer task sends.
pub(crate) struct EventStream(mpsc::Receiver<SseEvent>);

impl Stream for EventStream {
    type Item = Result<SseEvent, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

fn to_sse(e: &Event) -> SseEvent {
    SseEvent::default()
        .id(e.seq.to_string())
        .event(e.kind.as_str())
        .data(serde_json::to_string(e).unwrap_or_default())
}

pub(crate) async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(p): Params<EventParams>,
) -> Answer<impl axum::response::IntoResponse> {
    let start = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    Fail(ApiError::invalid(
                        "Last-Event-ID",
                        "must be the id of an earlier event (an integer)",
                    ))
                })?,
        ),
        None => p.after,
    };
    // Subscribe before reading the log, so that an event committed in between is
    // in the live stream; the sequence numbers weed out what both carry.
    let live = state.rt.subscribe();
    let (tx, rx) = mpsc::channel(64);
    let rt = state.rt.clone();
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = pump(&rt, live, start, &tx) => {}
            _ = shutdown.wait_for(|down| *down) => {}
            _ = tx.closed() => {}
        }
    });
    Ok(Sse::new(EventStream(rx)).keep_alive(KeepAlive::default()))
}

/// Sends the durable log after `last`, then live events; returns when the client
/// has gone or the log cannot be read.
async fn pump(
    rt: &Runtime,
    mut live: broadcast::Receiver<Event>,
    mut last: Option<i64>,
    tx: &mpsc::Sender<SseEvent>,
) {
    if let Some(from) = last {
        match backlog(rt, from, tx).await {
            Some(l) => last = Some(l),
            None => return,
        }
    }
    loop {
        match live.recv().await {
            Ok(e) => {
                if last.is_some_and(|l| e.seq <= l) {
                    continue;
                }
                last = Some(e.seq);
                if tx.send(to_sse(&e)).await.is_err() {
                    return;
                }
            }
            // Too slow a reader lost live events: fill the gap from the log.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                if let Some(from) = last {
                    match backlog(rt, from, tx).await {
                        Some(l) => last = Some(l),
                        None => return,
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends every logged event after `from`; the last sequence number sent.
async fn backlog(rt: &Runtime, mut from: i64, tx: &mpsc::Sender<SseEvent>) -> Option<i64> {
    loop {
        let page = match rt.events_after(from, 500).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("reading the event log: {e}");
                return None;
            }
        };
        if page.is_empty() {
            return Some(from);
        }
        for e in page {
            from = e.seq;
            if tx.send(to_sse(&e)).await.is_err() {
                return None;
            }
        }
    }
}
