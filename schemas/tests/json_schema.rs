//! Keeps `json/envelope.schema.json` and `json/alert.schema.json` equal to the schemas
//! generated from the Rust types.
//!
//! The checked-in files are what non-Rust producers and alert subscribers use, so a
//! change to the types that changes a schema must show up in review as a change to
//! that file. Regenerate with
//! `FLYHIGH_UPDATE_SCHEMAS=1 cargo test -p flyhigh-schemas --test json_schema`.

use std::path::PathBuf;

use flyhigh_schemas::alert::{ALERT_SCHEMA_FILE, alert_schema, alert_schema_file};
use flyhigh_schemas::json_schema::{ENVELOPE_SCHEMA_FILE, envelope_schema, envelope_schema_file};
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, Cabin, Severity};

/// Fails unless the file at `relative` holds exactly `generated` (or rewrites it when
/// `FLYHIGH_UPDATE_SCHEMAS=1`).
fn assert_checked_in(relative: &str, generated: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative);
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in == generated {
        return;
    }
    if std::env::var_os("FLYHIGH_UPDATE_SCHEMAS").is_some_and(|v| v == "1") {
        std::fs::write(&path, generated)
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

fn assert_valid_schema(schema: &serde_json::Value) -> jsonschema::Validator {
    // Checked against the bundled 2020-12 meta-schema, with no network access.
    if let Err(e) = jsonschema::meta::validate(schema) {
        panic!("not a valid JSON Schema: {e}");
    }
    jsonschema::draft202012::new(schema)
        .unwrap_or_else(|e| panic!("the schema does not compile: {e}"))
}

#[test]
fn checked_in_schema_equals_generated() {
    assert_checked_in(ENVELOPE_SCHEMA_FILE, &envelope_schema_file());
}

#[test]
fn generated_schema_is_a_valid_draft_2020_12_schema() {
    assert_valid_schema(&envelope_schema());
}

#[test]
fn checked_in_alert_schema_equals_generated() {
    assert_checked_in(ALERT_SCHEMA_FILE, &alert_schema_file());
}

fn flight_alert() -> Alert {
    Alert {
        alert_id: Alert::flight_id_for(AlertRule::Oversold, "FH0310-20261202", Cabin::Economy, 1),
        alert_version: ALERT_VERSION,
        status: Default::default(),
        clears: None,
        rule: AlertRule::Oversold,
        severity: Severity::Critical,
        route: "ORD-SFO".into(),
        origin: "ORD".into(),
        destination: "SFO".into(),
        flight_id: Some("FH0310-20261202".into()),
        cabin: Some(Cabin::Economy),
        window_start: None,
        window_end: None,
        observed: None,
        baseline: None,
        capacity: Some(150),
        sold: Some(153),
        detected_at: "2026-12-01T10:02:11.250Z".parse().unwrap(),
        raised_at: "2026-12-01T10:02:12Z".parse().unwrap(),
        summary: "FH0310-20261202 economy oversold: 153 sold of 150".into(),
    }
}

#[test]
fn alerts_written_by_the_rust_type_pass_the_alert_schema_and_broken_ones_do_not() {
    let validator = assert_valid_schema(&alert_schema());
    let alert = serde_json::to_value(flight_alert()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&alert)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    for (field, value) in [
        ("rule", serde_json::json!("surge")),
        ("route", serde_json::json!("ORDSFO")),
        ("detected_at", serde_json::json!("2026-12-01 10:02")),
        ("severity", serde_json::json!("info")),
    ] {
        let mut broken = alert.clone();
        broken[field] = value;
        assert!(!validator.is_valid(&broken), "{field} should be refused");
    }
    let mut missing = alert.clone();
    missing.as_object_mut().unwrap().remove("alert_id");
    assert!(!validator.is_valid(&missing), "alert_id is required");
}
