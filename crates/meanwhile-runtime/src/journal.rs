//! The supervisors' journal: one file per home in which each attempt's supervisor
//! records the attempt's processes (`S` lines, written before the task's program
//! runs) and how its task ended (`E` lines). A restarted runtime finds there what it
//! needs to adopt or settle the attempts a dead runtime left behind.
//!
//! One shared file rather than files per attempt, because creating a file costs
//! far more than appending a line (on ext4 without a journal, inode allocation scans
//! recently deleted inodes), and a busy runtime starts thousands of attempts.
//!
//! Writers ([`append`]) take an exclusive `flock` on the file, check that it is still
//! the file at the path (the runtime may have replaced it), and write a whole line
//! with one `write`, which they check was complete. The runtime compacts the journal
//! ([`Journal::compact`]) once it has grown, while attempts run: under the same lock
//! it writes the lines of the attempts that are not yet settled to a new file and
//! renames it over the old one, so the journal stays small however long a task runs.
//!
//! ```text
//! S <task> <attempt> <pid> <supervisor pid> <supervisor start time> [<task start time>]
//! E <task> <attempt> 2 <wait status> <peak rss KiB> <cpu ms> <end, µs since epoch> [<limit> <value>]
//! A <task> <attempt>
//! X <task> <attempt>
//! ```
//!
//! An `A` line settles a start whose spawner died before it answered: the runtime
//! writes it once the dead spawner is reaped, and the journal's order decides. An
//! `S` line before it is a start that happened (the runtime follows it); a
//! supervisor whose `S` line comes after it runs nothing (it finds the line once it
//! sees that its spawner is gone) and voids its `S` line with an `X` line, and the
//! runtime sends the start again.
//!
//! Start times are in clock ticks since boot, as in `/proc/<pid>/stat`; `S` lines
//! written before the task's start time was recorded have five numbers. An `E` line
//! ends with the limit its supervisor killed the task for, if it did (1: memory in
//! bytes, 2: processes; see `Exceeded`).

use meanwhile_core::TaskId;
use rustix::fs::{FlockOperation, Mode, OFlags};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The size from which the journal is compacted, or twice what the last compaction
/// kept if that is more (many long-running attempts).
const COMPACT_AT: u64 = 32 << 10;

/// How the task's main process ended, as its supervisor recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal, when one killed it.
    pub signal: Option<i32>,
    /// Peak RSS in KiB.
    pub maxrss_kb: u64,
    /// User plus system CPU time in ms.
    pub cpu_ms: u64,
    /// When it was reaped, microseconds since the epoch.
    pub ended_at_us: i64,
    /// The limit of its tree it was killed for, if its supervisor killed it.
    pub exceeded: Option<crate::sandbox::Exceeded>,
}

/// The processes of an attempt, as the spawner recorded them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Started {
    /// The task's main process and process group.
    pub pid: i32,
    /// The supervisor.
    pub supervisor: i32,
    /// The supervisor's start time (clock ticks since boot), to tell it from a later
    /// process with the same pid.
    pub supervisor_start: u64,
    /// The task's main process's start time; 0 in journals written before it was
    /// recorded.
    pub pid_start: u64,
}

type Key = (TaskId, u32);

/// A reader that follows the journal as it grows.
pub struct Journal {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    started: HashMap<Key, Started>,
    ended: HashMap<Key, ExitStatus>,
    /// Bytes the last compaction kept.
    kept: u64,
}

fn decode_status(status: i64, maxrss: i64, cpu_ms: i64, ended_us: i64) -> ExitStatus {
    let status = status as libc::c_int;
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    ExitStatus {
        code,
        signal,
        maxrss_kb: maxrss.max(0) as u64,
        cpu_ms: cpu_ms.max(0) as u64,
        ended_at_us: ended_us,
        exceeded: None,
    }
}

impl Journal {
    /// A reader of the journal at `path`, which need not exist yet.
    pub fn new(path: &Path) -> Journal {
        Journal {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
            started: HashMap::new(),
            ended: HashMap::new(),
            kept: 0,
        }
    }

