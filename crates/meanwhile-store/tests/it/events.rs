//! The conformance suite of `EventStore`: the event log, its followers and its named
//! readers; each test runs on both stores.

use meanwhile_core::TaskSpec;

use crate::support::submit;

both! {
    async fn events_are_durable_and_published_after_commit(f: Fixture) {
        let mut rx = f.store.subscribe();
        let id = submit(&*f.store, TaskSpec::shell("x")).await;
        let e = rx.recv().await.unwrap();
        assert_eq!(e.task_id, Some(id));
        let stored = f.store.events_after(0, 100).await.unwrap();
        assert_eq!(stored, vec![e]);
    }
}

both! {
    /// `events_after` answers the log in order from any point, a page at a time; a
    /// new named reader starts at the log's end, so it replays nothing, and where a
    /// reader is outlives the store that recorded it.
    async fn a_named_reader_starts_at_the_end_and_keeps_its_place(f: Fixture) {
        let mut f = f;
        for i in 0..3 {
            submit(&*f.store, TaskSpec::shell(format!("t{i}"))).await;
        }
        let all = f.store.events_after(0, 100).await.unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "{all:?}");
        let page = f.store.events_after(all[0].seq, 1).await.unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![all[1].seq]);

        let end = all[2].seq;
        assert_eq!(f.store.reader_cursor("sink").await.unwrap(), end);
        let later = submit(&*f.store, TaskSpec::shell("later")).await;
        assert_eq!(
            f.store.reader_cursor("sink").await.unwrap(),
            end,
            "a reader stays where it is while the log grows"
        );
        let unread = f.store.events_after(end, 100).await.unwrap();
        assert_eq!(unread.len(), 1);
        assert_eq!(unread[0].task_id, Some(later));
        f.store.set_reader_cursor("sink", unread[0].seq).await.unwrap();

        f.reopen().await;
        assert_eq!(f.store.reader_cursor("sink").await.unwrap(), unread[0].seq);
        assert_eq!(
            f.store.reader_cursor("another").await.unwrap(),
            unread[0].seq,
            "another new reader starts at the end too"
        );
        assert!(f.store.events_after(unread[0].seq, 100).await.unwrap().is_empty());
    }
}
