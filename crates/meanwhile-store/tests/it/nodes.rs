//! The conformance suite of `NodeStore`: heartbeats, clean stops and removal; each test
//! runs on both stores.

use meanwhile_core::{TaskSpec, Timestamp};

use crate::support::{NOW, claim_req, submit};

both! {
    /// Heartbeats keep one row per node, with the tasks it runs; a clean stop is
    /// recorded, a new beat clears it, and removing a node twice names it.
    async fn nodes_beat_stop_and_are_removed(f: Fixture) {
        let beat = |name: &str, now: i64| meanwhile_core::NodeBeat {
            name: name.into(),
            address: Some("127.0.0.1:7070".into()),
            version: "0.1.0".into(),
            started_at: NOW,
            now: Timestamp(now),
        };
        f.store.beat(beat("n1", NOW.0)).await.unwrap();
        f.store.beat(beat("n2", NOW.0)).await.unwrap();
        f.store.beat(beat("n1", NOW.0 + 5)).await.unwrap();
        submit(&*f.store, TaskSpec::shell("x")).await;
        f.store.claim(claim_req(1)).await.unwrap();
        let nodes = f.store.nodes().await.unwrap();
        let seen: Vec<(&str, i64, u64)> = nodes
            .iter()
            .map(|n| (n.beat.name.as_str(), n.beat.now.0, n.running))
            .collect();
        assert_eq!(seen, [("n1", NOW.0 + 5, 1), ("n2", NOW.0, 0)]);
        f.store.node_stopped("n2", Timestamp(NOW.0 + 9)).await.unwrap();
        let n2 = f.store.nodes().await.unwrap().remove(1);
        assert_eq!(n2.stopped_at, Some(Timestamp(NOW.0 + 9)));
        f.store.beat(beat("n2", NOW.0 + 10)).await.unwrap();
        assert_eq!(f.store.nodes().await.unwrap()[1].stopped_at, None);
        f.store.remove_node("n2").await.unwrap();
        let e = f.store.remove_node("n2").await.unwrap_err();
        assert!(matches!(&e, meanwhile_store::StoreError::UnknownNode(n) if n == "n2"), "{e}");
        assert_eq!(f.store.nodes().await.unwrap().len(), 1);
    }
}
