//! The audit trail and tokens: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// The columns of an audit record.
    COLS = "seq, at, actor, action, subject, task_id, summary, prev_hash, hash";
}

crate::sql::sql! {
    /// Every named token, by name.
    TOKENS = "SELECT name, hash, created_at FROM tokens ORDER BY name";
}
