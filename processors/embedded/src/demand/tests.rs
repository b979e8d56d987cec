//! The private pieces: the time encoding, the version condition, the file stamp.
//! The ports' behaviour is tested through the public API in
//! `tests/sqlite_demand.rs`.

use chrono::{Duration, TimeZone};
use proptest::prelude::*;

use super::*;
use crate::SqliteInventoryStore;

#[test]
fn stored_times_round_trip_and_order_as_text_as_in_time() {
    let base = Utc.with_ymd_and_hms(2026, 12, 1, 9, 36, 0).unwrap();
    let times = [
        Utc.with_ymd_and_hms(999, 1, 1, 0, 0, 0).unwrap(),
        base - Duration::days(400),
        base,
        base + Duration::nanoseconds(1),
        base + Duration::milliseconds(250),
        base + Duration::seconds(1),
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
    ];
    for w in times.windows(2) {
        assert!(time_text(w[0]).unwrap() < time_text(w[1]).unwrap(), "{w:?}");
    }
    for t in times {
        assert_eq!(parse_time(&time_text(t).unwrap(), "t").unwrap(), t);
    }
    assert_eq!(time_text(base).unwrap(), "2026-12-01T09:36:00.000000000Z");
}

#[test]
fn times_the_text_cannot_order_are_refused() {
    let far = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
    assert!(matches!(time_text(far), Err(StoreError::Permanent(_))));
    let before = Utc.with_ymd_and_hms(-1, 1, 1, 0, 0, 0).unwrap();
    assert!(matches!(time_text(before), Err(StoreError::Permanent(_))));
}

proptest! {
    #[test]
    fn text_order_is_time_order(a in 0i64..253_402_300_799_000_000, b in 0i64..253_402_300_799_000_000) {
        // Microseconds from 1970 to the end of 9999.
        let (ta, tb) = (
            DateTime::from_timestamp_micros(a).unwrap(),
            DateTime::from_timestamp_micros(b).unwrap(),
        );
        prop_assert_eq!(time_text(ta).unwrap().cmp(&time_text(tb).unwrap()), ta.cmp(&tb));
    }
}

#[test]
fn a_state_follows_exactly_one_version_later() {
    assert!(follows(None, 1));
    assert!(!follows(None, 0));
    assert!(!follows(None, 2));
    assert!(follows(Some(4), 5));
    assert!(!follows(Some(4), 4));
    assert!(!follows(Some(4), 6));
    assert!(!follows(Some(i64::MAX), 0));
    assert!(
        !follows(Some(-1), 0),
        "a corrupt negative version is never followed"
    );
}

#[test]
fn a_new_file_is_stamped_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/demand.sqlite");
    let store = SqliteDemandStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        stamp(&store.reader()).unwrap(),
        (SCHEMA_VERSION, APPLICATION_ID)
    );
    let journal: String = store
        .reader()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    drop(store);
    assert_eq!(
        SqliteDemandStore::open(&path)
            .unwrap()
            .schema_version()
            .unwrap(),
        SCHEMA_VERSION
    );
}

#[test]
fn the_inventory_database_is_not_a_demand_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.sqlite");
    drop(SqliteInventoryStore::open(&path).unwrap());

    for err in [
        SqliteDemandStore::open(&path).unwrap_err(),
        SqliteDemandStore::open_read_only(&path).unwrap_err(),
    ] {
        assert!(
            matches!(err, StoreError::Permanent(ref m) if m.contains("not a demand database")),
            "{err}"
        );
    }
}

#[test]
fn a_file_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demand.sqlite");
    drop(SqliteDemandStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();

    for err in [
        SqliteDemandStore::open(&path).unwrap_err(),
        SqliteDemandStore::open_read_only(&path).unwrap_err(),
    ] {
        assert!(
            matches!(err, StoreError::Permanent(ref m)
                if m.contains(&format!("schema version {}", SCHEMA_VERSION + 1))),
            "{err}"
        );
    }
}

#[test]
fn a_corrupt_mark_is_permanent_not_a_silent_recount() {
    let store = SqliteDemandStore::open_in_memory().unwrap();
    store
        .reader()
        .execute(
            "INSERT INTO counters VALUES ('LHR-JFK', 60, 's', 1, 1, 0, 0, 0, 0, 'garbage')",
            [],
        )
        .unwrap();
    let update = CounterUpdate {
        key: CounterKey {
            route: "LHR-JFK".into(),
            bucket: 60,
            shard_id: "s".into(),
        },
        counts: Counts {
            searches: 1,
            ..Counts::default()
        },
        first: Position::new("5", None),
        last: Position::new("5", None),
    };
    let err = store.add_now(&update).unwrap_err();
    assert!(
        matches!(err, StoreError::Permanent(ref m) if m.contains("invalid mark")),
        "{err}"
    );
}
