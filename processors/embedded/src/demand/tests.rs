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
            "INSERT INTO counters VALUES ('LHR-JFK', 60, 's', 1, 1, 0, 0, 0, 0, 'garbage', 0)",
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
        arrived: chrono::DateTime::from_timestamp(90, 0).unwrap(),
    };
    let err = store.add_now(&update).unwrap_err();
    assert!(
        matches!(err, StoreError::Permanent(ref m) if m.contains("invalid mark")),
        "{err}"
    );
}

fn old_update(arrived: DateTime<Utc>, days_back: i64, seq: &str) -> CounterUpdate {
    CounterUpdate {
        key: CounterKey {
            route: "LHR-JFK".into(),
            bucket: (arrived - Duration::days(days_back)).timestamp() / 60 * 60,
            shard_id: "s".into(),
        },
        counts: Counts {
            searches: 1,
            ..Counts::default()
        },
        first: Position::new(seq, None),
        last: Position::new(seq, None),
        arrived,
    }
}

#[test]
fn regression_a_counter_of_an_event_40_days_old_is_purged_from_its_arrival_not_its_bucket() {
    // Issue 15: purging by bucket alone deleted the counter of an event dated 40 days
    // back as soon as it was written, and a redelivery counted the event again.
    let store = SqliteDemandStore::open_in_memory().unwrap();
    let arrived = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let update = old_update(arrived, 40, "1");
    assert_eq!(store.add_now(&update).unwrap(), Added::Applied);
    assert_eq!(
        store.arrived_at(&update.key).unwrap(),
        Some(arrived.timestamp())
    );
    let retention = Duration::days(COUNTER_RETENTION_DAYS);
    // A purge of everything older than the retention, today: kept.
    assert_eq!(
        store
            .purge_before((arrived - retention).timestamp())
            .unwrap(),
        0
    );
    assert!(matches!(
        store.add_now(&update).unwrap(),
        Added::Stale { .. }
    ));
    // An earlier change never moves the arrival back.
    let later = CounterUpdate {
        arrived: arrived - Duration::days(1),
        first: Position::new("2", None),
        last: Position::new("2", None),
        ..update.clone()
    };
    assert_eq!(store.add_now(&later).unwrap(), Added::Applied);
    assert_eq!(
        store.arrived_at(&update.key).unwrap(),
        Some(arrived.timestamp())
    );
    // Once its arrival is past the retention too, it goes.
    assert_eq!(store.purge_before(arrived.timestamp() + 1).unwrap(), 1);
    assert_eq!(store.arrived_at(&update.key).unwrap(), None);
}

#[test]
fn a_version_1_file_gains_the_arrival_column_and_keeps_its_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demand.sqlite");
    let arrived = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let update = old_update(arrived, 0, "1");
    {
        let store = SqliteDemandStore::open(&path).unwrap();
        store.add_now(&update).unwrap();
    }
    {
        // Back to the version 1 layout: no arrivals, no route `last_seen`, no cursor.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE counters DROP COLUMN arrived_at;
             ALTER TABLE routes DROP COLUMN last_seen;
             DROP TABLE evaluator;
             INSERT INTO routes (route) VALUES ('LHR-JFK');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let err = SqliteDemandStore::open_read_only(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::Permanent(ref m) if m.contains("migrates")),
        "{err}"
    );
    let store = SqliteDemandStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.arrived_at(&update.key).unwrap(), Some(0));
    // Its routes are kept, as last noted in 1970 (the evaluator forgets them unless a
    // consumer notes them again), and the evaluator starts without a cursor.
    let noted = store.noted_routes_now().unwrap();
    assert_eq!(noted.len(), 1);
    assert_eq!(noted[0].route, "LHR-JFK");
    assert_eq!(noted[0].last_seen, DateTime::<Utc>::UNIX_EPOCH);
    assert_eq!(store.evaluator_cursor_now().unwrap(), None);
    assert!(matches!(
        store.add_now(&update).unwrap(),
        Added::Stale { .. }
    ));
    // Purged by bucket, as before, until a change stamps an arrival.
    assert_eq!(store.purge_before(update.key.bucket + 1).unwrap(), 1);
}

#[test]
fn progress_moves_forward_only_but_replaces_what_no_arrival_can_have_stamped() {
    let store = SqliteDemandStore::open_in_memory().unwrap();
    let t1 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let t2 = t1 + Duration::minutes(1);
    // An event-time watermark of an older build, an hour ahead of its writer's clock.
    store
        .advance_watermark_now("s", t1 + Duration::hours(1), t1)
        .unwrap();
    store.advance_watermark_now("s", t2, t2).unwrap();
    assert_eq!(store.watermark_now("s").unwrap(), Some(t2));
    store
        .advance_watermark_now("s", t1, t2 + Duration::seconds(1))
        .unwrap();
    let marks = store.watermarks_now().unwrap();
    assert_eq!(
        (marks[0].progress, marks[0].updated_at),
        (t2, t2),
        "never back"
    );
}
