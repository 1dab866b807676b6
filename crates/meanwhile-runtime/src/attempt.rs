//! One attempt of a task on this node: start it, watch it, stop it, record its end.

use crate::ShutdownMode;
use crate::context::AttemptHost;
use crate::engine::Inner;
use crate::spawn::{self, Io, SpawnRequest, Spawned};
use crate::spawner;
use crate::stop::{Escalation, StopRequest};
use futures_util::FutureExt;
use meanwhile_core::{
    AttemptOutcome, TaskId, TaskKind, TaskRecord, Timestamp, format_duration_exact,
};
use meanwhile_core::{TaskContext, TaskFuture};
use meanwhile_store::{AttemptEnd, Claimed, Finished, StoreError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How an attempt ended, before it is committed.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: Option<String>,
    pub peak_rss_kb: Option<u64>,
    pub cpu_ms: Option<u64>,
    /// On the system's clock (the supervisor's); on the runtime's once recorded.
    pub ended_at: Timestamp,
    pub result: Option<String>,
    /// The main process's pid, recorded with the end.
    pub pid: Option<i32>,
}

impl Ended {
    fn new(outcome: AttemptOutcome, reason: Option<String>) -> Ended {
        Ended {
            outcome,
            exit_code: None,
            signal: None,
            reason,
            peak_rss_kb: None,
            cpu_ms: None,
            ended_at: crate::now(),
            result: None,
            pid: None,
        }
    }

    fn failed(reason: impl Into<String>) -> Ended {
        Ended::new(AttemptOutcome::Failed, Some(reason.into()))
    }

    pub(crate) fn lost(reason: impl Into<String>) -> Ended {
        Ended::new(AttemptOutcome::Lost, Some(reason.into()))
    }
}

/// Runs a claimed attempt to its end and hands the end to the dispatcher.
pub(crate) async fn run(
    inner: Arc<Inner>,
    c: Claimed,
    stop: mpsc::UnboundedReceiver<StopRequest>,
    size: watch::Sender<u64>,
    pgid: Arc<AtomicI32>,
) {
    let id = c.task.id;
    let ended = match c.task.kind {
        TaskKind::Shell => run_shell(&inner, &c, stop, size, &pgid).await,
        TaskKind::Function => match inner.functions.get(id).await {
            Some(f) => run_in_process(&inner, &c, stop, size, move |ctx| f(ctx)).await,
            None => Some(Ended::lost(
                "its function was registered by a process that has exited; submit it again",
            )),
        },
        kind => {
            let executor = inner
                .executors
                .read()
                .ok()
                .and_then(|e| e.get(&kind).cloned());
            match executor {
                Some(ex) => {
                    let task = c.task.clone();
                    run_in_process(&inner, &c, stop, size, move |ctx| ex.run(task, ctx)).await
                }
                None => Some(Ended::failed(format!(
                    "no executor for {} tasks is registered on node {}",
                    kind.as_str(),
                    inner.node
                ))),
            }
        }
    };
    match ended {
        Some(ended) => settle(&inner, &c.task, c.attempt, ended),
        None => end_of_attempt(&inner, id),
    }
}

/// Forgets an attempt that is over (its end recorded, or left running at shutdown)
/// and wakes a shutdown waiting for the last one.
pub(crate) fn end_of_attempt(inner: &Inner, id: TaskId) {
    {
        let mut registry = inner.registry();
        registry.remove(id);
        compact_journal(inner, &registry);
    }
    if inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
        inner.idle.notify_waiters();
        // A dispatcher waiting out a shutdown can now return (and let go of the
        // runtime). Only then: otherwise the wake would cost a claim of its own
        // after every task that ran alone, which the end's own turn has made.
        // (A shutdown that begins after this look wakes the dispatcher itself.)
        if inner.is_shutting_down() {
            inner.wake.notify_one();
        }
    }
}

/// Compacts the supervisors' journal once it has grown, even while attempts run:
/// only the lines of attempts still registered (their end not yet committed) are
/// kept. The registry is held meanwhile, so no attempt starts or ends unseen. Not
/// once shutting down: attempts left running for the next runtime leave it too.
fn compact_journal(inner: &Inner, registry: &crate::stop::Registry) {
    let mut journal = inner.journal.lock().unwrap_or_else(|e| e.into_inner());
    if journal.due()
        && !inner.is_shutting_down()
        && let Err(e) = journal.compact(|task| registry.get(task).is_some())
    {
        tracing::warn!("could not compact the supervisors' journal: {e}");
    }
}

