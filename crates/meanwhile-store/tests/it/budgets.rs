//! Budgets in the store: usage charged to a task and its queue's budget, an alert
//! per alarm once per window, the queue paused when the budget is spent and resumed
//! by a new window (explicit clock readings, no waiting) or a raised or removed
//! budget, and every change in the audit trail.

use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{
    Alert, AlertKind, AlertState, AuditFilter, BudgetSpec, BudgetState, BudgetWindow, EventKind,
    PauseReason, QueueInfo, TaskId, TaskSpec, Timestamp,
};
use meanwhile_store::{NewTask, Store, StoreError};

const HOUR: i64 = 3_600_000;
/// 2100-11-27T00:00:00Z: after the clock of the machine running the tests, which
/// the store reads where no time is passed (resuming a queue rolls a window that
/// ended by the database's clock).
const DAY0: i64 = 4_130_956_800_000;

fn at(hours: i64) -> Timestamp {
    Timestamp(DAY0 + hours * HOUR)
}

async fn submit(store: &dyn Store, queue: &str) -> TaskId {
    let mut spec = TaskSpec::shell("true");
    spec.queue = Some(queue.into());
    store
        .submit(vec![NewTask::new(spec.validate().unwrap(), at(0))])
        .await
        .unwrap()
        .remove(0)
        .unwrap()
        .id()
}

fn tokens(n: u64) -> BudgetSpec {
    BudgetSpec {
        tokens: Some(n),
        ..BudgetSpec::default()
    }
}

async fn queue(store: &dyn Store, name: &str) -> QueueInfo {
    store
        .queues()
        .await
        .unwrap()
        .into_iter()
        .find(|q| q.name == name)
        .unwrap()
}

async fn budget_alerts(store: &dyn Store) -> Vec<Alert> {
    let mut a: Vec<Alert> = store
        .alerts(true, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.kind == AlertKind::Budget)
        .collect();
    a.reverse();
    a
}

