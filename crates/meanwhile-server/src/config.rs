//! The daemon's settings: defaults, then `$MEANWHILE_HOME/config.toml`, then
//! environment variables, then command-line flags (each later one wins).
//!
//! The reference, with every default, is in this crate's README.md.

use crate::error::ServerError;
use meanwhile_core::http::QueueUpdate;
use meanwhile_core::{RateLimit, parse_duration, serde_opt_duration};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything the daemon can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The home directory: database, logs, socket, token.
    pub home: PathBuf,
    /// Also listen on this TCP address (bearer token required). Default: none.
    pub listen: Option<SocketAddr>,
    /// Stop running tasks on shutdown instead of leaving them for the next daemon.
    /// Default: false (live restore).
    pub stop_tasks: bool,
    /// Time between SIGTERM and SIGKILL when stopping a task. Default 5s.
    pub grace: Duration,
    /// Timeout given to tasks submitted without one. Default: none.
    pub default_timeout: Option<Duration>,
    /// The most output a task's log keeps when neither its spec nor its queue
    /// says (`[tasks] max_output`, `"none"` for no bound). Default 1G.
    pub max_output: Option<meanwhile_core::ByteSize>,
    /// Largest request body accepted, in bytes. Default 4 MiB.
    pub max_body_bytes: usize,
    /// Most connections open at once on each TCP listener (`max_connections`,
    /// `MEANWHILE_MAX_CONNECTIONS`); more are answered 503 and closed. Default: a
    /// quarter of the open-files limit.
    pub max_connections: Option<usize>,
    /// How long a request's headers may take to arrive, from their first byte
    /// (`header_timeout`, `MEANWHILE_HEADER_TIMEOUT`). Default 10s.
    pub header_timeout: Duration,
    /// How long a connection with no request in flight stays open
    /// (`idle_timeout`, `MEANWHILE_IDLE_TIMEOUT`). Default 60s.
    pub idle_timeout: Duration,
    /// This node's name in attempts; the host name when absent.
    pub node: Option<String>,
    /// The PostgreSQL database a fleet of nodes shares (`database_url`,
    /// `MEANWHILE_DATABASE_URL`); the SQLite file in the home when absent.
    pub database_url: Option<String>,
    /// Where the other nodes reach this one's API (`node_address`,
    /// `MEANWHILE_NODE_ADDRESS`, `host:port`); the TCP listen address when absent.
    pub node_address: Option<String>,
    /// How long a claim holds a task without renewal (`lease`, `MEANWHILE_LEASE`):
    /// in a fleet, how long a dead node's tasks wait before another node runs them.
    /// Default 60s.
    pub lease: Duration,
    /// What is removed, and how often.
    pub retention: Retention,
    /// Queues to create or change at start, by name.
    pub queues: BTreeMap<String, QueueSettings>,
    /// How late a schedule's firing may come and still run as on time; later ones
    /// were missed (`[schedules] late_after`). Default 1m.
    pub schedule_late_after: Duration,
    /// What runs at the end of every task (`[hooks]`).
    pub hooks: Hooks,
    /// Where alerts go (`[[alerts.sinks]]`).
    pub alert_sinks: Vec<AlertSinkSettings>,
    /// The dead man's switch: a URL fetched every `heartbeat_every` while the daemon
    /// runs, so a monitor outside notices when it stops (`[alerts] heartbeat_url`).
    pub heartbeat_url: Option<String>,
    /// How often the heartbeat URL is fetched. Default 1m.
    pub heartbeat_every: Duration,
    /// For tests (`MEANWHILE_TEST_CLOCK`, not in config.toml): the daemon's clock
    /// runs this far ahead of the system's, and `meanwhile daemon clock --advance`
    /// moves it further. Default: none, the system's clock.
    pub test_clock: Option<Duration>,
    /// A node of the fleet without a heartbeat for this long raises `node_silent`
    /// (`[alerts] node_silent_after`). Default 30s.
    pub node_silent_after: Duration,
    /// How often the sinks are reminded of an alert that still fires and that no
    /// one acknowledged (`[alerts] repeat_every`, `"none"` for never). Default 4h.
    pub alert_repeat: Option<Duration>,
}

