//! Schedules in the store: one firing per due time however many look, by-hand
//! firings, pausing, and what a wrong name gets.

use crate::support::NOW;
use meanwhile_core::{EventKind, Missed, ScheduleSpec, TaskSpec, TaskState, Timestamp};
use meanwhile_store::{NewTask, ScheduleFiring, StoreError, Submitted};
use std::time::Duration;

fn every_minute(name: &str) -> ScheduleSpec {
    ScheduleSpec {
        name: name.into(),
        cron: None,
        tz: None,
        every: Some(Duration::from_secs(60)),
        missed: Missed::Skip,
        task: TaskSpec::shell("echo tick"),
    }
}

fn firing(spec: &ScheduleSpec, due: Option<Timestamp>, fire: Timestamp) -> ScheduleFiring {
    let valid = spec.clone().validate().unwrap();
    ScheduleFiring {
        name: spec.name.clone(),
        due,
        fire: Some(fire),
        task: Some(NewTask::new(
            valid.task_for(fire, due.is_none()).validate().unwrap(),
            NOW,
        )),
        missed: 0,
        late: false,
        next: due.map(|d| Timestamp(d.0 + 60_000)),
    }
}

both! {
    async fn a_due_time_fires_once_however_many_look(f: Fixture) {
        let s = every_minute("tick");
        let due = Timestamp(NOW.0 + 60_000);
        let added = f
            .store
            .add_schedule(s.clone(), Some(due), NOW)
            .await
            .unwrap();
        assert_eq!(added.next_fire, Some(due));
        assert_eq!(added.fired, 0);
        assert!(!added.paused);

        // Two runtimes planned the same due time: the first records it, the second
        // finds the schedule moved on.
        let first = f
            .store
            .fire_schedule(firing(&s, Some(due), due))
            .await
            .unwrap();
        let first = first.expect("the first look fires");
        let Some(Submitted::Created(id)) = first.task else {
            panic!("{:?}", first.task)
        };
        assert_eq!(first.schedule.next_fire, Some(Timestamp(due.0 + 60_000)));
        assert_eq!(first.schedule.last_task, Some(id));
        assert_eq!(first.schedule.last_state, Some(TaskState::Pending));
        assert_eq!(first.schedule.fired, 1);
        assert!(
            f.store
                .fire_schedule(firing(&s, Some(due), due))
                .await
                .unwrap()
                .is_none()
        );

        // The task carries the schedule's label and key.
        let t = f.store.get(id).await.unwrap();
        assert!(
            t.labels.contains(&"schedule:tick".to_string()),
            "{:?}",
            t.labels
        );
        let page = f.store.list(Default::default()).await.unwrap();
        assert_eq!(page.tasks.len(), 1);

        // A time whose task exists already (a key seen before) submits nothing new.
        let next = Timestamp(due.0 + 60_000);
        let mut again = firing(&s, Some(next), due);
        again.next = Some(Timestamp(next.0 + 60_000));
        let r = f.store.fire_schedule(again).await.unwrap().unwrap();
        assert_eq!(r.task, Some(Submitted::Existing(id)));
        assert_eq!(r.schedule.fired, 1);
    }
}

