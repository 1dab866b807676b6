//! The Python package (`python/`) against the real binary: its pytest suite, run with
//! the repository's `.venv-py` (made by `scripts/test`), one test per file so that
//! they run in parallel; and the wheel `scripts/dist` writes around the binary under
//! test, installed into a fresh virtualenv, as a user gets it.

use crate::support::{BIN, run_suite, run_tool, workspace};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What `.venv-py` holds, as `scripts/test` installs it.
const PY_TOOLS: &str = "httpx==0.28.1 pytest==8.4.2";

/// What the fresh virtualenv installs beside the wheel, offline, from the wheelhouse
/// `scripts/test` downloads (`.wheelhouse-py`): the test runner, the official MCP SDK
/// and uv (for `uvx`). The wheel's own dependency, httpx, comes from there too.
const INSTALLED_TOOLS: [&str; 3] = ["pytest==8.4.2", "mcp==2.3.0", "uv==0.13.9"];

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

#[test]
fn the_records_against_the_openapi_document() {
    pytest("test_types.py");
}

/// The directory of wheels a fresh virtualenv installs from without an index:
/// `$MEANWHILE_PY_WHEELHOUSE` (set by `scripts/test`), else `.wheelhouse-py`.
fn wheelhouse() -> PathBuf {
    let dir = std::env::var_os("MEANWHILE_PY_WHEELHOUSE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".wheelhouse-py"));
    let ready = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
    assert!(
        ready,
        "the wheel's test installs httpx, {INSTALLED_TOOLS:?} from the wheels in {}: run \
         scripts/test, which downloads them, or set MEANWHILE_PY_WHEELHOUSE",
        dir.display()
    );
    dir
}

/// The one file in `dir` whose name ends with `suffix`.
fn only_file(dir: &Path, suffix: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the output directory")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {suffix} in {}: {found:?}",
        dir.display()
    );
    found[0].clone()
}

/// `pip install meanwhile` as a user does it: `scripts/dist` writes the wheel around
/// the binary under test, a fresh virtualenv installs it with no index, and from
/// there, with no `MEANWHILE_BIN` set: the installed `meanwhile` runs, the pytest
/// suite (the example agent loop included) passes against daemons the package starts
/// from the wheel's binary, the official MCP client starts `meanwhile mcp` from the
/// virtualenv's bin and hears of a task's end, and `uvx` runs it as MCP
/// configurations do.
#[test]
fn the_wheel_installed_into_a_fresh_virtualenv() {
    let version = env!("CARGO_PKG_VERSION");
    let root = workspace();
    let work = tempfile::Builder::new()
        .prefix("mwwhl")
        .tempdir_in("/tmp")
        .expect("a temporary directory");
    let dist = work.path().join("dist");
    run_suite(
        "scripts/dist --wheel-only",
        Command::new("bash")
            .arg(root.join("scripts/dist"))
            .args(["--bin", BIN, "--wheel-only", "--out"])
            .arg(&dist),
    );
    let wheel = only_file(&dist, ".whl");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("meanwhile-{version}-py3-none-manylinux_2_")),
        "{name}"
    );

    let venv = work.path().join("v");
    run_tool(
        "python3 -m venv",
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
    );
    let vbin = venv.join("bin");
    run_tool(
        "pip install the wheel",
        Command::new(vbin.join("pip"))
            .args(["install", "--quiet", "--no-index", "--find-links"])
            .arg(wheelhouse())
            .arg(&wheel)
            .args(INSTALLED_TOOLS),
    );
    // A user's environment: the virtualenv's bin first, no binary named for it.
    let path = format!(
        "{}:{}",
        vbin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let user = |cmd: &mut Command| -> String {
        let program = cmd.get_program().to_string_lossy().into_owned();
        run_tool(
            &program,
            cmd.env("PATH", &path)
                .env_remove("MEANWHILE_BIN")
                .env_remove("PYTHONPATH")
                .env("PYTHONDONTWRITEBYTECODE", "1"),
        )
    };

    let said = user(Command::new(vbin.join("meanwhile")).arg("--version"));
    assert_eq!(said.trim(), format!("meanwhile {version}"));
    let said = user(Command::new(vbin.join("python")).args([
        "-c",
        "import meanwhile; print(meanwhile.__file__); print(meanwhile.find_binary()); \
         print(meanwhile.__version__)",
    ]));
    let lines: Vec<&str> = said.lines().collect();
    assert!(
        lines[0].starts_with(&venv.join("lib").display().to_string()),
        "the package imported is the installed one: {said}"
    );
    assert_eq!(lines[1], vbin.join("meanwhile").display().to_string());
    assert_eq!(lines[2], version);

    // The suite imports the installed package (the source tree is not on its path)
    // and its daemons start from the installed binary.
    user(
        Command::new(vbin.join("python"))
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(root.join("python/tests")),
    );
    user(Command::new(vbin.join("python")).arg(root.join("python/tests/installed_mcp.py")));

    // `uvx --from WHEEL meanwhile mcp`, offline: an MCP client's first request
    // answered by the wheel's binary.
    let home = work.path().join("h");
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"uvx-test","version":"1"}}}"#;
    std::fs::write(work.path().join("init.json"), format!("{init}\n")).unwrap();
    let uvx = |args: &str| {
        user(
                Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "exec \"$0\" --offline --no-index --find-links \"$1\" --from \"$2\" meanwhile {args} < \"$3\""
                    ))
                    .arg(vbin.join("uvx"))
                    .arg(wheelhouse())
                    .arg(&wheel)
                    .arg(work.path().join("init.json"))
                    .env("MEANWHILE_HOME", &home)
                    .env("UV_CACHE_DIR", work.path().join("uv-cache"))
                    .env("UV_TOOL_DIR", work.path().join("uv-tools"))
                    .env("UV_PYTHON_DOWNLOADS", "never"),
        )
    };
    assert_eq!(uvx("--version").trim(), format!("meanwhile {version}"));
    let answer: serde_json::Value =
        serde_json::from_str(uvx("mcp").lines().next().expect("an answer")).expect("JSON-RPC");
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["serverInfo"]["name"], "meanwhile");
    assert_eq!(answer["result"]["serverInfo"]["version"], version);
    user(
        Command::new(vbin.join("meanwhile"))
            .args(["daemon", "stop", "--stop-tasks"])
            .env("MEANWHILE_HOME", &home),
    );
}
