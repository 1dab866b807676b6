//! What a task was asked to do is what it keeps: every spec field, through JSON,
//! the daemon's API, the store and back.

use crate::support::*;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{RetryPolicy, TaskSpec, Timestamp};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

fn millis() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (1u64..1000).prop_map(Duration::from_millis),
        (1u64..100_000_000).prop_map(Duration::from_millis),
        (1u64..10_000_000_000_000).prop_map(Duration::from_millis),
    ]
}

fn spec() -> impl Strategy<Value = TaskSpec> {
    let work = prop_oneof![
        "[ -~]{1,40}".prop_map(|c| (Some(c), None)),
        proptest::collection::vec("\\PC{0,10}", 1..4).prop_map(|mut a| {
            a[0] = format!("prog{}", a[0].len());
            (None, Some(a))
        }),
    ];
    let ident = "[a-z][a-z0-9_.-]{0,15}";
    (
        work,
        proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,8}", "\\PC{0,12}", 0..4),
        proptest::option::of("[a-zA-Z0-9 ]{1,30}"),
        proptest::collection::vec(ident, 0..3),
        any::<i32>(),
        proptest::option::of(millis()),
        proptest::option::of(millis()),
        (1u32..20, millis(), 0.0f64..=1.0),
        proptest::option::of("[a-zA-Z0-9:_-]{1,40}"),
        proptest::option::of(prop_oneof![
            (1_000_000_000_000i64..4_000_000_000_000).prop_map(|t| (Some(Timestamp(t)), None)),
            millis().prop_map(|d| (None, Some(d))),
        ]),
        (
            proptest::option::of(ident),
            proptest::option::of("[A-Za-z0-9_.:/@-]{1,200}"),
        ),
    )
        .prop_map(
            |(
                work,
                env,
                name,
                labels,
                priority,
                timeout,
                grace,
                retry,
                key,
                start,
                (session, concurrency_key),
            )| {
                let (backoff_max, backoff) = (retry.1 * 2, retry.1);
                let (run_after, delay) = start.unwrap_or((None, None));
                TaskSpec {
                    command: work.0,
                    argv: work.1,
                    env: env.into_iter().collect::<BTreeMap<_, _>>(),
                    name,
                    labels,
                    queue: Some("held".into()),
                    priority,
                    timeout,
                    grace,
                    retry: RetryPolicy {
                        max_attempts: retry.0,
                        backoff,
                        backoff_max,
                        jitter: retry.2,
                    },
                    idempotency_key: key,
                    run_after,
                    delay,
                    session,
                    concurrency_key,
                    ..TaskSpec::default()
                }
            },
        )
}

#[test]
fn every_spec_field_round_trips_through_the_api_and_the_store() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let d = rt.block_on(daemon());
    // A paused queue: the tasks are stored and served, never run.
    rt.block_on(d.client.set_queue(
        "held",
        QueueUpdate {
            paused: Some(true),
            ..QueueUpdate::default()
        },
    ))
    .unwrap();
    let cwd = d.home.clone();
    let case = std::sync::atomic::AtomicU64::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(96));
    runner
        .run(&spec(), |mut spec| {
            spec.cwd = Some(cwd.clone());
            // A key names one task: each case gets keys of its own.
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(k) = &mut spec.idempotency_key {
                k.push_str(&format!("-{n}"));
            }
            prop_assume!(spec.clone().validate().is_ok());
            let detail = rt.block_on(async {
                let id = d.client.submit(&spec).await.unwrap();
                d.client.task(id).await.unwrap()
            });
            let mut kept = detail.task.spec.clone();
            if spec.idempotency_key.is_none() {
                // The client gives every submit a key of its own.
                prop_assert!(kept.idempotency_key.take().is_some());
            }
            prop_assert_eq!(kept, spec);
            Ok(())
        })
        .unwrap();
}
