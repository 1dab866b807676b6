//! Structured output: a JSON Schema asked of the provider, whatever its wire format.
//!
//! Both formats want an object at the root of the schema (Anthropic for a tool's
//! input, OpenAI for `response_format`), so any other root is wrapped in an object
//! of one property, `answer`, and unwrapped from the reply. Either way the reply's
//! content becomes one text block holding the answer's JSON.

use serde_json::{Value, json};

use crate::conversation::{ContentBlock, StopReason};

/// The name of the forced tool (Anthropic) and of the schema (OpenAI).
pub(crate) const NAME: &str = "answer";
/// What the forced tool is for, as the model reads it.
pub(crate) const DESCRIPTION: &str =
    "Give your final answer through this tool, as its input, exactly as the schema says.";

/// A schema as the wire formats want it.
pub(crate) struct OutputSchema {
    /// An object schema: the one asked for, or the wrapper around it.
    pub schema: Value,
    wrapped: bool,
}

impl OutputSchema {
    /// `schema` with an object at its root.
    pub fn new(schema: &Value) -> OutputSchema {
        if schema.get("type").and_then(Value::as_str) == Some("object") {
            return OutputSchema {
                schema: schema.clone(),
                wrapped: false,
            };
        }
        OutputSchema {
            schema: json!({
                "type": "object",
                "properties": {NAME: schema},
                "required": [NAME],
                "additionalProperties": false,
            }),
            wrapped: true,
        }
    }

    /// The answer inside what the model wrote for the object schema.
    fn unwrap(&self, value: Value) -> Value {
        match value {
            Value::Object(mut map) if self.wrapped && map.contains_key(NAME) => {
                map.remove(NAME).unwrap_or(Value::Null)
            }
            other => other,
        }
    }

    /// Rewrites a reply's content as one text block of the answer's JSON: the input
    /// of the forced tool call when there is one, else the text unwrapped when it is
    /// JSON. A reply that holds neither is left as it came, for the caller's
    /// validation to refuse.
    pub fn answer_as_text(&self, content: &mut Vec<ContentBlock>, stop: &mut StopReason) {
        let forced = content.iter().find_map(|block| match block {
            ContentBlock::ToolUse { name, input, .. } if name == NAME => Some(input.clone()),
            _ => None,
        });
        let answer = match forced {
            Some(input) => {
                *stop = StopReason::EndTurn;
                self.unwrap(input)
            }
            None => {
                let text: String = content
                    .iter()
                    .filter_map(|block| match block {
                        ContentBlock::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                match serde_json::from_str::<Value>(text.trim()) {
                    Ok(value) => self.unwrap(value),
                    Err(_) => return,
                }
            }
        };
        *content = vec![ContentBlock::Text {
            text: answer.to_string(),
        }];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_schemas_go_as_they_are_and_others_are_wrapped() {
        let object = json!({"type": "object", "properties": {"label": {"type": "string"}}});
        assert_eq!(OutputSchema::new(&object).schema, object);
        let list = json!({"type": "array", "items": {"type": "string"}});
        let wrapped = OutputSchema::new(&list);
        assert_eq!(wrapped.schema["properties"]["answer"], list);
        assert_eq!(wrapped.schema["required"], json!(["answer"]));
    }

    #[test]
    fn a_forced_tool_call_becomes_the_text_of_its_input() {
        let schema = OutputSchema::new(&json!({"type": "array"}));
        let mut content = vec![
            ContentBlock::text("Here it is."),
            ContentBlock::ToolUse {
                id: "t1".into(),
                name: NAME.into(),
                input: json!({"answer": ["a", "b"]}),
            },
        ];
        let mut stop = StopReason::ToolUse;
        schema.answer_as_text(&mut content, &mut stop);
        assert_eq!(content, vec![ContentBlock::text(r#"["a","b"]"#)]);
        assert_eq!(stop, StopReason::EndTurn);
    }

    #[test]
    fn json_text_is_unwrapped_and_prose_left_alone() {
        let schema = OutputSchema::new(&json!({"type": "string"}));
        let mut content = vec![ContentBlock::text(r#" {"answer": "yes"} "#)];
        let mut stop = StopReason::EndTurn;
        schema.answer_as_text(&mut content, &mut stop);
        assert_eq!(content, vec![ContentBlock::text(r#""yes""#)]);
        let mut prose = vec![ContentBlock::text("I think yes.")];
        schema.answer_as_text(&mut prose, &mut stop);
        assert_eq!(prose, vec![ContentBlock::text("I think yes.")]);
    }
}
