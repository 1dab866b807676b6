//! The lifecycle topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// What runs in each queue.
    RUNNING_PER_QUEUE = "SELECT queue, COUNT(*) FROM tasks
        WHERE state = 'running' GROUP BY queue";
}

crate::sql::sql! {
    /// Forgets the starts of queue `?1` at or before `?2`.
    FORGET_STARTS = "DELETE FROM queue_starts WHERE queue = $1 AND at <= $2";
}

crate::sql::sql! {
    /// The starts a queue counts, oldest first.
    STARTS = "SELECT at, n FROM queue_starts WHERE queue = $1 ORDER BY at";
}
