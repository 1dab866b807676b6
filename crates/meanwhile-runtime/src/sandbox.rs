//! Confining a task's process: what it may write (Landlock), whether it has a
//! network (a namespace of its own), whether it sees meanwhile's home (a mount
//! namespace of its own, the home covered), its resource limits, and the
//! supervisor's watch over the memory and the processes of its whole tree.
//!
//! The runtime decides the confinement ([`Confine`]) and checks what it can before
//! starting anything (the kernel's Landlock, the paths, the limits); the spawner
//! carries it to the attempt's supervisor, which prepares the Landlock ruleset
//! (opening the paths) and the cover of the home, and the task's child applies it
//! all just before `execve`: rlimits, then the namespaces (network, mount), the
//! home covered, then `no_new_privs` and the ruleset. A confinement that cannot be
//! applied fails the start: the task never runs unconfined.
//!
//! A task whose home is hidden always gets a Landlock domain, even one that may
//! write anywhere: a process in a domain can neither change the mounts (so it
//! cannot unmount the cover, root included) nor look into processes outside its
//! domain (`/proc/<pid>/root`, `/fd`, `/environ` of the daemon or another task,
//! which would show the home again).

use landlock::{
    ABI, AccessFs, BitFlags, PathBeneath, RulesetAttr, RulesetCreated, RulesetCreatedAttr,
};
use rustix::fs::{CWD, FileType, Mode, OFlags};
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::process::{Resource, Rlimit};
use rustix::thread::UnshareFlags;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

/// How a task is confined; the default confines nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Confine {
    /// Sandboxed: the paths beneath which it may write. `None`: not sandboxed.
    pub writable: Option<Vec<PathBuf>>,
    /// A network namespace of its own, with only loopback.
    pub no_network: bool,
    /// Bytes of memory its tree may hold (resident), watched by its supervisor.
    pub memory: Option<u64>,
    /// Seconds of CPU time each process may use (`RLIMIT_CPU`).
    pub cpu_secs: Option<u64>,
    /// Processes its tree may have, watched by its supervisor. (Not `RLIMIT_NPROC`,
    /// which counts every process of the user, not the task's.)
    pub max_procs: Option<u32>,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub max_files: Option<u32>,
    /// Meanwhile's home, hidden from the task, and what it still reaches there.
    pub hide: Option<Hide>,
}

/// Meanwhile's home covered for a task (an empty read-only file system mounted on
/// it, in a mount namespace of the task's own), with a few paths inside it put
/// back: the task's temporary directory and the daemon's socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Hide {
    /// The home directory.
    pub home: PathBuf,
    /// Paths beneath the home the task still reaches; one that does not exist when
    /// the task starts (a daemon's socket, for a runtime without a daemon) is left out.
    pub keep: Vec<PathBuf>,
}

impl Confine {
    /// True when the supervisor watches the task's tree.
    pub(crate) fn watched(&self) -> bool {
        self.memory.is_some() || self.max_procs.is_some()
    }

    /// The wire form: `key=value` entries, each ended by a NUL (paths hold none).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |k: &str, v: &[u8]| {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v);
            out.push(0);
        };
        if let Some(w) = &self.writable {
            put("sandbox", b"1");
            for p in w {
                put("write", p.as_os_str().as_bytes());
            }
        }
        if self.no_network {
            put("no_network", b"1");
        }
        if let Some(h) = &self.hide {
            put("hide", h.home.as_os_str().as_bytes());
            for p in &h.keep {
                put("keep", p.as_os_str().as_bytes());
            }
        }
        for (k, v) in [
            ("memory", self.memory),
            ("cpu", self.cpu_secs),
            ("procs", self.max_procs.map(u64::from)),
            ("files", self.max_files.map(u64::from)),
        ] {
            if let Some(v) = v {
                put(k, v.to_string().as_bytes());
            }
        }
        out
    }

    /// The inverse of [`Confine::encode`].
    pub(crate) fn decode(bytes: &[u8]) -> Option<Confine> {
        let mut c = Confine::default();
        for entry in bytes.split(|&b| b == 0).filter(|e| !e.is_empty()) {
            let eq = entry.iter().position(|&b| b == b'=')?;
            let (k, v) = (&entry[..eq], &entry[eq + 1..]);
            let num = || std::str::from_utf8(v).ok()?.parse::<u64>().ok();
            match k {
                b"sandbox" => {
                    c.writable.get_or_insert_with(Vec::new);
                }
                b"write" => c
                    .writable
                    .get_or_insert_with(Vec::new)
                    .push(PathBuf::from(std::ffi::OsStr::from_bytes(v))),
                b"no_network" => c.no_network = true,
                b"hide" => {
                    c.hide.get_or_insert_with(Hide::default).home =
                        PathBuf::from(std::ffi::OsStr::from_bytes(v));
                }
                b"keep" => c
                    .hide
                    .as_mut()?
                    .keep
                    .push(PathBuf::from(std::ffi::OsStr::from_bytes(v))),
                b"memory" => c.memory = Some(num()?),
                b"cpu" => c.cpu_secs = Some(num()?),
                b"procs" => c.max_procs = Some(u32::try_from(num()?).ok()?),
                b"files" => c.max_files = Some(u32::try_from(num()?).ok()?),
                _ => return None,
            }
        }
        Some(c)
    }
}

