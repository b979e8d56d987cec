//! Keeps `json/envelope.schema.json` equal to the schema generated from the Rust types.
//!
//! The checked-in file is what non-Rust producers use, so a change to the types that
//! changes the schema must show up in review as a change to that file. Regenerate with
//! `FLYHIGH_UPDATE_SCHEMAS=1 cargo test -p flyhigh-schemas --test json_schema`.

use std::path::PathBuf;

use flyhigh_schemas::json_schema::{ENVELOPE_SCHEMA_FILE, envelope_schema, envelope_schema_file};

fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(ENVELOPE_SCHEMA_FILE)
}

#[test]
fn checked_in_schema_equals_generated() {
    let path = checked_in_path();
    let generated = envelope_schema_file();
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in == generated {
        return;
    }
    if std::env::var_os("FLYHIGH_UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("rewrote {}", path.display());
        return;
    }
    let first_difference = checked_in
        .lines()
        .zip(generated.lines())
        .position(|(a, b)| a != b)
        .map_or_else(
            || "one file is a prefix of the other".to_string(),
            |i| format!("first difference at line {}", i + 1),
        );
    panic!(
        "{} is not the schema generated from the Rust types ({first_difference}).\n\
         If the change to the types is intended, regenerate it and commit the result:\n\
         \n    FLYHIGH_UPDATE_SCHEMAS=1 cargo test -p flyhigh-schemas --test json_schema\n",
        path.display()
    );
}

#[test]
fn generated_schema_is_a_valid_draft_2020_12_schema() {
    let schema = envelope_schema();
    // Checked against the bundled 2020-12 meta-schema, with no network access.
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("not a valid JSON Schema: {e}");
    }
    jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("the schema does not compile: {e}"));
}
