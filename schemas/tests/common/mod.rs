//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test binary uses a different part

use std::sync::OnceLock;

use flyhigh_schemas::DecodeError;
use jsonschema::Validator;

/// The generated envelope schema, compiled once per test binary.
///
/// Formats are not asserted, as draft 2020-12 prescribes by default: the schema must
/// hold its rules in patterns, because many producers' validators ignore `format`.
pub fn schema() -> &'static Validator {
    static SCHEMA: OnceLock<Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        jsonschema::draft202012::new(&flyhigh_schemas::json_schema::envelope_schema())
            .unwrap_or_else(|e| panic!("the generated schema does not compile: {e}"))
    })
}

/// The same schema with `format` asserted, as validators such as Ajv with ajv-formats
/// do: valid events must pass that too.
pub fn schema_with_formats() -> &'static Validator {
    static SCHEMA: OnceLock<Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&flyhigh_schemas::json_schema::envelope_schema())
            .unwrap_or_else(|e| panic!("the generated schema does not compile: {e}"))
    })
}

/// Whether the JSON Schema accepts `bytes`. Bytes that are not a JSON document are no
/// instance at all, so no schema accepts them.
pub fn schema_accepts(validator: &Validator, bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .is_ok_and(|instance| validator.is_valid(&instance))
}

/// The schema's error messages for `bytes`, for failure reports.
pub fn schema_errors(bytes: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(instance) => schema()
            .iter_errors(&instance)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect(),
        Err(e) => vec![format!("not JSON: {e}")],
    }
}

/// The fields a decode error names: every offending field of an invalid event, the
/// one field of a malformed one, the envelope field a classification is about, and
/// none for bytes that are not an event at all.
pub fn error_fields(error: &DecodeError) -> Vec<String> {
    match error {
        DecodeError::Invalid(errors) => errors.fields().map(str::to_owned).collect(),
        DecodeError::Malformed { field, .. } => vec![field.clone()],
        DecodeError::MissingEventType | DecodeError::UnknownEventType { .. } => {
            vec!["event_type".into()]
        }
        DecodeError::FutureSchemaVersion { .. } => vec!["schema_version".into()],
        _ => Vec::new(),
    }
}