fn open_log(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Notes in the log why an attempt could not start, so readers of the output see it.
fn log_start_failure(mut log: &File, reason: &str) {
    let _ = writeln!(log, "meanwhile: {reason}");
}

/// The task's environment; fails, naming it, on a secret that does not open with
/// this home's key (sealed under another home's, or changed since).
fn build_env(
    inner: &Inner,
    task: &TaskRecord,
    attempt: u32,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = inner
        .base_env
        .iter()
        .filter(|(k, _)| {
            !task.spec.env.contains_key(k)
                && !task.spec.secrets.contains_key(k)
                && !k.starts_with("MEANWHILE_TASK")
        })
        .cloned()
        .collect();
    env.extend(task.spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (k, v) in &task.spec.secrets {
        let Some(value) = inner.secrets.open(v.expose()) else {
            return Err(format!(
                "its secret {k} does not open with this home's secrets.key (sealed under another key, or changed); submit it again, or give this node the key it was sealed with"
            ));
        };
        env.push((k.clone(), value));
    }
    env.push(("MEANWHILE_TASK_ID".into(), task.id.to_string()));
    env.push(("MEANWHILE_ATTEMPT".into(), attempt.to_string()));
    if !task.spec.env.contains_key("MEANWHILE_HOME") {
        env.retain(|(k, _)| k != "MEANWHILE_HOME");
        env.push((
            "MEANWHILE_HOME".into(),
            inner.home.root().display().to_string(),
        ));
    }
    Ok(env)
}

/// Why a program was not found.
enum NotFound {
    /// A path (with a `/`) that names no file.
    File,
    /// A name that is on no directory of `PATH`.
    Command,
}

/// Finds `program` on the `PATH` of the task's environment, as a shell would.
fn resolve_program(
    program: &str,
    env: &[(String, String)],
    cwd: &Path,
) -> Result<PathBuf, NotFound> {
    if program.contains('/') {
        let p = cwd.join(program);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(NotFound::File)
        };
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(NotFound::Command)
}

/// The words `sh` runs itself, without looking on `PATH`: its builtins and keywords.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done", "echo",
    "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg", "fi", "for",
    "getopts", "hash", "if", "jobs", "kill", "local", "printf", "pwd", "read", "readonly",
    "return", "set", "shift", "test", "then", "times", "trap", "true", "type", "ulimit", "umask",
    "unalias", "unset", "until", "wait", "while",
];

/// The program of a shell command that is one plain word (`nosuchprog`, `make`),
/// which the shell would look for on `PATH`; `None` for anything with shell syntax,
/// a path, or a word the shell runs itself.
fn lone_program(command: &str) -> Option<&str> {
    let word = command.trim();
    let plain = !word.is_empty()
        && !word.starts_with('-')
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'));
    (plain && !SHELL_WORDS.contains(&word)).then_some(word)
}

/// `command not found: NAME` when the program of a shell task's `spec` is on no
/// directory of the `PATH` it would get (this process's, or its own `env`'s) now:
/// what the task will end with, said when it is submitted.
pub(crate) fn missing_program(
    base_env: &[(String, String)],
    default_cwd: &Path,
    spec: &meanwhile_core::TaskSpec,
) -> Option<String> {
    // A task that waits (for other tasks, or a time) may find its program installed
    // by then: only one that starts at once is told now.
    if !spec.after.is_empty() || spec.delay.is_some() || spec.run_after.is_some() {
        return None;
    }
    let program = match (&spec.command, &spec.argv) {
        (Some(command), None) => lone_program(command)?,
        (None, Some(argv)) => argv.first()?.as_str(),
        _ => return None,
    };
    if program.contains('/') {
        return None; // a path: the task's own cwd decides, as it may be made meanwhile
    }
    let mut env: Vec<(String, String)> = base_env.to_vec();
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let cwd = spec.cwd.as_deref().unwrap_or(default_cwd);
    match resolve_program(program, &env, cwd) {
        Err(NotFound::Command) => Some(format!("command not found: {program}")),
        _ => None,
    }
}

/// A program that is on no directory of `PATH` ends as a shell's would, with 127,
/// and says so in the task's output and reason.
fn command_not_found(log: &mut File, program: &str) -> Ended {
    let reason = format!("command not found: {program}");
    log_start_failure(log, &reason);
    Ended {
        exit_code: Some(127),
        ..Ended::new(AttemptOutcome::Exited { code: 127 }, Some(reason))
    }
}

/// How the task's process (or its `on_end` command) is confined, and its private
/// temporary directory `tmp` when it is sandboxed (made here). What this machine
/// cannot confine as the spec asks is refused with the reason, and nothing runs.
pub(crate) fn confinement(
    inner: &Inner,
    task: &TaskRecord,
    tmp: PathBuf,
    cwd: &Path,
) -> Result<(crate::sandbox::Confine, Option<PathBuf>), String> {
    let spec = &task.spec;
    let mut confine = crate::sandbox::Confine {
        writable: None,
        no_network: spec.no_network == Some(true),
        memory: spec.memory.map(|m| m.0),
        cpu_secs: spec.cpu_time.map(|d| d.as_millis().div_ceil(1000) as u64),
        max_procs: spec.max_procs,
        max_files: spec.max_files,
        hide: None,
    };
    if let Some(n) = spec.max_files {
        // No hard limit (`None`) is infinity.
        let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        let root = rustix::process::geteuid().is_root();
        if let Some(hard) = hard
            && !root
            && u64::from(n) > hard
        {
            return Err(format!(
                "max_files {n} is above this system's hard limit of {hard} open files"
            ));
        }
    }
    let sandboxed = spec.sandbox == Some(true);
    if !sandboxed && !confine.no_network {
        return Ok((confine, None));
    }
    // Both hide the home, which takes a Landlock domain (see `sandbox`).
    if !crate::sandbox::landlock_available() {
        return Err(
            "this kernel offers no Landlock (Linux 5.13 or later, with landlock among its LSMs), so the task cannot be confined (sandbox, no network); it was not run"
                .into(),
        );
    }
    let home = std::fs::canonicalize(inner.home.root())
        .unwrap_or_else(|_| inner.home.root().to_path_buf());
    let inside_home = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .starts_with(&home)
    };
    if inside_home(cwd) {
        return Err(format!(
            "the working directory {} is inside meanwhile's home {}, which a confined task cannot see; give it another directory (--cwd)",
            cwd.display(),
            home.display()
        ));
    }
    let mut hide = crate::sandbox::Hide {
        home: home.clone(),
        keep: vec![home.join(meanwhile_core::http::SOCKET_FILE)],
    };
    if !sandboxed {
        confine.hide = Some(hide);
        return Ok((confine, None));
    }
    for p in &spec.allow_write {
        if !p.exists() {
            return Err(format!(
                "the writable path {} does not exist; create it, or leave it out of --allow-write",
                p.display()
            ));
        }
        if inside_home(p) {
            return Err(format!(
                "the writable path {} is inside meanwhile's home {}, which a confined task cannot see; leave it out of --allow-write",
                p.display(),
                home.display()
            ));
        }
    }
    let made = std::fs::create_dir_all(&tmp).and_then(|()| {
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700))
    });
    if let Err(e) = made {
        return Err(format!(
            "could not make the private temporary directory {}: {e}",
            tmp.display()
        ));
    }
    let mut writable = vec![cwd.to_path_buf(), tmp.clone()];
    writable.extend(spec.allow_write.iter().cloned());
    confine.writable = Some(writable);
    hide.keep
        .push(home.join(tmp.strip_prefix(inner.home.root()).unwrap_or(&tmp)));
    confine.hide = Some(hide);
    Ok((confine, Some(tmp)))
}

