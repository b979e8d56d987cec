//! The operator commands on the embedded default, run as the built binary:
//! `schedule load` (CSV), `inventory show | list`, `dead-letters list | replay` from
//! a file, and the errors a person sees.

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use flyhigh_core::inventory::{BookingChange, Transaction};
use flyhigh_core::{BookingRecord, BookingStatus, CabinKey, DeadLetter, InventoryStore};
use flyhigh_embedded::{JsonLinesFile, SqliteInventoryStore};
use flyhigh_schemas::Cabin;
use serde_json::Value;

fn flyhigh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flyhigh"))
        .args(args)
        // As scripts/test.sh runs it: a backtrace must still not be printed.
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run flyhigh")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An error a person can act on: one `error:` line, at most a `hint:` line.
fn assert_short_error(o: &Output, names: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.lines().count() <= 2, "{err}");
    assert!(
        !err.contains("backtrace") && !err.contains("Backtrace"),
        "{err}"
    );
    for n in names {
        assert!(err.contains(n), "stderr does not name {n:?}: {err}");
    }
}

const SCHEDULE: &str = "\
flight_id,origin,destination,departure,economy,premium_economy,business,first
FH0100-20261201,LHR,JFK,2026-12-01T09:30:00Z,10,,4,
FH0200-20261202,LHR,CDG,2026-12-02T07:05:00Z,150,20,,
";

fn sell(db: &Path, sales: &[(&str, &str, Cabin, u8)]) {
    let store = SqliteInventoryStore::open(db).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (id, flight, cabin, seats) in sales {
        let key = CabinKey::new(*flight, *cabin);
        let tx = Transaction {
            changes: vec![BookingChange {
                expected: None,
                record: BookingRecord {
                    booking_id: (*id).into(),
                    status: BookingStatus::Booked,
                    flight_id: (*flight).into(),
                    cabin: Some(*cabin),
                    seats: *seats,
                    booked_at: None,
                    released_at: None,
                },
                delta: Some((key.clone(), i64::from(*seats))),
                first_index: 0,
            }],
            counters: vec![(key, i64::from(*seats))],
        };
        rt.block_on(store.commit(&tx)).unwrap();
    }
}

fn setup(dir: &Path) -> String {
    let csv = dir.join("schedule.csv");
    std::fs::write(&csv, SCHEDULE).unwrap();
    let db = dir.join("inventory.sqlite");
    let o = flyhigh(&[
        "schedule",
        "load",
        "--file",
        csv.to_str().unwrap(),
        "--sqlite",
        db.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("loaded 2 flights"), "{}", stdout(&o));
    sell(
        &db,
        &[
            ("B1", "FH0100-20261201", Cabin::Economy, 8),
            ("B2", "FH0100-20261201", Cabin::Business, 5),
            ("B3", "FH0900-20261203", Cabin::First, 1),
        ],
    );
    db.to_str().unwrap().to_string()
}

#[test]
fn inventory_show_agrees_with_the_stored_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path());
    let o = flyhigh(&[
        "inventory",
        "show",
        "FH0100-20261201",
        "--sqlite",
        &db,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let stored = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(
            SqliteInventoryStore::open(Path::new(&db))
                .unwrap()
                .flight("FH0100-20261201"),
        )
        .unwrap();
    let cabins = shown["cabins"].as_array().unwrap();
    assert_eq!(cabins.len(), stored.len());
    for (shown, stored) in cabins.iter().zip(&stored) {
        assert_eq!(shown["cabin"], stored.cabin.as_str());
        assert_eq!(shown["capacity"], stored.capacity.unwrap());
        assert_eq!(shown["sold"], stored.sold);
        assert_eq!(shown["available"], stored.available());
        assert_eq!(shown["oversold"], stored.oversold());
    }
    assert_eq!(shown["route"], "LHR-JFK");
    assert_eq!(shown["departure"], "2026-12-01T09:30:00Z");
    assert_eq!(cabins[1]["oversold"], 1, "business: 5 sold of 4");
    assert_eq!(cabins[1]["load_factor"], 1.25);

    // The table says the same.
    let o = flyhigh(&["inventory", "show", "FH0100-20261201", "--sqlite", &db]);
    let text = stdout(&o);
    assert!(text.contains("LHR-JFK"), "{text}");
    let business = text.lines().find(|l| l.starts_with("business")).unwrap();
    let cells: Vec<&str> = business.split_whitespace().collect();
    assert_eq!(cells, ["business", "4", "5", "0", "1", "125%", "OVERSOLD"]);

    // An unscheduled flight is shown as such.
    let o = flyhigh(&[
        "inventory",
        "show",
        "FH0900-20261203",
        "--sqlite",
        &db,
        "--json",
    ]);
    let shown: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (
            shown["scheduled"].as_bool(),
            shown["cabins"][0]["sold"].as_i64()
        ),
        (Some(false), Some(1))
    );
}

