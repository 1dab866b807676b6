//! Follows the logs of running tasks: publishes each log's size to readers waiting
//! for new output, and picks `::progress` lines out of what was written.
//!
//! Every running task's log gets a throttled look (its size, and what was written
//! since, or only the last 64 KiB of it when a task writes flat out): progress is a
//! latest-value signal, and a task printing a gigabyte must not be slowed by being
//! watched. Only while a reader waits for a task's output (`wait`, follow) does its
//! log also get an inotify watch, so that reader is woken by the kernel at once.

use meanwhile_core::{Progress, TaskId, Timestamp};
use rustix::fs::inotify;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, mpsc, watch};

const PROGRESS_PREFIX: &[u8] = b"::progress";
/// Longest progress line kept; the rest of a longer line is ignored.
const MAX_PROGRESS_LINE: usize = 512;
/// More new output than this since the last look, and only its tail is searched.
const SKIP_AHEAD_AT: u64 = 256 * 1024;
/// How much of the tail is searched then.
const SCAN_TAIL: u64 = 64 * 1024;
/// How often every running task's log is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// The pause after a followed log's look that found its task writing flat out.
const BUSY_PAUSE: Duration = Duration::from_millis(20);

struct Watched {
    id: TaskId,
    path: PathBuf,
    file: File,
    offset: u64,
    /// Where the scanner is: at the start of a line, inside a candidate progress line
    /// (collected in `line`), or inside another line.
    at_line_start: bool,
    collecting: bool,
    line: Vec<u8>,
    size: watch::Sender<u64>,
    /// Readers waiting on this log, and its inotify watch while there are any.
    followers: usize,
    wd: Option<i32>,
    /// The most the log keeps (its task's `max_output`), and where its dropped
    /// middle ends (0 while nothing was dropped).
    max_output: Option<u64>,
    dropped_to: u64,
}

/// The runtime's log follower: one inotify instance and the logs of running tasks.
#[derive(Clone)]
pub(crate) struct OutputWatcher {
    inner: Arc<WatcherInner>,
}

#[derive(Default)]
struct Logs {
    by_task: HashMap<TaskId, Watched>,
    by_wd: HashMap<i32, TaskId>,
}

struct WatcherInner {
    fd: AsyncFd<OwnedFd>,
    logs: Mutex<Logs>,
    /// Woken when a first log is watched, so an idle runtime does not tick.
    watched: Notify,
    progress: mpsc::UnboundedSender<(TaskId, Progress)>,
}

/// The loop that reads inotify's events, by name.
const WATCH_EVENTS: &str = "output-events";

impl OutputWatcher {
    /// Starts following; progress lines found in any log arrive on the returned
    /// channel.
    pub(crate) fn start(
        loops: Arc<crate::loops::Loops>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> io::Result<(OutputWatcher, mpsc::UnboundedReceiver<(TaskId, Progress)>)> {
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)?;
        let fd = crate::sys::async_fd(fd)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = OutputWatcher {
            inner: Arc::new(WatcherInner {
                fd,
                logs: Mutex::default(),
                watched: Notify::new(),
                progress: tx,
            }),
        };
        let (w, l) = (watcher.clone(), loops.clone());
        crate::loops::supervise(loops.clone(), WATCH_EVENTS, shutdown.clone(), move || {
            let (w, l) = (w.clone(), l.clone());
            async move { w.follow_events(&l).await }
        });
        let w = watcher.clone();
        crate::loops::supervise(loops, "output-look", shutdown, move || {
            let w = w.clone();
            async move { w.look_regularly().await }
        });
        Ok((watcher, rx))
    }