/// One alert sink: a webhook (optionally signed) or a command.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSinkSettings {
    /// A URL each alert change is POSTed to as JSON.
    pub webhook: Option<String>,
    /// The key of the webhook's HMAC-SHA256 signature.
    pub secret: Option<String>,
    /// A command run with `sh -c`, with `MEANWHILE_ALERT_*` set.
    pub command: Option<String>,
}

/// What runs at the end of every task, besides a task's own `on_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooks {
    /// A command run with `sh -c`, with `MEANWHILE_TASK_ID`, `MEANWHILE_TASK_STATE`
    /// and `MEANWHILE_EXIT_CODE` set. Default: none.
    pub on_end: Option<String>,
    /// A URL the end is POSTed to as JSON, tried again with backoff. Default: none.
    pub webhook: Option<String>,
    /// The key of the webhook's HMAC-SHA256 signature (`X-Meanwhile-Signature`).
    pub secret: Option<String>,
    /// How long an end command may run. Default 1m.
    pub timeout: Duration,
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            on_end: None,
            webhook: None,
            secret: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Retention of finished tasks and their logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Remove tasks that finished longer ago than this, and alerts resolved that long
    /// ago. Default 30 days; `off` keeps them by age.
    pub max_age: Option<Duration>,
    /// Keep at most this many finished tasks (the newest). Default: no limit.
    pub keep_last: Option<u64>,
    /// How often to clean. Default 1h.
    pub interval: Duration,
    /// Remove events older than this from the event log. Default 30 days; `off`
    /// keeps them by age.
    pub events_max_age: Option<Duration>,
    /// Keep at most this many events (the newest). Default 1,000,000.
    pub events_keep_last: Option<u64>,
    /// Remove audit records older than this, behind a signed checkpoint that keeps
    /// the rest verifiable. Default 365 days; `off` keeps them all.
    pub audit_max_age: Option<Duration>,
    /// Forget the conversations of agent sessions idle longer than this. Default 30
    /// days; `off` keeps them.
    pub sessions_max_age: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_age: Some(Duration::from_secs(30 * 86400)),
            keep_last: None,
            interval: Duration::from_secs(3600),
            events_max_age: Some(Duration::from_secs(30 * 86400)),
            events_keep_last: Some(1_000_000),
            audit_max_age: Some(Duration::from_secs(365 * 86400)),
            sessions_max_age: Some(Duration::from_secs(30 * 86400)),
        }
    }
}

/// A queue's settings. Each one left out keeps what the store has.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// How many of its tasks may run at once.
    pub max_parallel: Option<u32>,
    /// Start paused.
    pub paused: Option<bool>,
    /// How many of its tasks with the same concurrency key may run at once
    /// (`per_key = 2`); `Some(None)` (`per_key = "none"`) removes the limit.
    #[serde(default, deserialize_with = "per_key_setting")]
    pub per_key: Option<Option<u32>>,
    /// At most this many task starts per window (`rate = "60/m"`); `Some(None)`
    /// (`rate = "none"`) removes the limit.
    #[serde(default, deserialize_with = "rate_setting")]
    pub rate: Option<Option<RateLimit>>,
    /// A `failures` alert after this many failed tasks in a row (`alert_after = 3`);
    /// `Some(None)` (`alert_after = "none"`) removes it.
    #[serde(default, deserialize_with = "per_key_setting")]
    pub alert_after: Option<Option<u32>>,
    /// Its budget, set at each start (`budget = { tokens = 100000, window = "day" }`,
    /// the fields of `PUT /v1/budgets/{queue}`); one left out of the file stays as
    /// `meanwhile budget` set it.
    pub budget: Option<meanwhile_core::BudgetSpec>,
    /// Sandbox the queue's command, argv and agent tasks whose specs leave
    /// `sandbox` out (`sandbox = true`).
    pub sandbox: Option<bool>,
    /// Run its command and argv tasks without network unless their specs say.
    pub no_network: Option<bool>,
    /// The memory limit of its command and argv tasks that give none (`"2G"`).
    pub memory: Option<meanwhile_core::ByteSize>,
    /// Their CPU time limit (`"10m"`).
    #[serde(default, with = "serde_opt_duration")]
    pub cpu_time: Option<Duration>,
    /// Their process limit.
    pub max_procs: Option<u32>,
    /// Their open files limit.
    pub max_files: Option<u32>,
    /// The most output their logs keep (`"100M"`).
    pub max_output: Option<meanwhile_core::ByteSize>,
}