#[test]
fn an_unknown_flight_exits_1_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path());
    let o = flyhigh(&["inventory", "show", "FH0999-20261201", "--sqlite", &db]);
    assert_short_error(&o, &["FH0999-20261201", "is not in", "inventory.sqlite"]);
    assert!(stdout(&o).is_empty());
    // A missing file is not created by a read.
    let missing = dir.path().join("typo.sqlite");
    let o = flyhigh(&[
        "inventory",
        "show",
        "FH0100-20261201",
        "--sqlite",
        missing.to_str().unwrap(),
    ]);
    assert_short_error(&o, &["typo.sqlite", "does not exist"]);
    assert!(!missing.exists());
}

#[test]
fn inventory_list_filters() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path());
    let list = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["inventory", "list", "--sqlite", &db, "--json"];
        args.extend_from_slice(extra);
        let o = flyhigh(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Vec<Value> = serde_json::from_str(&stdout(&o)).unwrap();
        v.iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c["flight_id"].as_str().unwrap(),
                    c["cabin"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(list(&[]).len(), 5);
    assert_eq!(list(&["--oversold"]), ["FH0100-20261201 business"]);
    assert_eq!(list(&["--sold-out"]), ["FH0100-20261201 business"]);
    assert_eq!(
        list(&["--route", "LHR-CDG"]),
        ["FH0200-20261202 economy", "FH0200-20261202 premium_economy"]
    );
    assert_eq!(list(&["--date", "2026-12-03"]), ["FH0900-20261203 first"]);
    assert_eq!(list(&["--limit", "1"]), ["FH0100-20261201 economy"]);
    // The table form.
    let o = flyhigh(&["inventory", "list", "--sqlite", &db, "--oversold"]);
    assert!(
        stdout(&o).contains("OVERSOLD") && stdout(&o).contains("1 cabins"),
        "{}",
        stdout(&o)
    );
    // A bad filter is a usage error (exit 2) naming the format.
    let o = flyhigh(&["inventory", "list", "--sqlite", &db, "--route", "London"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("ORIGIN-DESTINATION"), "{}", stderr(&o));
}

#[test]
fn lowering_a_capacity_below_seats_sold_shows_as_oversold() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path());
    let lower = dir.path().join("lower.csv");
    std::fs::write(
        &lower,
        "flight_id,origin,destination,departure,economy\nFH0100-20261201,LHR,JFK,2026-12-01T09:30:00Z,6\n",
    )
    .unwrap();
    let o = flyhigh(&[
        "schedule",
        "load",
        "--file",
        lower.to_str().unwrap(),
        "--sqlite",
        &db,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = flyhigh(&[
        "inventory",
        "show",
        "FH0100-20261201",
        "--sqlite",
        &db,
        "--json",
    ]);
    let shown: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let economy = &shown["cabins"][0];
    assert_eq!(
        (
            economy["cabin"].as_str(),
            economy["capacity"].as_u64(),
            economy["sold"].as_i64(),
            economy["oversold"].as_i64()
        ),
        (Some("economy"), Some(6), Some(8), Some(2))
    );
}

#[test]
fn a_bad_schedule_file_names_the_line_and_column_and_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("inventory.sqlite");
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "flight_id,origin,destination,departure,economy\nFH1-20261201,LHR,JFK,2026-12-01T09:30:00Z,10\nFH2-20261201,LHR,JFK,2026-12-01T09:30:00Z,lots\n",
    )
    .unwrap();
    let o = flyhigh(&[
        "schedule",
        "load",
        "--file",
        bad.to_str().unwrap(),
        "--sqlite",
        db.to_str().unwrap(),
    ]);
    assert_short_error(
        &o,
        &["bad.csv", "line 3", "column `economy`", "\"lots\"", "hint:"],
    );
    // Nothing was loaded (the file was not even opened).
    assert!(!db.exists());
    let o = flyhigh(&[
        "schedule",
        "load",
        "--file",
        "/nonexistent/s.json",
        "--sqlite",
        db.to_str().unwrap(),
    ]);
    assert_short_error(&o, &["/nonexistent/s.json"]);
}

