//! JSON Schemas of the wire types that serde writes by hand (durations), for the
//! daemon's OpenAPI document. Compiled only with the `schema` feature.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;

/// A duration as the wire accepts it: `"30s"`, `"5m"`, `"1h30m"`, or seconds.
pub(crate) struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration like \"30s\", \"5m\", \"1h30m\" or \"250ms\", or a number of seconds",
            "type": ["string", "number"],
            "examples": ["30s", "5m", 1.5]
        })
    }
}