/// Every right to change the file system that Landlock's ABI 3 knows: what a
/// sandbox handles, and grants only beneath its writable paths. On a kernel with an
/// older ABI the crate leaves out what it does not know (truncating before ABI 3,
/// linking and renaming across directories before ABI 2), as a best effort.
fn write_rights() -> BitFlags<AccessFs> {
    AccessFs::from_write(ABI::V3)
}

/// The rights a rule on a file (not a directory) may grant.
fn file_rights() -> BitFlags<AccessFs> {
    AccessFs::WriteFile | AccessFs::Truncate
}

/// Devices every program may write, whatever its sandbox: the null and zero
/// devices and the terminals.
const DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

/// A ruleset handling `handled`, as far as the kernel knows those rights; fails
/// with `ENOSYS` when the kernel has no Landlock (Linux 5.13 or later, with
/// landlock among its LSMs).
fn created(handled: BitFlags<AccessFs>) -> io::Result<RulesetCreated> {
    let ruleset = landlock::Ruleset::default()
        .handle_access(handled)
        .and_then(|r| r.create())
        .map_err(os_error)?;
    // Without Landlock the crate makes a ruleset that enforces nothing, and has no
    // descriptor.
    let fd: Option<OwnedFd> = ruleset.try_clone()?.into();
    if fd.is_none() {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(ruleset)
}

/// True when the running kernel offers Landlock.
pub(crate) fn landlock_available() -> bool {
    created(AccessFs::MakeBlock.into()).is_ok()
}

/// The system's error beneath a Landlock error (what the task's start reports);
/// the error itself for one that has none.
fn os_error(e: landlock::RulesetError) -> io::Error {
    let mut at: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = at {
        if let Some(code) = err
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return io::Error::from_raw_os_error(code);
        }
        at = err.source();
    }
    io::Error::other(e)
}

/// A Landlock ruleset that lets its process write only beneath some paths,
/// prepared by the supervisor and applied by the task's child.
pub(crate) struct Ruleset(RulesetCreated);

impl Ruleset {
    /// A ruleset for writing beneath `writable` (and the devices); fails when the
    /// kernel has no Landlock or a path cannot be opened.
    pub(crate) fn new(writable: &[PathBuf]) -> io::Result<Ruleset> {
        let handled = write_rights();
        let mut ruleset = Ruleset(created(handled)?);
        for path in writable {
            ruleset.allow(path, handled, true)?;
        }
        for dev in DEVICES {
            ruleset.allow(Path::new(dev), handled, false)?;
        }
        Ok(ruleset)
    }

    /// A ruleset that restricts no write (it handles only making block devices,
    /// which needs a privilege besides): what it gives is the domain itself, in which
    /// a process cannot change the mounts nor look into processes outside it. For
    /// a task whose home is hidden but whose writes are not confined.
    pub(crate) fn domain_only() -> io::Result<Ruleset> {
        Ok(Ruleset(created(AccessFs::MakeBlock.into())?))
    }

    fn allow(
        &mut self,
        path: &Path,
        handled: BitFlags<AccessFs>,
        required: bool,
    ) -> io::Result<()> {
        let fd = match rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) if required => return Err(e.into()),
            Err(_) => return Ok(()),
        };
        let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
        let rights = if is_dir { handled } else { file_rights() };
        (&mut self.0)
            .add_rule(PathBeneath::new(fd, rights))
            .map_err(os_error)?;
        Ok(())
    }

    /// Restricts the calling process to the ruleset (`no_new_privs` must be set
    /// already). Allocates nothing.
    fn restrict_self(&self) -> io::Result<()> {
        let status = self
            .0
            .try_clone()?
            .no_new_privs(false)
            .restrict_self()
            .map_err(os_error)?;
        if status.ruleset == landlock::RulesetStatus::NotEnforced {
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        Ok(())
    }
}

