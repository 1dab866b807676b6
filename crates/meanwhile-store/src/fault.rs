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
//! same spec there: the next pass through any point takes it in and removes the file.
//! Without the feature every point is empty.

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

    pub(super) fn point(name: &str) -> Result<(), StoreError> {
        let action = {
            let mut map = faults().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(file) = arming_file()
                && let Ok(spec) = std::fs::read_to_string(file)
            {
                // Taken in once: removed under the lock, so two threads cannot both.
                let _ = std::fs::remove_file(file);
                map.extend(parse(&spec));
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
