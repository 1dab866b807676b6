//! The rows topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// The columns of a task.
    TASK_COLS = "id, kind, name, state, queue, priority, labels, session, spec, \
    created_at, run_after, started_at, finished_at, attempts, exit_code, signal, reason, \
    progress, result, node, stop_requested, tokens, cost_usd, model_calls, live";
}

crate::sql::sql! {
    /// The columns of an attempt.
    ATTEMPT_COLS = "number, node, started_at, ended_at, outcome, exit_code, signal,
        reason, pid, peak_rss_kb, cpu_ms";
}