    fn logs(&self) -> MutexGuard<'_, Logs> {
        self.inner.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts following the log of a running task from `offset` (the size it had when
    /// the attempt started, so earlier attempts' progress lines are not replayed).
    /// The log's size is published on `size`; following stops when the guard drops.
    pub(crate) fn watch(
        &self,
        id: TaskId,
        path: &Path,
        offset: u64,
        max_output: Option<u64>,
        size: watch::Sender<u64>,
    ) -> io::Result<WatchGuard> {
        // Written to only to drop the middle of a log over `max_output`.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(max_output.is_some())
            .open(path)?;
        let len = file.metadata()?.len();
        size.send_replace(len);
        // A log that dropped its middle before (an adopted attempt, an earlier one).
        let dropped_to = match max_output {
            Some(_) => crate::output::Dropped::of(path, len)?.map_or(0, |d| d.to),
            None => 0,
        };
        let mut w = Watched {
            id,
            path: path.to_path_buf(),
            file,
            offset,
            at_line_start: true,
            collecting: false,
            line: Vec::new(),
            size,
            followers: 0,
            wd: None,
            max_output,
            dropped_to,
        };
        // Output written between the attempt's start and this call is scanned now.
        let _ = self.scan(&mut w);
        self.logs().by_task.insert(id, w);
        self.inner.watched.notify_one();
        Ok(WatchGuard {
            watcher: self.clone(),
            id,
        })
    }

    /// While the returned guard lives, writes to the task's log wake its readers at
    /// once (an inotify watch), not at the next regular look. `None` when the task's
    /// log is not followed here (it is not running on this node).
    pub(crate) fn follow(&self, id: TaskId) -> Option<FollowGuard> {
        let mut logs = self.logs();
        let Logs { by_task, by_wd } = &mut *logs;
        let w = by_task.get_mut(&id)?;
        w.followers += 1;
        if w.wd.is_none() {
            // Without a watch the reader still hears of new output at the next look.
            match inotify::add_watch(
                self.inner.fd.get_ref(),
                &w.path,
                inotify::WatchFlags::MODIFY,
            ) {
                Ok(wd) => {
                    w.wd = Some(wd);
                    by_wd.insert(wd, id);
                }
                Err(e) => tracing::debug!(task = %id, "no inotify watch on the log: {e}"),
            }
        }
        Some(FollowGuard {
            watcher: self.clone(),
            id,
        })
    }

    fn unfollow(&self, id: TaskId) {
        let mut logs = self.logs();
        let Logs { by_task, by_wd } = &mut *logs;
        if let Some(w) = by_task.get_mut(&id) {
            w.followers = w.followers.saturating_sub(1);
            if w.followers == 0
                && let Some(wd) = w.wd.take()
            {
                by_wd.remove(&wd);
                // A watch the kernel already dropped (its file removed) is no error.
                let _ = inotify::remove_watch(self.inner.fd.get_ref(), wd);
            }
        }
    }

    /// Scans the log once more (for output written after the last look), then
    /// forgets it.
    fn unwatch(&self, id: TaskId) {
        let removed = {
            let mut logs = self.logs();
            let w = logs.by_task.remove(&id);
            if let Some(wd) = w.as_ref().and_then(|w| w.wd) {
                logs.by_wd.remove(&wd);
            }
            w
        };
        if let Some(mut w) = removed {
            let _ = self.scan(&mut w);
            if let Some(wd) = w.wd {
                let _ = inotify::remove_watch(self.inner.fd.get_ref(), wd);
            }
        }
    }

    /// Looks at every followed log every [`LOOK_EVERY`] while there are any.
    async fn look_regularly(&self) {
        loop {
            if self.logs().by_task.is_empty() {
                self.inner.watched.notified().await;
                continue;
            }
            tokio::time::sleep(LOOK_EVERY).await;
            let mut logs = self.logs();
            for w in logs.by_task.values_mut() {
                self.scan(w);
            }
        }
    }

    /// Looks at followed logs as soon as the kernel reports writes to them.
    async fn follow_events(&self, loops: &crate::loops::Loops) {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
        loop {
            let mut guard = match self.inner.fd.readable().await {
                Ok(g) => g,
                Err(e) => {
                    // The look every 250 ms still follows the logs meanwhile.
                    loops.failed(WATCH_EVENTS, format_args!("waiting for inotify"), &e);
                    tokio::time::sleep(LOOK_EVERY).await;
                    continue;
                }
            };
            // The watches that saw writes, from one read's worth of events; readiness
            // stays set while more are queued.
            let read = guard.try_io(|fd| {
                let mut events = inotify::Reader::new(fd.get_ref(), &mut buf);
                let mut wds = Vec::new();
                loop {
                    match events.next() {
                        Ok(ev) => {
                            if !wds.contains(&ev.wd()) {
                                wds.push(ev.wd());
                            }
                            if events.is_buffer_empty() {
                                return Ok(wds);
                            }
                        }
                        Err(e) if wds.is_empty() => return Err(io::Error::from(e)),
                        Err(_) => return Ok(wds),
                    }
                }
            });
            let wds = match read {
                Ok(Ok(wds)) => wds,
                Ok(Err(e)) => {
                    loops.failed(WATCH_EVENTS, format_args!("reading inotify events"), &e);
                    tokio::time::sleep(LOOK_EVERY).await;
                    continue;
                }
                Err(_would_block) => continue,
            };
            let mut busy = false;
            {
                let mut logs = self.logs();
                let Logs { by_task, by_wd } = &mut *logs;
                for wd in wds {
                    if let Some(w) = by_wd.get(&wd).and_then(|id| by_task.get_mut(id)) {
                        busy |= self.scan(w);
                    }
                }
            }
            // A task writing flat out raises an event per write. Pausing a moment
            // lets the kernel fold them into one, so following a fast writer costs
            // a few looks a second instead of a core; readers wait at most this long.
            if busy {
                tokio::time::sleep(BUSY_PAUSE).await;
            }
        }
    }

    /// Reads what was appended since the last scan, publishing the new size and any
    /// progress lines.
    fn scan(&self, w: &mut Watched) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let mut busy = false;
        // One look at the file serves the bound and the skip ahead.
        let meta = w.file.metadata();
        if let Ok(meta) = &meta {
            self.bound(w, meta);
        }
        // Progress is a latest-value signal: when a task has written a lot since the
        // last look, only the tail of it is searched, so that a task printing
        // gigabytes does not make the runtime read them all back.
        if let Ok(meta) = meta
            && meta.len() > w.offset + SKIP_AHEAD_AT
        {
            w.offset = meta.len() - SCAN_TAIL;
            busy = true;
            w.at_line_start = false;
            w.collecting = false;
            w.line.clear();
        }
        if w.file.seek(SeekFrom::Start(w.offset)).is_err() {
            return busy;
        }
        loop {
            let n = match w.file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            w.offset += n as u64;
            self.scan_bytes(w, &buf[..n]);
        }
        w.size.send_if_modified(|s| {
            let changed = *s != w.offset;
            *s = w.offset;
            changed
        });
        busy
    }

