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

crate::sql::sql! {
    /// Claims task `$1`: state `$2`, attempt `$3` started at `$4` on node `$5`, whose
    /// lease runs until `$6`.
    CLAIM_TASK = "UPDATE tasks SET state = $2, attempts = $3, started_at = $4, finished_at = NULL,
            node = $5, lease_until = $6, run_after = NULL, exit_code = NULL, signal = NULL,
            stop_requested = false, live = NULL
         WHERE id = $1";
}

crate::sql::sql! {
    /// Attempt `$2` of task `$1`, begun on node `$3` at `$4`.
    NEW_ATTEMPT = "INSERT INTO attempts (task_id, number, node, started_at) VALUES ($1, $2, $3, $4)";
}

crate::sql::sql! {
    /// How attempt `$2` of task `$1` ended; a pid recorded while it ran is kept.
    END_ATTEMPT = "UPDATE attempts SET ended_at = $3, outcome = $4, exit_code = $5, signal = $6,
            reason = $7, peak_rss_kb = $8, cpu_ms = $9, pid = COALESCE($10, pid)
         WHERE task_id = $1 AND number = $2";
}

crate::sql::sql! {
    /// Task `$1` waits for its next attempt, due at `$2`.
    RETRY_LATER = "UPDATE tasks SET state = 'pending', run_after = $2, node = NULL, lease_until = NULL,
            exit_code = $3, signal = $4, reason = $5, stop_requested = false, live = NULL
         WHERE id = $1";
}

crate::sql::sql! {
    /// Task `$1` ended in state `$2` at `$3`; a result it gave is kept.
    END_TASK = "UPDATE tasks SET state = $2, finished_at = $3, node = NULL, lease_until = NULL,
            exit_code = $4, signal = $5, reason = $6, result = COALESCE($7, result),
            stop_requested = false, live = NULL
         WHERE id = $1";
}

crate::sql::sql! {
    /// The process id of attempt `$2` of task `$1`.
    SET_PID = "UPDATE attempts SET pid = $3 WHERE task_id = $1 AND number = $2";
}

crate::sql::sql! {
    /// Gives back the claim of task `$1`, now in state `$2`: its attempt is forgotten.
    RELEASE_TASK = "UPDATE tasks SET state = $2, attempts = attempts - 1, started_at = NULL,
            node = NULL, lease_until = NULL, stop_requested = false, live = NULL
         WHERE id = $1";
}

crate::sql::sql! {
    /// Forgets attempt `$2` of task `$1`.
    FORGET_ATTEMPT = "DELETE FROM attempts WHERE task_id = $1 AND number = $2";
}

crate::sql::sql! {
    /// Flags running task `$1` for its node to stop.
    FLAG_STOP = "UPDATE tasks SET stop_requested = true WHERE id = $1";
}

crate::sql::sql! {
    /// Task `$1` ends in state `$2` at `$3` without having run, for reason `$4`.
    END_UNRUN = "UPDATE tasks SET state = $2, finished_at = $3, reason = $4, run_after = NULL
         WHERE id = $1";
}

crate::sql::sql! {
    /// Task `$1` is in state `$2` again, with a fresh retry budget.
    RETRY_TASK = "UPDATE tasks SET state = $2, attempt_base = attempts, run_after = NULL,
            finished_at = NULL, exit_code = NULL, signal = NULL, reason = NULL, result = NULL,
            progress = NULL, stop_requested = false, live = NULL
         WHERE id = $1";
}

crate::sql::sql! {
    /// The progress `$2` of task `$1`, while it runs.
    SET_PROGRESS = "UPDATE tasks SET progress = $2 WHERE id = $1 AND state = 'running'";
}

crate::sql::sql! {
    /// Task `$1` runs on node `$2` from now on, its lease until `$3`.
    HAND_OVER_TASK = "UPDATE tasks SET node = $2, lease_until = $3 WHERE id = $1";
}

crate::sql::sql! {
    /// Attempt `$2` of task `$1` runs on node `$3` from now on.
    HAND_OVER_ATTEMPT = "UPDATE attempts SET node = $3 WHERE task_id = $1 AND number = $2";
}

crate::sql::sql! {
    /// The pending dependents of task `$1`, in id order.
    PENDING_DEPENDENTS = "SELECT d.task_id FROM deps d JOIN tasks t ON t.id = d.task_id
         WHERE d.dep_id = $1 AND t.state = 'pending' ORDER BY d.task_id";
}

crate::sql::sql! {
    /// Task `$1` fails in state `$2` for reason `$3` at `$4`, a dependency having failed.
    FAIL_FOR_DEPENDENCY = "UPDATE tasks SET state = $2, reason = $3, finished_at = $4,
            run_after = NULL
         WHERE id = $1";
}

crate::sql::sql! {
    /// What task `$1` is seen doing.
    SET_LIVE = "UPDATE tasks SET live = $2 WHERE id = $1";
}