impl QueueSettings {
    /// What these settings fill in the specs of the queue's tasks.
    pub fn defaults(&self) -> meanwhile_core::TaskDefaults {
        meanwhile_core::TaskDefaults {
            sandbox: self.sandbox,
            no_network: self.no_network,
            memory: self.memory,
            cpu_time: self.cpu_time,
            max_procs: self.max_procs,
            max_files: self.max_files,
            max_output: self.max_output,
        }
    }

    /// The change these settings make to their queue.
    pub fn update(&self) -> QueueUpdate {
        QueueUpdate {
            max_parallel: self.max_parallel,
            paused: self.paused,
            per_key: self.per_key,
            rate: self.rate,
            alert_after: self.alert_after,
        }
    }
}

/// `per_key = 2`, or `per_key = "none"`.
fn per_key_setting<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    let bad = |got: String| {
        serde::de::Error::custom(format!(
            "per_key must be a whole number from 1 to {}, or \"none\" for no limit, got {got}",
            u32::MAX
        ))
    };
    match Raw::deserialize(d)? {
        Raw::Number(n) => match u32::try_from(n) {
            Ok(n) if n >= 1 => Ok(Some(Some(n))),
            _ => Err(bad(n.to_string())),
        },
        Raw::Text(t) if t.trim() == "none" => Ok(Some(None)),
        Raw::Text(t) => Err(bad(format!("{t:?}"))),
    }
}

/// `rate = "60/m"`, or `rate = "none"`.
fn rate_setting<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<RateLimit>>, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim() {
        "none" => Ok(Some(None)),
        t => t
            .parse::<RateLimit>()
            .map(|r| Some(Some(r)))
            .map_err(serde::de::Error::custom),
    }
}

impl Settings {
    /// The defaults for `home`.
    pub fn new(home: impl Into<PathBuf>) -> Settings {
        Settings {
            home: home.into(),
            listen: None,
            stop_tasks: false,
            grace: Duration::from_secs(5),
            default_timeout: None,
            max_output: Some(meanwhile_core::ByteSize(
                meanwhile_runtime::DEFAULT_MAX_OUTPUT,
            )),
            max_body_bytes: 4 << 20,
            max_connections: None,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            node: None,
            database_url: None,
            node_address: None,
            lease: Duration::from_secs(60),
            retention: Retention::default(),
            queues: BTreeMap::new(),
            schedule_late_after: meanwhile_core::DEFAULT_LATE_AFTER,
            hooks: Hooks::default(),
            alert_sinks: Vec::new(),
            heartbeat_url: None,
            heartbeat_every: Duration::from_secs(60),
            test_clock: None,
            node_silent_after: Duration::from_secs(30),
            alert_repeat: Some(Duration::from_secs(4 * 3600)),
        }
    }

    /// The defaults, overridden by `home/config.toml` when it exists, then by the
    /// process's environment.
    pub fn load(home: &Path) -> Result<Settings, ServerError> {
        let mut s = Settings::new(home);
        let path = home.join("config.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => s.apply_file(&text, &path.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ServerError::io(format!("reading {}", path.display()))(e)),
        }
        s.apply_env(|k| std::env::var(k).ok())?;
        Ok(s)
    }