/// A confinement made ready before the fork: its Landlock ruleset (the writable
/// paths opened) and the cover of the home, so that the child applies it without
/// allocating.
pub(crate) struct Prepared {
    confine: Confine,
    ruleset: Option<Ruleset>,
    cover: Option<Cover>,
}

impl Prepared {
    pub(crate) fn new(c: &Confine) -> io::Result<Prepared> {
        // A task whose home is hidden gets a Landlock domain even when its writes
        // are free (see the top of this module).
        let ruleset = match (&c.writable, &c.hide) {
            (Some(w), _) => Some(Ruleset::new(w)?),
            (None, Some(_)) => Some(Ruleset::domain_only()?),
            (None, None) => None,
        };
        let cover = c.hide.as_ref().map(Cover::new).transpose()?;
        Ok(Prepared {
            confine: c.clone(),
            ruleset,
            cover,
        })
    }

    /// True when the home is covered.
    pub(crate) fn hides_home(&self) -> bool {
        self.cover.is_some()
    }

    /// Applies it to the calling process, just before `execve`; returns what
    /// failed. Allocates nothing, so it may run in the child of a multi-threaded
    /// process.
    pub(crate) fn apply(&self) -> Result<(), (&'static str, io::Error)> {
        apply(&self.confine, self.ruleset.as_ref(), self.cover.as_ref())
    }
}

/// Applies a confinement to the calling process (the task's child, just before
/// `execve`); returns what failed. Nothing here allocates.
fn apply(
    c: &Confine,
    ruleset: Option<&Ruleset>,
    cover: Option<&Cover>,
) -> Result<(), (&'static str, io::Error)> {
    let limit = |what: &'static str, resource, value: u64, hard: u64| {
        let l = Rlimit {
            current: Some(value),
            maximum: Some(hard),
        };
        rustix::process::setrlimit(resource, l).map_err(|e| (what, e.into()))
    };
    if let Some(s) = c.cpu_secs {
        // SIGXCPU at the limit, SIGKILL a second later for one that ignores it.
        limit("setting the CPU time limit", Resource::Cpu, s, s + 1)?;
    }
    if let Some(n) = c.max_files {
        limit(
            "setting the open files limit",
            Resource::Nofile,
            n.into(),
            n.into(),
        )?;
    }
    let mut namespaces = UnshareFlags::empty();
    if c.no_network {
        namespaces |= UnshareFlags::NEWNET;
    }
    if cover.is_some() {
        namespaces |= UnshareFlags::NEWNS;
    }
    if !namespaces.is_empty() {
        enter_namespaces(namespaces).map_err(|e| ("entering namespaces of its own", e))?;
    }
    if let Some(cover) = cover {
        cover.apply().map_err(|e| ("hiding meanwhile's home", e))?;
    }
    if let Some(r) = ruleset {
        rustix::thread::set_no_new_privs(true).map_err(|e| ("setting no_new_privs", e.into()))?;
        r.restrict_self()
            .map_err(|e| ("applying the Landlock sandbox", e))?;
    }
    Ok(())
}

/// Moves the calling process into new namespaces (`CLONE_NEWNET`, `CLONE_NEWNS`);
/// a new network namespace gets its loopback interface up. Root makes them
/// directly; another user makes a user namespace for them, mapping only its own
/// ids, so it stays who it is (and, not being root in it, keeps no capability once
/// it runs its program). Allocates nothing.
pub(crate) fn enter_namespaces(flags: UnshareFlags) -> io::Result<()> {
    let (uid, gid) = (rustix::process::geteuid(), rustix::process::getegid());
    if uid.is_root() {
        crate::sys::unshare(flags)?;
    } else {
        crate::sys::unshare(UnshareFlags::NEWUSER | flags)?;
        let mut buf = [0u8; 64];
        write_file(c"/proc/self/setgroups", b"deny")?;
        write_file(c"/proc/self/uid_map", id_map(&mut buf, uid.as_raw()))?;
        write_file(c"/proc/self/gid_map", id_map(&mut buf, gid.as_raw()))?;
    }
    if flags.contains(UnshareFlags::NEWNET) {
        loopback_up()?;
    }
    Ok(())
}

/// The most paths a [`Cover`] puts back (the temporary directory and the socket
/// need two).
const MAX_KEPT: usize = 4;

