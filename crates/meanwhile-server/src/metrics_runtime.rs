//! The runtime's own counters in the metrics: spawn latency, output bytes written,
//! notifications pending.

use crate::state::AppState;

pub(crate) async fn write(_state: &AppState, _out: &mut String) {}
