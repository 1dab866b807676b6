//! The conformance suite of `SessionStore`: notices told exactly once, and agent
//! sessions; each test runs on both stores.

use meanwhile_core::{AttemptOutcome, TaskId, TaskSpec, Timestamp};
use meanwhile_store::PruneRequest;

use crate::support::{NOW, claim_req, end, submit};

fn session_step(
    name: &str,
    holder: &str,
    after: u32,
    kind: &str,
    text: &str,
) -> meanwhile_store::NewAgentSessionStep {
    meanwhile_store::NewAgentSessionStep {
        name: name.into(),
        holder: holder.into(),
        after,
        kind: kind.into(),
        data: serde_json::json!({ "text": text }).to_string(),
        now: Timestamp(NOW.0 + 10),
    }
}

fn open_session(
    name: &str,
    fresh: bool,
    holder: &str,
    at: i64,
) -> meanwhile_store::OpenAgentSession {
    meanwhile_store::OpenAgentSession {
        name: name.into(),
        fresh,
        workspace: "/work/shop".into(),
        holder: holder.into(),
        now: Timestamp(at),
    }
}

both! {
    async fn notifications_drain_once_in_order_across_reopen(f: Fixture) {
        let mut f = f;
        {
            let store = &*f.store;
            for i in 0..3 {
                let mut s = TaskSpec::shell(format!("t{i}"));
                s.session = Some("agent-1".into());
                submit(store, s).await;
            }
            let claimed = store.claim(claim_req(10)).await.unwrap().tasks;
            for c in &claimed {
                store
                    .finish_attempt(end(c.task.id, 1, AttemptOutcome::Exited { code: 0 }))
                    .await
                    .unwrap();
            }
            let first = store.drain_notifications("agent-1", 2).await.unwrap();
            let ids: Vec<i64> = first.iter().map(|n| n.task_id.0).collect();
            assert_eq!(ids, vec![1, 2]);
            assert_eq!(
                store.peek_notifications("agent-1", 10).await.unwrap().len(),
                1
            );
        }
        f.reopen().await;
        let store = &*f.store;
        let rest = store.drain_notifications("agent-1", 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].task_id, TaskId(3));
        assert!(
            store
                .drain_notifications("agent-1", 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .drain_notifications("other", 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

both! {
    /// A session holds at most MAX_SESSION_STEPS steps: the last one is taken, the
    /// next refused with what to do, and nothing of the session is lost.
    async fn an_agent_session_holds_at_most_max_session_steps(f: Fixture) {
        use meanwhile_core::MAX_SESSION_STEPS;
        let s = &*f.store;
        s.open_agent_session(open_session("long", true, "a", NOW.0)).await.unwrap();
        assert_eq!(s.record_session_step(session_step("long", "a", 0, "user", "hi")).await.unwrap(), 1);
        // As if all but one of its steps had been recorded.
        f.edit(&format!(
            "UPDATE agent_sessions SET steps = {} WHERE name = 'long'",
            MAX_SESSION_STEPS - 1
        ))
        .await;
        let last = s
            .record_session_step(session_step("long", "a", MAX_SESSION_STEPS - 1, "model", "ok"))
            .await
            .unwrap();
        assert_eq!(last, MAX_SESSION_STEPS);
        let e = s
            .record_session_step(session_step("long", "a", MAX_SESSION_STEPS, "user", "more"))
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "session: agent session \"long\" holds the most steps a session may, {MAX_SESSION_STEPS}: begin a new conversation"
            )),
            "{e}"
        );
        assert_eq!(s.agent_session("long").await.unwrap().steps, MAX_SESSION_STEPS);
        let steps = s.agent_session_steps("long").await.unwrap();
        let numbers: Vec<u32> = steps.iter().map(|s| s.n).collect();
        assert_eq!(numbers, [1, MAX_SESSION_STEPS]);
        // A new conversation under the same name begins again from nothing.
        let fresh = s.open_agent_session(open_session("long", true, "b", NOW.0 + 1)).await.unwrap();
        assert_eq!(fresh.steps, 0);
        assert_eq!(s.record_session_step(session_step("long", "b", 0, "user", "again")).await.unwrap(), 1);
    }
}

both! {
    async fn an_agent_session_has_one_holder_and_steps_without_gaps(f: Fixture) {
        let s = &*f.store;
        let e = s.record_session_step(session_step("shop", "a", 0, "user", "hi")).await.unwrap_err();
        assert!(matches!(e, meanwhile_store::StoreError::UnknownSession(ref n) if n == "shop"), "{e}");
        let opened = s.open_agent_session(open_session("shop", true, "a", NOW.0)).await.unwrap();
        assert_eq!((opened.steps, opened.holder.as_str(), opened.title.as_str()), (0, "a", ""));
        assert_eq!(s.record_session_step(session_step("shop", "a", 0, "user", "fix the build\nplease")).await.unwrap(), 1);
        assert_eq!(s.record_session_step(session_step("shop", "a", 1, "model", "ok")).await.unwrap(), 2);
        // A count that is not the session's, another holder, a bad kind: refused.
        let e = s.record_session_step(session_step("shop", "a", 1, "model", "again")).await.unwrap_err();
        assert!(e.to_string().starts_with("after: agent session \"shop\" has 2 steps, not 1"), "{e}");
        let e = s.record_session_step(session_step("shop", "b", 2, "model", "x")).await.unwrap_err();
        assert!(e.to_string().starts_with("holder: "), "{e}");
        let e = s.record_session_step(session_step("shop", "a", 2, "Model", "x")).await.unwrap_err();
        assert!(e.to_string().starts_with("kind: "), "{e}");
        // Opened again to continue it: the new holder goes on, the old one is refused.
        let again = s.open_agent_session(open_session("shop", false, "b", NOW.0 + 20)).await.unwrap();
        assert_eq!((again.steps, again.title.as_str()), (2, "fix the build"));
        assert_eq!(again.created_at, Timestamp(NOW.0));
        let e = s.record_session_step(session_step("shop", "a", 2, "model", "x")).await.unwrap_err();
        assert!(e.to_string().contains("was opened again elsewhere"), "{e}");
        assert_eq!(s.record_session_step(session_step("shop", "b", 2, "tool_start", "x")).await.unwrap(), 3);
        let steps = s.agent_session_steps("shop").await.unwrap();
        let kinds: Vec<(u32, u32, &str)> =
            steps.iter().map(|s| (s.attempt, s.n, s.kind.as_str())).collect();
        assert_eq!(kinds, [(0, 1, "user"), (0, 2, "model"), (0, 3, "tool_start")]);
        assert_eq!(steps[0].data["text"], "fix the build\nplease");
        // A second session; the list has the last active first.
        s.open_agent_session(open_session("lab", false, "c", NOW.0 + 30)).await.unwrap();
        let names: Vec<String> = s.agent_sessions(10).await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["lab", "shop"]);
        assert_eq!(s.agent_session("shop").await.unwrap().steps, 3);
        // A fresh open replaces the conversation.
        let fresh = s.open_agent_session(open_session("shop", true, "d", NOW.0 + 40)).await.unwrap();
        assert_eq!((fresh.steps, fresh.title.as_str(), fresh.created_at), (0, "", Timestamp(NOW.0 + 40)));
        assert!(s.agent_session_steps("shop").await.unwrap().is_empty());
        let mut first = session_step("shop", "d", 0, "user", "new");
        first.now = Timestamp(NOW.0 + 50);
        assert_eq!(s.record_session_step(first).await.unwrap(), 1);
        // Retention forgets the idle ones; forgetting by hand says whether it had one.
        let p = s
            .prune(PruneRequest {
                agent_sessions_before: Some(Timestamp(NOW.0 + 35)),
                ..PruneRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(p.agent_sessions, 1);
        let names: Vec<String> = s.agent_sessions(10).await.unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["shop"]);
        assert!(s.forget_agent_session("shop").await.unwrap());
        assert!(!s.forget_agent_session("shop").await.unwrap());
        assert!(matches!(s.agent_session_steps("shop").await, Err(meanwhile_store::StoreError::UnknownSession(_))));
        assert!(matches!(s.agent_session("shop").await, Err(meanwhile_store::StoreError::UnknownSession(_))));
    }
}
