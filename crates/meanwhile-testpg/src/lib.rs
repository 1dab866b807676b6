//! Throwaway PostgreSQL servers for tests, real ones, started by the tests themselves.
//!
//! [`TestDb::new`] gives each test a database of its own. The server behind it is
//! started once per test process (nextest runs each test in a process of its own):
//! `initdb` runs once per PostgreSQL version into a cached template directory
//! (under a file lock, so parallel test processes do not race), and each process
//! copies the template (into memory, `/dev/shm`, where there is one), then starts
//! `postgres` directly as a child, listening only
//! on a Unix socket in its own directory. The child is asked to die with the thread
//! that started it (`PR_SET_PDEATHSIG`; that thread lives as long as the process),
//! and is stopped, with its directory removed, when the last [`TestDb`] of the
//! process is dropped. A process killed first (at its timeout) cannot remove it, so
//! each process holds its directory's lock while it lives, and every server start
//! removes the directories nobody holds: what a killed test leaves in memory lasts
//! until the next test that starts a server.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then the server runs as
//! `nobody`. When `MEANWHILE_TEST_DATABASE_URL` is set, no server is started: each
//! test gets a fresh database on that server instead.
//!
//! The binaries are found through `MEANWHILE_PG_BIN`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's layout), else `PATH`.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::Duration;
use tokio_postgres::{Config, NoTls};

/// The environment variable naming an existing server to use instead.
pub const URL_VAR: &str = "MEANWHILE_TEST_DATABASE_URL";

/// A database of one test's own, on a server of the process's own (or on the one
/// `MEANWHILE_TEST_DATABASE_URL` names).
pub struct TestDb {
    config: Config,
    /// Where the database was created from, and is dropped from.
    admin: Config,
    name: String,
    _server: Option<Arc<Server>>,
}

impl TestDb {
    /// A fresh, empty database. Panics with what went wrong when no server can be
    /// had: a test cannot go on without one.
    pub async fn new() -> TestDb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (admin, server) = match std::env::var(URL_VAR) {
            Ok(url) => {
                let config: Config = url
                    .parse()
                    .unwrap_or_else(|e| panic!("{URL_VAR} is not a PostgreSQL URL: {e}"));
                (config, None)
            }
            Err(_) => {
                let server = Server::shared().unwrap_or_else(|e| {
                    panic!("could not start a PostgreSQL server for the tests: {e}")
                });
                (server.config("postgres"), Some(server))
            }
        };
        let client = connect(&admin).await;
        client
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY"
            ))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e:?}"));
        let mut config = admin.clone();
        config.dbname(&name);
        TestDb {
            config,
            admin,
            name,
            _server: server,
        }
    }

    /// The driver's configuration for this database.
    pub fn config(&self) -> Config {
        self.config.clone()
    }

    /// This database's connection string (`key=value` pairs), as a user would give it.
    pub fn url(&self) -> String {
        conninfo(&self.config)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL on the database directly, as someone editing it by hand would.
    pub async fn execute(&self, sql: &str) {
        connect(&self.config)
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
}

async fn connect(config: &Config) -> tokio_postgres::Client {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e:?}", conninfo(config)));
    tokio::spawn(async move {
        // The test's runtime ending closes it; nothing to report.
        let _ = connection.await;
    });
    client
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self._server.is_some() {
            // The server and everything in it go with the process's last database.
            return;
        }
        // On a server of someone else's, the database is dropped, from a runtime of
        // its own: the test's may be shutting down.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let (client, connection) = admin.connect(NoTls).await.map_err(io::Error::other)?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(io::Error::other)
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!(
                "meanwhile-testpg: could not drop test database {}: {e}",
                self.name
            );
        }
    }
}

/// A configuration as `key=value` pairs.
fn conninfo(c: &Config) -> String {
    let mut parts = Vec::new();
    if let Some(host) = c.get_hosts().first() {
        match host {
            tokio_postgres::config::Host::Tcp(h) => parts.push(format!("host={h}")),
            tokio_postgres::config::Host::Unix(p) => parts.push(format!("host={}", p.display())),
        }
    }
    if let Some(port) = c.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = c.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(pw) = c.get_password() {
        parts.push(format!("password='{}'", String::from_utf8_lossy(pw)));
    }
    if let Some(db) = c.get_dbname() {
        parts.push(format!("dbname={db}"));
    }
    parts.join(" ")
}

const PORT: u16 = 5432;

