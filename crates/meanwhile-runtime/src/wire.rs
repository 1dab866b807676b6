//! The spawner's wire format: a request to start one attempt, from the runtime to
//! its spawner process, and the reply, from the attempt's supervisor through the
//! spawner back to the runtime.
//!
//! ```text
//! request: magic, argv count, env count, body length (u32 LE each), then the body:
//!          items, each a u32 LE length and its bytes: program, cwd, journal, task,
//!          attempt, io ("", "pipe" or "tty COLS ROWS"), io socket, confinement
//!          (see `Confine::encode`), argv..., env... ("KEY=value")
//! reply:   pid, supervisor pid, errno, stage (i32 LE each), supervisor start time,
//!          task start time (u64 LE each)
//! trim:    the trim magic and three zero words; answered with two u32 LE: the idle
//!          supervisors let go, and the supervisors kept
//! ready:   one byte, `r`, from a pooled supervisor to the spawner once it is idle
//! ```
//!
//! Two descriptors travel beside a start request's first byte (SCM_RIGHTS): the log
//! file, and the write end of the attempt's end pipe, which the supervisor holds
//! until the attempt's `E` line is in the journal (or it dies). The spawner passes
//! the request on to a pooled supervisor as it came, descriptors included.

use crate::spawn::{Io, SpawnRequest};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

/// The first word of a request, and the spawner's greeting.
pub(crate) const MAGIC: u32 = 0x4d57_5350;
/// Fixed items before argv and env: program, cwd, journal, task, attempt, io, io
/// socket, confinement.
const ITEMS: usize = 8;
/// Bytes of a request's fixed header.
pub(crate) const HEADER: usize = 16;
/// Bytes of a reply.
pub(crate) const REPLY: usize = 32;
/// The first word of a trim request.
pub(crate) const TRIM: u32 = 0x4d57_5452;
/// Bytes of the answer to a trim.
pub(crate) const TRIMMED: usize = 8;
/// What a pooled supervisor sends the spawner once it is idle again.
pub(crate) const READY: u8 = b'r';

/// What a request's header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A start: the argv count, the env count and the body's length.
    Start {
        n_argv: usize,
        n_env: usize,
        len: usize,
    },
    /// Let the idle supervisors that were not used since the last trim go.
    Trim,
}

/// A decoded request, ready for `execve`.
#[derive(Debug)]
pub(crate) struct Request {
    pub program: CString,
    pub cwd: CString,
    pub journal: PathBuf,
    pub task: i64,
    pub attempt: u32,
    pub io: Io,
    pub io_socket: PathBuf,
    pub confine: crate::sandbox::Confine,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
}

/// Which step of starting an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    /// Nothing failed.
    Started = 0,
    /// The spawner could not read or decode the request.
    Request = 1,
    /// The spawner could not fork the supervisor.
    ForkSupervisor = 2,
    /// The supervisor ended before it reported.
    SupervisorDied = 3,
    /// The supervisor could not prepare or fork the task's process.
    ForkTask = 4,
    /// The start could not be written to the journal; the program was not run.
    Journal = 5,
    /// The task's process could not change to its working directory.
    Chdir = 6,
    /// `execve` failed.
    Exec = 7,
    /// The supervisor could not prepare the task's input (pipe, terminal, socket).
    Io = 8,
    /// The task's process could not be confined (sandbox, network, limits); the
    /// program was not run.
    Confine = 9,
}