/// The reason an attempt ended of one of its limits, from how it ended: its
/// supervisor's kill over memory or processes, or the CPU time limit's signal.
fn limit_reason(task: &TaskRecord, st: &crate::journal::ExitStatus) -> Option<String> {
    if let Some(e) = st.exceeded {
        return Some(e.reason());
    }
    let cpu = task.spec.cpu_time?;
    let limit_ms = cpu.as_millis().div_ceil(1000) as u64 * 1000;
    match (st.signal, st.code) {
        (Some(libc::SIGXCPU), _) => {}
        (Some(libc::SIGKILL), _) if st.cpu_ms + 100 >= limit_ms => {}
        // A shell saying that its command died of SIGXCPU.
        (None, Some(c)) if c == 128 + libc::SIGXCPU => {}
        _ => return None,
    }
    Some(format!(
        "cpu time limit {} exceeded",
        format_duration_exact(cpu)
    ))
}

/// The longest path a Unix socket's address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// What the task's stdin is, by its spec.
pub(crate) fn spawn_io(task: &TaskRecord) -> Io {
    match (&task.spec.tty, task.spec.stdin) {
        (Some(t), _) => Io::Tty {
            cols: t.cols,
            rows: t.rows,
        },
        (None, true) => Io::Pipe,
        (None, false) => Io::None,
    }
}