/// A server of this process's own.
struct Server {
    child: Mutex<Child>,
    dir: PathBuf,
    /// The server directory, open and locked (`flock`) for as long as the process
    /// lives: a directory nobody holds belongs to a test process that died without
    /// removing it (killed at its timeout), and the next server start removes it.
    _held: fs::File,
}

/// The prefix of each server's directory under [`scratch`].
const SERVER_PREFIX: &str = "meanwhile-pg-";

/// Opens the directory `dir` and takes its lock, without waiting: `None` when
/// another process holds it.
fn hold(dir: &Path) -> io::Result<Option<fs::File>> {
    let file = fs::File::open(dir)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes the server directories under `base` that no live process holds: those of
/// test processes that were killed before they could remove their own, which would
/// otherwise stay in memory (`/dev/shm`) until a reboot. A directory is locked before
/// anything is put in it, so an empty one may be one being made, and is left alone.
/// Returns how many were removed.
fn sweep_stale(base: &Path) -> usize {
    let Ok(entries) = fs::read_dir(base) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with(SERVER_PREFIX);
        if !ours || !path.is_dir() {
            continue;
        }
        let Ok(Some(_held)) = hold(&path) else {
            continue;
        };
        let empty = fs::read_dir(&path).map_or(true, |mut d| d.next().is_none());
        // Another user's, or removed meanwhile: either way not this process's to mind.
        if !empty && fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Server {
    /// The process's server: the running one, or a new one.
    fn shared() -> io::Result<Arc<Server>> {
        static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = shared.upgrade() {
            return Ok(s);
        }
        let s = Arc::new(Server::start()?);
        *shared = Arc::downgrade(&s);
        Ok(s)
    }

    fn config(&self, dbname: &str) -> Config {
        let mut c = Config::new();
        c.host_path(&self.dir)
            .port(PORT)
            .user("postgres")
            .dbname(dbname);
        c
    }

    fn start() -> io::Result<Server> {
        let bin = bin_dir()?;
        let owner = Owner::get();
        let template = template(&bin, owner)?;
        sweep_stale(&scratch());
        let dir = tempfile::Builder::new()
            .prefix(SERVER_PREFIX)
            .tempdir_in(scratch())?
            .keep();
        // Held before anything is put in it (see `sweep_stale`); waiting, since a
        // sweep in another process may be looking at it, empty, for a moment.
        let held = fs::File::open(&dir)?;
        rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive)?;
        owner.chown(&dir)?;
        let data = dir.join("data");
        copy_dir(&template, &data, owner)?;
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-p", &PORT.to_string()])
            .args(["-c", "listen_addresses="])
            // A test database need not survive a power loss.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"])
            // Shared memory segments as files in the data directory, so that they go
            // with it even when the server is killed.
            .args(["-c", "dynamic_shared_memory_type=mmap"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("server.log"))?);
        owner.apply(&mut cmd);
        // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of the calling
        // process; it is async-signal-safe and allocates nothing, so it may run
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::QUIT,
                ))?;
                Ok(())
            });
        }
        let child = spawn_from_keeper(cmd)?;
        let server = Server {
            child: Mutex::new(child),
            dir,
            _held: held,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits until the server accepts connections: its socket exists and
    /// `postmaster.pid` says it is ready.
    fn wait_ready(&self) -> io::Result<()> {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        for _ in 0..3000 {
            if let Ok(Some(status)) = self
                .child
                .lock()
                .map(|mut c| c.try_wait())
                .unwrap_or(Ok(None))
            {
                let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "postgres exited with {status}: {log}"
                )));
            }
            if fs::read_to_string(&pid_file).is_ok_and(|s| s.lines().any(|l| l.trim() == "ready")) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(io::Error::other("postgres did not become ready in 30 s"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            // SIGQUIT: immediate shutdown, nothing of the data is worth keeping.
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::QUIT);
            }
            // Waiting reaps it; an error means it is gone already.
            let _ = child.wait();
        }
        // Leftovers in the temp dir are harmless, and a panic in drop would hide the
        // test's own failure.
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Spawns `cmd` from a thread that lives as long as the process: the death signal
/// is sent when the thread that forked the child ends, so forking from a test's
/// own thread would kill the server when that thread ended.
fn spawn_from_keeper(cmd: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static KEEPER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);
    let mut keeper = KEEPER.lock().unwrap_or_else(|p| p.into_inner());
    let tx = keeper.get_or_insert_with(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("testpg-keeper".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // The asker waits for this answer; it cannot have gone.
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static: this loop never ends, and the
                // thread lives until the process exits.
                loop {
                    std::thread::park();
                }
            })
            .expect("starting the keeper thread");
        tx
    });
    let (reply, answer) = mpsc::channel();
    tx.send((cmd, reply))
        .map_err(|_| io::Error::other("the keeper thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the keeper thread is gone"))?
}