impl Stage {
    fn from_u32(v: u32) -> Stage {
        match v {
            0 => Stage::Started,
            1 => Stage::Request,
            2 => Stage::ForkSupervisor,
            3 => Stage::SupervisorDied,
            4 => Stage::ForkTask,
            5 => Stage::Journal,
            6 => Stage::Chdir,
            8 => Stage::Io,
            9 => Stage::Confine,
            _ => Stage::Exec,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Stage::Started => "started",
            Stage::Request => "the process spawner refused the request",
            Stage::ForkSupervisor => "forking the task's supervisor",
            Stage::SupervisorDied => "the task's supervisor exited before starting it",
            Stage::ForkTask => "forking the task's process",
            Stage::Journal => "recording the start in the supervisors' journal (nothing was run)",
            Stage::Chdir => "changing to the working directory",
            Stage::Exec => "executing the program",
            Stage::Io => "preparing the task's input (its pipe, terminal or input socket)",
            Stage::Confine => {
                "confining the task (its sandbox, network namespace, the hiding of meanwhile's home or limits); nothing was run"
            }
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    pub pid: i32,
    pub supervisor: i32,
    pub errno: i32,
    pub stage: Stage,
    pub supervisor_start: u64,
    pub pid_start: u64,
}

impl Reply {
    /// A failure at `stage` with `errno`.
    pub(crate) fn failed(stage: Stage, errno: i32) -> Reply {
        Reply {
            pid: 0,
            supervisor: 0,
            errno: if errno == 0 { libc::EIO } else { errno },
            stage,
            supervisor_start: 0,
            pid_start: 0,
        }
    }

    /// A start that the journal shows happened.
    pub(crate) fn started(s: crate::journal::Started) -> Reply {
        Reply {
            pid: s.pid,
            supervisor: s.supervisor,
            errno: 0,
            stage: Stage::Started,
            supervisor_start: s.supervisor_start,
            pid_start: s.pid_start,
        }
    }

    /// A failure at `stage` described by `e`.
    pub(crate) fn error(stage: Stage, e: &io::Error) -> Reply {
        Reply::failed(stage, e.raw_os_error().unwrap_or(libc::EIO))
    }

    pub(crate) fn encode(&self) -> [u8; REPLY] {
        let mut b = [0u8; REPLY];
        b[0..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..8].copy_from_slice(&self.supervisor.to_le_bytes());
        b[8..12].copy_from_slice(&self.errno.to_le_bytes());
        b[12..16].copy_from_slice(&(self.stage as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.supervisor_start.to_le_bytes());
        b[24..32].copy_from_slice(&self.pid_start.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; REPLY]) -> Reply {
        let i32_at = |i: usize| i32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        Reply {
            pid: i32_at(0),
            supervisor: i32_at(4),
            errno: i32_at(8),
            stage: Stage::from_u32(i32_at(12) as u32),
            supervisor_start: u64_at(16),
            pid_start: u64_at(24),
        }
    }

    /// The failure, if the attempt did not start; it names the step that failed.
    pub(crate) fn into_result(self) -> io::Result<Reply> {
        if self.stage == Stage::Started && self.errno == 0 {
            return Ok(self);
        }
        let os = io::Error::from_raw_os_error(self.errno);
        Err(io::Error::new(
            os.kind(),
            format!("{}: {os}", self.stage.what()),
        ))
    }
}

fn no_nul(what: &str, bytes: &[u8]) -> io::Result<()> {
    if bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        ));
    }
    Ok(())
}

/// Refuses what `execve` cannot take, before it travels.
pub(crate) fn check(req: &SpawnRequest<'_>) -> io::Result<()> {
    no_nul("the program path", req.program.as_os_str().as_bytes())?;
    no_nul("the working directory", req.cwd.as_os_str().as_bytes())?;
    no_nul("the input socket", req.io_socket.as_os_str().as_bytes())?;
    for a in req.argv {
        no_nul("an argument", a.as_bytes())?;
    }
    for (k, v) in req.env {
        no_nul("an environment variable", k.as_bytes())?;
        no_nul("an environment variable", v.as_bytes())?;
    }
    Ok(())
}

/// The request's bytes: header and body.
pub(crate) fn encode(req: &SpawnRequest<'_>) -> Vec<u8> {
    let task = req.task.to_string();
    let attempt = req.attempt.to_string();
    let io = req.io.encode();
    let confine = req.confine.encode();
    let mut items: Vec<&[u8]> = vec![
        req.program.as_os_str().as_bytes(),
        req.cwd.as_os_str().as_bytes(),
        req.journal.as_os_str().as_bytes(),
        task.as_bytes(),
        attempt.as_bytes(),
        io.as_bytes(),
        req.io_socket.as_os_str().as_bytes(),
        &confine,
    ];
    items.extend(req.argv.iter().map(|a| a.as_bytes()));
    let env: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    items.extend(env.iter().map(|e| e.as_bytes()));
    let mut body = Vec::new();
    for item in &items {
        body.extend_from_slice(&(item.len() as u32).to_le_bytes());
        body.extend_from_slice(item);
    }
    let mut msg = Vec::with_capacity(HEADER + body.len());
    for v in [
        MAGIC,
        req.argv.len() as u32,
        req.env.len() as u32,
        body.len() as u32,
    ] {
        msg.extend_from_slice(&v.to_le_bytes());
    }
    msg.extend_from_slice(&body);
    msg
}

