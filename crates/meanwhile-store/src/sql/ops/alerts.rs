//! The alerts topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// The columns of an alert.
    COLS = "id, kind, state, message, task_id, queue, fired_at, resolved_at, \
                    acked_at, acked_until, acked_by, notices";
}

crate::sql::sql! {
    /// The last `?2` tasks of queue `?1` that ended, but for the cancelled.
    LAST_ENDS = "SELECT id, state FROM tasks
     WHERE queue = $1 AND finished_at IS NOT NULL
       AND state IN ('succeeded', 'failed', 'timed_out', 'quarantined', 'lost')
     ORDER BY finished_at DESC, id DESC LIMIT $2";
}
