//! Schedules: a task submitted at the times a cron expression (in a time zone) or an
//! interval names. This module decides, for a given clock reading, which time fires,
//! how many were missed and when the next one is; the runtime only reads the clock
//! and commits what it says.

use crate::ident::{TaskId, Timestamp};
use crate::spec::{SpecError, TaskSpec};
use crate::state::TaskState;
use chrono::{DateTime, TimeZone as _};
use serde::{Deserialize, Serialize};
use std::str::FromStr as _;
use std::time::Duration;

/// Longest schedule name, in characters.
pub const MAX_SCHEDULE_NAME_LEN: usize = 64;
/// How late a firing may be and still count as on time, unless the runtime is told
/// otherwise: one that is later was missed (the runtime was not running).
pub const DEFAULT_LATE_AFTER: Duration = Duration::from_secs(60);
/// Most missed firing times counted one by one after a long downtime; beyond it the
/// count stops (the next firing is still computed exactly).
const MAX_COUNTED: u64 = 100_000;

/// What happens to firing times that passed while nothing could fire them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// None of them runs; the schedule goes on from its next time.
    #[default]
    Skip,
    /// One catch-up task runs (for the latest missed time), then the schedule goes on.
    Once,
}

impl Missed {
    /// The name used on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::Once => "once",
        }
    }
}

/// A schedule as a user writes it: when, and the task each firing submits.
///
/// Exactly one of `cron` and `every`. Each firing's task gets an idempotency key made
/// of the schedule's name and its firing time, so that the same time never fires
/// twice (a restart, or a second node of a fleet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend(
        // A field that is null counts as absent.
        "oneOf" = [
            {"required": ["cron"], "properties": {"cron": {"type": "string"}}},
            {"required": ["every"], "properties": {"every": {"type": ["string", "number"]}}}
        ],
        "if" = {"required": ["tz"], "properties": {"tz": {"type": "string"}}},
        "then" = {"required": ["cron"], "properties": {"cron": {"type": "string"}}}
    ))
)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// The schedule's name (1 to 64 letters, digits and `- _ .`), unique.
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::ScheduleName"))]
    pub name: String,
    /// A cron expression: five fields (minute hour day-of-month month day-of-week), or
    /// six with seconds first; `L`, `W` and `#` as croner reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(with = "Option<crate::schema::CronText>"))]
    pub cron: Option<String>,
    /// The IANA time zone the cron expression is read in (`Europe/Berlin`); UTC when
    /// absent. Only with `cron`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::TimeZoneName>")
    )]
    pub tz: Option<String>,
    /// Fire every this long, the first time one interval after the schedule was added.
    #[serde(
        default,
        with = "crate::serde_opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::schema::PositiveDurationText>")
    )]
    pub every: Option<Duration>,
    /// What happens to times missed while meanwhile was not running.
    #[serde(default)]
    pub missed: Missed,
    /// The task each firing submits. It may not have an `idempotency_key` (each
    /// firing gets its own), `after`, `run_after` or `delay`.
    #[cfg_attr(feature = "schema", schemars(with = "crate::schema::ScheduledTask"))]
    pub task: TaskSpec,
}

/// A schedule as stored, with what it did so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ScheduleInfo {
    /// The schedule as it was added.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// Paused schedules do not fire; resuming goes on from the next time after then.
    pub paused: bool,
    /// When it fires next; absent while paused, or when the cron expression has no
    /// time left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fire: Option<Timestamp>,
    /// The firing time of its latest task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fire: Option<Timestamp>,
    /// Its latest task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_task: Option<TaskId>,
    /// That task's state, when it still exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<TaskState>,
    /// Tasks it submitted (`schedule run` included).
    pub fired: u64,
    /// Firing times that passed without a task.
    pub missed_count: u64,
    /// When it was added; `every` intervals count from here.
    pub created_at: Timestamp,
}