/// A [`Hide`] made ready by the supervisor before it forks: every path a C string,
/// so that the task's child covers the home without allocating.
pub(crate) struct Cover {
    home: CString,
    kept: Vec<Kept>,
}

/// A path put back on the cover.
struct Kept {
    path: CString,
    /// The directories between the home and the path, outermost first, made on
    /// the cover so that the path has a place.
    dirs: Vec<CString>,
    is_dir: bool,
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

impl Cover {
    /// The cover of `hide`; a kept path that does not exist now is left out.
    pub(crate) fn new(hide: &Hide) -> io::Result<Cover> {
        let mut kept = Vec::new();
        for p in &hide.keep {
            let Ok(meta) = std::fs::symlink_metadata(p) else {
                continue;
            };
            let rel = p
                .strip_prefix(&hide.home)
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let mut dirs = Vec::new();
            let mut at = hide.home.clone();
            let parts: Vec<_> = rel.components().collect();
            for part in &parts[..parts.len().saturating_sub(1)] {
                at.push(part);
                dirs.push(c_path(&at)?);
            }
            kept.push(Kept {
                path: c_path(p)?,
                dirs,
                is_dir: meta.is_dir(),
            });
        }
        if kept.len() > MAX_KEPT {
            return Err(io::Error::from_raw_os_error(libc::E2BIG));
        }
        Ok(Cover {
            home: c_path(&hide.home)?,
            kept,
        })
    }

    /// In the task's child, once in a mount namespace of its own: mounts an empty
    /// file system on the home, puts the kept paths back on it, and makes it
    /// read-only. Nothing of this reaches the mounts outside (they are made
    /// private first). Allocates nothing.
    fn apply(&self) -> io::Result<()> {
        use rustix::mount::{MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags};
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )?;
        // Detached copies of the kept paths, taken while they can still be reached.
        let mut trees: [Option<OwnedFd>; MAX_KEPT] = Default::default();
        for (k, tree) in self.kept.iter().zip(trees.iter_mut()) {
            *tree = Some(rustix::mount::open_tree(
                CWD,
                k.path.as_c_str(),
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_RECURSIVE,
            )?);
        }
        let hidden = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        rustix::mount::mount(
            c"meanwhile-hidden",
            self.home.as_c_str(),
            c"tmpfs",
            hidden,
            c"mode=0755,size=64k",
        )?;
        for (k, tree) in self.kept.iter().zip(trees.iter()) {
            let Some(tree) = tree else { continue };
            for d in &k.dirs {
                match rustix::fs::mkdir(d.as_c_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if k.is_dir {
                rustix::fs::mkdir(k.path.as_c_str(), Mode::from_raw_mode(0o700))?;
            } else {
                rustix::fs::mknodat(
                    CWD,
                    k.path.as_c_str(),
                    FileType::RegularFile,
                    Mode::from_raw_mode(0o600),
                    0,
                )?;
            }
            rustix::mount::move_mount(
                tree,
                c"",
                CWD,
                k.path.as_c_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )?;
        }
        // A remount of the cover alone, read-only from now on.
        rustix::mount::mount_remount(
            self.home.as_c_str(),
            MountFlags::BIND | MountFlags::RDONLY | hidden,
            c"",
        )?;
        Ok(())
    }
}

/// `"ID ID 1"`, written into `buf`.
fn id_map(buf: &mut [u8; 64], id: u32) -> &[u8] {
    let mut digits = [0u8; 10];
    let mut n = id;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut at = 0;
    for _ in 0..2 {
        for i in (0..len).rev() {
            buf[at] = digits[i];
            at += 1;
        }
        buf[at] = b' ';
        at += 1;
    }
    buf[at] = b'1';
    &buf[..at + 1]
}

fn write_file(path: &std::ffi::CStr, bytes: &[u8]) -> io::Result<()> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    crate::sys::write_all(&fd, bytes)
}

fn loopback_up() -> io::Result<()> {
    let s = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    crate::sys::set_interface_up(s.as_fd(), b"lo")
}

/// Which limit of its tree a supervisor killed a task for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// Its processes held more memory than this many bytes.
    Memory(u64),
    /// It had more processes than this.
    Procs(u32),
}

impl Exceeded {
    /// The journal's form: a kind and a value.
    pub(crate) fn encode(self) -> (i64, i64) {
        match self {
            Exceeded::Memory(b) => (1, b as i64),
            Exceeded::Procs(n) => (2, n.into()),
        }
    }

