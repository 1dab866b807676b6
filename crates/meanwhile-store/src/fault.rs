//! Fault points for tests: named places in long-running code where a test can make
//! the next pass fail, to show that the work is still done, and done once.
//!
//! Compiled in only with the `faults` feature, which only test builds turn on; then
//! `MEANWHILE_FAULTS` names the faults, for example `alerts.take=error*2,
//! store.writer=panic`: each name with what happens there (`error`, `panic`, or
//! `exit`, which ends the process with status 86), how many passes it happens on
//! (`*N`, 1 when not said) and how many passes go by untouched first (`@N`, 0 when
//! not said): `store.writer=panic@40`.
//!
//! A test that must arm a fault at one moment of a running process, say just before
//! a task it holds is let go, names a file in `MEANWHILE_FAULTS_FILE` and writes the
//! same spec there: each fault in it is taken in by the next pass through that point,
//! in whichever process passes it first (the daemon, or its process spawner), and
//! leaves the file. Without the feature every point is empty.

use crate::StoreError;

/// The environment variable that arms fault points.
pub const FAULTS: &str = "MEANWHILE_FAULTS";
/// The environment variable that names a file whose spec arms more faults when it
/// appears.
pub const FAULTS_FILE: &str = "MEANWHILE_FAULTS_FILE";

/// Passes through the fault point `name`: an error, a panic or an exit when a test
/// armed it and it has passes left; `Ok` otherwise, and always without the feature.
#[inline]
pub fn point(name: &str) -> Result<(), StoreError> {
    #[cfg(feature = "faults")]
    return armed::point(name);
    #[cfg(not(feature = "faults"))]
    {
        let _ = name; // nothing to arm without the feature
        Ok(())
    }
}

/// The variables that arm fault points, for a helper process started with a clean
/// environment (the process spawner) to pass through the same points; none without
/// the feature.
pub fn environment() -> Vec<(&'static str, std::ffi::OsString)> {
    if cfg!(feature = "faults") {
        [FAULTS, FAULTS_FILE]
            .into_iter()
            .filter_map(|k| std::env::var_os(k).map(|v| (k, v)))
            .collect()
    } else {
        Vec::new()
    }
}

#[cfg(feature = "faults")]
mod armed {
    use crate::StoreError;
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Action {
        Error,
        Panic,
        Exit,
    }

    /// Each fault: its action, the passes it happens on, the passes left alone first.
    type Faults = HashMap<String, (Action, u32, u32)>;

    fn parse(spec: &str) -> Faults {
        spec.split(',')
            .filter_map(|item| {
                let (name, rest) = item.trim().split_once('=')?;
                let (rest, skip) = match rest.split_once('@') {
                    Some((r, n)) => (r, n.parse().ok()?),
                    None => (rest, 0),
                };
                let (action, count) = match rest.split_once('*') {
                    Some((a, n)) => (a, n.parse().ok()?),
                    None => (rest, 1),
                };
                let action = match action {
                    "error" => Action::Error,
                    "panic" => Action::Panic,
                    "exit" => Action::Exit,
                    _ => return None,
                };
                Some((name.to_string(), (action, count, skip)))
            })
            .collect()
    }

    fn faults() -> &'static Mutex<Faults> {
        static FAULTS: OnceLock<Mutex<Faults>> = OnceLock::new();
        FAULTS.get_or_init(|| Mutex::new(parse(&std::env::var(super::FAULTS).unwrap_or_default())))
    }

    /// The file that arms more faults, when the environment names one.
    fn arming_file() -> Option<&'static std::path::Path> {
        static FILE: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
        FILE.get_or_init(|| std::env::var_os(super::FAULTS_FILE).map(Into::into))
            .as_deref()
    }

    /// Takes the fault `name` out of the arming file, if it is there. The file is
    /// renamed away first, so that of two processes only one holds it; what is not
    /// taken goes back.
    fn take_armed(file: &std::path::Path, name: &str) -> Option<(Action, u32, u32)> {
        // Looked at first, so that a process never moves the file for a fault that
        // is not its own.
        if !parse(&std::fs::read_to_string(file).ok()?).contains_key(name) {
            return None;
        }
        let mine = file.with_extension(format!("taking.{}", std::process::id()));
        std::fs::rename(file, &mine).ok()?;
        let spec = std::fs::read_to_string(&mine).unwrap_or_default();
        let mut all = parse(&spec);
        let taken = all.remove(name);
        let rest: Vec<String> = spec
            .split(',')
            .filter(|item| item.split_once('=').is_some_and(|(n, _)| n.trim() != name))
            .map(str::to_string)
            .collect();
        if rest.is_empty() {
            let _ = std::fs::remove_file(&mine);
        } else {
            let _ = std::fs::write(&mine, rest.join(","));
            let _ = std::fs::rename(&mine, file);
        }
        taken
    }

    pub(super) fn point(name: &str) -> Result<(), StoreError> {
        let action = {
            let mut map = faults().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(file) = arming_file()
                && let Some(fault) = take_armed(file, name)
            {
                map.insert(name.to_string(), fault);
            }
            match map.get_mut(name) {
                Some((_, _, skip)) if *skip > 0 => {
                    *skip -= 1;
                    return Ok(());
                }
                Some((action, left, _)) if *left > 0 => {
                    *left -= 1;
                    *action
                }
                _ => return Ok(()),
            }
        };
        tracing::warn!("fault point {name}: {action:?}");
        match action {
            Action::Error => Err(StoreError::CommitFailed(format!("fault point {name}"))),
            Action::Panic => panic!("fault point {name}"),
            Action::Exit => std::process::exit(86),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_spec_names_each_fault_with_its_action_and_count() {
            let f = parse("a.b=error*2, c=panic@40,d=exit,bad,e=sneeze");
            assert_eq!(f["a.b"], (Action::Error, 2, 0));
            assert_eq!(f["c"], (Action::Panic, 1, 40));
            assert_eq!(f["d"], (Action::Exit, 1, 0));
            assert_eq!(f.len(), 3);
        }
    }
}
