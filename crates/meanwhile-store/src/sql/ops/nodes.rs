//! The nodes topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// Every node, with what it runs.
    NODES = "SELECT n.name, n.address, n.version, n.started_at, n.heartbeat_at, n.stopped_at,
        (SELECT COUNT(*) FROM tasks t WHERE t.state = 'running' AND t.node = n.name)
     FROM nodes n ORDER BY n.name";
}
