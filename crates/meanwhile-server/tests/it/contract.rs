//! The API against its own contract, checked from outside by real tools on a real
//! `meanwhile serve`: schemathesis on `/v1/openapi.json`, and the official MCP
//! conformance suite on `/mcp`.

use crate::support::*;
use std::path::Path;
use std::process::Command;

/// Examples per operation in the fuzzing phase; with the coverage and stateful
/// phases the run takes about two minutes on two cores.
const EXAMPLES: &str = "10";
/// A fixed seed, so a failure is the same failure on every run.
const SEED: &str = "1";

#[test]
fn schemathesis_finds_no_contract_failure() {
    // Agent specs are accepted only with an LLM provider: one that answers nothing
    // (its port is closed), so agent tasks are stored and then fail.
    schemathesis_on(&[
        ("MEANWHILE_AGENT_PROVIDER", "openai-compatible"),
        ("MEANWHILE_AGENT_MODEL", "none"),
        ("OPENAI_API_KEY", "unused"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1"),
    ]);
}

/// Issue 28.17: without a provider, a valid agent or llm spec was a 400, which
/// schemathesis rightly called a valid request rejected; it is the declared 409
/// `no_provider`.
#[test]
fn schemathesis_finds_no_contract_failure_without_a_provider() {
    schemathesis_on(&[]);
}

/// Runs every phase of schemathesis on a daemon started with `env`.
fn schemathesis_on(env: &[(&str, &str)]) {
    let st = schemathesis();
    let daemon = Served::start(env);
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let out = Command::new(st)
        .arg("run")
        .arg(daemon.url("/v1/openapi.json"))
        .args([
            "--header",
            &format!("Authorization: Bearer {}", daemon.token),
        ])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        // Asking the daemon to shut down would end the run; tests/it/shutdown.rs has it.
        .args(["--exclude-path", "/v1/shutdown"])
        // Every check but the response time limit (no wall-clock limits in tests).
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance,negative_data_rejection,\
             positive_data_acceptance,missing_required_header,unsupported_method,\
             allow_header_conformance,use_after_free,ensure_resource_availability,ignored_auth",
        ])
        .args(["--max-examples", EXAMPLES, "--seed", SEED, "--no-color"])
        // hooks.py keeps what the daemon runs harmless and its waits short.
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", &hooks)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Hypothesis keeps its example database in the working directory.
        .current_dir(daemon.dir.path())
        .output()
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found contract failures ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // It ran every operation (a run that tested nothing also exits 0).
    assert!(stdout.contains("Tested: 45"), "{stdout}");
}

/// The server scenarios of the conformance suite that need no fixture. The others
/// call tools, prompts or resources that only the suite's reference server has
/// (`test_simple_text`, `test_simple_prompt`, `test://static-text`, ...);
/// `logging-set-level` needs the logging capability, which meanwhile does not
/// offer (it sends no log messages, and MCP deprecated logging in SEP-2577).
const SCENARIOS: [&str; 8] = [
    "server-initialize",
    "ping",
    "completion-complete",
    "tools-list",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
];

#[test]
fn mcp_conformance_scenarios_pass() {
    let suite = conformance();
    let daemon = Served::start(&[]);
    let preload = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/bearer.cjs");
    let mut failed = Vec::new();
    for scenario in SCENARIOS {
        let out = Command::new("node")
            .arg("--require")
            .arg(&preload)
            .arg(suite.join("dist/index.js"))
            .args([
                "server",
                "--url",
                &daemon.url("/mcp"),
                "--scenario",
                scenario,
            ])
            .arg("--output-dir")
            .arg(daemon.dir.path().join("conformance"))
            .env("MEANWHILE_TOKEN", &daemon.token)
            .env("MEANWHILE_CONFORMANCE_DIR", &suite)
            .env("NO_COLOR", "1")
            .current_dir(daemon.dir.path())
            .output()
            .expect("running the MCP conformance suite (node)");
        if !out.status.success() {
            failed.push(format!(
                "{scenario} ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