    /// Applies the settings of a `config.toml`.
    pub fn apply_file(&mut self, text: &str, origin: &str) -> Result<(), ServerError> {
        let f: FileSettings = toml::from_str(text).map_err(|e| ServerError::Config {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let bad = |message: String| ServerError::Config {
            origin: origin.to_string(),
            message,
        };
        if let Some(l) = f.listen {
            self.listen = Some(parse_listen(&l).map_err(bad)?);
        }
        if let Some(v) = f.stop_tasks {
            self.stop_tasks = v;
        }
        if let Some(g) = f.grace {
            self.grace = g;
        }
        if f.default_timeout.is_some() {
            self.default_timeout = f.default_timeout.filter(|d| !d.is_zero());
        }
        if let Some(t) = f.tasks
            && let Some(m) = t.max_output
        {
            self.max_output = parse_max_output(&m).map_err(bad)?;
        }
        if let Some(n) = f.max_body_bytes {
            self.max_body_bytes = n;
        }
        if let Some(n) = f.max_connections {
            self.max_connections = Some(check_max_connections(n).map_err(bad)?);
        }
        if let Some(t) = f.header_timeout {
            self.header_timeout = check_timeout("header_timeout", t).map_err(bad)?;
        }
        if let Some(t) = f.idle_timeout {
            self.idle_timeout = check_timeout("idle_timeout", t).map_err(bad)?;
        }
        if f.node.is_some() {
            self.node = f.node;
        }
        if f.database_url.is_some() {
            self.database_url = f.database_url.filter(|u| !u.trim().is_empty());
        }
        if f.node_address.is_some() {
            self.node_address = f.node_address.filter(|u| !u.trim().is_empty());
        }
        if let Some(l) = f.lease {
            self.lease = check_lease(l).map_err(bad)?;
        }
        if let Some(r) = f.retention {
            if let Some(a) = r.max_age {
                self.retention.max_age = parse_age(&a).map_err(bad)?;
            }
            if r.keep_last.is_some() {
                self.retention.keep_last = r.keep_last;
            }
            if let Some(i) = r.interval {
                self.retention.interval = i.max(Duration::from_secs(1));
            }
            if let Some(a) = r.events_max_age {
                self.retention.events_max_age = parse_age(&a).map_err(bad)?;
            }
            if r.events_keep_last.is_some() {
                self.retention.events_keep_last = r.events_keep_last;
            }
            if let Some(a) = r.audit_max_age {
                self.retention.audit_max_age = parse_age(&a).map_err(bad)?;
            }
            if let Some(a) = r.sessions_max_age {
                self.retention.sessions_max_age = parse_age(&a).map_err(bad)?;
            }
        }
        for (name, q) in &f.queues {
            for (field, v) in [("max_procs", q.max_procs), ("max_files", q.max_files)] {
                if v == Some(0) {
                    return Err(bad(format!(
                        "queues.{name}.{field} must be at least 1; leave it out for no limit"
                    )));
                }
            }
        }
        self.queues.extend(f.queues);
        if let Some(l) = f.schedules.and_then(|s| s.late_after) {
            self.schedule_late_after = l;
        }
        if let Some(a) = f.alerts {
            if a.heartbeat_url.is_some() {
                self.heartbeat_url = a.heartbeat_url.filter(|u| !u.trim().is_empty());
            }
            if let Some(e) = a.heartbeat_every {
                if e.is_zero() {
                    return Err(bad("alerts.heartbeat_every must be longer than 0s".into()));
                }
                self.heartbeat_every = e;
            }
            if let Some(s) = a.node_silent_after {
                if s.is_zero() {
                    return Err(bad("alerts.node_silent_after must be longer than 0s".into()));
                }
                self.node_silent_after = s;
            }
            if let Some(r) = a.repeat_every {
                if r.is_some_and(|r| r.is_zero()) {
                    return Err(bad(
                        "alerts.repeat_every must be longer than 0s, or \"none\" for no reminders"
                            .into(),
                    ));
                }
                self.alert_repeat = r;
            }
            for (i, sink) in a.sinks.into_iter().enumerate() {
                match (&sink.webhook, &sink.command) {
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => {
                        return Err(bad(format!(
                            "alerts.sinks[{i}]: give either webhook or command"
                        )));
                    }
                }
                if sink.secret.is_some() && sink.webhook.is_none() {
                    return Err(bad(format!(
                        "alerts.sinks[{i}]: secret signs a webhook; give webhook with it"
                    )));
                }
                self.alert_sinks.push(sink);
            }
        }
        if let Some(h) = f.hooks {
            if h.on_end.is_some() {
                self.hooks.on_end = h.on_end.filter(|c| !c.trim().is_empty());
            }
            if h.webhook.is_some() {
                self.hooks.webhook = h.webhook.filter(|u| !u.trim().is_empty());
            }
            if h.secret.is_some() {
                self.hooks.secret = h.secret.filter(|s| !s.is_empty());
            }
            if let Some(t) = h.timeout {
                self.hooks.timeout = t.max(Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// Applies environment variables, read through `var`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ServerError> {
        let bad = |name: &str| {
            let name = name.to_string();
            move |message: String| ServerError::Config {
                origin: name,
                message,
            }
        };
        let dur = |name: &str| -> Result<Option<Duration>, ServerError> {
            var(name)
                .map(|v| parse_duration(&v).map_err(|e| bad(name)(e.to_string())))
                .transpose()
        };
        let num = |name: &str| -> Result<Option<u64>, ServerError> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| bad(name)(format!("expected a whole number, got {v:?}")))
                })
                .transpose()
        };
        if let Some(l) = var("MEANWHILE_LISTEN") {
            self.listen = Some(parse_listen(&l).map_err(bad("MEANWHILE_LISTEN"))?);
        }
        if let Some(g) = dur("MEANWHILE_GRACE")? {
            self.grace = g;
        }
        if let Some(t) = dur("MEANWHILE_DEFAULT_TIMEOUT")? {
            self.default_timeout = Some(t).filter(|d| !d.is_zero());
        }
        if let Some(n) = num("MEANWHILE_MAX_BODY_BYTES")? {
            self.max_body_bytes = n as usize;
        }
        if let Some(n) = num("MEANWHILE_MAX_CONNECTIONS")? {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            self.max_connections =
                Some(check_max_connections(n).map_err(bad("MEANWHILE_MAX_CONNECTIONS"))?);
        }
        if let Some(t) = dur("MEANWHILE_HEADER_TIMEOUT")? {
            self.header_timeout =
                check_timeout("header_timeout", t).map_err(bad("MEANWHILE_HEADER_TIMEOUT"))?;
        }
        if let Some(t) = dur("MEANWHILE_IDLE_TIMEOUT")? {
            self.idle_timeout =
                check_timeout("idle_timeout", t).map_err(bad("MEANWHILE_IDLE_TIMEOUT"))?;
        }
        if let Some(n) = num("MEANWHILE_MAX_PARALLEL")? {
            let q = self.queues.entry("default".into()).or_default();
            q.max_parallel = Some(n.clamp(1, u32::MAX as u64) as u32);
        }
        if let Some(a) = var("MEANWHILE_RETENTION_MAX_AGE") {
            self.retention.max_age = parse_age(&a).map_err(bad("MEANWHILE_RETENTION_MAX_AGE"))?;
        }
        if let Some(n) = num("MEANWHILE_RETENTION_KEEP_LAST")? {
            self.retention.keep_last = Some(n);
        }
        if let Some(a) = var("MEANWHILE_RETENTION_EVENTS_MAX_AGE") {
            self.retention.events_max_age =
                parse_age(&a).map_err(bad("MEANWHILE_RETENTION_EVENTS_MAX_AGE"))?;
        }
        if let Some(a) = var("MEANWHILE_RETENTION_SESSIONS_MAX_AGE") {
            self.retention.sessions_max_age =
                parse_age(&a).map_err(bad("MEANWHILE_RETENTION_SESSIONS_MAX_AGE"))?;
        }
        if let Some(a) = var("MEANWHILE_RETENTION_AUDIT_MAX_AGE") {
            self.retention.audit_max_age =
                parse_age(&a).map_err(bad("MEANWHILE_RETENTION_AUDIT_MAX_AGE"))?;
        }
        if let Some(n) = num("MEANWHILE_RETENTION_EVENTS_KEEP_LAST")? {
            self.retention.events_keep_last = Some(n);
        }
        if let Some(i) = dur("MEANWHILE_RETENTION_INTERVAL")? {
            self.retention.interval = i.max(Duration::from_millis(100));
        }
        if let Some(l) = dur("MEANWHILE_SCHEDULE_LATE_AFTER")? {
            self.schedule_late_after = l;
        }
        if let Some(c) = dur("MEANWHILE_TEST_CLOCK")? {
            self.test_clock = Some(c);
        }
        if let Some(c) = var("MEANWHILE_HOOK_ON_END") {
            self.hooks.on_end = Some(c).filter(|c| !c.trim().is_empty());
        }
        if let Some(u) = var("MEANWHILE_HOOK_WEBHOOK") {
            self.hooks.webhook = Some(u).filter(|u| !u.trim().is_empty());
        }
        if let Some(s) = var("MEANWHILE_HOOK_SECRET") {
            self.hooks.secret = Some(s).filter(|s| !s.is_empty());
        }
        if let Some(n) = var("MEANWHILE_NODE") {
            self.node = Some(n);
        }
        if let Some(u) = var("MEANWHILE_DATABASE_URL") {
            self.database_url = Some(u).filter(|u| !u.trim().is_empty());
        }
        if let Some(a) = var("MEANWHILE_NODE_ADDRESS") {
            self.node_address = Some(a).filter(|a| !a.trim().is_empty());
        }
        if let Some(l) = dur("MEANWHILE_LEASE")? {
            self.lease = check_lease(l).map_err(bad("MEANWHILE_LEASE"))?;
        }
        if let Some(s) = dur("MEANWHILE_NODE_SILENT_AFTER")? {
            if s.is_zero() {
                return Err(ServerError::Config {
                    origin: "MEANWHILE_NODE_SILENT_AFTER".into(),
                    message: "must be longer than 0s".into(),
                });
            }
            self.node_silent_after = s;
        }
        Ok(())
    }
}

fn check_lease(l: Duration) -> Result<Duration, String> {
    if l < Duration::from_secs(1) {
        return Err(format!(
            "lease must be 1s or longer (got {}): it is renewed every third of it",
            meanwhile_core::format_duration_exact(l)
        ));
    }
    Ok(l)
}

fn check_max_connections(n: usize) -> Result<usize, String> {
    if n == 0 {
        return Err(
            "max_connections must be at least 1; leave it out for a quarter of the open-files limit"
                .into(),
        );
    }
    Ok(n)
}

fn check_timeout(name: &str, t: Duration) -> Result<Duration, String> {
    if t.is_zero() {
        return Err(format!("{name} must be longer than 0s"));
    }
    Ok(t)
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("listen must be an address like 127.0.0.1:7070, got {s:?}"))
}