    /// Reads what was appended since the last call.
    pub fn refresh(&mut self) -> io::Result<()> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let len = f.metadata()?.len();
        if len < self.offset {
            // Truncated since: start over.
            self.offset = 0;
            self.partial.clear();
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(&buf);
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        self.partial = data[complete..].to_vec();
        for line in data[..complete].split(|&b| b == b'\n') {
            self.apply(line);
        }
        Ok(())
    }

    fn apply(&mut self, line: &[u8]) {
        let Ok(text) = std::str::from_utf8(line) else {
            return;
        };
        let mut parts = text.split_ascii_whitespace();
        let kind = parts.next();
        let nums: Vec<i64> = parts.filter_map(|p| p.parse().ok()).collect();
        match (kind, nums.as_slice()) {
            (Some("S"), [task, attempt, pid, sup, start, rest @ ..]) if rest.len() <= 1 => {
                self.started.insert(
                    (TaskId(*task), *attempt as u32),
                    Started {
                        pid: *pid as i32,
                        supervisor: *sup as i32,
                        supervisor_start: *start as u64,
                        pid_start: rest.first().map_or(0, |&s| s as u64),
                    },
                );
            }
            (Some("X"), [task, attempt]) => {
                // A start its supervisor voided: nothing of it ran.
                self.started.remove(&(TaskId(*task), *attempt as u32));
            }
            (Some("E"), [task, attempt, 2, status, rss, cpu, ended, rest @ ..])
                if matches!(rest.len(), 0 | 2) =>
            {
                let mut st = decode_status(*status, *rss, *cpu, *ended);
                if let [kind, value] = rest {
                    st.exceeded = crate::sandbox::Exceeded::decode(*kind, *value);
                }
                self.ended.insert((TaskId(*task), *attempt as u32), st);
            }
            _ => {}
        }
    }

    /// How an attempt ended, if its supervisor recorded it. Forgets the record.
    pub fn take_exit(&mut self, id: TaskId, attempt: u32) -> Option<ExitStatus> {
        self.started.remove(&(id, attempt));
        self.ended.remove(&(id, attempt))
    }

    /// How an attempt ended, if recorded, without forgetting it.
    pub fn exit(&self, id: TaskId, attempt: u32) -> Option<ExitStatus> {
        self.ended.get(&(id, attempt)).copied()
    }

    /// Every attempt whose start is recorded and whose end is not.
    pub(crate) fn unended(&self) -> Vec<(TaskId, u32, Started)> {
        self.started
            .iter()
            .filter(|(k, _)| !self.ended.contains_key(k))
            .map(|(&(id, n), &s)| (id, n, s))
            .collect()
    }

    pub(crate) fn started(&self, id: TaskId, attempt: u32) -> Option<Started> {
        self.started.get(&(id, attempt)).copied()
    }

    /// True once the journal has grown enough to be compacted.
    pub(crate) fn due(&self) -> bool {
        self.offset >= COMPACT_AT.max(self.kept.saturating_mul(2))
    }

    /// Rewrites the journal with only the lines of the tasks for which `live` is
    /// true (their attempts are not settled in the store yet), while supervisors go
    /// on appending: under the writers' lock, the kept lines go to a new file that
    /// is synced and renamed over the journal. A writer that opened the old file
    /// finds, once it holds the lock, that it is no longer at the path and reopens.
    /// Everything the file held is read into this reader first.
    pub(crate) fn compact(&mut self, live: impl Fn(TaskId) -> bool) -> io::Result<()> {
        let f = match File::options().read(true).write(true).open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        rustix::fs::flock(&f, FlockOperation::LockExclusive)?;
        if !is_at_path(&f, &self.path)? {
            // Replaced meanwhile (by an earlier runtime's compaction): next time.
            return Ok(());
        }
        self.refresh()?;
        let mut data = Vec::new();
        (&f).seek(SeekFrom::Start(0))?;
        (&f).read_to_end(&mut data)?;
        let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let mut kept = Vec::new();
        for line in data[..complete].split_inclusive(|&b| b == b'\n') {
            if line_task(line).is_some_and(&live) {
                kept.extend_from_slice(line);
            }
        }
        let tmp = self.path.with_extension("journal.new");
        let mut out = File::create(&tmp)?;
        out.write_all(&kept)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        // The lock on the old file goes with `f`, after the rename.
        drop(f);
        self.offset = kept.len() as u64;
        self.partial.clear();
        self.kept = kept.len() as u64;
        Ok(())
    }