    pub(crate) fn decode(kind: i64, value: i64) -> Option<Exceeded> {
        match kind {
            1 => Some(Exceeded::Memory(value.max(0) as u64)),
            2 => Some(Exceeded::Procs(value.clamp(0, u32::MAX.into()) as u32)),
            _ => None,
        }
    }

    /// The end's reason: `memory limit 2G exceeded`.
    pub fn reason(self) -> String {
        match self {
            Exceeded::Memory(b) => {
                format!("memory limit {} exceeded", meanwhile_core::ByteSize(b))
            }
            Exceeded::Procs(n) => format!("process limit {n} exceeded"),
        }
    }
}

/// How often a supervisor looks at its tree's memory and processes.
const WATCH_EVERY: Duration = Duration::from_millis(50);

/// A supervisor's thread watching the task's tree (every descendant of the
/// supervisor, which is a subreaper) against its memory and process limits; over
/// one, it kills the tree and remembers why.
pub(crate) struct Watch {
    done: Arc<AtomicBool>,
    exceeded: Arc<AtomicU8>,
    limits: (Option<u64>, Option<u32>),
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// A supervisor's watch over its own descendants, the task's process group
    /// led by `task_pid`.
    pub(crate) fn start(c: &Confine, task_pid: i32) -> io::Result<Watch> {
        Watch::over(c, std::process::id() as i32, task_pid)
    }

    /// A watch over the tree of `root`: itself (unless it is this process) and its
    /// descendants; over a limit, `group` is killed with them.
    pub(crate) fn over(c: &Confine, root: i32, group: i32) -> io::Result<Watch> {
        let done = Arc::new(AtomicBool::new(false));
        let exceeded = Arc::new(AtomicU8::new(0));
        let limits = (c.memory, c.max_procs);
        let thread = {
            let (done, exceeded) = (done.clone(), exceeded.clone());
            std::thread::Builder::new()
                .name("mw-limits".into())
                .spawn(move || watch(root, group, limits, &done, &exceeded))?
        };
        Ok(Watch {
            done,
            exceeded,
            limits,
            thread: Some(thread),
        })
    }

    /// Stops watching (waking the thread from its pause); the limit the tree went
    /// over, if it did.
    pub(crate) fn finish(mut self) -> Option<Exceeded> {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        match self.exceeded.load(Ordering::SeqCst) {
            1 => self.limits.0.map(Exceeded::Memory),
            2 => self.limits.1.map(Exceeded::Procs),
            _ => None,
        }
    }
}

