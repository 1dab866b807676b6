//! The supervisors' journal: one append-only file per home in which the spawner
//! records each attempt's processes (`S` lines) and each supervisor records how its
//! task ended (`E` lines). A restarted runtime finds there what it needs to adopt or
//! settle the attempts a dead runtime left behind.
//!
//! One shared file rather than files per attempt, because creating a file costs
//! far more than appending a line (on ext4 without a journal, inode allocation scans
//! recently deleted inodes), and a busy runtime starts thousands of attempts.
//! Lines are short single `write`s to an `O_APPEND` descriptor, so concurrent writers
//! never interleave within a line.
//!
//! ```text
//! S <task> <attempt> <pid> <supervisor pid> <supervisor start time>
//! E <task> <attempt> 2 <wait status> <peak rss KiB> <cpu ms> <end, µs since epoch>
//! ```

use meanwhile_core::TaskId;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

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
}

type Key = (TaskId, u32);

/// A reader that follows the journal as it grows.
pub struct Journal {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    started: HashMap<Key, Started>,
    ended: HashMap<Key, ExitStatus>,
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
            (Some("S"), [task, attempt, pid, sup, start]) => {
                self.started.insert(
                    (TaskId(*task), *attempt as u32),
                    Started {
                        pid: *pid as i32,
                        supervisor: *sup as i32,
                        supervisor_start: *start as u64,
                    },
                );
            }
            (Some("E"), [task, attempt, 2, status, rss, cpu, ended]) => {
                self.ended.insert(
                    (TaskId(*task), *attempt as u32),
                    decode_status(*status, *rss, *cpu, *ended),
                );
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

    pub(crate) fn started(&self, id: TaskId, attempt: u32) -> Option<Started> {
        self.started.get(&(id, attempt)).copied()
    }

    /// Empties the journal; only when no supervisor of this home is alive, so none
    /// can be writing to it.
    pub(crate) fn truncate(&mut self) -> io::Result<()> {
        match std::fs::OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => f.set_len(0)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.offset = 0;
        self.partial.clear();
        self.started.clear();
        self.ended.clear();
        Ok(())
    }

    /// Bytes read so far.
    pub(crate) fn len(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

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
        f.write_all(b"S 7 1 100 99 12345\nE 7 1 2 768 ").unwrap();
        j.refresh().unwrap();
        assert_eq!(
            j.started(TaskId(7), 1),
            Some(Started {
                pid: 100,
                supervisor: 99,
                supervisor_start: 12345
            })
        );
        assert_eq!(j.exit(TaskId(7), 1), None, "a partial line is not read yet");
        f.write_all(b"1024 5 1700000000000000\nE 8 1 2 9 0 0 1\ngarbage\n")
            .unwrap();
        j.refresh().unwrap();
        let e = j.take_exit(TaskId(7), 1).unwrap();
        assert_eq!(
            (e.code, e.signal, e.maxrss_kb, e.cpu_ms),
            (Some(3), None, 1024, 5)
        );
        assert_eq!(j.exit(TaskId(8), 1).unwrap().signal, Some(9));
        j.truncate().unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        f.write_all(b"E 9 2 2 0 1 1 1\n").unwrap();
        j.refresh().unwrap();
        assert_eq!(j.exit(TaskId(9), 2).unwrap().code, Some(0));
    }
}
