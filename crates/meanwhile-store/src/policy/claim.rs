//! The claim's decisions, the same on both stores: which runnable tasks a queue's
//! `per_key` limit lets through, when a rate-limited queue may start again, how many
//! a queue may start in one claim, and the record a claim leaves.

use super::*;

/// Up to `want` of a queue's runnable tasks (`(id, key)` in priority order) under a
/// `per_key` limit, passing over those whose key already has `per_key` tasks
/// running (`running`) or picked. Stops reading at the `want`-th task it takes.
pub(crate) fn pick_by_key(
    mut running: HashMap<String, i64>,
    runnable: impl IntoIterator<Item = Result<(i64, Option<String>)>>,
    per_key: i64,
    want: i64,
) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for row in runnable {
        if ids.len() as i64 >= want {
            break;
        }
        let (id, key) = row?;
        match key {
            None => ids.push(id),
            Some(key) => {
                let n = running.entry(key).or_insert(0);
                if *n < per_key {
                    *n += 1;
                    ids.push(id);
                }
            }
        }
    }
    Ok(ids)
}

/// When a rate-limited queue may start another task: once the oldest starts of its
/// window (`(at, n)` in time order), `excess` of them, have left it (a start at `at`
/// counts until `at + window`).
pub(crate) fn rate_reopens(
    starts: impl IntoIterator<Item = (i64, i64)>,
    window_ms: i64,
    excess: i64,
) -> Option<Timestamp> {
    let mut left = 0i64;
    for (at, n) in starts {
        left += n;
        if left >= excess {
            return Some(Timestamp(at.saturating_add(window_ms)));
        }
    }
    None
}

/// How many tasks a queue may start in this claim: its free slots (within the
/// claim's budget), and no more than its rate's window has room for. Also whether
/// to look for one more, to learn if the rate holds one back.
pub(crate) fn claim_room(free: i64, rate: Option<(i64, i64)>, used: i64) -> (i64, bool) {
    match rate {
        None => (free, false),
        Some((count, _)) => {
            let allowed = (count - used).clamp(0, free);
            (allowed, allowed < free)
        }
    }
}

/// The record as a claim's update left it, without reading it back.
pub(crate) fn claimed(
    task: &mut TaskRecord,
    to: TaskState,
    attempt: u32,
    req: &crate::ClaimRequest,
) {
    task.state = to;
    task.attempts = attempt;
    task.started_at = Some(req.now);
    task.finished_at = None;
    task.node = Some(req.node.clone());
    task.run_after = None;
    task.exit_code = None;
    task.signal = None;
    task.stop_requested = false;
}