/// What one look at a due schedule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The firing time to submit a task for, if any.
    pub fire: Option<Timestamp>,
    /// Whether that firing (or the skipped ones) came later than on time: the runtime
    /// was not running.
    pub late: bool,
    /// Firing times that get no task.
    pub missed: u64,
    /// When to look next; `None` when the expression has no time left.
    pub next: Option<Timestamp>,
}

#[derive(Debug, Clone)]
enum When {
    Cron(Box<croner::Cron>, chrono_tz::Tz),
    Every(Duration),
}

/// A schedule whose every field was checked.
#[derive(Debug, Clone)]
pub struct ValidSchedule {
    spec: ScheduleSpec,
    when: When,
}

fn err(field: &'static str, message: impl Into<String>) -> SpecError {
    SpecError {
        field,
        message: message.into(),
    }
}

/// Checks a schedule's name: 1 to 64 letters, digits and `- _ .`.
pub fn check_schedule_name(name: &str) -> Result<(), SpecError> {
    if name.is_empty() || name.len() > MAX_SCHEDULE_NAME_LEN {
        return Err(err(
            "name",
            format!("must be 1 to {MAX_SCHEDULE_NAME_LEN} characters long"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(err(
            "name",
            format!("{name:?} may only contain letters, digits and - _ ."),
        ));
    }
    Ok(())
}

fn parse_cron(expr: &str) -> Result<croner::Cron, SpecError> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(err(
            "cron",
            format!(
                "{expr:?} has {fields} fields; give five (minute hour day-of-month month day-of-week, as in \"0 9 * * MON-FRI\") or six with seconds first"
            ),
        ));
    }
    croner::Cron::from_str(expr).map_err(|e| {
        err(
            "cron",
            format!("{expr:?} is not a cron expression ({e}); for example \"*/15 * * * *\""),
        )
    })
}

fn parse_tz(name: &str) -> Result<chrono_tz::Tz, SpecError> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        err(
            "tz",
            format!(
                "{name:?} is not an IANA time zone; for example Europe/Berlin or America/New_York"
            ),
        )
    })
}

impl ScheduleSpec {
    /// Checks every field; the error names the first wrong one and says how to fix it.
    pub fn validate(self) -> Result<ValidSchedule, SpecError> {
        check_schedule_name(&self.name)?;
        let when = match (&self.cron, self.every) {
            (Some(expr), None) => {
                let tz = match &self.tz {
                    Some(name) => parse_tz(name)?,
                    None => chrono_tz::UTC,
                };
                When::Cron(Box::new(parse_cron(expr)?), tz)
            }
            (None, Some(every)) => {
                if self.tz.is_some() {
                    return Err(err(
                        "tz",
                        "only a cron schedule has a time zone; leave it out with every",
                    ));
                }
                if every.is_zero() {
                    return Err(err("every", "must be longer than 0s"));
                }
                crate::spec::check_duration("every", every)?;
                When::Every(every)
            }
            (Some(_), Some(_)) => return Err(err("cron", "give either cron or every, not both")),
            (None, None) => {
                return Err(err(
                    "cron",
                    "give cron (\"0 9 * * *\") or every (\"15m\") to say when it fires",
                ));
            }
        };
        let t = &self.task;
        if t.idempotency_key.is_some() {
            return Err(err(
                "task.idempotency_key",
                "each firing gets its own key (the schedule and its time); leave it out",
            ));
        }
        if !t.after.is_empty() {
            return Err(err(
                "task.after",
                "a scheduled task cannot wait for other tasks; leave it out",
            ));
        }
        if t.run_after.is_some() || t.delay.is_some() {
            return Err(err(
                "task.run_after",
                "the schedule says when its tasks start; leave run_after and delay out",
            ));
        }
        if t.command.is_none() && t.argv.is_none() && t.agent.is_none() && t.llm.is_none() {
            return Err(err("task", "give the task a command, argv, agent or llm"));
        }
        self.task.clone().validate()?;
        Ok(ValidSchedule { spec: self, when })
    }
}