/// `[tasks] max_output`: a size of at least 64K, or `"none"`.
fn parse_max_output(s: &str) -> Result<Option<meanwhile_core::ByteSize>, String> {
    if s.trim() == "none" {
        return Ok(None);
    }
    let size = meanwhile_core::ByteSize::parse(s).map_err(|e| format!("max_output: {e}"))?;
    if size.0 < meanwhile_core::MIN_MAX_OUTPUT {
        return Err(format!(
            "max_output must be at least 64K, or \"none\" for no bound, got {s:?}"
        ));
    }
    Ok(Some(size))
}

fn parse_age(s: &str) -> Result<Option<Duration>, String> {
    match s.trim() {
        "off" | "never" | "0" => Ok(None),
        other => parse_duration(other).map(Some).map_err(|e| e.to_string()),
    }
}

/// `config.toml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    stop_tasks: Option<bool>,
    #[serde(default, with = "serde_opt_duration")]
    grace: Option<Duration>,
    #[serde(default, with = "serde_opt_duration")]
    default_timeout: Option<Duration>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    #[serde(default, with = "serde_opt_duration")]
    header_timeout: Option<Duration>,
    #[serde(default, with = "serde_opt_duration")]
    idle_timeout: Option<Duration>,
    node: Option<String>,
    database_url: Option<String>,
    node_address: Option<String>,
    #[serde(default, with = "serde_opt_duration")]
    lease: Option<Duration>,
    retention: Option<FileRetention>,
    tasks: Option<FileTasks>,
    #[serde(default)]
    queues: BTreeMap<String, QueueSettings>,
    schedules: Option<FileSchedules>,
    hooks: Option<FileHooks>,
    alerts: Option<FileAlerts>,
    /// The agent's section, read by `meanwhile-agent`'s own loader; accepted here so
    /// that the file's other sections stay checked for typos.
    #[serde(default, rename = "agent")]
    _agent: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTasks {
    max_output: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    #[serde(default)]
    sinks: Vec<AlertSinkSettings>,
    heartbeat_url: Option<String>,
    #[serde(default, with = "serde_opt_duration")]
    heartbeat_every: Option<Duration>,
    #[serde(default, with = "serde_opt_duration")]
    node_silent_after: Option<Duration>,
    #[serde(default, deserialize_with = "repeat_setting")]
    repeat_every: Option<Option<Duration>>,
}

