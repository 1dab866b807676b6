//! The OpenAPI 3.1 document, built from the route table and the JSON Schemas of the
//! handlers' own request and answer types.

use crate::routes::table;
use axum::Json;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

/// The OpenAPI document of every endpoint.
pub fn openapi() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    let mut paths: Map<String, Value> = Map::new();
    for r in table() {
        let mut op = Map::new();
        op.insert("summary".into(), json!(r.summary));
        let mut params: Vec<Value> = path_params(r.path);
        if let Some(q) = r.query {
            let schema = q(&mut g).to_value();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = schema["properties"].as_object() {
                for (name, s) in props {
                    let mut s = s.clone();
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
            ok["content"] = json!({ r.media: {"schema": a(&mut g).to_value()} });
        } else if r.status != 204 {
            ok["content"] = json!({ r.media: {} });
        }
        let error = json!({
            "description": "An error: {\"error\": {\"code\", \"message\", \"field\"}}",
            "content": {"application/json": {"schema": g.subschema_for::<meanwhile_core::http::ErrorBody>().to_value()}},
        });
        op.insert(
            "responses".into(),
            json!({ r.status.to_string(): ok, "default": error }),
        );
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

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let schema = if name == "id" {
                json!({"type": "integer", "minimum": 1})
            } else {
                json!({"type": "string"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

pub(crate) async fn serve_document() -> Json<Value> {
    Json(openapi())
}