both! {
    async fn by_hand_pause_resume_remove_and_wrong_names(f: Fixture) {
        let s = every_minute("nightly");
        let due = Timestamp(NOW.0 + 60_000);
        f.store
            .add_schedule(s.clone(), Some(due), NOW)
            .await
            .unwrap();
        let dup = f
            .store
            .add_schedule(s.clone(), Some(due), NOW)
            .await
            .unwrap_err();
        assert!(
            matches!(dup, StoreError::Conflict { field: "name", .. }),
            "{dup}"
        );

        // By hand: a task, and the schedule's next time stays.
        let r = f
            .store
            .fire_schedule(firing(&s, None, Timestamp(NOW.0 + 5)))
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(r.task, Some(Submitted::Created(_))));
        assert_eq!(r.schedule.next_fire, Some(due));
        assert_eq!(r.schedule.fired, 1);

        // Paused: no next time, and a look planned before the pause records nothing.
        let p = f.store.pause_schedule("nightly", true, None).await.unwrap();
        assert!(p.paused);
        assert_eq!(p.next_fire, None);
        assert!(
            f.store
                .fire_schedule(firing(&s, Some(due), due))
                .await
                .unwrap()
                .is_none()
        );
        let resumed = Timestamp(NOW.0 + 600_000);
        let p = f
            .store
            .pause_schedule("nightly", false, Some(resumed))
            .await
            .unwrap();
        assert!(!p.paused);
        assert_eq!(p.next_fire, Some(resumed));
        // Resuming a running schedule changes nothing.
        let p = f
            .store
            .pause_schedule("nightly", false, Some(Timestamp(1)))
            .await
            .unwrap();
        assert_eq!(p.next_fire, Some(resumed));

        // Missed times are counted and told.
        let mut missed = firing(&s, Some(resumed), resumed);
        missed.task = None;
        missed.fire = None;
        missed.missed = 3;
        let r = f.store.fire_schedule(missed).await.unwrap().unwrap();
        assert_eq!(r.schedule.missed_count, 3);
        assert_eq!(r.task, None);

        let kinds: Vec<String> = f
            .store
            .events_after(0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EventKind::Schedule)
            .map(|e| e.data["action"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(kinds, ["added", "fired", "paused", "resumed", "missed"]);

        f.store.remove_schedule("nightly").await.unwrap();
        for e in [
            f.store.remove_schedule("nightly").await.unwrap_err(),
            f.store.schedule("nightly").await.unwrap_err(),
            f.store
                .pause_schedule("nightly", true, None)
                .await
                .unwrap_err(),
            f.store
                .fire_schedule(firing(&s, None, NOW))
                .await
                .unwrap_err(),
        ] {
            assert!(
                matches!(&e, StoreError::UnknownSchedule(n) if n == "nightly"),
                "{e}"
            );
        }
        assert!(f.store.schedules().await.unwrap().is_empty());
        // Its task stays.
        assert_eq!(
            f.store.list(Default::default()).await.unwrap().tasks.len(),
            1
        );
    }
}

both! {
    async fn a_reader_cursor_starts_at_the_end_of_the_log_and_stays_where_it_is_put(f: Fixture) {
        let mut f = f;
        let store = &*f.store;
        store
            .add_schedule(every_minute("a"), None, NOW)
            .await
            .unwrap();
        store
            .add_schedule(every_minute("b"), None, NOW)
            .await
            .unwrap();
        let end = store
            .events_after(0, 100)
            .await
            .unwrap()
            .last()
            .unwrap()
            .seq;
        assert_eq!(store.reader_cursor("hooks").await.unwrap(), end);
        store
            .add_schedule(every_minute("c"), None, NOW)
            .await
            .unwrap();
        // Once there, it does not follow the log by itself.
        assert_eq!(store.reader_cursor("hooks").await.unwrap(), end);
        store.set_reader_cursor("hooks", end + 1).await.unwrap();
        f.reopen().await;
        let store = &*f.store;
        assert_eq!(store.reader_cursor("hooks").await.unwrap(), end + 1);
        assert_eq!(store.reader_cursor("other").await.unwrap(), end + 1);
    }
}

both! {
    /// Secrets an earlier version stored in clear, in a task's spec and in a
    /// schedule's, are sealed once; sealed values and other fields are kept.
    async fn secrets_stored_in_clear_are_sealed_once(f: Fixture) {
        use std::sync::Arc;
        let mut spec = TaskSpec::shell("true");
        spec.secrets.insert("A".into(), meanwhile_core::Secret::new("clear-a"));
        spec.secrets.insert("B".into(), meanwhile_core::Secret::new("S:sealed-b"));
        let id = crate::support::submit(&*f.store, spec).await;
        let plain = crate::support::submit(&*f.store, TaskSpec::shell("echo none")).await;
        let mut s = every_minute("with-secret");
        s.task.secrets.insert("C".into(), meanwhile_core::Secret::new("clear-c"));
        f.store.add_schedule(s, None, NOW).await.unwrap();
        let seal: meanwhile_store::secrets::Seal =
            Arc::new(|v: &str| (!v.starts_with("S:")).then(|| format!("S:{v}")));
        assert_eq!(f.store.seal_clear_secrets(seal.clone()).await.unwrap(), 2);
        let t = f.store.get(id).await.unwrap();
        assert_eq!(t.spec.secrets["A"].expose(), "S:clear-a");
        assert_eq!(t.spec.secrets["B"].expose(), "S:sealed-b");
        assert_eq!(t.spec.command.as_deref(), Some("true"));
        assert!(f.store.get(plain).await.unwrap().spec.secrets.is_empty());
        let s = f.store.schedule("with-secret").await.unwrap();
        assert_eq!(s.spec.task.secrets["C"].expose(), "S:clear-c");
        // Once per database, even with a value put back in clear by hand.
        assert_eq!(f.store.seal_clear_secrets(seal).await.unwrap(), 0);
    }
}
