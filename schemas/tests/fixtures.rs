//! The contract, pinned by example files under `fixtures/`.
//!
//! - `fixtures/valid/*.json`: events every consumer must accept. Each decodes, survives
//!   a round trip through [`Envelope::to_json`], and passes the JSON Schema.
//! - `fixtures/invalid/NAME.{json,bin}` with `NAME.expect.json`: records every consumer
//!   must refuse. The expectation names the [`DecodeError::kind`], exactly the fields
//!   the error names, and the JSON Schema's verdict; where the schema accepts what
//!   Rust refuses, a `note` says which rule JSON Schema cannot express.
//!
//! Failures are collected over all fixtures and reported together, so one run shows
//! everything a change to the contract broke.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use flyhigh_schemas::{Cabin, Envelope, EventType, Payload, decode};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    kind: String,
    fields: Vec<String>,
    json_schema: Verdict,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Accepts,
    Rejects,
}

impl Verdict {
    fn of(accepts: bool) -> Verdict {
        if accepts {
            Verdict::Accepts
        } else {
            Verdict::Rejects
        }
    }
}

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The fixture files of a directory (expectations excluded), sorted by name.
fn fixtures(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            !name.ends_with(".expect.json") && (name.ends_with(".json") || name.ends_with(".bin"))
        })
        .map(|path| {
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect();
    out.sort();
    out
}

fn stem(file_name: &str) -> &str {
    file_name
        .rsplit_once('.')
        .map_or(file_name, |(stem, _)| stem)
}

fn report(failures: Vec<String>, checked: usize) {
    assert!(
        failures.is_empty(),
        "{} of {checked} fixtures failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn valid_fixtures_decode_round_trip_and_pass_the_json_schema() {
    let valid = fixtures(&fixture_dir("valid"));
    assert!(
        valid.len() >= 10,
        "expected the valid fixtures, found {}",
        valid.len()
    );
    let mut failures = Vec::new();
    for (name, bytes) in &valid {
        let event = match decode(bytes) {
            Ok(event) => event,
            Err(e) => {
                failures.push(format!("{name}: decode failed ({}): {e}", e.kind()));
                continue;
            }
        };
        let canonical = event.to_json();
        match decode(&canonical) {
            Ok(again) if again == event => {
                if again.to_json() != canonical {
                    failures.push(format!("{name}: to_json is not stable across a round trip"));
                }
            }
            Ok(again) => failures.push(format!(
                "{name}: round trip changed the event:\n  {event:?}\n  {again:?}"
            )),
            Err(e) => failures.push(format!("{name}: our own encoding does not decode: {e}")),
        }
        for (what, bytes) in [
            ("fixture", bytes.as_slice()),
            ("re-encoded event", canonical.as_slice()),
        ] {
            if !common::schema_accepts(common::schema(), bytes) {
                failures.push(format!(
                    "{name}: the JSON Schema rejects the {what}: {:?}",
                    common::schema_errors(bytes)
                ));
            }
            if !common::schema_accepts(common::schema_with_formats(), bytes) {
                failures.push(format!(
                    "{name}: the JSON Schema with formats asserted rejects the {what}"
                ));
            }
        }
    }
    report(failures, valid.len());
}

#[test]
fn valid_fixtures_cover_every_event_type_and_cabin() {
    let events: Vec<Envelope> = fixtures(&fixture_dir("valid"))
        .iter()
        .filter_map(|(_, bytes)| decode(bytes).ok())
        .collect();
    for kind in EventType::ALL {
        assert!(
            events.iter().any(|e| e.event_type() == kind),
            "no valid {kind} fixture"
        );
    }
    for cabin in Cabin::ALL {
        assert!(
            events
                .iter()
                .any(|e| matches!(&e.payload, Payload::Booking(b) if b.cabin == cabin)),
            "no valid booking in {cabin}"
        );
    }
    let round_trip = events
        .iter()
        .any(|e| matches!(&e.payload, Payload::Search(s) if s.return_date.is_some()));
    let one_way = events
        .iter()
        .any(|e| matches!(&e.payload, Payload::Search(s) if s.return_date.is_none()));
    assert!(
        round_trip && one_way,
        "need a one-way and a round-trip search"
    );
}

#[test]
fn invalid_fixtures_fail_as_expected() {
    let dir = fixture_dir("invalid");
    let invalid = fixtures(&dir);
    assert!(
        invalid.len() >= 25,
        "expected the invalid fixtures, found {}",
        invalid.len()
    );
    let mut failures = Vec::new();
    for (name, bytes) in &invalid {
        let expect_path = dir.join(format!("{}.expect.json", stem(name)));
        let expect: Expectation = match std::fs::read(&expect_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(expect) => expect,
            Err(e) => {
                failures.push(format!("{name}: no usable {}: {e}", expect_path.display()));
                continue;
            }
        };
        let expected_fields: BTreeSet<&str> = expect.fields.iter().map(String::as_str).collect();
        if expected_fields.len() != expect.fields.len() {
            failures.push(format!(
                "{name}: the expectation lists a field twice: {:?}",
                expect.fields
            ));
        }
        match decode(bytes) {
            Ok(event) => failures.push(format!("{name}: decoded, but must be refused: {event:?}")),
            Err(error) => {
                let fields = common::error_fields(&error);
                let found: BTreeSet<&str> = fields.iter().map(String::as_str).collect();
                if error.kind() != expect.kind || found != expected_fields {
                    failures.push(format!(
                        "{name}: expected {} {:?}, got {} {:?}: {error}",
                        expect.kind,
                        expected_fields,
                        error.kind(),
                        found
                    ));
                }
            }
        }
        let verdict = Verdict::of(common::schema_accepts(common::schema(), bytes));
        if verdict != expect.json_schema {
            failures.push(format!(
                "{name}: the JSON Schema {verdict:?} it, the expectation says {:?}; schema errors: {:?}",
                expect.json_schema,
                common::schema_errors(bytes)
            ));
        }
        if expect.json_schema == Verdict::Accepts
            && expect.note.as_deref().is_none_or(|n| n.trim().is_empty())
        {
            failures.push(format!("{name}: the JSON Schema accepts it, so a note must say which rule it cannot express"));
        }
    }
    report(failures, invalid.len());
}

#[test]
fn every_expectation_has_its_fixture() {
    let dir = fixture_dir("invalid");
    let stems: BTreeSet<String> = fixtures(&dir)
        .iter()
        .map(|(name, _)| stem(name).to_owned())
        .collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".expect.json") {
            assert!(
                stems.contains(stem),
                "{name} has no fixture {stem}.json or {stem}.bin"
            );
        }
    }
}
