//! The budgets topic: the statements both stores run alike (see `crate::sql`).

crate::sql::sql! {
    /// The columns of a budget.
    COLS = "queue, tokens, cost_usd, window_kind, alarms, window_start, window_end, \
    used_tokens, used_cost_usd, model_calls, fired";
}

crate::sql::sql! {
    /// The subjects of the firing `budget` alerts of queue `?1`.
    FIRING_ALARMS = "SELECT subject FROM alerts
     WHERE kind = 'budget' AND state = 'firing' AND queue = $1";
}
