//! The tasks topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// The task an idempotency key names.
    TASK_WITH_KEY = "SELECT id FROM tasks WHERE idempotency_key = $1";
}
