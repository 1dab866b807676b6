//! The runtime's own counters in the metrics: spawn latency, output bytes written,
//! notifications pending.

use crate::state::AppState;
use std::fmt::Write;

pub(crate) async fn write(state: &AppState, out: &mut String) {
    let m = state.rt.metrics();
    let mut line = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    line(
        "meanwhile_spawns_total",
        "counter",
        "Processes started since the daemon started.",
        m.spawns.to_string(),
    );
    line(
        "meanwhile_spawn_seconds_sum",
        "counter",
        "Time spent starting processes, from the request to the exec, summed.",
        format!("{:.6}", m.spawn_micros as f64 / 1e6),
    );
    line(
        "meanwhile_spawn_seconds_count",
        "counter",
        "Processes whose start time is in meanwhile_spawn_seconds_sum.",
        m.spawns.to_string(),
    );
    line(
        "meanwhile_spawn_failures_total",
        "counter",
        "Attempts that could not start their process.",
        m.spawn_failures.to_string(),
    );
    line(
        "meanwhile_output_bytes_total",
        "counter",
        "Bytes of output in the logs of attempts that ended since the daemon started.",
        m.output_bytes.to_string(),
    );
    line(
        "meanwhile_attempts_ended_total",
        "counter",
        "Attempts that ended since the daemon started.",
        m.attempts_ended.to_string(),
    );
    line(
        "meanwhile_commit_failures_total",
        "counter",
        "Writes to the store that failed where no caller could be told (an attempt's end, progress, lease renewal); each was logged and tried again.",
        m.commit_failures.to_string(),
    );
    let _ = writeln!(
        out,
        "# HELP meanwhile_notifications_pending Notifications not yet drained, per session.\n# TYPE meanwhile_notifications_pending gauge"
    );
    if let Ok(pending) = state.rt.notifications_pending().await {
        for (session, n) in pending {
            let session = session.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "meanwhile_notifications_pending{{session=\"{session}\"}} {n}"
            );
        }
    }
}