fn at_millis(tz: &chrono_tz::Tz, t: Timestamp) -> Option<DateTime<chrono_tz::Tz>> {
    tz.timestamp_millis_opt(t.0).single()
}

fn rfc3339(t: Timestamp) -> String {
    t.rfc3339()
}

fn offset_at(tz: chrono_tz::Tz, t: i64) -> Option<i32> {
    use chrono::Offset as _;
    let utc = DateTime::from_timestamp_millis(t)?.naive_utc();
    Some(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

/// The first instant in `(lo, hi]` of a clock set back (daylight saving ending)
/// between `lo` and `hi`, if there is one.
fn fall_back_between(tz: chrono_tz::Tz, lo: i64, hi: i64) -> Option<i64> {
    let before = offset_at(tz, lo)?;
    let after = offset_at(tz, hi)?;
    if after >= before {
        return None;
    }
    let (mut lo, mut hi) = (lo, hi);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, mid)? == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

/// The first time strictly after `t` that `cron` matches on the wall clock of `tz`,
/// as the clock is lived: when it is set back, the repeated wall-clock times match
/// again for a job with wildcards or steps (`*/15 * * * *` runs every 15 minutes
/// through the night), and once for a job at a fixed time (`30 2 * * *`); a time the
/// clock skips runs at the first minute after the gap for a fixed-time job, and not
/// at all for the others (croner's rules).
fn cron_next_after(cron: &croner::Cron, tz: chrono_tz::Tz, t: Timestamp) -> Option<Timestamp> {
    // Cron times are whole seconds; croner is given and gives whole seconds.
    let mut start = at_millis(&tz, Timestamp(t.0.div_euclid(1000) * 1000))?;
    // Each round moves past one wall-clock match; only the repeated hour of a set-back
    // clock takes more than one.
    for _ in 0..10_000 {
        let mut found = cron.iter_after(start);
        let first = found.next()?;
        // croner yields the second instant of an ambiguous wall-clock time next.
        let second = found
            .next()
            .filter(|d| d.naive_local() == first.naive_local());
        let mut best = [Some(&first), second.as_ref()]
            .into_iter()
            .flatten()
            .map(|d| d.timestamp() * 1000)
            .filter(|x| *x > t.0)
            .min();
        // A clock set back between `t` and that match lives some wall-clock times
        // again, before the match.
        let until = best.unwrap_or(first.timestamp() * 1000);
        if let Some(back) = fall_back_between(tz, t.0, until) {
            for d in cron
                .iter_from(at_millis(&tz, Timestamp(back))?, croner::Direction::Forward)
                .take(3)
            {
                let x = d.timestamp() * 1000;
                if x > t.0 && best.is_none_or(|b| x < b) {
                    best = Some(x);
                }
            }
        }
        if let Some(b) = best {
            return Some(Timestamp(b));
        }
        // The match lies before `t`: `t` is in the repeated hour. Go on past it.
        start = tz.from_local_datetime(&first.naive_local()).latest()?;
    }
    None
}

impl ValidSchedule {
    /// The schedule as written.
    pub fn spec(&self) -> &ScheduleSpec {
        &self.spec
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The first firing time strictly after `t`; `every` intervals count from
    /// `anchor` (when the schedule was added). `None` when there is none.
    pub fn next_after(&self, t: Timestamp, anchor: Timestamp) -> Option<Timestamp> {
        match &self.when {
            When::Every(every) => {
                let p = every.as_millis() as i64;
                if t.0 < anchor.0 {
                    return anchor.0.checked_add(p).map(Timestamp);
                }
                let k = (t.0 - anchor.0) / p + 1;
                k.checked_mul(p)
                    .and_then(|d| anchor.0.checked_add(d))
                    .map(Timestamp)
            }
            When::Cron(cron, tz) => cron_next_after(cron, *tz, t),
        }
    }

    /// The latest firing time at or before `now`, counting from `due` (itself one),
    /// and how many there are from `due` to it, counted up to a bound.
    fn latest_and_count(
        &self,
        due: Timestamp,
        now: Timestamp,
        anchor: Timestamp,
    ) -> (Timestamp, u64) {
        match &self.when {
            When::Every(every) => {
                let p = every.as_millis() as i64;
                let k = (now.0 - due.0) / p;
                (Timestamp(due.0 + k * p), k as u64 + 1)
            }
            When::Cron(cron, tz) => {
                let mut latest = due;
                let mut n = 1;
                while n < MAX_COUNTED {
                    match self.next_after(latest, anchor) {
                        Some(next) if next <= now => {
                            latest = next;
                            n += 1;
                        }
                        _ => return (latest, n),
                    }
                }
                // Too many to count one by one: jump to the latest by looking back.
                let back = at_millis(tz, now)
                    .and_then(|start| cron.find_previous_occurrence(&start, true).ok())
                    .map(|d| Timestamp(d.timestamp_millis()))
                    .filter(|t| *t <= now && *t >= latest);
                (back.unwrap_or(latest), n)
            }
        }
    }

    /// What to do at `now` with a schedule that was due at `due`: the latest firing
    /// time that has come fires when it is at most `late_after` late; otherwise every
    /// time that has come was missed and `missed` says whether one catch-up runs.
    /// Never more than one task per look, however long the downtime.
    pub fn plan(
        &self,
        due: Timestamp,
        anchor: Timestamp,
        now: Timestamp,
        late_after: Duration,
    ) -> Plan {
        if due > now {
            return Plan {
                fire: None,
                late: false,
                missed: 0,
                next: Some(due),
            };
        }
        let (latest, count) = self.latest_and_count(due, now, anchor);
        let next = self.next_after(now, anchor);
        let on_time = now.0 - latest.0 <= late_after.as_millis() as i64;
        match (on_time, self.spec.missed) {
            (true, _) | (false, Missed::Once) => Plan {
                fire: Some(latest),
                late: !on_time,
                missed: count - 1,
                next,
            },
            (false, Missed::Skip) => Plan {
                fire: None,
                late: true,
                missed: count,
                next,
            },
        }
    }

    /// The task a firing at `fire` submits: the schedule's task with an idempotency
    /// key made of the schedule and the time (`run` for a firing by hand), the label
    /// `schedule:NAME`, and `MEANWHILE_SCHEDULE` and `MEANWHILE_SCHEDULED_AT` in its
    /// environment.
    pub fn task_for(&self, fire: Timestamp, by_hand: bool) -> TaskSpec {
        let name = &self.spec.name;
        let mut task = self.spec.task.clone();
        task.idempotency_key = Some(if by_hand {
            format!("schedule:{name}:run:{}", fire.0)
        } else {
            format!("schedule:{name}:{}", fire.0)
        });
        let label = format!("schedule:{name}");
        if !task.labels.contains(&label) {
            task.labels.push(label);
        }
        task.env
            .insert("MEANWHILE_SCHEDULE".to_string(), name.clone());
        task.env
            .insert("MEANWHILE_SCHEDULED_AT".to_string(), rfc3339(fire));
        task
    }

    /// `t` on the schedule's wall clock (its time zone; UTC for `every`), as people
    /// read it: `2026-11-28 09:00:00 CET`.
    pub fn wall_clock(&self, t: Timestamp) -> String {
        let tz = match &self.when {
            When::Cron(_, tz) => *tz,
            When::Every(_) => chrono_tz::UTC,
        };
        match at_millis(&tz, t) {
            Some(d) => d.format("%Y-%m-%d %H:%M:%S %Z").to_string(),
            None => rfc3339(t),
        }
    }

    /// When the schedule says, in words (`cron "0 9 * * *" in Europe/Berlin`,
    /// `every 15m`).
    pub fn describe(&self) -> String {
        match &self.when {
            When::Cron(_, tz) => format!(
                "cron {:?} in {}",
                self.spec.cron.as_deref().unwrap_or_default(),
                tz.name()
            ),
            When::Every(d) => format!("every {}", crate::format_duration_exact(*d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    fn spec(cron: Option<&str>, tz: Option<&str>, every: Option<Duration>) -> ScheduleSpec {
        ScheduleSpec {
            name: "nightly".into(),
            cron: cron.map(Into::into),
            tz: tz.map(Into::into),
            every,
            missed: Missed::Skip,
            task: TaskSpec::shell("true"),
        }
    }

    fn local(tz: chrono_tz::Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Timestamp {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap();
        Timestamp(
            tz.from_local_datetime(&naive)
                .earliest()
                .unwrap()
                .timestamp_millis(),
        )
    }

    fn show(tz: chrono_tz::Tz, t: Timestamp) -> String {
        at_millis(&tz, t)
            .unwrap()
            .format("%m-%d %H:%M %Z")
            .to_string()
    }

    /// Runs a schedule the way the runtime does, with a clock stepped by `step` from
    /// `from` to `to`, and returns the firing times. `down` is a stretch in which no
    /// look happens (the runtime is not running).
    fn simulate(
        s: &ValidSchedule,
        anchor: Timestamp,
        from: Timestamp,
        to: Timestamp,
        step: Duration,
        down: Option<(Timestamp, Timestamp)>,
    ) -> (Vec<(Timestamp, bool)>, u64) {
        let mut due = s.next_after(from, anchor);
        let mut fired = Vec::new();
        let mut missed = 0;
        let mut now = from;
        while now <= to {
            let asleep = down.is_some_and(|(a, b)| now >= a && now < b);
            if let (false, Some(d)) = (asleep, due)
                && d <= now
            {
                let p = s.plan(d, anchor, now, DEFAULT_LATE_AFTER);
                if let Some(f) = p.fire {
                    fired.push((f, p.late));
                }
                missed += p.missed;
                due = p.next;
            }
            now = Timestamp(now.0 + step.as_millis() as i64);
        }
        (fired, missed)
    }

    #[test]
    fn validation_names_the_field() {
        let cases: Vec<(ScheduleSpec, &str)> = vec![
            (spec(None, None, None), "cron"),
            (
                spec(Some("0 9 * * *"), None, Some(Duration::from_secs(60))),
                "cron",
            ),
            (spec(Some("0 9 * *"), None, None), "cron"),
            (spec(Some("61 9 * * *"), None, None), "cron"),
            (spec(Some("0 9 * * *"), Some("Mars/Olympus"), None), "tz"),
            (spec(None, Some("UTC"), Some(Duration::from_secs(60))), "tz"),
            (spec(None, None, Some(Duration::ZERO)), "every"),
            (spec(None, None, Some(Duration::from_micros(1500))), "every"),
            (
                ScheduleSpec {
                    name: "a b".into(),
                    ..spec(None, None, Some(Duration::from_secs(60)))
                },
                "name",
            ),
            (
                ScheduleSpec {
                    task: TaskSpec {
                        idempotency_key: Some("k".into()),
                        ..TaskSpec::shell("true")
                    },
                    ..spec(None, None, Some(Duration::from_secs(60)))
                },
                "task.idempotency_key",
            ),
            (
                ScheduleSpec {
                    task: TaskSpec::default(),
                    ..spec(None, None, Some(Duration::from_secs(60)))
                },
                "task",
            ),
            (
                ScheduleSpec {
                    task: TaskSpec::shell(" "),
                    ..spec(None, None, Some(Duration::from_secs(60)))
                },
                "command",
            ),
        ];
        for (s, field) in cases {
            let e = s.clone().validate().expect_err(&format!("{s:?}"));
            assert_eq!(e.field, field, "{s:?}: {e}");
        }
        assert!(
            spec(Some("*/15 * * * *"), Some("Europe/Berlin"), None)
                .validate()
                .is_ok()
        );
        assert!(
            spec(Some("0 0 9 * * MON-FRI"), None, None)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn every_counts_from_its_anchor() {
        let s = spec(None, None, Some(Duration::from_secs(60)))
            .validate()
            .unwrap();
        let anchor = Timestamp(1_000_000);
        assert_eq!(
            s.next_after(Timestamp(0), anchor),
            Some(Timestamp(1_060_000))
        );
        assert_eq!(s.next_after(anchor, anchor), Some(Timestamp(1_060_000)));
        assert_eq!(
            s.next_after(Timestamp(1_060_000), anchor),
            Some(Timestamp(1_120_000))
        );
        assert_eq!(
            s.next_after(Timestamp(1_119_999), anchor),
            Some(Timestamp(1_120_000))
        );
    }

    #[test]
    fn a_long_downtime_fires_once_or_not_at_all() {
        let anchor = Timestamp(0);
        let hour = Duration::from_secs(3600);
        let mut s = spec(None, None, Some(hour));
        let skip = s.clone().validate().unwrap();
        s.missed = Missed::Once;
        let once = s.validate().unwrap();
        // Due at 1h, looked at only at 5h30m: 1h..5h came (five times).
        let now = Timestamp(5 * 3_600_000 + 1_800_000);
        let p = skip.plan(Timestamp(3_600_000), anchor, now, DEFAULT_LATE_AFTER);
        assert_eq!(
            p,
            Plan {
                fire: None,
                late: true,
                missed: 5,
                next: Some(Timestamp(6 * 3_600_000))
            }
        );
        let p = once.plan(Timestamp(3_600_000), anchor, now, DEFAULT_LATE_AFTER);
        assert_eq!(
            p,
            Plan {
                fire: Some(Timestamp(5 * 3_600_000)),
                late: true,
                missed: 4,
                next: Some(Timestamp(6 * 3_600_000))
            }
        );
        // 30 s late is on time, and the policy does not matter.
        let now = Timestamp(3_600_000 + 30_000);
        for s in [&skip, &once] {
            let p = s.plan(Timestamp(3_600_000), anchor, now, DEFAULT_LATE_AFTER);
            assert_eq!(p.fire, Some(Timestamp(3_600_000)));
            assert!(!p.late);
            assert_eq!(p.missed, 0);
        }
        // Not yet due: nothing.
        let p = skip.plan(
            Timestamp(3_600_000),
            anchor,
            Timestamp(10),
            DEFAULT_LATE_AFTER,
        );
        assert_eq!(p.fire, None);
        assert_eq!(p.next, Some(Timestamp(3_600_000)));
    }

    #[test]
    fn the_task_of_a_firing_names_its_schedule_and_time() {
        let s = spec(None, None, Some(Duration::from_secs(60)))
            .validate()
            .unwrap();
        let t = s.task_for(Timestamp(1_800_000_000_000), false);
        assert_eq!(
            t.idempotency_key.as_deref(),
            Some("schedule:nightly:1800000000000")
        );
        assert_eq!(t.labels, vec!["schedule:nightly".to_string()]);
        assert_eq!(t.env["MEANWHILE_SCHEDULE"], "nightly");
        assert_eq!(t.env["MEANWHILE_SCHEDULED_AT"], "2027-01-15T08:00:00.000Z");
        t.validate().unwrap();
        let by_hand = s.task_for(Timestamp(5), true);
        assert_eq!(
            by_hand.idempotency_key.as_deref(),
            Some("schedule:nightly:run:5")
        );
    }

    /// A whole day of a schedule every 15 minutes and of one at 02:30 each night, in
    /// Berlin, across the spring-forward night (02:00 → 03:00 on 2026-03-29) and the
    /// fall-back night (03:00 → 02:00 on 2026-10-25), with the clock stepped by 10 s.
    #[test]
    fn a_day_of_cron_across_daylight_saving_transitions() {
        let berlin = chrono_tz::Europe::Berlin;
        let quarter = spec(Some("*/15 * * * *"), Some("Europe/Berlin"), None)
            .validate()
            .unwrap();
        let nightly = spec(Some("30 2 * * *"), Some("Europe/Berlin"), None)
            .validate()
            .unwrap();
        let step = Duration::from_secs(10);
        for (day, hours) in [(29u32, 23u64), (25, 25)] {
            let month = if day == 29 { 3 } else { 10 };
            let from = local(berlin, 2026, month, day, 0, 0);
            let to = local(berlin, 2026, month, day + 1, 0, 0);
            assert_eq!(
                (to.0 - from.0) as u64,
                hours * 3_600_000,
                "a {hours}-hour day"
            );
            // One firing every 15 minutes of the day as it is lived: 92 on the short
            // day, 100 on the long one, each at a quarter hour, none twice.
            let start = Timestamp(from.0 - 1);
            let (fired, missed) = simulate(
                &quarter,
                Timestamp(0),
                start,
                Timestamp(to.0 - 1),
                step,
                None,
            );
            assert_eq!(
                fired.len() as u64,
                hours * 4,
                "{:?}",
                fired.iter().map(|f| show(berlin, f.0)).collect::<Vec<_>>()
            );
            assert_eq!(missed, 0);
            for w in fired.windows(2) {
                assert_eq!(
                    w[1].0.0 - w[0].0.0,
                    900_000,
                    "{} then {}",
                    show(berlin, w[0].0),
                    show(berlin, w[1].0)
                );
            }
            assert!(fired.iter().all(|f| !f.1));
            // The nightly job runs exactly once on both nights.
            let (fired, _) = simulate(
                &nightly,
                Timestamp(0),
                start,
                Timestamp(to.0 - 1),
                step,
                None,
            );
            let shown: Vec<String> = fired.iter().map(|f| show(berlin, f.0)).collect();
            assert_eq!(fired.len(), 1, "{shown:?}");
            if day == 29 {
                // 02:30 does not exist that night; croner runs it at the first minute
                // that does.
                assert_eq!(shown, vec!["03-29 03:00 CEST"]);
            } else {
                // 02:30 happens twice that night; it runs at the first.
                assert_eq!(shown, vec!["10-25 02:30 CEST"]);
            }
        }
    }

    /// A day of an hourly schedule with the runtime down from 09:10 to 12:20: `skip`
    /// runs nothing for 10:00, 11:00 and 12:00, `once` runs 12:00 late, and both go on
    /// at 13:00.
    #[test]
    fn a_day_with_downtime_in_utc() {
        let utc = chrono_tz::UTC;
        let mut s = spec(Some("0 * * * *"), None, None);
        let skip = s.clone().validate().unwrap();
        s.missed = Missed::Once;
        let once = s.validate().unwrap();
        let from = local(utc, 2026, 6, 1, 0, 0);
        let to = local(utc, 2026, 6, 2, 0, 0);
        let down = (
            local(utc, 2026, 6, 1, 9, 10),
            local(utc, 2026, 6, 1, 12, 20),
        );
        let step = Duration::from_secs(30);
        let (fired, missed) = simulate(&skip, from, from, Timestamp(to.0 - 1), step, Some(down));
        assert_eq!(fired.len(), 23 - 3);
        assert_eq!(missed, 3);
        assert!(!fired.iter().any(|f| f.1));
        let (fired, missed) = simulate(&once, from, from, Timestamp(to.0 - 1), step, Some(down));
        assert_eq!(fired.len(), 23 - 2);
        assert_eq!(missed, 2);
        let late: Vec<String> = fired
            .iter()
            .filter(|f| f.1)
            .map(|f| show(utc, f.0))
            .collect();
        assert_eq!(late, vec!["06-01 12:00 UTC"]);
    }
}
