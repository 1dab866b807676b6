//! Alerts a person acknowledges, and reminders of the ones that still fire: what
//! each store records, the events the sinks hear (and do not), and the audit trail,
//! with time given by the test.

use crate::support::NOW;
use meanwhile_core::{Actor, AlertKind, AlertState, AuditFilter, EventKind, Timestamp};
use meanwhile_store::{NewAlert, Store, StoreError, acting};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

fn at(ms: i64) -> Timestamp {
    Timestamp(NOW.0 + ms)
}

async fn fire(store: &dyn Store, subject: &str, now: Timestamp) -> i64 {
    let a = NewAlert {
        kind: AlertKind::Failures,
        subject: subject.into(),
        message: format!("{subject} failed three times"),
        task: None,
        queue: Some("default".into()),
    };
    store.fire_alert(a, now).await.unwrap().unwrap().id
}

/// The `change` of every alert event, in order.
async fn changes(store: &dyn Store) -> Vec<(i64, String)> {
    store
        .events_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Alert)
        .map(|e| {
            (
                e.data["id"].as_i64().unwrap(),
                e.data["change"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn alice() -> Actor {
    Actor::Token {
        name: "alice".into(),
        session: None,
    }
}

both! {
    async fn an_acknowledgement_silences_reminders_until_it_runs_out(f: Fixture) {
        let s = &*f.store;
        let a = fire(s, "queue:a", NOW).await;
        let b = fire(s, "queue:b", NOW).await;
        // Alice acknowledges `a` for an hour.
        let acked = acting(alice(), async {
            s.ack_alert(a, Some(at(3_600_000)), at(1000)).await
        })
        .await
        .unwrap();
        let ack = acked.acked.clone().unwrap();
        assert_eq!((ack.at, ack.until, ack.by.as_str()), (at(1000), Some(at(3_600_000)), "token alice"));
        assert!(acked.acked_at(at(3_599_999)) && !acked.acked_at(at(3_600_000)));
        assert_eq!(acked.notices, 1);

        // Before `every` has passed, nothing is due.
        assert!(s.repeat_alerts(Some(2 * HOUR), at(60_000)).await.unwrap().is_empty());
        // The acknowledgement runs out at 1h: `a` is reminded at once, its
        // acknowledgement cleared; `b` waits for its 2h.
        let due = s.repeat_alerts(Some(2 * HOUR), at(3_600_000)).await.unwrap();
        assert_eq!(due.iter().map(|x| x.id).collect::<Vec<_>>(), vec![a]);
        assert_eq!((due[0].notices, due[0].acked.clone()), (2, None));
        // Each due alert is reminded once per `every`.
        assert!(s.repeat_alerts(Some(2 * HOUR), at(3_600_001)).await.unwrap().is_empty());
        let due = s.repeat_alerts(Some(2 * HOUR), at(7_200_000)).await.unwrap();
        assert_eq!(due.iter().map(|x| x.id).collect::<Vec<_>>(), vec![b]);
        let due = s.repeat_alerts(Some(2 * HOUR), at(3_600_000 + 7_200_000)).await.unwrap();
        assert_eq!((due.len(), due[0].id, due[0].notices), (1, a, 3));

        // Acknowledged until it resolves: never reminded, however long it fires.
        s.ack_alert(b, None, at(7_200_001)).await.unwrap();
        let year = at(365 * 24 * 3_600_000);
        let due = s.repeat_alerts(Some(2 * HOUR), year).await.unwrap();
        assert_eq!(due.iter().map(|x| x.id).collect::<Vec<_>>(), vec![a]);
        // Without reminders, an acknowledgement that runs out still tells the sinks.
        s.ack_alert(a, Some(at(400 * 24 * 3_600_000)), year).await.unwrap();
        assert!(s.repeat_alerts(None, at(399 * 24 * 3_600_000)).await.unwrap().is_empty());
        let due = s.repeat_alerts(None, at(400 * 24 * 3_600_000)).await.unwrap();
        assert_eq!(due.iter().map(|x| x.id).collect::<Vec<_>>(), vec![a]);

        // Every change is an event; the sinks are told all but the acknowledgements.
        let seen = changes(s).await;
        let expect: Vec<(i64, &str)> = vec![
            (a, "fired"),
            (b, "fired"),
            (a, "acked"),
            (a, "repeated"),
            (b, "repeated"),
            (a, "repeated"),
            (b, "acked"),
            (a, "repeated"),
            (a, "acked"),
            (a, "repeated"),
        ];
        let seen: Vec<(i64, &str)> = seen.iter().map(|(i, c)| (*i, c.as_str())).collect();
        assert_eq!(seen, expect);
    }
}

both! {
    async fn only_a_firing_alert_is_acknowledged_and_the_trail_says_who(f: Fixture) {
        let s = &*f.store;
        let a = fire(s, "queue:a", NOW).await;
        let e = s.ack_alert(a + 100, None, at(1)).await.unwrap_err();
        assert!(matches!(e, StoreError::UnknownAlert(n) if n == a + 100), "{e}");
        acting(alice(), async { s.ack_alert(a, None, at(1)).await })
            .await
            .unwrap();
        s.resolve_alert(AlertKind::Failures, "queue:a", "a task succeeded", at(2))
            .await
            .unwrap()
            .unwrap();
        let e = s.ack_alert(a, None, at(3)).await.unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict { field: "id", message } if message.contains("resolved")),
            "{e}"
        );
        let listed = s.alerts(true, 10).await.unwrap();
        assert_eq!(listed[0].state, AlertState::Resolved);
        assert!(!listed[0].acked_at(at(3)));
        // A resolved alert is never reminded.
        assert!(s.repeat_alerts(Some(HOUR), at(10 * 3_600_000)).await.unwrap().is_empty());

        let trail: Vec<(String, String, String)> = s
            .audit(AuditFilter::default())
            .await
            .unwrap()
            .records
            .into_iter()
            .map(|r| (r.who, r.action, r.summary))
            .collect();
        let acks: Vec<_> = trail.iter().filter(|r| r.1 == "alert_acked").collect();
        assert_eq!(acks.len(), 1, "{trail:?}");
        assert_eq!(acks[0].0, "token alice");
        assert!(acks[0].2.ends_with("acknowledged until it resolves"), "{}", acks[0].2);
        let actions: Vec<&str> = trail.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(actions, ["alert_firing", "alert_acked", "alert_resolved"]);
    }
}

both! {
    async fn retention_removes_alerts_resolved_long_ago_and_keeps_the_firing(f: Fixture) {
        let s = &*f.store;
        let old = fire(s, "queue:old", NOW).await;
        let recent = fire(s, "queue:recent", NOW).await;
        let firing = fire(s, "queue:firing", NOW).await;
        s.resolve_alert(AlertKind::Failures, "queue:old", "it passed", at(1000)).await.unwrap().unwrap();
        s.resolve_alert(AlertKind::Failures, "queue:recent", "it passed", at(5000)).await.unwrap().unwrap();
        let p = s
            .prune(meanwhile_store::PruneRequest {
                alerts_resolved_before: Some(at(3000)),
                ..meanwhile_store::PruneRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(p.alerts, 1);
        let mut left: Vec<i64> = s.alerts(true, 100).await.unwrap().iter().map(|a| a.id).collect();
        left.sort();
        assert_eq!(left, [recent, firing]);
        assert!(!left.contains(&old));
        // Firing, however old: kept.
        let p = s
            .prune(meanwhile_store::PruneRequest {
                alerts_resolved_before: Some(at(i64::MAX / 2)),
                ..meanwhile_store::PruneRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(p.alerts, 1);
        let left: Vec<i64> = s.alerts(true, 100).await.unwrap().iter().map(|a| a.id).collect();
        assert_eq!(left, [firing]);
    }
}
