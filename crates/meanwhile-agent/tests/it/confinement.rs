//! The escapes of issue 24, tried by a scripted model against a sandboxed agent that
//! allows `echo` and denies `rm`: each is refused with its reason, and nothing but the
//! one allowed command runs.

use crate::support::*;
use meanwhile_agent::{PermissionRules, Permissions, run_prompt};
use meanwhile_core::{ListFilter, TaskState};
use meanwhile_llm::ProviderKind;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_escape_of_a_sandboxed_agent_fails_with_its_reason() {
    let env = runtime().await;
    let ws = env.workspace();
    std::fs::write(ws.join("victim"), "still here\n").unwrap();
    let outside = env.dir.path().display().to_string();
    let bash = |c: &str| ("bash", json!({ "command": c }));
    let run = |extra: Value| {
        let mut args = json!({"command": "echo hi"});
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        ("background_run", args)
    };
    // Each attempt, and what the refusal must say.
    let attempts: Vec<((&str, Value), &str)> = vec![
        (bash("echo x #'\ntouch F1\n#'"), "it holds a comment"),
        (bash("echo x &>/dev/null touch F2"), "`touch F2`"),
        (bash("echo x > F3"), "writing `F3`"),
        (bash("echo $'\\'' ; touch F4 #'"), "quoting `$'\\''`"),
        (bash("echo <(touch F5)"), "process substitution"),
        (
            bash("echo x &>/dev/null rm victim"),
            "the permission rule `bash(rm *)` denies it",
        ),
        (
            bash("echo $(touch F7)"),
            "`$(touch F7)`, known only when it runs",
        ),
        (
            run(json!({"on_end": "id > F8"})),
            "an on_end hook runs outside the sandbox; leave on_end out",
        ),
        (run(json!({"allow_write": ["/"]})), "leave allow_write out"),
        (run(json!({"sandbox": false})), "leave sandbox out"),
        (run(json!({"cwd": outside})), "is outside the workspace"),
        (run(json!({"command": "echo hi > F12"})), "writing `F12`"),
    ];
    let script: Vec<(String, Value)> = attempts
        .iter()
        .map(|((tool, args), _)| (tool.to_string(), args.clone()))
        .chain([("bash".to_string(), json!({"command": "echo allowed-ran"}))])
        .collect();
    let n = script.len();
    let fake = FakeProvider::start(ProviderKind::Anthropic, move |c: &Call| {
        match script.get(c.index) {
            Some((tool, args)) => Turn::Tools(String::new(), vec![(tool.clone(), args.clone())]),
            None => text("done"),
        }
    })
    .await;
    let mut config = fake.config(&ws);
    config.yes = false;
    config.sandbox = true;
    config.budget.max_turns = Some(n as u32 + 1);
    config.permissions = Permissions::new(&[&PermissionRules {
        allow: vec!["bash(echo *)".into(), "background_run(echo *)".into()],
        deny: vec!["bash(rm *)".into()],
        ..PermissionRules::default()
    }])
    .unwrap();
    let out = run_prompt(&config, env.backend.clone(), "escape", &mut |_| {})
        .await
        .unwrap();
    assert_eq!(out.answer, "done");

    let calls = fake.calls();
    let failures: Vec<String> = attempts
        .iter()
        .enumerate()
        .filter_map(|(i, ((tool, args), why))| {
            let (text, is_error) = calls[i + 1].tool_results().remove(0);
            (!is_error || !text.contains(why))
                .then(|| format!("{tool} {args}: {text:?} should be refused with {why:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (last, is_error) = &calls[n].tool_results()[0];
    assert!(!is_error && last.contains("allowed-ran"), "{last}");

    // Only the allowed command became a task, and it ran sandboxed; the run is over,
    // so nothing refused can still start.
    let page = env.rt.list(ListFilter::default()).await.unwrap();
    assert_eq!(page.tasks.len(), 1, "{:?}", page.tasks);
    let t = finished(&env.rt, page.tasks[0].id).await;
    assert_eq!(t.state, TaskState::Succeeded);
    assert_eq!(t.spec.sandbox, Some(true));
    for i in 1..=12 {
        assert!(!ws.join(format!("F{i}")).exists(), "F{i} was written");
    }
    assert_eq!(
        std::fs::read_to_string(ws.join("victim")).unwrap(),
        "still here\n"
    );
}

/// Lines made of shell fragments, judged under `allow = ["bash(ok*)"]`, and every
/// line the rules allow run by the real `/bin/sh` (and bash, which is `/bin/sh`
/// elsewhere) with only `ok` and `bad` on the PATH: an allowed line must never run
/// `bad` nor write a file. This checks the reading against the shells themselves.
#[test]
fn what_the_rules_allow_runs_nothing_else_in_the_real_shells() {
    const FRAGMENTS: &[&str] = &[
        "ok",
        "ok",
        "ok",
        "bad",
        "x",
        "'",
        "\"",
        "#",
        ";",
        "&",
        "&>",
        ">",
        ">>",
        ">|",
        "|",
        "\n",
        "$'",
        "\\",
        "$(",
        ")",
        "`",
        "{",
        "}",
        "(",
        "<",
        "<<",
        "F",
        "/dev/null",
        "&&",
        "||",
        "2>&1",
        "$X",
        "<(",
        "!",
        "=",
        ",",
        "\\\n",
        "'\\''",
        "$\"",
        "#'",
    ];
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let work = dir.path().join("work");
    let mark = dir.path().join("bad-ran");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    for (name, body) in [("ok", "exit 0\n"), ("bad", "touch \"$MARK\"\n")] {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let shells: Vec<&str> = ["/bin/sh", "/bin/bash"]
        .into_iter()
        .filter(|s| std::path::Path::new(s).exists())
        .collect();
    let rules = Permissions::new(&[&PermissionRules {
        allow: vec!["bash(ok*)".into()],
        ..PermissionRules::default()
    }])
    .unwrap();
    // A fixed xorshift: the same lines on every run, so a failure can be replayed.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut allowed, mut failures) = (0, Vec::new());
    for _ in 0..4000 {
        let len = 2 + next() % 7;
        let mut line = String::from("ok");
        for _ in 0..len {
            if next() % 2 == 0 {
                line.push(' ');
            }
            line.push_str(FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize]);
        }
        let d = rules.decide("bash", &json!({ "command": line }));
        if d.verdict != meanwhile_agent::Verdict::Allow {
            continue;
        }
        allowed += 1;
        for shell in &shells {
            let status = std::process::Command::new("/usr/bin/timeout")
                .args(["10", shell, "-c", &line])
                .env_clear()
                .env("PATH", &bin)
                .env("MARK", &mark)
                .current_dir(&work)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            let written: Vec<_> = std::fs::read_dir(&work)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            if mark.exists() || !written.is_empty() {
                failures.push(format!(
                    "{shell} -c {line:?} (allowed by {:?}, exit {status}): ran bad: {}, wrote {written:?}",
                    d.rule,
                    mark.exists()
                ));
                std::fs::remove_file(&mark).ok();
                for f in written {
                    std::fs::remove_file(work.join(f)).ok();
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Enough lines were allowed for the check to mean something.
    assert!(allowed > 200, "only {allowed} lines were allowed");
}