fn firing(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing)
        .map(|a| {
            a.message
                .split(" of its budget")
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

both! {
    async fn each_alarm_fires_once_and_a_spent_budget_pauses_its_queue(f: Fixture) {
        let s = &*f.store;
        let task = submit(s, "llm").await;
        let b = s.set_budget("llm", tokens(1000), at(10)).await.unwrap();
        assert_eq!(b.window_start, at(0));
        assert_eq!(b.window_end, Some(at(24)));
        assert_eq!(b.state, BudgetState::Ok);

        // Six calls of 200 tokens: 20 %, 40 %, 60 % (50 fires), 80 % (80 fires), 100 %
        // (100 fires, the queue pauses), 120 % (nothing fires again).
        let mut seen = Vec::new();
        for call in 1..=6 {
            let c = s.charge_usage(task, 200, 0.01, 1, at(10)).await.unwrap();
            assert_eq!(c.queue, "llm");
            let b = c.budget.unwrap();
            seen.push((b.used_tokens, b.state, b.alarms_fired.clone()));
            assert_eq!(b.model_calls, call);
        }
        assert_eq!(
            seen,
            vec![
                (200, BudgetState::Ok, vec![]),
                (400, BudgetState::Ok, vec![]),
                (600, BudgetState::Alarm, vec![50]),
                (800, BudgetState::Alarm, vec![50, 80]),
                (1000, BudgetState::Exhausted, vec![50, 80, 100]),
                (1200, BudgetState::Exhausted, vec![50, 80, 100]),
            ]
        );
        let alerts = budget_alerts(s).await;
        assert_eq!(
            firing(&alerts),
            vec![
                "queue \"llm\" reached 50%",
                "queue \"llm\" reached 80%",
                "queue \"llm\" reached 100%"
            ],
            "{alerts:#?}"
        );
        assert_eq!(alerts.len(), 3, "each alarm fired once: {alerts:#?}");
        assert!(alerts.iter().all(|a| a.queue.as_deref() == Some("llm")));
        assert!(
            alerts[2].message.ends_with(
                "the queue is paused until 2100-11-28T00:00:00Z or until the budget is raised"
            ),
            "{}",
            alerts[2].message
        );

        let q = queue(s, "llm").await;
        assert!(q.paused);
        assert_eq!(q.pause_reason, Some(PauseReason::Budget));

        // The task carries what it used.
        let t = s.get(task).await.unwrap();
        assert_eq!((t.tokens, t.model_calls), (1200, 6));
        assert!((t.cost_usd - 0.06).abs() < 1e-9, "{}", t.cost_usd);

        // The gate holds model calls back until the window ends.
        let held = s.budget_gate("llm", at(23)).await.unwrap().unwrap();
        assert_eq!(
            held.over_budget_reason(),
            "queue \"llm\" is over its budget: 1200 of 1000 tokens used this day (from 2100-11-27T00:00:00Z); it resumes at 2100-11-28T00:00:00Z"
        );
        assert!(s.budget_gate("llm", at(24)).await.unwrap().is_none());
        assert!(s.budget_gate("other", at(23)).await.unwrap().is_none());
    }
}

both! {
    async fn a_new_window_counts_from_zero_resolves_and_resumes(f: Fixture) {
        let s = &*f.store;
        let task = submit(s, "llm").await;
        s.set_budget("llm", tokens(100), at(1)).await.unwrap();
        s.charge_usage(task, 100, 0.0, 1, at(2)).await.unwrap();
        assert_eq!(
            queue(s, "llm").await.pause_reason,
            Some(PauseReason::Budget)
        );

        // Not yet: the window goes on until midnight.
        assert!(s.roll_budget("llm", at(23)).await.unwrap().is_none());
        assert!(queue(s, "llm").await.paused);

        // A roll a day and a half later starts the window that holds its clock reading.
        let rolled = s.roll_budget("llm", at(37)).await.unwrap().unwrap();
        assert_eq!(rolled.window_start, at(24));
        assert_eq!(rolled.window_end, Some(at(48)));
        assert_eq!((rolled.used_tokens, rolled.model_calls), (0, 0));
        assert_eq!(rolled.state, BudgetState::Ok);
        assert!(rolled.alarms_fired.is_empty());
        let q = queue(s, "llm").await;
        assert_eq!((q.paused, q.pause_reason), (false, None));
        let alerts = budget_alerts(s).await;
        assert_eq!(alerts.len(), 3);
        for a in &alerts {
            assert_eq!(a.state, AlertState::Resolved, "{a:?}");
            assert_eq!(
                a.message,
                "a new budget window of queue \"llm\" started at 2100-11-28T00:00:00Z"
            );
        }
        // A second roll of the same window does nothing.
        assert!(s.roll_budget("llm", at(38)).await.unwrap().is_none());

        // In the new window each alarm fires once more.
        s.charge_usage(task, 60, 0.0, 1, at(40)).await.unwrap();
        let alerts = budget_alerts(s).await;
        assert_eq!(alerts.len(), 4);
        assert_eq!(firing(&alerts), vec!["queue \"llm\" reached 50%"]);

        // A charge after the window ended rolls it first: the usage is the new window's.
        let c = s.charge_usage(task, 10, 0.0, 1, at(49)).await.unwrap();
        let b = c.budget.unwrap();
        assert_eq!(
            (b.window_start, b.used_tokens, b.model_calls),
            (at(48), 10, 1)
        );
        assert!(firing(&budget_alerts(s).await).is_empty());
    }
}

both! {
    async fn a_new_window_leaves_a_queue_a_user_paused_alone(f: Fixture) {
        let s = &*f.store;
        let task = submit(s, "llm").await;
        s.set_queue(
            "llm",
            QueueUpdate {
                paused: Some(true),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
        s.set_budget("llm", tokens(10), at(1)).await.unwrap();
        s.charge_usage(task, 10, 0.0, 1, at(2)).await.unwrap();
        // Paused already, by a user: it stays the user's pause.
        assert_eq!(queue(s, "llm").await.pause_reason, Some(PauseReason::User));
        s.roll_budget("llm", at(25)).await.unwrap().unwrap();
        let q = queue(s, "llm").await;
        assert_eq!((q.paused, q.pause_reason), (true, Some(PauseReason::User)));

        // And a user who pauses a queue its budget paused holds it past the window.
        s.set_queue(
            "llm",
            QueueUpdate {
                paused: Some(false),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
        s.charge_usage(task, 10, 0.0, 1, at(26)).await.unwrap();
        assert_eq!(
            queue(s, "llm").await.pause_reason,
            Some(PauseReason::Budget)
        );
        s.set_queue(
            "llm",
            QueueUpdate {
                paused: Some(true),
                ..QueueUpdate::default()
            },
        )
        .await
        .unwrap();
        s.roll_budget("llm", at(49)).await.unwrap().unwrap();
        let q = queue(s, "llm").await;
        assert_eq!((q.paused, q.pause_reason), (true, Some(PauseReason::User)));
    }
}

both! {
    async fn a_spent_budget_refuses_a_resume_until_raised_or_removed(f: Fixture) {
        let s = &*f.store;
        let task = submit(s, "llm").await;
        s.set_budget(
            "llm",
            BudgetSpec {
                cost_usd: Some(1.0),
                window: BudgetWindow::Total,
                alarms: vec![100],
                ..BudgetSpec::default()
            },
            at(0),
        )
        .await
        .unwrap();
        s.charge_usage(task, 5, 0.6, 1, at(1)).await.unwrap();
        s.charge_usage(task, 5, 0.6, 1, at(2)).await.unwrap();
        assert_eq!(
            queue(s, "llm").await.pause_reason,
            Some(PauseReason::Budget)
        );
        let resume = QueueUpdate {
            paused: Some(false),
            ..QueueUpdate::default()
        };
        let e = s.set_queue("llm", resume).await.unwrap_err();
        let StoreError::Conflict { field, message } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*field, "paused");
        assert!(
            message.starts_with(
                "queue \"llm\" is over its budget ($1.20 of $1.00 used in total (since 2100-11-27T00:00:00Z)) and stays paused; to resume it now, raise it with 'meanwhile budget set llm --cost USD' or remove it with 'meanwhile budget rm llm'"
            ),
            "{message}"
        );
        // A total window never rolls.
        assert!(
            s.roll_budget("llm", Timestamp(i64::MAX))
                .await
                .unwrap()
                .is_none()
        );

        // Raised above what was used: the queue resumes at once and the alert resolves.
        let b = s
            .set_budget(
                "llm",
                BudgetSpec {
                    cost_usd: Some(2.0),
                    window: BudgetWindow::Total,
                    alarms: vec![100],
                    ..BudgetSpec::default()
                },
                at(3),
            )
            .await
            .unwrap();
        assert_eq!((b.state, b.used_tokens), (BudgetState::Ok, 10));
        assert_eq!(b.window_start, at(0), "the usage so far still counts");
        let q = queue(s, "llm").await;
        assert_eq!((q.paused, q.pause_reason), (false, None));
        let alerts = budget_alerts(s).await;
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].state, AlertState::Resolved);
        assert!(
            alerts[0]
                .message
                .starts_with("the budget of queue \"llm\" was changed: $1.20 of $2.00 used")
        );

        // Lowered below it again: paused again. Removed: resumed, resolved.
        s.set_budget(
            "llm",
            BudgetSpec {
                tokens: Some(10),
                window: BudgetWindow::Total,
                ..BudgetSpec::default()
            },
            at(4),
        )
        .await
        .unwrap();
        assert_eq!(
            queue(s, "llm").await.pause_reason,
            Some(PauseReason::Budget)
        );
        assert_eq!(firing(&budget_alerts(s).await).len(), 3);
        s.remove_budget("llm", at(5)).await.unwrap();
        let q = queue(s, "llm").await;
        assert_eq!((q.paused, q.pause_reason), (false, None));
        assert!(firing(&budget_alerts(s).await).is_empty());
        assert!(matches!(
            s.budget("llm").await.unwrap_err(),
            StoreError::UnknownBudget(q) if q == "llm"
        ));
        assert!(matches!(
            s.remove_budget("llm", at(6)).await.unwrap_err(),
            StoreError::UnknownBudget(_)
        ));
        // With no budget, usage is still the task's.
        let c = s.charge_usage(task, 1, 0.0, 1, at(7)).await.unwrap();
        assert!(c.budget.is_none());
        assert_eq!(s.get(task).await.unwrap().model_calls, 3);
    }
}

both! {
    async fn another_kind_of_window_counts_from_now(f: Fixture) {
        let s = &*f.store;
        let task = submit(s, "llm").await;
        s.set_budget("llm", tokens(100), at(1)).await.unwrap();
        s.charge_usage(task, 70, 0.0, 1, at(2)).await.unwrap();
        let b = s
            .set_budget(
                "llm",
                BudgetSpec {
                    tokens: Some(100),
                    window: BudgetWindow::Month,
                    ..BudgetSpec::default()
                },
                at(3),
            )
            .await
            .unwrap();
        assert_eq!(b.used_tokens, 0);
        assert_eq!(b.window_start, Timestamp(4_128_710_400_000), "2100-11-01");
        assert_eq!(
            b.window_end,
            Some(Timestamp(4_131_302_400_000)),
            "2100-12-01"
        );
        assert!(firing(&budget_alerts(s).await).is_empty());
        assert_eq!(s.budgets().await.unwrap(), vec![b]);
    }
}

both! {
    async fn bad_budgets_and_charges_are_refused_naming_the_field(f: Fixture) {
        let s = &*f.store;
        let bad = |spec: BudgetSpec| async move {
            match s.set_budget("q", spec, at(0)).await.unwrap_err() {
                StoreError::Invalid { field, .. } => field,
                e => panic!("{e:?}"),
            }
        };
        assert_eq!(bad(BudgetSpec::default()).await, "tokens");
        assert_eq!(bad(tokens(0)).await, "tokens");
        assert_eq!(
            bad(BudgetSpec {
                cost_usd: Some(f64::NAN),
                ..BudgetSpec::default()
            })
            .await,
            "cost_usd"
        );
        assert_eq!(
            bad(BudgetSpec {
                alarms: vec![50, 50],
                ..tokens(1)
            })
            .await,
            "alarms"
        );
        let e = s.set_budget("a b", tokens(1), at(0)).await.unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid { field: "queue", .. }),
            "{e:?}"
        );
        let e = s
            .charge_usage(TaskId(99), 1, 0.0, 1, at(0))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::UnknownTask(TaskId(99))), "{e:?}");
        let task = submit(s, "q").await;
        let e = s.charge_usage(task, 1, -1.0, 1, at(0)).await.unwrap_err();
        assert!(
            matches!(
                e,
                StoreError::Invalid {
                    field: "cost_usd",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(s.budgets().await.unwrap().is_empty());
    }
}

both! {
    async fn every_budget_change_is_in_the_audit_trail(f: Fixture) {
        let s = &*f.store;
        let task = submit(s, "llm").await;
        s.set_budget("llm", tokens(10), at(1)).await.unwrap();
        s.charge_usage(task, 10, 0.0, 1, at(2)).await.unwrap();
        s.roll_budget("llm", at(24)).await.unwrap().unwrap();
        s.remove_budget("llm", at(25)).await.unwrap();
        let page = s
            .audit(AuditFilter {
                limit: Some(1000),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let trail: Vec<(String, String)> = page
            .records
            .iter()
            .filter(|r| r.action != "submitted")
            .map(|r| (r.action.clone(), r.summary.clone()))
            .collect();
        let actions: Vec<&str> = trail.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            actions,
            vec![
                "budget_set",
                // The charge that spent it: the queue paused, then the three alarms.
                "queue_set",
                "alert_firing",
                "alert_firing",
                "alert_firing",
                // The new window: its alerts resolved, the queue resumed.
                "budget_rolled",
                "alert_resolved",
                "alert_resolved",
                "alert_resolved",
                "queue_set",
                "budget_removed",
            ],
            "{trail:#?}"
        );
        assert_eq!(
            trail[0].1,
            "limit 10 tokens per day, alarms 50%,80%,100%; 0 of 10 tokens used this day (from 2100-11-27T00:00:00Z)"
        );
        assert!(
            trail[1].1.contains("paused by its budget"),
            "{}",
            trail[1].1
        );
        assert!(!trail[9].1.contains("paused"), "{}", trail[9].1);
        assert_eq!(
            trail[5].1,
            "a new window started at 2100-11-28T00:00:00Z; usage counts from 0"
        );
        assert!(
            s.verify_audit(meanwhile_store::AuditKey::new(b"k".to_vec()))
                .await
                .unwrap()
                .intact
        );
        // Each change also went out as an event.
        let events = s.events_after(0, 1000).await.unwrap();
        let budget_events: Vec<String> = events
            .iter()
            .filter(|e| e.kind == EventKind::Budget)
            .map(|e| e.data["action"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(budget_events, vec!["set", "rolled", "removed"]);
    }
}
