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

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

// Landlock's ABI (linux/landlock.h).
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_REMOVE_DIR: u64 = 1 << 4;
const FS_REMOVE_FILE: u64 = 1 << 5;
const FS_MAKE_CHAR: u64 = 1 << 6;
const FS_MAKE_DIR: u64 = 1 << 7;
const FS_MAKE_REG: u64 = 1 << 8;
const FS_MAKE_SOCK: u64 = 1 << 9;
const FS_MAKE_FIFO: u64 = 1 << 10;
const FS_MAKE_BLOCK: u64 = 1 << 11;
const FS_MAKE_SYM: u64 = 1 << 12;
/// ABI 2.
const FS_REFER: u64 = 1 << 13;
/// ABI 3.
const FS_TRUNCATE: u64 = 1 << 14;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI the running kernel offers; `None` without Landlock (an old
/// kernel, or one that does not enable it).
pub(crate) fn landlock_abi() -> Option<u32> {
    // SAFETY: the version query takes no attribute.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(v).ok().filter(|&v| v >= 1)
}

/// Every right to change the file system that the ABI knows: what a sandbox
/// handles, and grants only beneath its writable paths.
fn write_rights(abi: u32) -> u64 {
    let mut rights = FS_WRITE_FILE
        | FS_REMOVE_DIR
        | FS_REMOVE_FILE
        | FS_MAKE_CHAR
        | FS_MAKE_DIR
        | FS_MAKE_REG
        | FS_MAKE_SOCK
        | FS_MAKE_FIFO
        | FS_MAKE_BLOCK
        | FS_MAKE_SYM;
    if abi >= 2 {
        rights |= FS_REFER;
    }
    if abi >= 3 {
        rights |= FS_TRUNCATE;
    }
    rights
}

/// The rights a rule on a file (not a directory) may grant.
fn file_rights(abi: u32) -> u64 {
    FS_WRITE_FILE | if abi >= 3 { FS_TRUNCATE } else { 0 }
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

/// A Landlock ruleset that lets its process write only beneath some paths,
/// prepared by the supervisor and applied by the task's child.
pub(crate) struct Ruleset(OwnedFd);

impl Ruleset {
    /// A ruleset for writing beneath `writable` (and the devices); fails when the
    /// kernel has no Landlock or a path cannot be opened.
    pub(crate) fn new(writable: &[PathBuf]) -> io::Result<Ruleset> {
        let abi = landlock_abi().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOSYS))?;
        let handled = write_rights(abi);
        let ruleset = Ruleset::create(handled)?;
        for path in writable {
            ruleset.allow(path, handled, abi, true)?;
        }
        for dev in DEVICES {
            ruleset.allow(Path::new(dev), handled, abi, false)?;
        }
        Ok(ruleset)
    }

    /// A ruleset that restricts no write (it handles only making block devices,
    /// which needs a privilege besides): what it gives is the domain itself, in which
    /// a process cannot change the mounts nor look into processes outside it. For
    /// a task whose home is hidden but whose writes are not confined.
    pub(crate) fn domain_only() -> io::Result<Ruleset> {
        landlock_abi().ok_or_else(|| io::Error::from_raw_os_error(libc::ENOSYS))?;
        Ruleset::create(FS_MAKE_BLOCK)
    }

    fn create(handled: u64) -> io::Result<Ruleset> {
        let attr = RulesetAttr {
            handled_access_fs: handled,
        };
        // SAFETY: a valid attribute of the size given.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a new descriptor we own.
        Ok(Ruleset(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    fn allow(&self, path: &Path, handled: u64, abi: u32, required: bool) -> io::Result<()> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a NUL-terminated path; the descriptor is owned below.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return if required { Err(e) } else { Ok(()) };
        }
        // SAFETY: open returned a new descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
        let rule = PathBeneathAttr {
            allowed_access: if is_dir { handled } else { file_rights(abi) },
            parent_fd: fd.as_raw_fd(),
        };
        // SAFETY: a valid rule for a ruleset descriptor we own.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.0.as_raw_fd(),
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub(crate) fn fd(&self) -> i32 {
        self.0.as_raw_fd()
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
        let l = libc::rlimit {
            rlim_cur: value,
            rlim_max: hard,
        };
        // SAFETY: a valid rlimit.
        if unsafe { libc::setrlimit(resource, &l) } != 0 {
            return Err((what, io::Error::last_os_error()));
        }
        Ok(())
    };
    if let Some(s) = c.cpu_secs {
        // SIGXCPU at the limit, SIGKILL a second later for one that ignores it.
        limit("setting the CPU time limit", libc::RLIMIT_CPU, s, s + 1)?;
    }
    if let Some(n) = c.max_files {
        limit(
            "setting the open files limit",
            libc::RLIMIT_NOFILE,
            n.into(),
            n.into(),
        )?;
    }
    let mut namespaces = 0;
    if c.no_network {
        namespaces |= libc::CLONE_NEWNET;
    }
    if cover.is_some() {
        namespaces |= libc::CLONE_NEWNS;
    }
    if namespaces != 0 {
        enter_namespaces(namespaces).map_err(|e| ("entering namespaces of its own", e))?;
    }
    if let Some(cover) = cover {
        cover.apply().map_err(|e| ("hiding meanwhile's home", e))?;
    }
    if let Some(r) = ruleset {
        // SAFETY: plain prctl and Landlock calls on a descriptor we hold.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(("setting no_new_privs", io::Error::last_os_error()));
            }
            if libc::syscall(libc::SYS_landlock_restrict_self, r.fd(), 0u32) != 0 {
                return Err(("applying the Landlock sandbox", io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

/// Moves the calling process into new namespaces (`CLONE_NEWNET`, `CLONE_NEWNS`);
/// a new network namespace gets its loopback interface up. Root makes them
/// directly; another user makes a user namespace for them, mapping only its own
/// ids, so it stays who it is (and, not being root in it, keeps no capability once
/// it runs its program). Allocates nothing.
pub(crate) fn enter_namespaces(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: plain system calls.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        check(unsafe { libc::unshare(flags) })?;
    } else {
        check(unsafe { libc::unshare(libc::CLONE_NEWUSER | flags) })?;
        let mut buf = [0u8; 64];
        write_file(c"/proc/self/setgroups", b"deny")?;
        write_file(c"/proc/self/uid_map", id_map(&mut buf, uid))?;
        write_file(c"/proc/self/gid_map", id_map(&mut buf, gid))?;
    }
    if flags & libc::CLONE_NEWNET != 0 {
        loopback_up()?;
    }
    Ok(())
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The most paths a [`Cover`] puts back (the temporary directory and the socket
/// need two).
const MAX_KEPT: usize = 4;

// The mount API (linux/mount.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

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
        let null = std::ptr::null::<libc::c_char>();
        // SAFETY: NUL-terminated strings or null pointers, as mount(2) takes them.
        check(unsafe {
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        })?;
        // Detached copies of the kept paths, taken while they can still be reached.
        let mut trees: [Option<OwnedFd>; MAX_KEPT] = Default::default();
        for (k, tree) in self.kept.iter().zip(trees.iter_mut()) {
            // SAFETY: a NUL-terminated path; the descriptor is owned below.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    k.path.as_ptr(),
                    OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: open_tree returned a new descriptor.
            *tree = Some(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let hidden = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        // SAFETY: as above.
        check(unsafe {
            libc::mount(
                c"meanwhile-hidden".as_ptr(),
                self.home.as_ptr(),
                c"tmpfs".as_ptr(),
                hidden,
                c"mode=0755,size=64k".as_ptr().cast(),
            )
        })?;
        for (k, tree) in self.kept.iter().zip(trees.iter()) {
            let Some(tree) = tree else { continue };
            for d in &k.dirs {
                // SAFETY: a NUL-terminated path.
                let r = unsafe { libc::mkdir(d.as_ptr(), 0o755) };
                if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                    return Err(io::Error::last_os_error());
                }
            }
            // SAFETY: a NUL-terminated path.
            check(unsafe {
                if k.is_dir {
                    libc::mkdir(k.path.as_ptr(), 0o700)
                } else {
                    libc::mknod(k.path.as_ptr(), libc::S_IFREG | 0o600, 0)
                }
            })?;
            // SAFETY: a detached tree we own, and a NUL-terminated target.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_move_mount,
                    tree.as_raw_fd(),
                    c"".as_ptr(),
                    libc::AT_FDCWD,
                    k.path.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                )
            };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: as above; a remount of the cover alone, read-only from now on.
        check(unsafe {
            libc::mount(
                null,
                self.home.as_ptr(),
                null,
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | hidden,
                std::ptr::null(),
            )
        })
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
    // SAFETY: a NUL-terminated path; the descriptor is owned below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a new descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    crate::sys::write_all(&fd, bytes)
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket for the interface ioctls, owned below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket returned a new descriptor.
    let s = unsafe { OwnedFd::from_raw_fd(s) };
    // SAFETY: an all-zero ifreq is valid; its name is "lo".
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name[0] = b'l' as libc::c_char;
    req.ifr_name[1] = b'o' as libc::c_char;
    // SAFETY: the ioctls read and write the ifreq we own.
    unsafe {
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
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
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
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

    /// The path another user takes: a user namespace mapping only its own ids, and a
    /// network namespace in it whose loopback is up. Becoming another user takes
    /// root, which is what the daemon's tests run as.
    #[test]
    fn another_user_gets_a_network_namespace_of_its_own() {
        use std::os::unix::process::CommandExt;
        // SAFETY: plain system call.
        if unsafe { libc::geteuid() } != 0 {
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
        // SAFETY: the closure makes system calls only, and allocates nothing.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // A process that changed its ids is not dumpable, so its /proc files
                // would stay root's; one started as the user is.
                libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
                enter_namespaces(libc::CLONE_NEWNET)
            });
        }
        let out = cmd.output().unwrap();
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
        use std::os::unix::process::CommandExt;
        // SAFETY: plain system call.
        if unsafe { libc::geteuid() } != 0 {
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
        // SAFETY: the closure makes system calls only, and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
                prepared.apply().map_err(|(_, e)| e)
            });
        }
        let out = cmd.output().unwrap();
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