async fn run_shell(
    inner: &Arc<Inner>,
    c: &Claimed,
    mut stop: mpsc::UnboundedReceiver<StopRequest>,
    size: watch::Sender<u64>,
    pgid: &AtomicI32,
) -> Option<Ended> {
    let task = &c.task;
    let id = task.id;
    // A stop that came between the claim and now: nothing was started.
    if stop.try_recv().is_ok() {
        return Some(Ended::new(
            AttemptOutcome::Cancelled,
            Some("stopped on request before it started".into()),
        ));
    }
    let log_path = inner.home.log(id);
    let mut log = match open_log(&log_path) {
        Ok(f) => f,
        Err(e) => {
            return Some(Ended::failed(format!(
                "could not open the log {}: {e}",
                log_path.display()
            )));
        }
    };
    let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let cwd = task
        .spec
        .cwd
        .clone()
        .unwrap_or_else(|| inner.default_cwd.clone());
    if !cwd.is_dir() {
        let reason = format!("the working directory {} does not exist", cwd.display());
        log_start_failure(&log, &reason);
        return Some(Ended::failed(reason));
    }
    let mut env = match build_env(inner, task, c.attempt) {
        Ok(env) => env,
        Err(reason) => {
            log_start_failure(&log, &reason);
            return Some(Ended::failed(reason));
        }
    };
    let confine = match confinement(inner, task, inner.home.task_tmp(id, c.attempt), &cwd) {
        Ok((confine, tmp)) => {
            if let Some(tmp) = tmp
                && !task.spec.env.contains_key("TMPDIR")
            {
                env.retain(|(k, _)| k != "TMPDIR");
                env.push(("TMPDIR".into(), tmp.display().to_string()));
            }
            confine
        }
        Err(reason) => {
            log_start_failure(&log, &reason);
            return Some(Ended::failed(reason));
        }
    };
    // The spec was validated at submit; a shell task has exactly one of these.
    let argv: Vec<String> = match (&task.spec.command, &task.spec.argv) {
        (Some(cmd), None) => vec!["sh".into(), "-c".into(), cmd.clone()],
        (None, Some(a)) if !a.is_empty() => a.clone(),
        _ => return Some(Ended::failed("the stored spec is not a shell task")),
    };
    let program = if argv[0] == "sh" && argv.len() == 3 && task.spec.command.is_some() {
        // A lone word that names no program would make the shell say `sh: 1: x: not
        // found`; saying it the way an argv task does is plainer, and ends the same
        // way, with 127.
        if let Some(word) = lone_program(&argv[2])
            && let Err(NotFound::Command) = resolve_program(word, &env, &cwd)
        {
            return Some(command_not_found(&mut log, word));
        }
        PathBuf::from("/bin/sh")
    } else {
        match resolve_program(&argv[0], &env, &cwd) {
            Ok(p) => p,
            Err(NotFound::Command) => return Some(command_not_found(&mut log, &argv[0])),
            Err(NotFound::File) => {
                let reason = format!("{}: no such file", argv[0]);
                log_start_failure(&log, &reason);
                return Some(Ended::failed(reason));
            }
        }
    };
    let journal = inner.home.journal();
    let io = spawn_io(task);
    let io_socket = inner.home.io_socket(id, c.attempt);
    if io != Io::None && io_socket.as_os_str().len() > MAX_SOCKET_PATH {
        let reason = format!(
            "the task's input socket {} is longer than a socket path may be ({MAX_SOCKET_PATH} bytes); use a home with a shorter path (MEANWHILE_HOME)",
            io_socket.display()
        );
        log_start_failure(&log, &reason);
        return Some(Ended::failed(reason));
    }
    let spawn_started = std::time::Instant::now();
    let start = Arc::new(Start {
        program,
        argv,
        env,
        cwd,
        log,
        journal,
        io,
        io_socket,
        confine,
        task: id.0,
        attempt: c.attempt,
    });
    let (spawned, ended) = match begin(inner, &start).await {
        Ok(s) => {
            inner.metrics.spawned(spawn_started.elapsed());
            pgid.store(s.0.pid, Ordering::SeqCst);
            s
        }
        Err(e) => {
            inner.metrics.spawn_failed();
            let reason = format!("could not start {}: {e}", start.argv[0]);
            log_start_failure(&start.log, &reason);
            return Some(Ended::failed(reason));
        }
    };
    // Our copy of the log closes: the supervisor holds its own.
    drop(start);
    // The pid is for people (`meanwhile show`; recovery reads the journal's): it is
    // written with the end, and on its own only once the task has run a while, so
    // that a short task costs no commit for it.
    let pid = spawned.pid;
    let recording = {
        let store = inner.store.clone();
        let attempt = c.attempt;
        tokio::spawn(async move {
            tokio::time::sleep(PID_RECORDED_AFTER).await;
            if let Err(e) = store.set_pid(id, attempt, pid).await {
                tracing::warn!(task = %id, "could not record the pid: {e}");
            }
        })
    };
    let guard = match inner
        .watcher
        .watch(id, &log_path, offset, max_output(inner, task), size)
    {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!(task = %id, "not watching the output: {e}");
            None
        }
    };
    let ended = supervise(inner, task, c.attempt, spawned, Some(ended), stop).await;
    drop(guard);
    // Not written yet: the end writes it (`supervise` puts it in the end). Written
    // or being written: the end writes the same value, so the order does not matter.
    recording.abort();
    ended
}

