//! The steps topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// The columns of an agent session.
    SESSION_COLUMNS = "name, workspace, title, steps, created_at, updated_at, holder";
}

crate::sql::sql! {
    /// The steps of agent session `?1`.
    SESSION_STEPS = "SELECT n, at, kind, data FROM agent_session_steps
        WHERE session = $1 ORDER BY n";
}

crate::sql::sql! {
    /// Agent sessions, the last active first: `?1` at most.
    AGENT_SESSIONS = "SELECT name, workspace, title, steps, created_at, updated_at, holder
        FROM agent_sessions ORDER BY updated_at DESC LIMIT $1";
}

crate::sql::sql! {
    /// Agent sessions idle since before `?1`, `?2` at most.
    IDLE_AGENT_SESSIONS = "SELECT name FROM agent_sessions
        WHERE updated_at < $1 ORDER BY updated_at LIMIT $2";
}
