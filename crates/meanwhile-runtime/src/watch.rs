//! Watches the logs of running tasks with inotify: publishes each log's size to
//! readers waiting for new output, and picks `::progress` lines out of the new bytes.
//! Readers and progress are woken by the kernel, not by polling the files.

use meanwhile_core::{Progress, TaskId, Timestamp};
use rustix::fs::inotify;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};

const PROGRESS_PREFIX: &[u8] = b"::progress";
/// Longest progress line kept; the rest of a longer line is ignored.
const MAX_PROGRESS_LINE: usize = 512;
/// More new output than this since the last look, and only its tail is searched.
const SKIP_AHEAD_AT: u64 = 256 * 1024;
/// How much of the tail is searched then.
const SCAN_TAIL: u64 = 64 * 1024;
/// The pause after a look that found a task writing flat out.
const BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

struct Watched {
    id: TaskId,
    file: File,
    offset: u64,
    /// Where the scanner is: at the start of a line, inside a candidate progress line
    /// (collected in `line`), or inside another line.
    at_line_start: bool,
    collecting: bool,
    line: Vec<u8>,
    size: watch::Sender<u64>,
}

/// The runtime's one inotify instance and the logs it watches.
#[derive(Clone)]
pub(crate) struct OutputWatcher {
    inner: Arc<WatcherInner>,
}

struct WatcherInner {
    fd: AsyncFd<OwnedFd>,
    by_wd: Mutex<HashMap<i32, Watched>>,
    progress: mpsc::UnboundedSender<(TaskId, Progress)>,
}

impl OutputWatcher {
    /// Starts watching; progress lines found in any log arrive on the returned channel.
    pub(crate) fn start() -> io::Result<(OutputWatcher, mpsc::UnboundedReceiver<(TaskId, Progress)>)>
    {
        let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC)?;
        let fd = crate::spawn::async_fd(fd)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = OutputWatcher {
            inner: Arc::new(WatcherInner {
                fd,
                by_wd: Mutex::new(HashMap::new()),
                progress: tx,
            }),
        };
        let w = watcher.clone();
        tokio::spawn(async move { w.run().await });
        Ok((watcher, rx))
    }

    /// Starts watching the log of a running task from `offset` (the size it had when
    /// the attempt started, so earlier attempts' progress lines are not replayed).
    /// The log's size is published on `size`; watching stops when the guard drops.
    pub(crate) fn watch(
        &self,
        id: TaskId,
        path: &Path,
        offset: u64,
        size: watch::Sender<u64>,
    ) -> io::Result<WatchGuard> {
        let file = File::open(path)?;
        let wd = inotify::add_watch(self.inner.fd.get_ref(), path, inotify::WatchFlags::MODIFY)?;
        size.send_replace(file.metadata()?.len());
        let mut w = Watched {
            id,
            file,
            offset,
            at_line_start: true,
            collecting: false,
            line: Vec::new(),
            size,
        };
        // Output written between the attempt's start and this call is scanned now.
        let _ = self.scan(&mut w);
        if let Ok(mut map) = self.inner.by_wd.lock() {
            map.insert(wd, w);
        }
        Ok(WatchGuard {
            watcher: self.clone(),
            wd,
        })
    }

    /// Scans the log once more (for output written after the last event), then
    /// forgets it.
    fn unwatch(&self, wd: i32) {
        let removed = self.inner.by_wd.lock().ok().and_then(|mut m| m.remove(&wd));
        if let Some(mut w) = removed {
            let _ = self.scan(&mut w);
            // A watch the kernel already dropped (its file removed) is no error.
            let _ = inotify::remove_watch(self.inner.fd.get_ref(), wd);
        }
    }

    async fn run(&self) {
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 64 * 1024];
        loop {
            let mut guard = match self.inner.fd.readable().await {
                Ok(g) => g,
                Err(_) => return,
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
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            };
            let mut busy = false;
            if let Ok(mut map) = self.inner.by_wd.lock() {
                for wd in wds {
                    if let Some(w) = map.get_mut(&wd) {
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
        // Progress is a latest-value signal: when a task has written a lot since the
        // last look, only the tail of it is searched, so that a task printing
        // gigabytes does not make the runtime read them all back.
        if let Ok(meta) = w.file.metadata()
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

/// Stops watching a log when dropped, after a last scan.
pub(crate) struct WatchGuard {
    watcher: OutputWatcher,
    wd: i32,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.watcher.unwatch(self.wd);
    }
}
