//! The event stream: live, and resumed from the durable log without gaps or repeats.

use crate::support::*;
use meanwhile_core::EventKind;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_from_last_event_id_without_gaps_or_repeats() {
    let d = daemon().await;
    let c = &d.client;
    let mut live = c.events(None).await.unwrap();
    let first = c.submit(&sh("echo one")).await.unwrap();
    finished(c, first).await;
    // Read until the first task's end, then drop the stream mid-way.
    let mut seen = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(60), live.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(e.seq);
        if e.kind == EventKind::Finished && e.task_id == Some(first) {
            break;
        }
    }
    let resume_at = live.last_id();
    drop(live);
    // Events happen while nobody listens.
    let second = c.submit(&sh("echo two")).await.unwrap();
    finished(c, second).await;
    let mut resumed = c.events(resume_at).await.unwrap();
    let third = c.submit(&sh("echo three")).await.unwrap();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(60), resumed.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(e.seq);
        if e.kind == EventKind::Finished && e.task_id == Some(third) {
            break;
        }
    }
    // Exactly the durable log, in order: nothing missed, nothing twice.
    let mut log = Vec::new();
    let mut from = 0;
    let mut s = c.events(Some(0)).await.unwrap();
    while log.len() < seen.len() {
        let e = tokio::time::timeout(Duration::from_secs(60), s.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        from = e.seq;
        log.push(e.seq);
    }
    assert!(from > 0);
    assert_eq!(seen, log);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "in order, no repeats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_header_is_honoured_and_checked() {
    let d = daemon().await;
    let c = &d.client;
    let id = c.submit(&sh("true")).await.unwrap();
    finished(c, id).await;
    let r = c
        .raw(meanwhile_client::Method::GET, "/v1/events?after=x", None)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    let mut s = c.events(Some(1)).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(60), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.seq, 2);
}
