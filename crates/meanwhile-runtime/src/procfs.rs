//! What `/proc` says about an attempt's processes: which processes there are and
//! how they are related, whether one is blocked reading a given terminal or pipe,
//! and which sockets they listen on. Parsing is kept apart from reading, so it is
//! tested on sample text.

use meanwhile_core::Listener;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub pid: i32,
    /// `R`, `S`, `D`, `Z`, `T`, ...
    pub state: u8,
    pub ppid: i32,
    pub session: i32,
}

/// Parses a `/proc/<pid>/stat` line.
pub(crate) fn parse_stat(pid: i32, text: &str) -> Option<ProcStat> {
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let mut f = rest.split_whitespace();
    let state = *f.next()?.as_bytes().first()?;
    let ppid = f.next()?.parse().ok()?;
    let _pgrp = f.next()?;
    let session = f.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        ppid,
        session,
    })
}

/// The parent of a live process (`/proc/<pid>/stat`); `None` once it is gone.
pub(crate) fn parent_of(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_stat(pid, &text)?.ppid)
}

/// Every process of the machine (of this pid namespace).
pub(crate) fn all_processes() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(pid, &text)
        })
        .collect()
}

/// The processes descended from `root` (not `root` itself), from a snapshot.
pub(crate) fn descendants(all: &[ProcStat], root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in all {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            out.push(c);
            stack.push(c);
        }
    }
    out
}

/// What a process blocked in a system call waits on, from `/proc/<pid>/syscall`
/// ("nr arg0 arg1 ..."): the descriptor it reads, or `Poll(address)` for a
/// `poll`/`ppoll` of one descriptor whose `struct pollfd` is at `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Blocked {
    Reading(i32),
    Poll(u64),
}

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const READ: &[i64] = &[0, 17, 19]; // read, pread64, readv
    pub const SELECT: &[i64] = &[23, 270]; // select, pselect6
    pub const POLL: &[i64] = &[7, 271]; // poll, ppoll
}
#[cfg(target_arch = "aarch64")]
mod nr {
    pub const READ: &[i64] = &[63, 65, 67]; // read, readv, pread64
    pub const SELECT: &[i64] = &[72]; // pselect6
    pub const POLL: &[i64] = &[73]; // ppoll
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod nr {
    pub const READ: &[i64] = &[];
    pub const SELECT: &[i64] = &[];
    pub const POLL: &[i64] = &[];
}

/// Parses `/proc/<pid>/syscall`: a read of a descriptor, a `select` of descriptor 0
/// alone (`nfds` 1, as a REPL waiting at its prompt does), or a `poll` of one
/// descriptor. Anything else (running, another call) is `None`.
pub(crate) fn parse_syscall(text: &str) -> Option<Blocked> {
    let mut f = text.split_whitespace();
    let nr: i64 = f.next()?.parse().ok()?;
    let arg = |s: Option<&str>| -> Option<u64> {
        u64::from_str_radix(s?.trim_start_matches("0x"), 16).ok()
    };
    let a0 = arg(f.next())?;
    let a1 = arg(f.next());
    if nr::READ.contains(&nr) {
        return i32::try_from(a0).ok().map(Blocked::Reading);
    }
    if nr::SELECT.contains(&nr) && a0 == 1 {
        return Some(Blocked::Reading(0));
    }
    if nr::POLL.contains(&nr) && a1 == Some(1) {
        return Some(Blocked::Poll(a0));
    }
    None
}

/// True when process `pid` sleeps blocked reading `target` (what its descriptor's
/// link in `/proc/<pid>/fd` reads, `/dev/pts/3` or `pipe:[123]`).
pub(crate) fn blocked_reading(pid: i32, target: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/syscall")) else {
        return false;
    };
    let fd = match parse_syscall(&text) {
        Some(Blocked::Reading(fd)) => fd,
        Some(Blocked::Poll(address)) => match read_pollfd(pid, address) {
            Some(fd) => fd,
            None => return false,
        },
        None => return false,
    };
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .is_ok_and(|l| l.as_os_str().as_encoded_bytes() == target.as_bytes())
}

/// The descriptor of the `struct pollfd` at `address` in process `pid`'s memory.
fn read_pollfd(pid: i32, address: u64) -> Option<i32> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut b = [0u8; 4];
    mem.read_exact_at(&mut b, address).ok()?;
    Some(i32::from_ne_bytes(b))
}

/// The socket inodes among process `pid`'s descriptors.
pub(crate) fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let s = link.to_str()?;
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The listening sockets of this network namespace, by inode.
pub(crate) fn listening_sockets() -> HashMap<u64, Listener> {
    let mut out = HashMap::new();
    for (path, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = std::fs::read_to_string(path) {
            out.extend(parse_tcp(&text, v6));
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/net/unix") {
        out.extend(parse_unix(&text));
    }
    out
}

/// Listening sockets in `/proc/net/tcp` or `tcp6`: state `0A`.
pub(crate) fn parse_tcp(text: &str, v6: bool) -> Vec<(u64, Listener)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&"0A") {
                return None;
            }
            let (addr, port) = f.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let ip = if v6 {
                parse_ipv6(addr)?
            } else {
                parse_ipv4(addr)?
            };
            let inode = f.get(9)?.parse().ok()?;
            Some((inode, Listener::tcp(ip, port)))
        })
        .collect()
}