/// What starting an attempt's process takes, owned, so that it can be sent again.
struct Start {
    program: PathBuf,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    log: File,
    journal: PathBuf,
    io: Io,
    io_socket: PathBuf,
    confine: crate::sandbox::Confine,
    task: i64,
    attempt: u32,
}

impl Start {
    fn request(&self) -> SpawnRequest<'_> {
        SpawnRequest {
            program: &self.program,
            argv: &self.argv,
            env: &self.env,
            cwd: &self.cwd,
            log: &self.log,
            journal: &self.journal,
            task: self.task,
            attempt: self.attempt,
            io: self.io,
            io_socket: &self.io_socket,
            confine: &self.confine,
        }
    }
}

/// Starts the attempt through the spawner: its processes and the end pipe to
/// watch, once its program runs. A start that every process holding it dropped
/// before the program ran (a spawner or a supervisor that died) is sent again, a
/// few times.
async fn begin(
    inner: &Arc<Inner>,
    start: &Arc<Start>,
) -> std::io::Result<(Spawned, AsyncFd<OwnedFd>)> {
    let mut sent_again = 0;
    loop {
        // Watched before the start is sent, so that a start sent is always heard.
        let (ended, end) = spawner::end_pipe()?;
        let fd = crate::sys::async_fd(ended)?;
        // Sent here when that cannot wait; else (a new spawner to start, another
        // sender, a full socket) off the async threads, so the runtime goes on
        // ending and claiming other tasks meanwhile. Our write end closes once
        // sent: the request's is then the only one.
        match inner.spawner.spawn_now(&start.request(), &end) {
            Some(sent) => {
                drop(end);
                sent?
            }
            None => {
                let inner = inner.clone();
                let start = start.clone();
                tokio::task::spawn_blocking(move || inner.spawner.spawn(&start.request(), &end))
                    .await
                    .map_err(|_| {
                        std::io::Error::other("the runtime shut down while starting the task")
                    })??
            }
        }
        match spawner::answer(&fd, &start.journal, start.task, start.attempt).await? {
            Some(s) => return Ok((s, fd)),
            None if sent_again < spawner::HANDOVERS => sent_again += 1,
            None => {
                return Err(std::io::Error::other(
                    "every supervisor it was sent to exited before starting it",
                ));
            }
        }
    }
}

/// How long a task runs before its pid is written on its own.
const PID_RECORDED_AFTER: Duration = Duration::from_secs(1);

/// The most output the task's log keeps: its spec's (after its queue's defaults),
/// else the runtime's default.
pub(crate) fn max_output(inner: &Inner, task: &TaskRecord) -> Option<u64> {
    task.spec
        .max_output
        .or(inner.config.max_output)
        .map(|m| m.0)
}

/// When the attempt must end, as an instant on the monotonic clock.
fn deadline(inner: &Inner, task: &TaskRecord) -> Option<Instant> {
    let timeout = task.spec.timeout?;
    let now = inner.now();
    let started = task.started_at.unwrap_or(now);
    let end_ms = started.0 + timeout.as_millis() as i64;
    let left = (end_ms - now.0).max(0) as u64;
    Some(Instant::now() + Duration::from_millis(left))
}

