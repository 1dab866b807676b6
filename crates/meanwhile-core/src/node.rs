//! Nodes: the runtimes that share one store. Each writes a heartbeat; a node whose
//! heartbeat is late is silent, and the others raise a `node_silent` alert.

use crate::ident::Timestamp;
use serde::{Deserialize, Serialize};

/// One node, as `GET /v1/nodes` and `meanwhile nodes` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeInfo {
    /// Its name (`serve --node`, else the host name).
    pub name: String,
    /// Where its HTTP API listens over TCP, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The meanwhile version it runs.
    pub version: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Its latest heartbeat.
    pub heartbeat_at: Timestamp,
    /// When it shut down cleanly; null while it runs, or when it died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Timestamp>,
    /// Tasks it runs now.
    pub running: u64,
    /// It runs and its heartbeat is on time.
    pub alive: bool,
}

/// What one heartbeat records.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBeat {
    /// The node's name.
    pub name: String,
    /// Where its HTTP API listens over TCP, if it does.
    pub address: Option<String>,
    /// The meanwhile version it runs.
    pub version: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Now.
    pub now: Timestamp,
}

/// A node as the store keeps it, before it is judged alive or not.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    /// Its latest heartbeat and what it said.
    pub beat: NodeBeat,
    /// When it shut down cleanly.
    pub stopped_at: Option<Timestamp>,
    /// Tasks it runs now.
    pub running: u64,
}

impl NodeRow {
    /// Silent: still running by its own account, but no heartbeat for `silent_after`
    /// at `now`.
    pub fn is_silent(&self, now: Timestamp, silent_after_ms: u64) -> bool {
        self.stopped_at.is_none() && self.beat.now.millis_until(now) > silent_after_ms
    }

    /// The row as listed at `now`.
    pub fn info(self, now: Timestamp, silent_after_ms: u64) -> NodeInfo {
        let alive = self.stopped_at.is_none() && !self.is_silent(now, silent_after_ms);
        NodeInfo {
            name: self.beat.name,
            address: self.beat.address,
            version: self.beat.version,
            started_at: self.beat.started_at,
            heartbeat_at: self.beat.now,
            stopped_at: self.stopped_at,
            running: self.running,
            alive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(beat: i64, stopped: Option<i64>) -> NodeRow {
        NodeRow {
            beat: NodeBeat {
                name: "n1".into(),
                address: None,
                version: "1".into(),
                started_at: Timestamp(0),
                now: Timestamp(beat),
            },
            stopped_at: stopped.map(Timestamp),
            running: 0,
        }
    }

    #[test]
    fn a_node_is_silent_once_its_heartbeat_is_later_than_the_limit() {
        assert!(!row(1_000, None).is_silent(Timestamp(31_000), 30_000));
        assert!(row(1_000, None).is_silent(Timestamp(31_001), 30_000));
        assert!(row(1_000, None).info(Timestamp(2_000), 30_000).alive);
        assert!(!row(1_000, None).info(Timestamp(40_000), 30_000).alive);
    }

    #[test]
    fn a_node_that_stopped_cleanly_is_neither_silent_nor_alive() {
        let r = row(1_000, Some(1_500));
        assert!(!r.is_silent(Timestamp(100_000), 30_000));
        assert!(!r.info(Timestamp(2_000), 30_000).alive);
    }
}
