//! The Python package (`python/`) against the real binary: its pytest suite, run with
//! the repository's `.venv-py` (made by `scripts/test`), one test per file so that
//! they run in parallel.

use crate::support::{run_suite, workspace};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What `.venv-py` holds, as `scripts/test` installs it.
const PY_TOOLS: &str = "httpx==0.28.1 pytest==8.4.2";

/// The Python with httpx and pytest: `$MEANWHILE_PY_PYTHON` (set by `scripts/test`),
/// else the repository's `.venv-py`.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("MEANWHILE_PY_PYTHON").map(PathBuf::from) {
        assert!(
            path.exists(),
            "MEANWHILE_PY_PYTHON is {}, which does not exist",
            path.display()
        );
        return path;
    }
    let path = workspace().join(".venv-py/bin/python");
    let ready = Command::new(&path)
        .args(["-c", "import httpx, pytest"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ready,
        "the Python package's tests need {PY_TOOLS} in .venv-py: run scripts/test, which \
         installs them, or set MEANWHILE_PY_PYTHON to a python that has them"
    );
    path
}

/// Runs `python/tests/<file>` with pytest; fails with pytest's output.
fn pytest(file: &str) {
    let root = workspace();
    run_suite(
        &format!("pytest python/tests/{file}"),
        Command::new(python())
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(root.join("python/tests").join(file))
            .env("PYTHONPATH", root.join("python"))
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    );
}

#[test]
fn the_client_against_a_real_daemon() {
    pytest("test_client.py");
}

#[test]
fn the_background_tools() {
    pytest("test_tools.py");
}

#[test]
fn the_agent_loop_example() {
    pytest("test_example.py");
}