fn watch(
    root: i32,
    task_pid: i32,
    limits: (Option<u64>, Option<u32>),
    done: &AtomicBool,
    exceeded: &AtomicU8,
) {
    let me = std::process::id() as i32;
    let page = rustix::param::page_size() as u64;
    while !done.load(Ordering::SeqCst) {
        let all = crate::procfs::all_processes();
        let mut tree = crate::procfs::descendants(&all, root);
        if root != me {
            tree.push(root);
        }
        let over = if limits.1.is_some_and(|n| tree.len() > n as usize) {
            2
        } else if let Some(max) = limits.0 {
            let used: u64 = tree.iter().map(|&p| resident_pages(p) * page).sum();
            if used > max { 1 } else { 0 }
        } else {
            0
        };
        if over != 0 {
            exceeded.store(over, Ordering::SeqCst);
            // The group first, then every process of the tree that left it; the
            // supervisor's own end sweeps whatever is left.
            if let Some(p) = crate::sys::pid(task_pid) {
                let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
            }
            for pid in tree {
                if let Some(p) = crate::sys::pid(pid) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
            return;
        }
        // Woken early by `finish`, so an end never waits for a look.
        std::thread::park_timeout(WATCH_EVERY);
    }
}

/// Resident pages of a process (`/proc/<pid>/statm`); 0 once it is gone.
fn resident_pages(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|t| t.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confinement_travels_whole() {
        let c = Confine {
            writable: Some(vec!["/tmp/a b".into(), "/w".into()]),
            no_network: true,
            memory: Some(2 << 30),
            cpu_secs: Some(10),
            max_procs: Some(64),
            max_files: Some(256),
            hide: Some(Hide {
                home: "/h me".into(),
                keep: vec!["/h me/meanwhile.sock".into(), "/h me/tasks/7/tmp.1".into()],
            }),
        };
        assert_eq!(Confine::decode(&c.encode()), Some(c));
        assert_eq!(
            Confine::decode(b"keep=/h/x\0"),
            None,
            "a kept path needs its home"
        );
        assert_eq!(Confine::decode(b""), Some(Confine::default()));
        let sandbox_only = Confine {
            writable: Some(vec![]),
            ..Confine::default()
        };
        assert_eq!(Confine::decode(&sandbox_only.encode()), Some(sandbox_only));
        assert_eq!(Confine::decode(b"what=1\0"), None);
    }

    #[test]
    fn id_maps_are_written_without_allocating() {
        let mut buf = [0u8; 64];
        assert_eq!(id_map(&mut buf, 0), b"0 0 1");
        assert_eq!(id_map(&mut buf, 65534), b"65534 65534 1");
        assert_eq!(id_map(&mut buf, u32::MAX), b"4294967295 4294967295 1");
    }

    /// Runs `cmd` as another user (65534), confined by `prepared` as a task's
    /// child is. Becoming another user takes root.
    fn output_as_another_user(
        mut cmd: std::process::Command,
        prepared: Prepared,
    ) -> std::process::Output {
        use std::os::unix::process::CommandExt;
        // The supplementary groups are dropped, then the gid and the uid set, before
        // the closure runs.
        cmd.uid(65534).gid(65534);
        // SAFETY: the closure makes system calls only, and allocates nothing: what
        // `apply` uses was prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // A process that changed its ids is not dumpable, so its /proc files
                // would stay root's; one started as the user is.
                rustix::process::set_dumpable_behavior(
                    rustix::process::DumpableBehavior::Dumpable,
                )?;
                prepared.apply().map_err(|(_, e)| e)
            });
        }
        cmd.output().unwrap()
    }

    /// The path another user takes: a user namespace mapping only its own ids, and a
    /// network namespace in it whose loopback is up. Becoming another user takes
    /// root, which is what the daemon's tests run as.
    #[test]
    fn another_user_gets_a_network_namespace_of_its_own() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("not root: the path of another user is the one this run takes");
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = format!(
            "id -u; ip -o link show lo; echo > /dev/tcp/127.0.0.1/{port} && echo reached || echo unreachable"
        );
        let mut cmd = std::process::Command::new("/bin/bash");
        cmd.args(["-c", &probe]);
        // A network namespace and nothing else: `enter_namespaces` alone.
        let network = Confine {
            no_network: true,
            ..Confine::default()
        };
        let out = output_as_another_user(cmd, Prepared::new(&network).unwrap());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "65534", "it stays who it is: {text}");
        assert!(lines[1].contains("<LOOPBACK,UP,LOWER_UP>"), "{text}");
        assert_eq!(lines[2], "unreachable", "{text}");
        drop(listener);
    }

    /// The path another user takes to hide the home: a user namespace mapping
    /// only its own ids, a mount namespace in it with the home covered and the
    /// kept path put back, and a Landlock domain, in which the cover stays on.
    #[test]
    fn another_user_sees_nothing_of_a_hidden_home_but_what_it_keeps() {
        use std::os::unix::fs::PermissionsExt;
        if !rustix::process::geteuid().is_root() {
            eprintln!("not root: the path of another user is the one this run takes");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let keep = home.join("tasks/7/tmp.1");
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::write(home.join("meanwhile.db"), "s3cr3t").unwrap();
        for d in [
            dir.path(),
            &home,
            &home.join("tasks"),
            &home.join("tasks/7"),
        ] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&keep, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(
            home.join("meanwhile.db"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let confine = Confine {
            hide: Some(Hide {
                home: home.clone(),
                keep: vec![keep.clone(), home.join("meanwhile.sock")],
            }),
            ..Confine::default()
        };
        let prepared = Prepared::new(&confine).unwrap();
        let probe = format!(
            "id -u; cat {h}/meanwhile.db || echo hidden; echo t > {k}/t && cat {k}/t; umount {h} 2>/dev/null || echo covered; ls -A {h}",
            h = home.display(),
            k = keep.display()
        );
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", &probe]).current_dir("/");
        let out = output_as_another_user(cmd, prepared);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(text, "65534\nhidden\nt\ncovered\ntasks\n");
        assert_eq!(std::fs::read_to_string(keep.join("t")).unwrap(), "t\n");
    }

    #[test]
    fn reasons_say_the_limit() {
        assert_eq!(
            Exceeded::Memory(2 << 30).reason(),
            "memory limit 2G exceeded"
        );
        assert_eq!(Exceeded::Procs(5).reason(), "process limit 5 exceeded");
        let (k, v) = Exceeded::Memory(3 << 20).encode();
        assert_eq!(Exceeded::decode(k, v), Some(Exceeded::Memory(3 << 20)));
    }
}
