//! The OpenAPI 3.1 document, built from the route table and the JSON Schemas of the
//! handlers' own request and answer types.

use crate::route::Route;
use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// The OpenAPI document of `routes`.
pub(crate) fn document(routes: &[Route]) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    let mut paths: Map<String, Value> = Map::new();
    for r in routes {
        let mut op = Map::new();
        op.insert("summary".into(), json!(r.summary));
        let mut params: Vec<Value> = path_params(r.path, &mut g);
        if let Some(q) = r.query {
            let schema = q(&mut g).to_value();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = schema["properties"].as_object() {
                for (name, s) in props {
                    let mut s = s.clone();
                    // A query parameter is text: absent, never null.
                    not_null(&mut s);
                    let description = s
                        .as_object_mut()
                        .and_then(|o| o.remove("description"))
                        .unwrap_or(Value::Null);
                    params.push(json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "description": description,
                        "schema": s,
                    }));
                }
            }
        }
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(b) = r.body {
            op.insert(
                "requestBody".into(),
                json!({
                    "required": !r.body_optional,
                    "content": {"application/json": {"schema": b(&mut g).to_value()}},
                }),
            );
        }
        let mut ok = json!({"description": "Success"});
        if let Some(a) = r.answer {
            let mut schema = a(&mut g).to_value();
            if r.media == "text/event-stream" {
                schema = event_schema(schema);
            }
            ok["content"] = json!({ r.media: {"schema": schema} });
        } else if r.status != 204 {
            ok["content"] = json!({ r.media: {} });
        }
        let error = json!({
            "description": "An error: {\"error\": {\"code\", \"message\", \"field\"}}",
            "content": {"application/json": {"schema": g.subschema_for::<meanwhile_core::http::ErrorBody>().to_value()}},
        });
        let mut responses = json!({ r.status.to_string(): ok, "default": error.clone() });
        for (status, meaning) in &r.refusals {
            let mut answer = error.clone();
            answer["description"] = json!(meaning);
            responses[status.to_string()] = answer;
        }
        op.insert("responses".into(), responses);
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method.as_str().to_ascii_lowercase()] = Value::Object(op);
    }
    let schemas = g.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "meanwhile",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Durable background tasks. Served on $MEANWHILE_HOME/meanwhile.sock, or on TCP with a bearer token.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    })
}

/// Removes `null` from the types a schema allows.
fn not_null(s: &mut Value) {
    if let Some(types) = s.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            s["type"] = types[0].clone();
        }
    }
    if let Some(any) = s.get_mut("anyOf").and_then(Value::as_array_mut) {
        any.retain(|t| t.get("type").and_then(Value::as_str) != Some("null"));
        if any.len() == 1 {
            *s = any[0].clone();
        }
    }
}

fn path_params(path: &str, g: &mut SchemaGenerator) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = match name {
                "id" => g.subschema_for::<meanwhile_core::TaskId>().to_value(),
                "alert" => json!({"type": "integer", "format": "int64", "minimum": 1}),
                // A queue's name is checked like the `queue` of a spec, a session's
                // like its `session`.
                "name" | "queue" | "session" => {
                    json!({"type": "string", "pattern": "^[A-Za-z0-9_.:/@-]{1,100}$"})
                }
                "schedule" => json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}),
                _ => json!({"type": "string", "minLength": 1}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// One server-sent event (OpenAPI 3.1 describes each event of a stream with the
/// media type's schema): its id is the event's `seq`, its type the event's kind,
/// and its data the event as JSON.
fn event_schema(event: Value) -> Value {
    json!({
        "type": "object",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": event,
            },
        },
    })
}
