//! The JSON Schema of the envelope, for producers not written in Rust.
//!
//! [`envelope_schema`] generates it from the Rust types with schemars (draft 2020-12);
//! the result is checked in as `schemas/json/envelope.schema.json`, and
//! `tests/json_schema.rs` fails whenever the two differ (`FLYHIGH_UPDATE_SCHEMAS=1`
//! rewrites the file). The Rust types are the source of truth; the file is a copy.
//!
//! The schema expresses every rule of [`Envelope::validate`](crate::Envelope::validate)
//! that JSON Schema can: types, required fields, enums, patterns (IATA codes, UUIDv7,
//! UTC millisecond timestamps, money as decimal strings), lengths and ranges. What it
//! cannot express, a consumer still refuses:
//! - origin and destination must differ;
//! - a search's return date is not before its departure date, and its departure date is
//!   within a day before and 400 days after `occurred_at`;
//! - dates must exist in the calendar (the patterns admit 2026-02-30);
//! - the whole event is at most [`MAX_EVENT_BYTES`](crate::MAX_EVENT_BYTES);
//! - integers are written without a fraction (`2`, not `2.0`), and an object has no
//!   duplicate keys: JSON Schema sees parsed values, not their spelling.
//!
//! # Example
//!
//! ```
//! let schema = flyhigh_schemas::json_schema::envelope_schema();
//! assert_eq!(schema["properties"]["event_type"]["enum"][0], "search");
//! ```

use schemars::Schema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::Envelope;

/// Where the checked-in schema lives, relative to the `schemas/` crate root.
pub const ENVELOPE_SCHEMA_FILE: &str = "json/envelope.schema.json";

/// The JSON Schema (draft 2020-12) of one event on the wire.
pub fn envelope_schema() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<Envelope>().to_value();
    // Key order must not depend on whether some crate in the build turns on
    // serde_json's `preserve_order`: the checked-in file is compared byte for byte.
    schema.sort_all_objects();
    schema
}

/// [`envelope_schema`] exactly as checked in: pretty-printed, with a trailing newline.
pub fn envelope_schema_file() -> String {
    let mut text = serde_json::to_string_pretty(&envelope_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// Reshapes the schema schemars derives for the adjacently tagged [`Payload`](crate::Payload).
///
/// schemars describes it as a `oneOf` of one object per kind. Correct, but a validator
/// then reports an unknown `event_type` or a bad payload field as "matches none of
/// the alternatives". Instead: `event_type` is an `enum` of the kinds, and one
/// `if`/`then` per kind applies the payload's schema, so errors name the field.
/// Derived from the `oneOf`, so a new variant appears here with no edit.
pub(crate) fn discriminate_by_event_type(schema: &mut Schema) {
    let Some(variants) = schema.get("oneOf").and_then(Value::as_array).cloned() else {
        return;
    };
    let mut kinds = Vec::new();
    let mut rules = Vec::new();
    for variant in &variants {
        let properties = variant.get("properties");
        let kind = properties
            .and_then(|p| p.pointer("/event_type/const"))
            .cloned();
        let payload = properties.and_then(|p| p.get("payload")).cloned();
        let (Some(kind), Some(mut payload)) = (kind, payload) else {
            // Not the shape this function knows; leave schemars' output alone, which the
            // crate's tests notice because `event_type` is then no enum.
            return;
        };
        if let (Some(description), Some(payload)) =
            (variant.get("description"), payload.as_object_mut())
        {
            payload.insert("description".into(), description.clone());
        }
        rules.push(json!({
            "if": { "properties": { "event_type": { "const": kind } }, "required": ["event_type"] },
            "then": { "properties": { "payload": payload } },
        }));
        kinds.push(kind);
    }
    let mut reshaped = Map::new();
    if let Some(description) = schema.get("description") {
        reshaped.insert("description".into(), description.clone());
    }
    reshaped.insert("type".into(), "object".into());
    reshaped.insert(
        "properties".into(),
        json!({
            "event_type": {
                "description": "The event kind; it decides the schema of `payload`.",
                "type": "string",
                "enum": kinds,
            },
            "payload": {
                "description": "The event's data, as `event_type` says.",
                "type": "object",
            },
        }),
    );
    reshaped.insert("required".into(), json!(["event_type", "payload"]));
    reshaped.insert("allOf".into(), Value::Array(rules));
    *schema = Schema::from(reshaped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventType;

    #[test]
    fn event_type_is_an_enum_of_every_kind() {
        let schema = envelope_schema();
        let kinds: Vec<&str> = EventType::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(schema["properties"]["event_type"]["enum"], json!(kinds));
        assert!(
            schema.get("oneOf").is_none(),
            "the Payload transform did not run: {schema:#}"
        );
        let rules = schema["allOf"].as_array().expect("one if/then per kind");
        assert_eq!(rules.len(), kinds.len());
        for (rule, kind) in rules.iter().zip(&kinds) {
            assert_eq!(rule["if"]["properties"]["event_type"]["const"], *kind);
            let target = rule["then"]["properties"]["payload"]["$ref"]
                .as_str()
                .unwrap_or_default();
            assert!(
                target.to_lowercase().ends_with(kind),
                "{kind} payload refers to {target}"
            );
        }
    }

    #[test]
    fn envelope_fields_are_required_and_unknown_fields_allowed() {
        let schema = envelope_schema();
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for field in [
            "event_id",
            "schema_version",
            "occurred_at",
            "source",
            "event_type",
            "payload",
        ] {
            assert!(
                required.contains(&field),
                "{field} is not required: {required:?}"
            );
        }
        // The evolution rule: readers ignore fields they do not know.
        assert!(
            schema.get("additionalProperties").is_none()
                && schema.get("unevaluatedProperties").is_none()
        );
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}
