//! A session rebuilt from its step record after its process died at a step boundary:
//! it makes no recorded model call again and does not make an edit twice.

use crate::support::{Call, FakeProvider, runtime, text, tool};
use meanwhile_agent::{GateFuture, RunStop, Session, StepLog};
use meanwhile_core::{ApiError, Step, Timestamp};
use meanwhile_llm::ProviderKind;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// The step record in memory, as the store would keep it.
#[derive(Default)]
struct Memory(Mutex<Vec<Step>>);

impl StepLog for Memory {
    fn record(
        &self,
        kind: &'static str,
        data: Value,
        _usage: Option<(u64, f64)>,
    ) -> GateFuture<'_, Result<(), ApiError>> {
        let mut steps = self.0.lock().unwrap();
        let n = steps.len() as u32 + 1;
        steps.push(Step {
            attempt: 1,
            n,
            at: Timestamp(0),
            kind: kind.to_string(),
            data,
        });
        Box::pin(async { Ok(()) })
    }
}

/// The model's turn a request asks for, from 1.
fn turn(c: &Call) -> usize {
    c.body["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["role"] == "assistant").count())
        .unwrap_or(0)
        + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_neither_calls_the_model_again_nor_edits_twice() {
    let env = runtime().await;
    let fake = FakeProvider::start(ProviderKind::Anthropic, |c: &Call| match turn(c) {
        1 => tool(
            "edit_file",
            json!({"path": "a.txt", "old_text": "one", "new_text": "two"}),
        ),
        _ => text("edited"),
    })
    .await;
    let file = env.workspace().join("a.txt");
    std::fs::write(&file, "one\n").unwrap();
    let config = fake.config(&env.workspace());
    let record = Arc::new(Memory::default());
    let mut first = Session::new(
        &config,
        config.build_provider().unwrap(),
        env.backend.clone(),
    )
    .unwrap();
    first.set_step_log(Some(record.clone()));
    let out = first.send("edit it", &mut |_| {}).await.unwrap();
    assert_eq!(out.answer, "edited");
    let steps = record.0.lock().unwrap().clone();
    let kinds: Vec<&str> = steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["user", "model", "tool_start", "tool_result", "model"]
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "two\n");
    assert_eq!(fake.count(), 2);

    // Died after the edit was made but before its result was recorded: the edit is
    // not made again (its replacement is there), and the first call is not repeated.
    let resumed = |cut: usize| {
        let mut s = Session::new(
            &config,
            config.build_provider().unwrap(),
            env.backend.clone(),
        )
        .unwrap();
        s.set_step_log(Some(Arc::new(Memory::default())));
        assert_eq!(s.restore(&steps[..cut]).unwrap(), cut);
        s
    };
    let mut s = resumed(3);
    let out = s.resume(&mut |_| {}).await.unwrap();
    assert_eq!((out.answer.as_str(), out.turns), ("edited", 2));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "two\n");
    assert_eq!(fake.count(), 3, "one call more: the second turn's");
    let result = fake.calls()[2].results_text();
    assert!(result.contains("already in place"), "{result}");

    // Died after the model's response, before the tool started: the edit is made.
    std::fs::write(&file, "one\n").unwrap();
    let mut s = resumed(2);
    let out = s.resume(&mut |_| {}).await.unwrap();
    assert_eq!(out.answer, "edited");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "two\n");
    assert_eq!(fake.count(), 4);

    // Died after the answer was recorded: it is the outcome, with no call at all.
    let mut s = resumed(5);
    let out = s.resume(&mut |_| {}).await.unwrap();
    assert_eq!(
        (out.answer.as_str(), &out.stop),
        ("edited", &RunStop::Answered)
    );
    assert_eq!(fake.count(), 4);
    // The usage of the recorded calls came back with them, charged nowhere again.
    assert_eq!(s.usage().calls, 2);
}
