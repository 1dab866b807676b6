//! Retention: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// Removes the events before `?1` among the first `?2`.
    EVENTS_BY_AGE = "DELETE FROM events WHERE seq IN
    (SELECT seq FROM events ORDER BY seq LIMIT $2) AND at < $1";
}

crate::sql::sql! {
    /// Removes the first `?2` events of all but the last `?1`.
    EVENTS_BY_COUNT = "DELETE FROM events WHERE seq IN
    (SELECT seq FROM events
     WHERE seq <= (SELECT COALESCE(MAX(seq), 0) FROM events) - $1
     ORDER BY seq LIMIT $2)";
}

crate::sql::sql! {
    /// Removes the events of removed tasks from `?1` to before `?2`.
    EVENTS_OF_REMOVED = "DELETE FROM events WHERE seq >= $1 AND seq < $2 AND task_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = events.task_id)";
}

crate::sql::sql! {
    /// Removes the notifications of removed tasks from `?1` to before `?2`.
    NOTIFICATIONS_OF_REMOVED = "DELETE FROM notifications WHERE seq >= $1 AND seq < $2
        AND NOT EXISTS (SELECT 1 FROM tasks WHERE tasks.id = notifications.task_id)";
}

crate::sql::sql! {
    /// Removes the first `?2` alerts resolved before `?1`.
    RESOLVED_ALERTS = "DELETE FROM alerts WHERE id IN
    (SELECT id FROM alerts WHERE state = 'resolved' AND resolved_at < $1 ORDER BY id LIMIT $2)";
}

crate::sql::sql! {
    /// Removes the sessions that have no notification left.
    SESSIONS_WITHOUT_NOTICES = "DELETE FROM sessions WHERE NOT EXISTS
    (SELECT 1 FROM notifications n WHERE n.session = sessions.name)";
}
