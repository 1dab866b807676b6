//! The npm packages (`npm/`) against the real binary: the TypeScript client compiled
//! with the repository's `.npm-ts` (made by `scripts/test`), its `node --test` suite,
//! one test per file so that they run in parallel.

use crate::support::{run_suite, workspace};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `.npm-ts` holds, as `scripts/test` installs it.
const NPM_TS_TOOLS: &str = "typescript@5.9.3 @types/node@20.19.43";

/// The directory with TypeScript and Node's types: `$MEANWHILE_NPM_TS` (set by
/// `scripts/test`), else the repository's `.npm-ts`.
fn npm_ts() -> PathBuf {
    let dir = std::env::var_os("MEANWHILE_NPM_TS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".npm-ts"));
    let ready = dir.join("node_modules/typescript/bin/tsc").exists()
        && dir.join("node_modules/@types/node").exists();
    assert!(
        ready,
        "the npm package's tests need {NPM_TS_TOOLS} in {}: run scripts/test, which installs \
         them, or set MEANWHILE_NPM_TS to a directory whose node_modules has them",
        dir.display()
    );
    dir
}

/// Copies the package's `package.json` and tests into `dir` and compiles its sources
/// into `dir/dist`, so that the tests import `meanwhile` as a user does, and tests
/// running at once do not share a `dist`.
fn package_in(dir: &Path) {
    let root = workspace();
    let pkg = root.join("npm/meanwhile");
    std::fs::copy(pkg.join("package.json"), dir.join("package.json")).expect("package.json");
    std::fs::create_dir(dir.join("test")).expect("test directory");
    for entry in std::fs::read_dir(pkg.join("test")).expect("npm/meanwhile/test") {
        let path = entry.expect("a test file").path();
        std::fs::copy(
            &path,
            dir.join("test").join(path.file_name().expect("a name")),
        )
        .expect("copying a test file");
    }
    let ts = npm_ts();
    run_suite(
        "tsc -p npm/meanwhile (Node.js 20 or later must be on PATH)",
        Command::new("node")
            .arg(ts.join("node_modules/typescript/bin/tsc"))
            .arg("-p")
            .arg(&pkg)
            .arg("--outDir")
            .arg(dir.join("dist"))
            .arg("--typeRoots")
            .arg(ts.join("node_modules/@types")),
    );
}

/// Runs `npm/meanwhile/test/<file>` with `node --test`; fails with its report.
fn node_test(file: &str) {
    let root = workspace();
    // Short, under /tmp, like the tests' homes.
    let dir = tempfile::Builder::new()
        .prefix("mwnode")
        .tempdir_in("/tmp")
        .expect("a temporary directory");
    package_in(dir.path());
    run_suite(
        &format!("node --test npm/meanwhile/test/{file}"),
        Command::new("node")
            .arg("--test")
            .arg(dir.path().join("test").join(file))
            .env("MEANWHILE_NPM_TS", npm_ts())
            .env("MEANWHILE_REPO", &root),
    );
}

#[test]
fn the_client_against_a_real_daemon() {
    node_test("client.test.mjs");
}

#[test]
fn the_packed_packages_installed_from_their_tarballs() {
    node_test("package.test.mjs");
}

#[test]
fn the_declared_records_against_the_openapi_document() {
    node_test("types.test.mjs");
}