/// Watches a running process attempt until it ends; stops it on request, on timeout
/// or at shutdown. `None` when the attempt is left running for the next runtime.
/// Its end is heard through `ended`, the read end of the attempt's end pipe (its
/// start's answer read), for an attempt this runtime started (its supervisor goes on
/// to other attempts), else through a pidfd on its supervisor, which exits after an
/// attempt it was given by a runtime that is gone.
pub(crate) async fn supervise(
    inner: &Arc<Inner>,
    task: &TaskRecord,
    attempt: u32,
    spawned: Spawned,
    ended: Option<AsyncFd<OwnedFd>>,
    mut stop: mpsc::UnboundedReceiver<StopRequest>,
) -> Option<Ended> {
    let grace = task.spec.grace.unwrap_or(inner.config.grace);
    let timeout_at = deadline(inner, task);
    let _live = inner.live.track(
        task,
        attempt,
        spawned.supervisor,
        spawned.pid,
        &inner.home.log(task.id),
        (spawn_io(task) != Io::None).then(|| inner.home.io_socket(task.id, attempt)),
    );
    let pipe = ended.is_some();
    let exited = match ended {
        Some(fd) => Some(fd),
        None => match spawn::pidfd_open(spawned.supervisor).and_then(crate::sys::async_fd) {
            Ok(fd) => Some(fd),
            Err(e) => {
                // ESRCH: the supervisor is already gone; the journal says how it ended.
                tracing::debug!(task = %task.id, "watching the attempt's end: {e}");
                None
            }
        },
    };
    let mut shutdown = inner.shutdown.subscribe();
    let mut forced: Option<AttemptOutcome> = None;
    let mut lost: Option<String> = None;
    let mut escalation = Escalation::new(spawned.pid);
    let mut stop_open = true;
    let mut shutdown_seen = false;
    if let Some(fd) = &exited {
        loop {
            tokio::select! {
                r = over(fd, pipe) => {
                    if r.is_ok() {
                        break;
                    }
                }
                request = stop.recv(), if stop_open => match request {
                    Some(request) => {
                        if request.lost.is_some() {
                            lost = request.lost.clone();
                            forced = Some(AttemptOutcome::Lost);
                        }
                        forced.get_or_insert(AttemptOutcome::Cancelled);
                        escalation.begin(Some(&request), grace);
                    }
                    None => stop_open = false,
                },
                _ = sleep_until(timeout_at), if forced.is_none() && timeout_at.is_some() => {
                    forced = Some(AttemptOutcome::TimedOut);
                    escalation.begin(None, grace);
                }
                _ = escalation.due(), if escalation.is_due() => escalation.kill(),
                // Resolves at once for a shutdown that began before this attempt
                // started, so none is missed.
                _ = shutdown.wait_for(|&s| s), if !shutdown_seen => {
                    shutdown_seen = true;
                    if inner.shutdown_mode() == ShutdownMode::LeaveRunning {
                        return None;
                    }
                    if forced.is_none() {
                        forced = Some(AttemptOutcome::Cancelled);
                        escalation.begin(None, grace);
                    }
                }
            }
        }
    }
    // The process may have ended of a stop's signal before the loop above saw the
    // stop request: it still counts as stopped.
    if forced.is_none() && stop.try_recv().is_ok() {
        forced = Some(AttemptOutcome::Cancelled);
    }
    let status = {
        let mut journal = inner.journal.lock().unwrap_or_else(|e| e.into_inner());
        journal
            .refresh()
            .map(|()| journal.take_exit(task.id, attempt))
    };
    let mut ended = match status {
        Ok(Some(st)) => {
            let outcome = forced.unwrap_or(match (st.code, st.signal) {
                (Some(code), _) => AttemptOutcome::Exited { code },
                (None, Some(signal)) => AttemptOutcome::Signaled { signal },
                (None, None) => AttemptOutcome::Lost,
            });
            Ended {
                outcome,
                exit_code: st.code,
                signal: st.signal,
                // A stop or a timeout says why itself, below.
                reason: forced.is_none().then(|| limit_reason(task, &st)).flatten(),
                peak_rss_kb: Some(st.maxrss_kb),
                cpu_ms: Some(st.cpu_ms),
                ended_at: Timestamp(st.ended_at_us / 1000),
                result: None,
                pid: Some(spawned.pid),
            }
        }
        Ok(None) => {
            // The supervisor died (killed, out of memory) before the task's end:
            // nothing watches the task's processes any more, and a retry must not
            // run beside them. Its group goes (the pid is checked against its start
            // time, so no other process is hit).
            spawn::signal_group(spawned.pid, libc::SIGKILL);
            Ended::new(
                forced.unwrap_or(AttemptOutcome::Lost),
                Some("the task's supervisor ended without recording an exit status; its processes were killed".into()),
            )
        }
        Err(e) => Ended::new(
            forced.unwrap_or(AttemptOutcome::Lost),
            Some(format!("the supervisors' journal could not be read: {e}")),
        ),
    };
    // Forgotten only now: the group of a task whose supervisor died is killed above
    // while it is still known to be ours.
    spawn::try_reap(spawned.supervisor, spawned.pid);
    match forced {
        Some(AttemptOutcome::TimedOut) => {
            ended.reason = Some(format!(
                "timed out after {}",
                format_duration_exact(task.spec.timeout.unwrap_or_default())
            ));
        }
        Some(AttemptOutcome::Cancelled) if ended.reason.is_none() => {
            ended.reason = Some("stopped on request".into());
        }
        Some(AttemptOutcome::Lost) if lost.is_some() => ended.reason = lost,
        _ => {}
    }
    Some(ended)
}