fn letter(seq: &str, reason_kind: &str, data: &[u8]) -> DeadLetter {
    DeadLetter {
        processor: "inventory".into(),
        shard_id: "shardId-000000000000".into(),
        sequence_number: seq.into(),
        sub_sequence_number: Some(0),
        partition_key: "FH0100-20261201".into(),
        approximate_arrival: None,
        reason_kind: reason_kind.into(),
        reason: "test".into(),
        data_base64: base64::engine::general_purpose::STANDARD.encode(data),
    }
}

fn booking_json(booking_id: &str, seats: u8) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event_id": format!("0190b6a0-0000-7000-8000-{:012}", seats as u64 + booking_id.len() as u64),
        "event_type": "booking",
        "schema_version": 1,
        "occurred_at": "2026-11-20T10:00:00.000Z",
        "source": "web-app",
        "payload": {
            "booking_id": booking_id,
            "customer_id": "cust-0001",
            "flight_id": "FH0100-20261201",
            "origin": "LHR",
            "destination": "JFK",
            "cabin": "economy",
            "seats": seats,
            "fare": {"amount": "100.00", "currency": "GBP"}
        }
    }))
    .unwrap()
}

#[test]
fn dead_letters_from_a_file_are_listed_and_replayed_once_into_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = setup(dir.path());
    let file = dir.path().join("dead-letters.jsonl");
    let sink = JsonLinesFile::create(&file).unwrap();
    let good = letter("11", "future_schema_version", &booking_json("BK-REPLAY", 1));
    sink.append(&[
        good.clone(),
        // The same letter twice (dead-letter delivery is at least once).
        good.clone(),
        letter("12", "not_json", b"{\"event_type\": \"booking\""),
        letter("13", "future_schema_version", b"still garbage"),
    ])
    .unwrap();
    let f = file.to_str().unwrap();

    let o = flyhigh(&["dead-letters", "list", "--file", f, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["counts"]["total"], 4);
    assert_eq!(
        v["counts"]["by_reason"]["future_schema_version"]["inventory"],
        3
    );
    assert_eq!(v["counts"]["by_reason"]["not_json"]["inventory"], 1);
    let o = flyhigh(&["dead-letters", "list", "--file", f]);
    assert!(
        stdout(&o).contains("future_schema_version  inventory")
            && stdout(&o).contains("4 dead letters"),
        "{}",
        stdout(&o)
    );

    let sold = || {
        let o = flyhigh(&[
            "inventory",
            "show",
            "FH0100-20261201",
            "--sqlite",
            &db,
            "--json",
        ]);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["cabins"][0]["sold"].as_i64().unwrap()
    };
    assert_eq!(sold(), 8);
    let replay = || {
        flyhigh(&[
            "dead-letters",
            "replay",
            "--file",
            f,
            "--sqlite",
            &db,
            "--reason-kind",
            "future_schema_version",
        ])
    };
    let o = replay();
    // The garbage letter fails again: exit 1, and it is kept for a later replay.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("replayed 1 letters")
            && stdout(&o).contains("1 failed again")
            && stdout(&o).contains("1 already replayed")
            && stdout(&o).contains("1 of another reason_kind"),
        "{}",
        stdout(&o)
    );
    assert_eq!(sold(), 9, "the booking was applied once");
    let again: Vec<DeadLetter> =
        flyhigh_embedded::read_all(dir.path().join("dead-letters.jsonl.failed-again.jsonl"))
            .unwrap();
    assert_eq!(again.len(), 1);

    // Replaying again puts nothing twice.
    let o = replay();
    assert!(
        stdout(&o).contains("replayed 0 letters") && stdout(&o).contains("2 already replayed"),
        "{}",
        stdout(&o)
    );
    assert_eq!(sold(), 9);
}