/// The kernel writes an IPv4 address as one native-endian word in hex.
fn parse_ipv4(hex: &str) -> Option<IpAddr> {
    let word = u32::from_str_radix(hex, 16).ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(word.to_ne_bytes())))
}

/// An IPv6 address as four native-endian words in hex.
fn parse_ipv6(hex: &str) -> Option<IpAddr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..4 {
        let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    let ip = Ipv6Addr::from(bytes);
    // A v4-mapped address (`::ffff:127.0.0.1`) is the IPv4 one.
    Some(match ip.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(ip),
    })
}

/// Listening Unix sockets with a path in `/proc/net/unix`: flags `00010000`
/// (`__SO_ACCEPTCON`), state `01`.
pub(crate) fn parse_unix(text: &str) -> Vec<(u64, Listener)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&"00010000") {
                return None;
            }
            let inode = f.get(6)?.parse().ok()?;
            let path = f.get(7)?;
            // Abstract sockets (`@name`) have no path to reach them by.
            (!path.starts_with('@')).then(|| (inode, Listener::unix(*path)))
        })
        .collect()
}

/// The listeners whose inodes are among `inodes`, sorted and without repeats.
pub(crate) fn listeners_of(
    inodes: impl IntoIterator<Item = u64>,
    sockets: &HashMap<u64, Listener>,
) -> Vec<Listener> {
    let mut set: Vec<Listener> = inodes
        .into_iter()
        .filter_map(|i| sockets.get(&i).cloned())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    set.sort();
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_past_odd_command_names() {
        let s = parse_stat(42, "42 (a b) c) S 7 42 42 0 -1 4194560 ...").unwrap();
        assert_eq!(
            s,
            ProcStat {
                pid: 42,
                state: b'S',
                ppid: 7,
                session: 42
            }
        );
    }

    #[test]
    fn descendants_follow_every_branch() {
        let p = |pid, ppid| ProcStat {
            pid,
            state: b'S',
            ppid,
            session: 1,
        };
        let all = [p(1, 0), p(2, 1), p(3, 2), p(4, 1), p(5, 9)];
        let mut d = descendants(&all, 1);
        d.sort();
        assert_eq!(d, vec![2, 3, 4]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn blocked_calls_name_what_they_wait_on() {
        assert_eq!(
            parse_syscall("0 0x0 0x55f263c61f40 0x1000 0x1000 0x0 0x0 0x7fff 0x7fbf"),
            Some(Blocked::Reading(0))
        );
        // A REPL's pselect6 on descriptor 0 alone.
        assert_eq!(
            parse_syscall("270 0x1 0x7ffc3dd46150 0x0 0x0 0x0 0x0 0x7ffc 0x7fa1"),
            Some(Blocked::Reading(0))
        );
        assert_eq!(
            parse_syscall("270 0x5 0x7ffc 0x0 0x0 0x0 0x0 0x1 0x1"),
            None
        );
        assert_eq!(
            parse_syscall("7 0x7ffc6c560de0 0x1 0xffffffff 0x8 0x9 0x19 0x7 0x7"),
            Some(Blocked::Poll(0x7ffc6c560de0))
        );
        assert_eq!(
            parse_syscall("230 0x0 0x0 0x7ffe 0x7ffe 0x0 0x0 0x7 0x7"),
            None
        );
        assert_eq!(parse_syscall("running"), None);
    }

    #[test]
    fn listening_tcp_sockets_parse_with_their_address() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4411 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1435 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4412 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0";
        let l = parse_tcp(tcp, false);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].0, 4411);
        assert_eq!(l[0].1.url.as_deref(), Some("http://127.0.0.1:5173"));
        assert_eq!(l[1].1.address, "0.0.0.0");
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 98 1 0000000000000000 100 0 0 10 0";
        let l = parse_tcp(tcp6, true);
        assert_eq!(l[0].1.url.as_deref(), Some("http://[::1]:8080"));
        assert_eq!(l[1].1.url.as_deref(), Some("http://127.0.0.1:8081"));
    }

    #[test]
    fn listening_unix_sockets_have_a_path() {
        let unix = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 5001 /tmp/app.sock
0000000000000000: 00000002 00000000 00000000 0001 03 5002 /tmp/app.sock
0000000000000000: 00000002 00000000 00010000 0001 01 5003 @abstract";
        let l = parse_unix(unix);
        assert_eq!(l, vec![(5001, Listener::unix("/tmp/app.sock"))]);
    }
}
