//! Baselines: what the machine does without meanwhile.

use std::ffi::CString;
use std::time::{Duration, Instant};

/// Runs `sh -c true` `n` times with `parallel` in flight through raw `posix_spawn`
/// and `waitpid`; returns the elapsed time.
pub fn posix_spawn_rate(n: usize, parallel: usize) -> Duration {
    let sh = CString::new("/bin/sh").unwrap();
    let args: Vec<CString> = ["sh", "-c", "true"]
        .iter()
        .map(|s| CString::new(*s).unwrap())
        .collect();
    let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr() as *mut _).collect();
    argv.push(std::ptr::null_mut());
    let env: Vec<CString> = std::env::vars()
        .map(|(k, v)| CString::new(format!("{k}={v}")).unwrap())
        .collect();
    let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr() as *mut _).collect();
    envp.push(std::ptr::null_mut());
    let start = Instant::now();
    let mut started = 0;
    let mut running = 0;
    let mut done = 0;
    while done < n {
        while running < parallel && started < n {
            let mut pid = 0;
            // SAFETY: valid NUL-terminated argv and envp arrays.
            let rc = unsafe {
                libc::posix_spawn(
                    &mut pid,
                    sh.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                )
            };
            assert_eq!(rc, 0, "posix_spawn failed");
            started += 1;
            running += 1;
        }
        let mut status = 0;
        // SAFETY: waiting for any child of ours.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid > 0 {
            running -= 1;
            done += 1;
        }
    }
    start.elapsed()
}

/// Peak resident set size of this process so far, in KiB.
pub fn peak_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
