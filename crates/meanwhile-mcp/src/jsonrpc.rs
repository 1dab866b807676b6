//! The shape of a JSON-RPC message posted to the MCP endpoint, checked before the
//! MCP service reads it, so that a malformed one gets what JSON-RPC 2.0 prescribes (a
//! parse error, -32700, or an invalid request, -32600) with HTTP 400, rather than a
//! bare status line.

use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};

/// JSON-RPC's code for a body that is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC's code for JSON that is not a valid request.
pub const INVALID_REQUEST: i64 = -32600;

/// Checks one posted JSON-RPC message: `Ok` when the MCP service can read it,
/// else the JSON-RPC error response to answer with (HTTP 400).
pub fn check_message(body: &[u8]) -> Result<(), Value> {
    // serde_json refuses nesting deeper than 128, so a body nested 10,000 deep is a
    // parse error here, never a deep recursion.
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| error(None, PARSE_ERROR, format!("Parse error: {e}")))?;
    let obj = match &value {
        Value::Object(o) => o,
        Value::Array(_) => {
            return Err(error(
                None,
                INVALID_REQUEST,
                "Invalid Request: a batch (a JSON array) is not accepted; send one message per request".into(),
            ));
        }
        _ => {
            return Err(error(
                None,
                INVALID_REQUEST,
                "Invalid Request: a message must be a JSON object".into(),
            ));
        }
    };
    let id = obj.get("id").cloned();
    let invalid = |why: &str| {
        error(
            id.clone(),
            INVALID_REQUEST,
            format!("Invalid Request: {why}"),
        )
    };
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("\"jsonrpc\" must be \"2.0\""));
    }
    match obj.get("method") {
        Some(Value::String(_)) => {}
        Some(_) => return Err(invalid("\"method\" must be a string")),
        None if obj.contains_key("result") || obj.contains_key("error") => {
            if id.is_none() {
                return Err(invalid("a response needs the \"id\" of its request"));
            }
        }
        None => {
            return Err(invalid(
                "no \"method\": a request or notification names one",
            ));
        }
    }
    if let Some(id) = &id
        && !(id.is_string() || id.is_i64() || id.is_u64() || id.is_null())
    {
        return Err(invalid("\"id\" must be a string or an integer"));
    }
    serde_json::from_value::<ClientJsonRpcMessage>(value)
        .map(|_| ())
        .map_err(|e| invalid(&e.to_string()))
}

fn error(id: Option<Value>, code: i64, message: String) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": { "code": code, "message": message },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> Option<i64> {
        check_message(body.as_bytes())
            .err()
            .map(|e| e["error"]["code"].as_i64().unwrap())
    }

    #[test]
    fn malformed_messages_get_the_json_rpc_code_for_what_is_wrong() {
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        assert_eq!(code(ping), None);
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            None
        );
        assert_eq!(code("{nope"), Some(PARSE_ERROR));
        assert_eq!(code(""), Some(PARSE_ERROR));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(code(&deep), Some(PARSE_ERROR));
        assert_eq!(code(&format!("[{ping}]")), Some(INVALID_REQUEST));
        assert_eq!(code("42"), Some(INVALID_REQUEST));
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            Some(INVALID_REQUEST)
        );
        assert_eq!(code(r#"{"id":1,"method":"ping"}"#), Some(INVALID_REQUEST));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), Some(INVALID_REQUEST));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            Some(INVALID_REQUEST)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#),
            Some(INVALID_REQUEST)
        );
        // The id of a request that had one is answered back.
        let e = check_message(br#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#).unwrap_err();
        assert_eq!(e["id"], "a");
    }
}
