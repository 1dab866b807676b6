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