    /// Bytes read so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.offset
    }
}

/// The task a journal line is about.
fn line_task(line: &[u8]) -> Option<TaskId> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_ascii_whitespace();
    parts.next()?;
    parts.next()?.parse().ok().map(TaskId)
}

/// True when `f` is the file now at `path`.
fn is_at_path(f: &impl AsFd, path: &Path) -> io::Result<bool> {
    let open = rustix::fs::fstat(f)?;
    match rustix::fs::stat(path) {
        Ok(now) => Ok(open.st_dev == now.st_dev && open.st_ino == now.st_ino),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What a journal line says of one attempt's start.
enum Record {
    Start(Started),
    GivenUp,
    Voided,
}

/// What a journal line says of the start of attempt `attempt` of `task`; `None`
/// for a line about anything else.
fn about(line: &[u8], task: i64, attempt: u32) -> Option<Record> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_ascii_whitespace();
    let kind = parts.next()?;
    let nums: Vec<i64> = parts.filter_map(|p| p.parse().ok()).collect();
    match (kind, nums.as_slice()) {
        ("S", [t, a, pid, sup, start, rest @ ..]) if *t == task && *a == i64::from(attempt) => {
            Some(Record::Start(Started {
                pid: *pid as i32,
                supervisor: *sup as i32,
                supervisor_start: *start as u64,
                pid_start: rest.first().map_or(0, |&s| s as u64),
            }))
        }
        ("A", [t, a]) if *t == task && *a == i64::from(attempt) => Some(Record::GivenUp),
        ("X", [t, a]) if *t == task && *a == i64::from(attempt) => Some(Record::Voided),
        _ => None,
    }
}

/// The lines of the journal at `path`, whole ones only.
fn lines(path: &Path) -> io::Result<Vec<u8>> {
    let mut data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    data.truncate(complete);
    Ok(data)
}

/// Gives up a start that a runtime before this one sent and that is not journalled,
/// before its claim is given back: appends its `A` line, and answers the start
/// recorded before it, if its supervisor got that far; the task then runs, and is
/// followed. `None`: nothing of it ran, or will (a supervisor that journals it
/// later finds its spawner gone and this line first, see [`given_up`]).
pub(crate) fn abandon(path: &Path, task: i64, attempt: u32) -> io::Result<Option<Started>> {
    append(path, format!("A {task} {attempt}\n").as_bytes())?;
    // The record before the last `A` of the attempt: that is the one just written.
    let mut before: Option<Started> = None;
    let mut decided = None;
    for line in lines(path)?.split(|&b| b == b'\n') {
        match about(line, task, attempt) {
            Some(Record::Start(s)) => before = Some(s),
            Some(Record::Voided) => before = None,
            Some(Record::GivenUp) => decided = Some(before.take()),
            None => {}
        }
    }
    Ok(decided.flatten())
}

/// The start of an attempt as the journal has it: its `S` line, if its supervisor got
/// that far, and then its task's program may have run. For a start whose every
/// holder is gone before it answered (so nothing more of it can reach the
/// journal), `None` means nothing of it ran, and it may be sent again.
pub(crate) fn start_of(path: &Path, task: i64, attempt: u32) -> io::Result<Option<Started>> {
    let mut start = None;
    for line in lines(path)?.split(|&b| b == b'\n') {
        match about(line, task, attempt) {
            Some(Record::Start(s)) => start = Some(s),
            Some(Record::Voided) => start = None,
            Some(Record::GivenUp) | None => {}
        }
    }
    Ok(start)
}

/// For a supervisor that wrote its `S` line and then found its spawner gone: true
/// when the runtime gave the start up first (an `A` line of the attempt comes
/// before the supervisor's `S` line, the last one), so that it must run nothing
/// (and write [`void`]). An unreadable journal counts as given up: running nothing
/// is the safe side.
pub(crate) fn given_up(path: &Path, task: i64, attempt: u32) -> bool {
    let Ok(data) = lines(path) else { return true };
    let mut abandoned = false;
    let mut last = None;
    for line in data.split(|&b| b == b'\n') {
        match about(line, task, attempt) {
            Some(Record::GivenUp) => abandoned = true,
            Some(Record::Start(_)) => {
                last = Some(abandoned);
                abandoned = false;
            }
            Some(Record::Voided) | None => {}
        }
    }
    last.unwrap_or(true)
}

/// Voids the `S` line of a start its supervisor gave up (see [`given_up`]).
pub(crate) fn void(path: &Path, task: i64, attempt: u32) -> io::Result<()> {
    append(path, format!("X {task} {attempt}\n").as_bytes())
}

/// Appends one whole line (ending in a newline) to the journal at `path`, under the
/// writers' lock, to the file that is at the path once the lock is held. A write
/// that was not complete is undone and is an error: a torn line would join the
/// next writer's.
pub(crate) fn append(path: &Path, line: &[u8]) -> io::Result<()> {
    debug_assert!(line.ends_with(b"\n"));
    for _ in 0..1000 {
        let fd = rustix::fs::open(
            path,
            OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        rustix::fs::flock(&fd, FlockOperation::LockExclusive)?;
        if !is_at_path(&fd, path)? {
            // Compacted and replaced while we waited for the lock.
            continue;
        }
        let before = rustix::fs::fstat(&fd)?.st_size as u64;
        let written = loop {
            match rustix::io::write(&fd, line) {
                Err(rustix::io::Errno::INTR) => {}
                r => break r,
            }
        };
        return match written {
            Ok(n) if n == line.len() => Ok(()),
            Ok(n) => {
                // Undo the torn line; the lock is still held, so nothing followed it.
                let _ = rustix::fs::ftruncate(&fd, before); // the short write is the error reported
                Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("wrote {n} of {} bytes of a journal line", line.len()),
                ))
            }
            Err(e) => {
                let _ = rustix::fs::ftruncate(&fd, before); // the write's error is the one reported
                Err(e.into())
            }
        };
    }
    Err(io::Error::other(
        "the supervisors' journal was replaced 1000 times while appending to it",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_of_a_start_and_its_giving_up_decides_whether_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        // The supervisor journalled first: the start stands, for both sides.
        std::fs::write(&p, "S 5 1 100 99 7 8\nS 6 1 200 199 7 8\n").unwrap();
        let s = abandon(&p, 5, 1).unwrap().expect("it ran");
        assert_eq!((s.pid, s.supervisor), (100, 99));
        assert!(!given_up(&p, 5, 1));
        // Given up first: the supervisor that journals after runs nothing, and the
        // start sent again stands on its own.
        assert_eq!(abandon(&p, 7, 1).unwrap(), None);
        append(&p, b"S 7 1 300 299 7 8\n").unwrap();
        assert!(given_up(&p, 7, 1));
        void(&p, 7, 1).unwrap();
        let mut j = Journal::new(&p);
        j.refresh().unwrap();
        assert_eq!(
            j.started(TaskId(7), 1),
            None,
            "the given-up start is no start"
        );
        assert!(j.started(TaskId(5), 1).is_some() && j.started(TaskId(6), 1).is_some());
        append(&p, b"S 7 1 400 399 7 8\n").unwrap();
        assert!(!given_up(&p, 7, 1), "the start sent again");
        j.refresh().unwrap();
        assert_eq!(j.started(TaskId(7), 1).map(|s| s.pid), Some(400));
        assert_eq!(start_of(&p, 7, 1).unwrap().map(|s| s.pid), Some(400));
        assert_eq!(start_of(&p, 7, 2).unwrap(), None, "no line of that attempt");
    }

    #[test]
    fn follows_appends_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .unwrap();
        let mut j = Journal::new(&p);
        f.write_all(b"S 7 1 100 99 12345\nS 7 2 101 98 123 456\nE 7 1 2 768 ")
            .unwrap();
        j.refresh().unwrap();
        assert_eq!(
            j.started(TaskId(7), 1),
            Some(Started {
                pid: 100,
                supervisor: 99,
                supervisor_start: 12345,
                pid_start: 0,
            }),
            "a line from before task start times were recorded"
        );
        assert_eq!(j.started(TaskId(7), 2).map(|s| s.pid_start), Some(456));
        assert_eq!(j.exit(TaskId(7), 1), None, "a partial line is not read yet");
        f.write_all(b"1024 5 1700000000000000\nE 8 1 2 9 0 0 1 1 2147483648\ngarbage\n")
            .unwrap();
        j.refresh().unwrap();
        let e = j.take_exit(TaskId(7), 1).unwrap();
        assert_eq!(
            (e.code, e.signal, e.maxrss_kb, e.cpu_ms),
            (Some(3), None, 1024, 5)
        );
        assert_eq!(j.exit(TaskId(8), 1).unwrap().signal, Some(9));
        assert_eq!(
            j.exit(TaskId(8), 1).unwrap().exceeded,
            Some(crate::sandbox::Exceeded::Memory(2 << 30)),
            "killed over its memory limit"
        );
        assert_eq!(e.exceeded, None);
        j.compact(|_| false).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        append(&p, b"E 9 2 2 0 1 1 1\n").unwrap();
        j.refresh().unwrap();
        assert_eq!(j.exit(TaskId(9), 2).unwrap().code, Some(0));
    }

    #[test]
    fn compaction_keeps_the_lines_of_live_tasks_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        for line in ["S 1 1 10 9 5 6\n", "S 2 1 20 19 5 6\n", "E 1 1 2 0 1 1 1\n"] {
            append(&p, line.as_bytes()).unwrap();
        }
        let mut j = Journal::new(&p);
        j.compact(|t| t == TaskId(2)).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "S 2 1 20 19 5 6\n");
        assert_eq!(j.len(), 16);
        assert!(j.exit(TaskId(1), 1).is_some(), "read before it was dropped");
        append(&p, b"E 2 1 2 0 1 1 1\n").unwrap();
        j.refresh().unwrap();
        assert_eq!(j.exit(TaskId(2), 1).unwrap().code, Some(0));
    }

    /// Writers appending while the journal is compacted again and again lose no
    /// line of a live task: each is either in the file that was replaced before
    /// compaction read it, or in the new one.
    #[test]
    fn concurrent_appends_during_compaction_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j");
        const WRITERS: i64 = 4;
        const LINES: i64 = 300;
        // Each writer waits, halfway through, for compactions to have happened
        // since it started: they interleave with the appends.
        let compactions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let p = p.clone();
                let compactions = compactions.clone();
                std::thread::spawn(move || {
                    let seen = compactions.load(std::sync::atomic::Ordering::SeqCst);
                    for i in 0..LINES {
                        if i == LINES / 2 {
                            while compactions.load(std::sync::atomic::Ordering::SeqCst) < seen + 2 {
                                std::thread::sleep(std::time::Duration::from_micros(100));
                            }
                        }
                        // Odd tasks are live, even ones settled.
                        let task = w * 1000 + i;
                        append(&p, format!("E {task} 1 2 0 1 1 1\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        let mut j = Journal::new(&p);
        let live = |t: TaskId| t.0 % 2 == 1;
        while !writers.iter().all(|w| w.is_finished()) {
            j.compact(live).unwrap();
            compactions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        for w in writers {
            w.join().unwrap();
        }
        j.compact(live).unwrap();
        j.refresh().unwrap();
        for w in 0..WRITERS {
            for i in 0..LINES {
                let task = w * 1000 + i;
                if task % 2 == 1 {
                    assert!(
                        j.exit(TaskId(task), 1).is_some(),
                        "line of task {task} lost"
                    );
                }
            }
        }
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count() as i64, WRITERS * LINES / 2);
        assert!(
            text.lines()
                .all(|l| line_task(l.as_bytes()).is_some_and(live))
        );
    }
}
