//! The queues topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// Every queue with its limits, by name.
    QUEUES = "SELECT name, max_parallel, paused, per_key, rate_count, rate_window_ms,
        alert_after, pause_reason
        FROM queues ORDER BY name";
}
