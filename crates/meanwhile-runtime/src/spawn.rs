//! The process layer as the rest of the runtime sees it: what a request to start an
//! attempt holds, what a started attempt is, and the only ways to wait on or signal
//! an attempt's processes.
//!
//! Attempts are started by the spawner ([`crate::spawner`]), whose pooled
//! supervisors ([`crate::supervisor`]) outlive the runtime. The runtime only ever
//! acts on processes it can prove are its own: a supervisor or task process is
//! registered here with its start time when it is started or adopted, and
//! [`pidfd_open`] and [`signal_group`] refuse a pid that is not registered, or whose
//! live process started at another time (the pid was reused, or the journal that
//! named it is from before a reboot).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Mutex;

/// Everything needed to start one attempt. The caller must choose cwd and env.
pub(crate) struct SpawnRequest<'a> {
    /// The program, already resolved to a path.
    pub program: &'a Path,
    /// argv, including argv[0].
    pub argv: &'a [String],
    /// The complete environment of the task.
    pub env: &'a [(String, String)],
    /// Working directory.
    pub cwd: &'a Path,
    /// The output log, opened for appending.
    pub log: &'a File,
    /// The supervisors' journal of the home.
    pub journal: &'a Path,
    /// The task, for the journal's records.
    pub task: i64,
    /// The attempt, for the journal's records.
    pub attempt: u32,
    /// What the task's stdin is.
    pub io: Io,
    /// Where the supervisor of an interactive task (`io` not `None`) listens for
    /// input; unused otherwise.
    pub io_socket: &'a Path,
    /// How the task's process is confined.
    pub confine: &'a crate::sandbox::Confine,
}

/// A task's standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Io {
    /// `/dev/null`; stdout and stderr go to the log.
    None,
    /// A pipe its supervisor writes what is sent; stdout and stderr go to the log.
    Pipe,
    /// A pseudo-terminal of this many columns and rows for all three streams; its
    /// supervisor copies what it shows to the log.
    Tty { cols: u16, rows: u16 },
}

impl Io {
    /// The form the wire carries: empty, `pipe`, or `tty COLS ROWS`.
    pub(crate) fn encode(self) -> String {
        match self {
            Io::None => String::new(),
            Io::Pipe => "pipe".into(),
            Io::Tty { cols, rows } => format!("tty {cols} {rows}"),
        }
    }

    /// The inverse of [`Io::encode`].
    pub(crate) fn decode(s: &str) -> Option<Io> {
        let mut words = s.split(' ');
        match words.next()? {
            "" => Some(Io::None),
            "pipe" => Some(Io::Pipe),
            "tty" => {
                let cols = words.next()?.parse().ok()?;
                let rows = words.next()?.parse().ok()?;
                Some(Io::Tty { cols, rows })
            }
            _ => None,
        }
    }
}

/// A started attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spawned {
    /// The supervisor process.
    pub supervisor: i32,
    /// The task's main process, which is also its process group id.
    pub pid: i32,
}

/// A process of ours: its pid and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proven {
    pub pid: i32,
    pub start: u64,
}

/// The supervisors and task process groups this process may act on, by pid.
struct Registry {
    /// supervisor pid → (supervisor, task's main process)
    supervisors: HashMap<i32, (Proven, Proven)>,
    /// task pid (= process group) → its start time
    groups: HashMap<i32, u64>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with_registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(r.get_or_insert_with(|| Registry {
        supervisors: HashMap::new(),
        groups: HashMap::new(),
    }))
}

/// Records an attempt's supervisor and task process as ours: started by our spawner
/// or adopted after their start times were checked.
pub(crate) fn register(supervisor: Proven, task: Proven) {
    with_registry(|r| {
        r.supervisors.insert(supervisor.pid, (supervisor, task));
        if task.start != 0 {
            r.groups.insert(task.pid, task.start);
        }
    });
}

/// True when the live process `pid` started at `start`.
pub(crate) fn is_same_process(p: Proven) -> bool {
    p.start != 0 && crate::sys::start_time(p.pid) == Some(p.start)
}