/// Resolves once the attempt is over: its end pipe at its end of file (`pipe`), or
/// its supervisor's pidfd readable (it exited).
async fn over(fd: &AsyncFd<OwnedFd>, pipe: bool) -> std::io::Result<()> {
    loop {
        let mut ready = fd.readable().await?;
        if !pipe {
            return Ok(());
        }
        // Nothing follows the start's answer but the end of file.
        let mut b = [0u8; 64];
        match ready.try_io(|f| Ok(rustix::io::read(f.get_ref(), &mut b)?)) {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn run_in_process(
    inner: &Arc<Inner>,
    c: &Claimed,
    mut stop: mpsc::UnboundedReceiver<StopRequest>,
    size: watch::Sender<u64>,
    make: impl FnOnce(TaskContext) -> TaskFuture,
) -> Option<Ended> {
    let task = &c.task;
    let log_path = inner.home.log(task.id);
    // An earlier attempt's output, if any; the log itself is made on the first write.
    size.send_replace(std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0));
    let handed_over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ctx = AttemptHost::context(
        inner,
        task.id,
        c.attempt,
        task.queue.clone(),
        log_path,
        size,
        handed_over.clone(),
    );
    // Polled here rather than spawned: one task and one wake-up fewer per closure,
    // and a stop drops it at once. A panic in it is caught and ends the attempt.
    let mut run = std::panic::AssertUnwindSafe(make(ctx)).catch_unwind();
    let timeout_at = deadline(inner, task);
    let mut shutdown = inner.shutdown.subscribe();
    let mut stop_open = true;
    let ended = loop {
        tokio::select! {
            r = &mut run => break match r {
                Ok(Ok(result)) => Ended { result, ..Ended::new(AttemptOutcome::Exited { code: 0 }, None) },
                Ok(Err(message)) => Ended::failed(message),
                Err(panic) => Ended::failed(format!("the task panicked: {}", panic_message(panic))),
            },
            request = stop.recv(), if stop_open => match request {
                Some(StopRequest { lost: Some(why), .. }) => {
                    // Told before the task is dropped: another node goes on with it.
                    handed_over.store(true, std::sync::atomic::Ordering::SeqCst);
                    break Ended::lost(why);
                }
                Some(_) => {
                    break Ended::new(AttemptOutcome::Cancelled, Some("stopped on request".into()));
                }
                None => stop_open = false,
            },
            _ = sleep_until(timeout_at), if timeout_at.is_some() => {
                break Ended::new(
                    AttemptOutcome::TimedOut,
                    Some(format!("timed out after {}", format_duration_exact(task.spec.timeout.unwrap_or_default()))),
                );
            }
            _ = shutdown.wait_for(|&s| s) => {
                if inner.shutdown_mode() == ShutdownMode::LeaveRunning {
                    return None;
                }
                break Ended::new(AttemptOutcome::Cancelled, Some("stopped at shutdown".into()));
            }
        }
    };
    Some(ended)
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

/// The record of an attempt's end: its outcome, output tail and when to retry.
pub(crate) fn end_record(
    inner: &Inner,
    task: &TaskRecord,
    attempt: u32,
    ended: Ended,
) -> AttemptEnd {
    let id = task.id;
    let log = inner.home.log(id);
    // A sandboxed attempt's private temporary directory goes with it.
    if task.spec.sandbox == Some(true) {
        let tmp = inner.home.task_tmp(id, attempt);
        match std::fs::remove_dir_all(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(task = %id, "could not remove {}: {e}", tmp.display());
            }
            _ => {}
        }
    }
    let (lines, bytes) = (inner.config.notice_lines, inner.config.notice_bytes);
    // A few KiB from the end of a file in the page cache: cheaper read here than
    // handed to the blocking pool.
    let mask = crate::output::Mask::of(task, &inner.secrets);
    let (tail, output_bytes) = crate::output::last_lines(&log, lines, bytes, &mask);
    inner.metrics.attempt_ended(output_bytes);
    let delay = task.spec.retry.delay_after(attempt, inner.sample());
    let ended_at = inner.config.clock.shift(ended.ended_at);
    AttemptEnd {
        id,
        attempt,
        outcome: ended.outcome,
        ended_at,
        exit_code: ended.exit_code,
        signal: ended.signal,
        reason: ended.reason,
        peak_rss_kb: ended.peak_rss_kb,
        cpu_ms: ended.cpu_ms,
        pid: ended.pid,
        retry_at: Timestamp(ended_at.0.max(inner.now().0) + delay.as_millis() as i64),
        tail,
        output_bytes,
        result: ended.result,
        // In a fleet, another node may have taken the attempt over.
        node: inner.store.is_shared().then(|| inner.node.clone()),
    }
}

/// Hands the end of an attempt this node ran to the dispatcher, which records it
/// (with the notification) in its next store write, runs hooks and forgets the
/// attempt.
pub(crate) fn settle(inner: &Arc<Inner>, task: &TaskRecord, attempt: u32, ended: Ended) {
    let end = end_record(inner, task, attempt, ended);
    let id = end.id;
    let s = crate::engine::Settle {
        kind: task.kind,
        end,
        failures: 0,
    };
    if inner.settles.send(s).is_err() {
        end_of_attempt(inner, id);
    }
}

/// Commits the end of an attempt that was not in flight (found at recovery) and runs
/// hooks, trying again until it is recorded. Only a shutdown stops the tries; the
/// next start then settles the attempt from the supervisors' journal.
pub(crate) async fn finish(inner: &Arc<Inner>, task: &TaskRecord, attempt: u32, ended: Ended) {
    let mut end = end_record(inner, task, attempt, ended);
    let id = end.id;
    let mut failures = 0u32;
    loop {
        match inner.store.finish_attempt(end.clone()).await {
            Ok(Some(fin)) => return recorded(inner, task.kind, &fin),
            Ok(None) => return,
            Err(e) => {
                failures += 1;
                note_end_failure(inner, &mut end, failures, &e);
                if inner.is_shutting_down() {
                    tracing::error!(
                        task = %id,
                        "shutting down with the end of attempt {attempt} unrecorded; the next start settles it from the journal"
                    );
                    return;
                }
                tokio::time::sleep(end_retry_wait(failures)).await;
            }
        }
    }
}

/// Failed commits of an end after which it is recorded without its output tail and
/// result, in case those are what the store refuses.
pub(crate) const FULL_END_TRIES: u32 = 4;
/// The longest pause between two tries to record an end.
const MAX_RECORD_WAIT: Duration = Duration::from_secs(30);

/// What follows the commit of an end, on every path that records one: a finished
/// closure is dropped from the registry, and the hooks run.
pub(crate) fn recorded(inner: &Inner, kind: TaskKind, fin: &Finished) {
    if fin.task.state.is_terminal() && kind == TaskKind::Function {
        inner.functions.remove(fin.task.id);
    }
    for t in std::iter::once(&fin.task).chain(&fin.cascaded) {
        inner.run_hooks(t);
    }
}

/// Notes a failed try to record an end, as every path that records ends does.
/// After [`FULL_END_TRIES`] the end loses its tail and result, and says why.
pub(crate) fn note_end_failure(inner: &Inner, end: &mut AttemptEnd, failures: u32, e: &StoreError) {
    inner.metrics.commit_failed();
    tracing::error!(
        task = %end.id,
        "recording the end of attempt {} failed (try {failures}): {e}",
        end.attempt
    );
    if failures == FULL_END_TRIES {
        end.tail.clear();
        end.result = None;
        let why = format!("recording this end failed at first ({e})");
        end.reason = Some(match end.reason.take() {
            Some(r) => format!("{r}; {why}"),
            None => why,
        });
    }
}

/// The pause before try `failures + 1` of recording an end.
pub(crate) fn end_retry_wait(failures: u32) -> Duration {
    (Duration::from_millis(50) * 2u32.saturating_pow(failures.saturating_sub(1)))
        .min(MAX_RECORD_WAIT)
}
