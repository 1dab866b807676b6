//! The events topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// The first `?2` events after `?1`.
    EVENTS_AFTER = "SELECT seq, at, kind, task_id, data FROM events
        WHERE seq > $1 ORDER BY seq LIMIT $2";
}