/// What the header announces, if its magic is one of ours.
pub(crate) fn decode_header(h: &[u8; HEADER]) -> Option<Header> {
    let word = |i: usize| u32::from_le_bytes([h[i * 4], h[i * 4 + 1], h[i * 4 + 2], h[i * 4 + 3]]);
    match word(0) {
        MAGIC => Some(Header::Start {
            n_argv: word(1) as usize,
            n_env: word(2) as usize,
            len: word(3) as usize,
        }),
        TRIM => Some(Header::Trim),
        _ => None,
    }
}

/// A trim request's bytes.
pub(crate) fn encode_trim() -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&TRIM.to_le_bytes());
    h
}

/// The answer to a trim: (supervisors let go, supervisors kept).
pub(crate) fn encode_trimmed(gone: u32, kept: u32) -> [u8; TRIMMED] {
    let mut b = [0u8; TRIMMED];
    b[..4].copy_from_slice(&gone.to_le_bytes());
    b[4..].copy_from_slice(&kept.to_le_bytes());
    b
}

/// The inverse of [`encode_trimmed`].
pub(crate) fn decode_trimmed(b: &[u8; TRIMMED]) -> (u32, u32) {
    (
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

fn split_items(body: &[u8], n_argv: usize, n_env: usize) -> Option<Vec<&[u8]>> {
    let mut items =
        Vec::with_capacity(ITEMS.saturating_add(n_argv).saturating_add(n_env).min(4096));
    let mut at = 0;
    while at < body.len() {
        let len = u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4;
        items.push(body.get(at..at.checked_add(len)?)?);
        at += len;
    }
    (items.len() == ITEMS + n_argv + n_env).then_some(items)
}

/// Which attempt the request in `body` starts, and the journal its start goes to:
/// what the spawner keeps of a start it handed over, without decoding the rest.
pub(crate) fn attempt_of(body: &[u8], n_argv: usize, n_env: usize) -> Option<(i64, u32, PathBuf)> {
    let items = split_items(body, n_argv, n_env)?;
    let number = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<i64>().ok();
    Some((
        number(items[3])?,
        u32::try_from(number(items[4])?).ok()?,
        PathBuf::from(std::ffi::OsString::from_vec(items[2].to_vec())),
    ))
}

/// The request in `body`, or `None` for bytes that are not one.
pub(crate) fn decode(body: &[u8], n_argv: usize, n_env: usize) -> Option<Request> {
    let items = split_items(body, n_argv, n_env)?;
    let number = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<i64>().ok();
    let c = |b: &[u8]| CString::new(b).ok();
    let strings = |bs: &[&[u8]]| bs.iter().map(|b| c(b)).collect::<Option<Vec<_>>>();
    Some(Request {
        program: c(items[0])?,
        cwd: c(items[1])?,
        journal: PathBuf::from(std::ffi::OsString::from_vec(items[2].to_vec())),
        task: number(items[3])?,
        attempt: u32::try_from(number(items[4])?).ok()?,
        io: Io::decode(std::str::from_utf8(items[5]).ok()?)?,
        io_socket: PathBuf::from(std::ffi::OsString::from_vec(items[6].to_vec())),
        confine: crate::sandbox::Confine::decode(items[7])?,
        argv: strings(&items[ITEMS..ITEMS + n_argv])?,
        env: strings(&items[ITEMS + n_argv..])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    fn path_bytes(p: &Path) -> &[u8] {
        p.as_os_str().as_bytes()
    }

    proptest! {
        /// What the runtime encodes, the spawner decodes to the same request.
        #[test]
        fn requests_decode_to_what_was_encoded(
            argv in proptest::collection::vec("[^\u{0}]{0,12}", 1..6),
            env in proptest::collection::vec(("[A-Z_]{1,8}", "[^\u{0}]{0,12}"), 0..6),
            cwd in "/[a-z/]{0,20}",
            task in 1i64..i64::MAX,
            attempt in 1u32..1000,
            io in prop_oneof![
                Just(Io::None),
                Just(Io::Pipe),
                (1u16..1001, 1u16..1001).prop_map(|(cols, rows)| Io::Tty { cols, rows }),
            ],
            sandbox in any::<bool>(),
            memory in proptest::option::of(1u64..u64::MAX),
        ) {
            let log = tempfile::tempfile().unwrap();
            let confine = crate::sandbox::Confine {
                writable: sandbox.then(|| vec![cwd.clone().into()]),
                no_network: sandbox,
                memory,
                ..Default::default()
            };
            let req = SpawnRequest {
                program: Path::new("/bin/sh"),
                argv: &argv,
                env: &env,
                cwd: Path::new(&cwd),
                log: &log,
                journal: Path::new("/tmp/journal"),
                task,
                attempt,
                io,
                io_socket: Path::new("/tmp/io.sock"),
                confine: &confine,
            };
            prop_assert!(check(&req).is_ok());
            let msg = encode(&req);
            let header: [u8; HEADER] = msg[..HEADER].try_into().unwrap();
            let Some(Header::Start { n_argv, n_env, len }) = decode_header(&header) else {
                panic!("not a start's header");
            };
            prop_assert_eq!(len, msg.len() - HEADER);
            let r = decode(&msg[HEADER..], n_argv, n_env).unwrap();
            prop_assert_eq!(
                attempt_of(&msg[HEADER..], n_argv, n_env),
                Some((task, attempt, "/tmp/journal".into()))
            );
            prop_assert_eq!(r.program.as_bytes(), b"/bin/sh");
            prop_assert_eq!(r.cwd.as_bytes(), cwd.as_bytes());
            prop_assert_eq!(path_bytes(&r.journal), b"/tmp/journal");
            prop_assert_eq!((r.task, r.attempt), (task, attempt));
            prop_assert_eq!(r.io, io);
            prop_assert_eq!(path_bytes(&r.io_socket), b"/tmp/io.sock");
            prop_assert_eq!(&r.confine, &confine);
            for (i, a) in argv.iter().enumerate() {
                prop_assert_eq!(r.argv[i].as_bytes(), a.as_bytes());
            }
            for (i, (k, v)) in env.iter().enumerate() {
                let expect = format!("{k}={v}");
                prop_assert_eq!(r.env[i].as_bytes(), expect.as_bytes());
            }
        }

        /// Bytes from a confused or hostile peer are refused, never a panic.
        #[test]
        fn any_body_decodes_or_is_refused(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            n_argv in 0usize..8,
            n_env in 0usize..8,
        ) {
            if let Some(r) = decode(&body, n_argv, n_env) {
                prop_assert_eq!((r.argv.len(), r.env.len()), (n_argv, n_env));
            }
        }

        /// Every reply reads back as it was written.
        #[test]
        fn replies_round_trip(
            pid in any::<i32>(), supervisor in any::<i32>(), errno in any::<i32>(),
            stage in 0u32..10, supervisor_start in any::<u64>(), pid_start in any::<u64>(),
        ) {
            let r = Reply { pid, supervisor, errno, stage: Stage::from_u32(stage), supervisor_start, pid_start };
            prop_assert_eq!(Reply::decode(&r.encode()), r);
        }
    }

    #[test]
    fn a_trim_and_its_answer_read_back() {
        assert_eq!(decode_header(&encode_trim()), Some(Header::Trim));
        assert_eq!(decode_trimmed(&encode_trimmed(3, 7)), (3, 7));
        assert_eq!(decode_header(&[0u8; HEADER]), None, "no magic of ours");
    }

    #[test]
    fn a_nul_byte_is_refused_before_it_travels() {
        let log = tempfile::tempfile().unwrap();
        let argv = vec!["a\0b".to_string()];
        let req = SpawnRequest {
            program: Path::new("/bin/sh"),
            argv: &argv,
            env: &[],
            cwd: Path::new("/"),
            log: &log,
            journal: Path::new("/tmp/journal"),
            task: 1,
            attempt: 1,
            io: Io::None,
            io_socket: Path::new(""),
            confine: &Default::default(),
        };
        let e = check(&req).unwrap_err();
        assert_eq!(e.to_string(), "an argument contains a NUL byte");
    }
}
