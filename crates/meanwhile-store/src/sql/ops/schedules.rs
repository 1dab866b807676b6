//! The schedules topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// The columns of a schedule, as `s`.
    COLS = "s.name, s.spec, s.paused, s.next_fire, s.last_fire, s.last_task, \
    t.state, s.fired, s.missed, s.created_at";
}
