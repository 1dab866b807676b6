//! Completion notices into the conversation: read from the session right before a
//! model call and put where every wire format accepts them.

use meanwhile_core::Notification;
use meanwhile_llm::{ContentBlock, Message, Role};

/// The text a model sees for `notices`: a `[meanwhile]` header and each notice's
/// [`Notification::text`]. The MCP server uses it for the notices it adds to a tool
/// result, so a model reads them the same way everywhere.
pub fn notices_text(notices: &[Notification]) -> String {
    let mut s = String::from(
        "[meanwhile] Background tasks that ended since your last turn (each is reported once):",
    );
    for n in notices {
        s.push_str("\n- ");
        s.push_str(&n.text().replace('\n', "\n  "));
    }
    s
}

/// Appends `text` to the conversation as part of the pending user turn.
///
/// Before a model call the conversation ends with a user message: the user's words
/// or the results of the tools the model asked for. The notice joins that message as
/// a text block, so no two user turns follow each other and tool results stay right
/// after the call they answer (the wire formats put results first and the text after
/// them). Only if the conversation ends otherwise does the notice start a user turn.
pub(crate) fn inject(messages: &mut Vec<Message>, text: String) {
    match messages.last_mut() {
        Some(last) if last.role == Role::User => last.content.push(ContentBlock::text(text)),
        _ => messages.push(Message::user(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meanwhile_core::{TaskId, TaskState, Timestamp};

    #[test]
    fn notices_join_the_pending_user_turn_after_its_tool_results() {
        let mut messages = vec![
            Message::user("go"),
            Message::new(
                Role::Assistant,
                vec![ContentBlock::ToolUse {
                    id: "t1".into(),
                    name: "bash".into(),
                    input: serde_json::json!({"command": "ls"}),
                }],
            ),
            Message::new(Role::User, vec![ContentBlock::tool_result("t1", "a.txt")]),
        ];
        let n = Notification {
            seq: 1,
            kind: meanwhile_core::NoticeKind::Ended,
            prompt: None,
            listening: Vec::new(),
            session: "s".into(),
            task_id: TaskId(7),
            name: "cargo test".into(),
            state: TaskState::Succeeded,
            exit_code: Some(0),
            signal: None,
            reason: None,
            duration_ms: 3000,
            attempts: 1,
            tail: "ok\n".into(),
            output_bytes: 3,
            created_at: Timestamp(0),
        };
        inject(&mut messages, notices_text(&[n]));
        assert_eq!(messages.len(), 3);
        let last = &messages[2].content;
        assert!(matches!(&last[0], ContentBlock::ToolResult { .. }));
        let ContentBlock::Text { text } = &last[1] else {
            panic!("{last:?}")
        };
        assert!(
            text.contains("task 7 (cargo test) succeeded after 3s"),
            "{text}"
        );

        // After a final answer, a notice starts the next user turn.
        messages.push(Message::assistant("done"));
        inject(&mut messages, "x".into());
        assert_eq!(messages.last().unwrap().role, Role::User);
    }
}