/// `repeat_every = "4h"`, or `repeat_every = "none"`.
fn repeat_setting<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<Duration>>, D::Error> {
    let text = String::deserialize(d)?;
    match text.trim() {
        "none" => Ok(Some(None)),
        t => meanwhile_core::parse_duration(t)
            .map(|r| Some(Some(r)))
            .map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHooks {
    on_end: Option<String>,
    webhook: Option<String>,
    secret: Option<String>,
    #[serde(default, with = "serde_opt_duration")]
    timeout: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSchedules {
    #[serde(default, with = "serde_opt_duration")]
    late_after: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetention {
    max_age: Option<String>,
    keep_last: Option<u64>,
    #[serde(default, with = "serde_opt_duration")]
    interval: Option<Duration>,
    events_max_age: Option<String>,
    events_keep_last: Option<u64>,
    audit_max_age: Option<String>,
    sessions_max_age: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_output_is_a_size_or_none() {
        let mut s = Settings::new("/h");
        assert_eq!(s.max_output, Some(meanwhile_core::ByteSize(1 << 30)));
        s.apply_file(
            "[tasks]\nmax_output = \"100M\"\n[queues.chatty]\nmax_output = \"1M\"",
            "c",
        )
        .unwrap();
        assert_eq!(s.max_output, Some(meanwhile_core::ByteSize(100 << 20)));
        assert_eq!(
            s.queues["chatty"].defaults().max_output,
            Some(meanwhile_core::ByteSize(1 << 20))
        );
        s.apply_file("[tasks]\nmax_output = \"none\"", "c").unwrap();
        assert_eq!(s.max_output, None);
        let e = s
            .apply_file("[tasks]\nmax_output = \"1K\"", "c")
            .unwrap_err();
        assert!(e.to_string().contains("at least 64K"), "{e}");
    }

    #[test]
    fn file_then_env() {
        let mut s = Settings::new("/h");
        s.apply_file(
            r#"
            grace = "2s"
            default_timeout = "1h"
            [retention]
            max_age = "7d"
            keep_last = 100
            events_max_age = "2d"
            events_keep_last = 5000
            audit_max_age = "90d"
            [queues.default]
            max_parallel = 8
            [queues.gpu]
            max_parallel = 1
            paused = true
            [queues.llm]
            budget = { tokens = 100000, cost_usd = 2.5, window = "month", alarms = [90, 100] }
            [queues.agent]
            sandbox = true
            no_network = true
            memory = "2G"
            cpu_time = "10m"
            max_procs = 64
            "#,
            "config.toml",
        )
        .unwrap();
        assert_eq!(
            s.queues["agent"].defaults(),
            meanwhile_core::TaskDefaults {
                sandbox: Some(true),
                no_network: Some(true),
                memory: Some(meanwhile_core::ByteSize(2 << 30)),
                cpu_time: Some(Duration::from_secs(600)),
                max_procs: Some(64),
                max_files: None,
                max_output: None,
            }
        );
        assert!(s.queues["gpu"].defaults().is_empty());
        assert_eq!(s.grace, Duration::from_secs(2));
        assert_eq!(s.default_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(s.retention.max_age, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(s.queues["gpu"].paused, Some(true));
        assert_eq!(
            s.queues["llm"].budget,
            Some(meanwhile_core::BudgetSpec {
                tokens: Some(100_000),
                cost_usd: Some(2.5),
                window: meanwhile_core::BudgetWindow::Month,
                alarms: vec![90, 100],
            })
        );
        assert_eq!(
            s.retention.events_max_age,
            Some(Duration::from_secs(2 * 86400))
        );
        assert_eq!(s.retention.events_keep_last, Some(5000));
        assert_eq!(
            s.retention.audit_max_age,
            Some(Duration::from_secs(90 * 86400))
        );
        s.apply_env(|k| match k {
            "MEANWHILE_GRACE" => Some("250ms".into()),
            "MEANWHILE_RETENTION_MAX_AGE" => Some("off".into()),
            "MEANWHILE_MAX_PARALLEL" => Some("3".into()),
            "MEANWHILE_RETENTION_AUDIT_MAX_AGE" => Some("off".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.grace, Duration::from_millis(250));
        assert_eq!(s.retention.max_age, None);
        assert_eq!(s.queues["default"].max_parallel, Some(3));
        assert_eq!(s.retention.audit_max_age, None);
    }

    /// Regression: the daemon refused a config.toml with the `[agent]` section the
    /// README documents ("unknown field `agent`") and did not start.
    #[test]
    fn the_agent_section_is_left_to_the_agent() {
        let mut s = Settings::new("/h");
        s.apply_file(
            "grace = \"1s\"\n[agent]\nprovider = \"anthropic\"\nmodel = \"m\"\n",
            "config.toml",
        )
        .unwrap();
        assert_eq!(s.grace, Duration::from_secs(1));
    }

    #[test]
    fn queue_limits_are_set_and_removed() {
        let mut s = Settings::new("/h");
        s.apply_file(
            r#"
            [queues.llm]
            per_key = 2
            rate = "60/m"
            [queues.batch]
            per_key = "none"
            rate = "none"
            "#,
            "config.toml",
        )
        .unwrap();
        let llm = s.queues["llm"].update();
        assert_eq!(llm.per_key, Some(Some(2)));
        assert_eq!(llm.rate, Some(Some("60/m".parse().unwrap())));
        let batch = s.queues["batch"].update();
        assert_eq!((batch.per_key, batch.rate), (Some(None), Some(None)));
        assert_eq!(batch.max_parallel, None, "what is not named is left alone");
        for (text, expect) in [
            ("[queues.q]\nrate = \"fast\"", "rate must be N/s"),
            ("[queues.q]\nrate = \"0/m\"", "rate must be N/s"),
            ("[queues.q]\nper_key = 0", "per_key must be a whole number"),
            (
                "[queues.q]\nmax_procs = 0",
                "queues.q.max_procs must be at least 1",
            ),
            ("[queues.q]\nmemory = \"lots\"", "is not a size"),
            (
                "[queues.q]\nper_key = \"many\"",
                "per_key must be a whole number",
            ),
        ] {
            let e = Settings::new("/h")
                .apply_file(text, "config.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(expect), "{text}: {e}");
        }
    }

    #[test]
    fn connection_bounds_are_set_and_checked() {
        let mut s = Settings::new("/h");
        assert_eq!(
            (s.max_connections, s.header_timeout, s.idle_timeout),
            (None, Duration::from_secs(10), Duration::from_secs(60))
        );
        s.apply_file(
            "max_connections = 100\nheader_timeout = \"200ms\"\nidle_timeout = \"5s\"",
            "config.toml",
        )
        .unwrap();
        assert_eq!(
            (s.max_connections, s.header_timeout, s.idle_timeout),
            (
                Some(100),
                Duration::from_millis(200),
                Duration::from_secs(5)
            )
        );
        s.apply_env(|k| (k == "MEANWHILE_MAX_CONNECTIONS").then(|| "7".into()))
            .unwrap();
        assert_eq!(s.max_connections, Some(7));
        for (text, expect) in [
            ("max_connections = 0", "max_connections must be at least 1"),
            (
                "header_timeout = \"0s\"",
                "header_timeout must be longer than 0s",
            ),
            (
                "idle_timeout = \"0s\"",
                "idle_timeout must be longer than 0s",
            ),
        ] {
            let e = Settings::new("/h")
                .apply_file(text, "config.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(expect), "{text}: {e}");
        }
    }

    #[test]
    fn errors_name_the_setting() {
        let mut s = Settings::new("/h");
        let e = s.apply_file("colour = 1", "config.toml").unwrap_err();
        assert!(e.to_string().contains("unknown field `colour`"), "{e}");
        let e = s
            .apply_env(|k| (k == "MEANWHILE_GRACE").then(|| "soon".into()))
            .unwrap_err();
        assert!(e.to_string().starts_with("MEANWHILE_GRACE: "), "{e}");
    }
}