    /// Drops the middle of a log grown past its `max_output`: the file keeps its
    /// head and its newest part, and the bytes between become a hole (punched, so
    /// every offset, and every reader's cursor, keeps its meaning). Looked at with
    /// each scan, so a log outgrows its bound by at most what a task writes between
    /// two looks.
    fn bound(&self, w: &mut Watched, meta: &std::fs::Metadata) {
        let Some(max) = w.max_output else { return };
        match crate::output::drop_middle(&w.file, meta, &w.path, w.dropped_to, max) {
            Ok(None) => {}
            Ok(Some(to)) => {
                w.dropped_to = to;
                if w.offset < to {
                    // Nothing to scan in what is gone.
                    w.offset = to;
                    w.at_line_start = false;
                    w.collecting = false;
                    w.line.clear();
                }
            }
            Err(e) => {
                // Said once: the log grows as it did before `max_output` existed.
                tracing::warn!(
                    task = %w.id,
                    "the log outgrew max_output but could not drop its middle ({e}); it is not bounded"
                );
                w.max_output = None;
            }
        }
    }

    fn scan_bytes(&self, w: &mut Watched, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if w.collecting {
                match memchr::memchr(b'\n', bytes) {
                    Some(nl) => {
                        let room = MAX_PROGRESS_LINE.saturating_sub(w.line.len());
                        w.line.extend_from_slice(&bytes[..nl.min(room)]);
                        self.finish_line(w);
                        bytes = &bytes[nl + 1..];
                        w.at_line_start = true;
                    }
                    None => {
                        let room = MAX_PROGRESS_LINE.saturating_sub(w.line.len());
                        w.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
                        return;
                    }
                }
            } else if w.at_line_start {
                // Decide whether this line may be a progress line; a prefix split
                // across reads is collected and checked when the line ends.
                let n = bytes.len().min(PROGRESS_PREFIX.len());
                if bytes[..n] == PROGRESS_PREFIX[..n] {
                    w.collecting = true;
                    w.line.clear();
                } else {
                    w.at_line_start = false;
                }
            } else {
                match memchr::memchr(b'\n', bytes) {
                    Some(nl) => {
                        bytes = &bytes[nl + 1..];
                        w.at_line_start = true;
                    }
                    None => return,
                }
            }
        }
    }

    fn finish_line(&self, w: &mut Watched) {
        w.collecting = false;
        let line = std::mem::take(&mut w.line);
        let Some(rest) = line.strip_prefix(PROGRESS_PREFIX) else {
            return;
        };
        if !(rest.is_empty() || rest[0] == b' ' || rest[0] == b'\t') {
            return;
        }
        let text = String::from_utf8_lossy(rest);
        let at = Timestamp(crate::now().0);
        let _ = self
            .inner
            .progress
            .send((w.id, Progress::parse_line(text.trim_end_matches('\r'), at)));
    }
}

/// Stops following a log when dropped, after a last look.
pub(crate) struct WatchGuard {
    watcher: OutputWatcher,
    id: TaskId,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.watcher.unwatch(self.id);
    }
}

/// Keeps a log's inotify watch while a reader waits on it.
pub(crate) struct FollowGuard {
    watcher: OutputWatcher,
    id: TaskId,
}

impl Drop for FollowGuard {
    fn drop(&mut self) {
        self.watcher.unfollow(self.id);
    }
}
