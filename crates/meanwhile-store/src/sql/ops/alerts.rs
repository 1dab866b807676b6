//! The alerts topic: the statements both stores run alike (see `crate::sql`).

/// The columns of an alert, in `decode::AlertColumns`'s order.
macro_rules! cols {
    () => {
        "id, kind, state, message, task_id, queue, fired_at, resolved_at, \
         acked_at, acked_until, acked_by, notices"
    };
}

crate::sql::sql! {
    /// The columns of an alert.
    COLS = cols!();
}

crate::sql::sql! {
    /// Fires an alert of kind `$1` for subject `$2` with message `$3`, about task `$4`
    /// or queue `$5`, at `$6`, unless one of that kind fires for that subject already.
    FIRE = concat!(
        "INSERT INTO alerts (kind, subject, state, message, task_id, queue, fired_at,
                             notified_at)
         VALUES ($1, $2, 'firing', $3, $4, $5, $6, $6)
         ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING
         RETURNING ",
        cols!()
    );
}

crate::sql::sql! {
    /// Resolves the firing alert of kind `$1` for subject `$2` at `$3`, saying `$4`.
    RESOLVE = concat!(
        "UPDATE alerts SET state = 'resolved', resolved_at = $3, message = $4
         WHERE kind = $1 AND subject = $2 AND state = 'firing' RETURNING ",
        cols!()
    );
}

crate::sql::sql! {
    /// Acknowledges firing alert `$1` at `$2` until `$3` for `$4`.
    ACK = concat!(
        "UPDATE alerts SET acked_at = $2, acked_until = $3, acked_by = $4
         WHERE id = $1 AND state = 'firing' RETURNING ",
        cols!()
    );
}

crate::sql::sql! {
    /// Alert `$1`.
    BY_ID = concat!("SELECT ", cols!(), " FROM alerts WHERE id = $1");
}

crate::sql::sql! {
    /// The firing alerts to remind the sinks of at `$1`, `$2` milliseconds after they
    /// were last told (or not for that, when `$2` is null), or whose acknowledgement
    /// ran out: they are marked told, and their acknowledgement cleared.
    REPEAT = concat!(
        "UPDATE alerts SET notified_at = $1, notices = notices + 1,
                           acked_at = NULL, acked_until = NULL, acked_by = NULL
         WHERE state = 'firing'
           AND ((acked_until IS NOT NULL AND acked_until <= $1)
             OR (acked_at IS NULL AND CAST($2 AS BIGINT) IS NOT NULL
                 AND COALESCE(notified_at, fired_at) + CAST($2 AS BIGINT) <= $1))
         RETURNING ",
        cols!()
    );
}

crate::sql::sql! {
    /// The last `?2` tasks of queue `?1` that ended, but for the cancelled.
    LAST_ENDS = "SELECT id, state FROM tasks
     WHERE queue = $1 AND finished_at IS NOT NULL
       AND state IN ('succeeded', 'failed', 'timed_out', 'quarantined', 'lost')
     ORDER BY finished_at DESC, id DESC LIMIT $2";
}
