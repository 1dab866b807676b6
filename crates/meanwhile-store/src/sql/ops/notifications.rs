//! The notifications topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// The first `?3` notifications of session `?1` after its cursor `?2`.
    NOTIFICATIONS_AFTER = "SELECT seq, body FROM notifications WHERE session = $1 AND seq > $2
     ORDER BY seq LIMIT $3";
}

crate::sql::sql! {
    /// Undelivered notifications per session.
    NOTIFICATIONS_PENDING = "SELECT n.session, COUNT(*) FROM notifications n
     LEFT JOIN sessions s ON s.name = n.session
     WHERE n.seq > COALESCE(s.cursor, 0)
     GROUP BY n.session ORDER BY n.session";
}