/// Sends `signal` to the task's whole process group, waking stopped members so
/// they can act on it. Only to a registered group whose leader, the task's main
/// process, is still the process we started: once it has ended its supervisor kills
/// the rest of the tree, and a pid that is not provably ours is never signalled.
pub(crate) fn signal_group(pgid: i32, signal: i32) {
    if pgid <= 1 {
        return;
    }
    let Some(start) = with_registry(|r| r.groups.get(&pgid).copied()) else {
        tracing::debug!(pgid, "not signalling a process group that is not ours");
        return;
    };
    if !is_same_process(Proven { pid: pgid, start }) {
        return;
    }
    let (Some(pid), Some(sig)) = (
        crate::sys::pid(pgid),
        rustix::process::Signal::from_named_raw(signal),
    ) else {
        return;
    };
    // ESRCH: the group ended meanwhile, which is what was wanted.
    let _ = rustix::process::kill_process_group(pid, sig);
    if sig == rustix::process::Signal::TERM {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::CONT);
    }
}

/// A pidfd on a registered supervisor: becomes readable when it exits, for children
/// and non-children alike (which is how a restarted runtime waits on supervisors it
/// did not start). `ESRCH` for a supervisor that has ended, or a pid that is not
/// provably ours.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    let esrch = || io::Error::from_raw_os_error(libc::ESRCH);
    let Some((sup, _)) = with_registry(|r| r.supervisors.get(&pid).copied()) else {
        return Err(esrch());
    };
    let fd = rustix::process::pidfd_open(
        crate::sys::pid(pid).ok_or_else(esrch)?,
        rustix::process::PidfdFlags::empty(),
    )?;
    // Checked after opening: the pidfd now holds this very process, so a match
    // proves it is the one we registered, not a later process with its pid.
    if !is_same_process(sup) {
        return Err(esrch());
    }
    Ok(fd)
}

/// Forgets an attempt that has ended: its supervisor, as the supervisor of that
/// task process, and the task's group. A pooled supervisor may already run its
/// next attempt, registered since: that one is kept. (Supervisors are the
/// spawner's children, reaped by it; nothing is left to wait for here.)
pub(crate) fn try_reap(supervisor: i32, task: i32) {
    with_registry(|r| {
        if r.supervisors
            .get(&supervisor)
            .is_some_and(|(_, t)| t.pid == task)
        {
            r.supervisors.remove(&supervisor);
        }
        r.groups.remove(&task);
    });
}

/// The start time of a process (clock ticks since boot), to tell it from a later
/// process that reuses its pid.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    crate::sys::start_time(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// A process group is signalled only once registered with its leader's true
    /// start time: a pid named with another start time is a stranger's.
    #[test]
    fn only_a_registered_group_with_its_true_start_time_is_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = start_time(pid).unwrap();
        signal_group(pid, libc::SIGKILL);
        assert_eq!(child.try_wait().unwrap(), None, "not registered");
        // A pid above any pid_max: never a real process.
        let supervisor = Proven {
            pid: i32::MAX,
            start: 1,
        };
        register(
            supervisor,
            Proven {
                pid,
                start: start + 1,
            },
        );
        signal_group(pid, libc::SIGKILL);
        assert_eq!(child.try_wait().unwrap(), None, "another start time");
        assert!(pidfd_open(i32::MAX).is_err(), "an unproven supervisor");
        register(supervisor, Proven { pid, start });
        signal_group(pid, libc::SIGKILL);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        // The supervisor's next attempt, registered before the last one is forgotten.
        let next = Proven {
            pid: i32::MAX - 1,
            start: 1,
        };
        register(supervisor, next);
        try_reap(i32::MAX, pid);
        assert!(with_registry(|r| !r.groups.contains_key(&pid)));
        assert!(
            with_registry(|r| r.supervisors.get(&i32::MAX).map(|(_, t)| t.pid)) == Some(next.pid),
            "the supervisor's next attempt is kept"
        );
        try_reap(i32::MAX, next.pid);
        assert!(with_registry(|r| !r.supervisors.contains_key(&i32::MAX)));
    }
}