/// Who the server's files and processes belong to: ourselves, or `nobody` when we
/// are root (PostgreSQL refuses to run as root).
#[derive(Clone, Copy)]
struct Owner(Option<(u32, u32)>);

impl Owner {
    fn get() -> Owner {
        if !rustix::process::geteuid().is_root() {
            return Owner(None);
        }
        // `nobody` and `nogroup` on Debian; the numbers are the same everywhere.
        Owner(Some((65534, 65534)))
    }

    fn apply(self, cmd: &mut Command) {
        if let Some((uid, gid)) = self.0 {
            cmd.uid(uid).gid(gid);
            // A HOME the user may read, and no environment of root's to trip on.
            cmd.env("HOME", "/");
        }
    }

    fn chown(self, path: &Path) -> io::Result<()> {
        if let Some((uid, gid)) = self.0 {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        Ok(())
    }
}

fn bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MEANWHILE_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|d| d.join("postgres").exists() && d.join("initdb").exists())
        .ok_or_else(|| {
            io::Error::other(
                "no PostgreSQL found: run scripts/test, which installs Debian's postgresql, or set MEANWHILE_PG_BIN",
            )
        })
}

/// The cached result of `initdb` for the server in `bin`, made once (under a file
/// lock) per version and owner.
fn template(bin: &Path, owner: Owner) -> io::Result<PathBuf> {
    let out = Command::new(bin.join("postgres"))
        .arg("--version")
        .output()?;
    let version: String = String::from_utf8_lossy(&out.stdout)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let uid = owner.0.map_or_else(
        || fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0),
        |(u, _)| u,
    );
    let base = scratch().join("meanwhile-testpg");
    fs::create_dir_all(&base)?;
    // Anyone's test processes may need it; the sticky bit keeps their files apart.
    let _ = fs::set_permissions(&base, fs::Permissions::from_mode(0o1777));
    let template = base.join(format!("template-{version}-uid{uid}"));
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(base.join(format!("template-{version}-uid{uid}.lock")))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    if template.join("done").exists() {
        return Ok(template.join("data"));
    }
    let _ = fs::remove_dir_all(&template);
    fs::create_dir_all(&template)?;
    owner.chown(&template)?;
    let data = template.join("data");
    let mut cmd = Command::new(bin.join("initdb"));
    cmd.arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
        // One-megabyte WAL segments: less to copy for every server.
        .args(["--locale=C", "--no-instructions", "--wal-segsize=1"])
        .stdin(Stdio::null());
    owner.apply(&mut cmd);
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    fs::write(template.join("done"), b"")?;
    Ok(data)
}

/// Where servers live: memory (`/dev/shm`) where there is one, since copying a data
/// directory there takes a tenth of the time it takes on disk; else the temp dir.
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable =
        fs::metadata(shm).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o002 != 0);
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Copies a data directory, keeping modes, owned by `owner`.
fn copy_dir(from: &Path, to: &Path, owner: Owner) -> io::Result<()> {
    fs::create_dir(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    owner.chown(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target, owner)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
            owner.chown(&target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only directories nobody holds, with something in them, are swept.
    #[test]
    fn stale_server_directories_are_swept_and_held_ones_kept() {
        let base = tempfile::tempdir().unwrap();
        let made = |name: &str, with_file: bool| {
            let dir = base.path().join(name);
            fs::create_dir(&dir).unwrap();
            if with_file {
                fs::create_dir(dir.join("data")).unwrap();
                fs::write(dir.join("data/PG_VERSION"), "15\n").unwrap();
            }
            dir
        };
        let stale = made("meanwhile-pg-stale", true);
        let live = made("meanwhile-pg-live", true);
        let being_made = made("meanwhile-pg-new", false);
        let other = made("something-else", true);
        let held = hold(&live).unwrap().expect("nobody holds it yet");
        // A lock is per open file: another open of it, as another process's, is refused.
        assert!(hold(&live).unwrap().is_none());
        assert_eq!(sweep_stale(base.path()), 1);
        assert!(!stale.exists());
        assert!(live.join("data/PG_VERSION").exists());
        assert!(being_made.exists());
        assert!(other.exists());
        drop(held);
        assert_eq!(sweep_stale(base.path()), 1, "let go, it is stale");
        assert!(!live.exists());
    }
}
