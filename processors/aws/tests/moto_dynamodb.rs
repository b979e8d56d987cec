//! `DynamoInventoryStore` against moto, through the real SDK client.
//!
//! Needs `FLYHIGH_MOTO_URL` (see `common::moto_url`). Each test has its own table.

#![cfg(feature = "dynamodb")]

mod common;

use std::collections::BTreeMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::TimeZone;
use flyhigh_aws::dynamodb::{DynamoInventoryStore, create_table};
use flyhigh_core::inventory::{BookingChange, MAX_TRANSACTION_ITEMS, Transaction};
use flyhigh_core::{
    BookingRecord, BookingStatus, CabinInventory, CabinKey, CommitError, FlightSchedule,
    InventoryFilter, InventoryStore, Schedule, ScheduledFlight, StoreError,
};
use flyhigh_schemas::Cabin;

async fn store() -> (Client, DynamoInventoryStore) {
    let client = Client::new(&common::sdk_config().await);
    let table = common::unique_name("inventory");
    create_table(&client, &table).await.expect("create table");
    (client.clone(), DynamoInventoryStore::new(client, table))
}

fn booked(id: &str, flight: &str, cabin: Cabin, seats: u8) -> BookingRecord {
    BookingRecord {
        booking_id: id.into(),
        status: BookingStatus::Booked,
        flight_id: flight.into(),
        cabin: Some(cabin),
        seats,
        booked_at: None,
        released_at: None,
    }
}

/// A new booking: absent → booked, `+seats`.
fn book(id: &str, flight: &str, cabin: Cabin, seats: u8) -> BookingChange {
    BookingChange {
        expected: None,
        record: booked(id, flight, cabin, seats),
        delta: Some((CabinKey::new(flight, cabin), i64::from(seats))),
        first_index: 0,
    }
}

/// One transaction of these changes with their counters summed per flight and cabin.
fn tx(changes: Vec<BookingChange>) -> Transaction {
    let mut counters: BTreeMap<CabinKey, i64> = BTreeMap::new();
    for change in &changes {
        if let Some((key, n)) = &change.delta {
            *counters.entry(key.clone()).or_default() += n;
        }
    }
    Transaction {
        changes,
        counters: counters.into_iter().collect(),
    }
}

async fn sold(store: &DynamoInventoryStore, flight: &str, cabin: Cabin) -> Option<i64> {
    let inventory = store.inventory().await.expect("inventory");
    inventory
        .iter()
        .find(|c| c.flight_id == flight && c.cabin == cabin)
        .map(|c| c.sold)
}

#[tokio::test]
async fn committing_a_new_booking_stores_it_and_increments_sold() {
    let (_, store) = store().await;
    store
        .commit(&tx(vec![book("B1", "FH1-20261201", Cabin::Economy, 2)]))
        .await
        .expect("commit");
    assert_eq!(sold(&store, "FH1-20261201", Cabin::Economy).await, Some(2));
    let stored = store.bookings(&["B1".into()]).await.expect("bookings");
    assert_eq!(
        stored.get("B1"),
        Some(&booked("B1", "FH1-20261201", Cabin::Economy, 2))
    );
}

#[tokio::test]
async fn committing_the_same_change_again_is_a_conflict_and_changes_nothing() {
    let (_, store) = store().await;
    let first = tx(vec![book("B1", "FH1-20261201", Cabin::Economy, 2)]);
    store.commit(&first).await.expect("first commit");
    assert_eq!(store.commit(&first).await, Err(CommitError::Conflict));
    assert_eq!(sold(&store, "FH1-20261201", Cabin::Economy).await, Some(2));

    // All or nothing: a transaction whose one stale booking fails applies none of its
    // other bookings and none of its counters.
    let mixed = tx(vec![
        book("B2", "FH1-20261201", Cabin::Economy, 3),
        book("B1", "FH1-20261201", Cabin::Economy, 2),
    ]);
    assert_eq!(store.commit(&mixed).await, Err(CommitError::Conflict));
    assert_eq!(sold(&store, "FH1-20261201", Cabin::Economy).await, Some(2));
    assert!(
        store
            .bookings(&["B2".into()])
            .await
            .expect("bookings")
            .is_empty()
    );
}

#[tokio::test]
async fn a_cancellation_moves_a_booked_booking_once_and_releases_its_seats() {
    let (_, store) = store().await;
    store
        .commit(&tx(vec![book("B1", "FH2-20261202", Cabin::Business, 3)]))
        .await
        .expect("book");
    let cancel = tx(vec![BookingChange {
        expected: Some(BookingStatus::Booked),
        record: BookingRecord {
            status: BookingStatus::Cancelled,
            ..booked("B1", "FH2-20261202", Cabin::Business, 3)
        },
        delta: Some((CabinKey::new("FH2-20261202", Cabin::Business), -3)),
        first_index: 0,
    }]);
    store.commit(&cancel).await.expect("cancel");
    assert_eq!(sold(&store, "FH2-20261202", Cabin::Business).await, Some(0));
    let stored = store.bookings(&["B1".into()]).await.expect("bookings");
    assert_eq!(stored["B1"].status, BookingStatus::Cancelled);

    // The same cancellation replayed expects `booked`, which is gone.
    assert_eq!(store.commit(&cancel).await, Err(CommitError::Conflict));
    assert_eq!(sold(&store, "FH2-20261202", Cabin::Business).await, Some(0));
}

#[tokio::test]
async fn a_cancellation_that_came_first_is_stored_without_cabin() {
    let (_, store) = store().await;
    let pending = BookingRecord {
        booking_id: "B9".into(),
        status: BookingStatus::CancelPending,
        flight_id: "FH3-20261203".into(),
        cabin: None,
        seats: 0,
        booked_at: None,
        released_at: None,
    };
    let change = BookingChange {
        expected: None,
        record: pending.clone(),
        delta: None,
        first_index: 0,
    };
    store.commit(&tx(vec![change])).await.expect("commit");
    assert_eq!(
        store
            .bookings(&["B9".into()])
            .await
            .expect("bookings")
            .get("B9"),
        Some(&pending)
    );
    assert!(
        store.inventory().await.expect("inventory").is_empty(),
        "no counter moved"
    );
}

#[tokio::test]
async fn bookings_reads_more_than_one_batch_get_of_keys() {
    let (_, store) = store().await;
    let ids: Vec<String> = (0..250).map(|i| format!("B{i:03}")).collect();
    let changes: Vec<BookingChange> = ids
        .iter()
        .map(|id| book(id, "FH4-20261204", Cabin::Economy, 1))
        .collect();
    for chunk in changes.chunks(MAX_TRANSACTION_ITEMS - 1) {
        store.commit(&tx(chunk.to_vec())).await.expect("commit");
    }
    let mut asked = ids.clone();
    asked.extend([
        "absent-1".to_string(),
        "absent-2".to_string(),
        ids[7].clone(),
    ]);
    let stored = store.bookings(&asked).await.expect("bookings");
    assert_eq!(stored.len(), 250);
    for id in &ids {
        assert_eq!(stored[id], booked(id, "FH4-20261204", Cabin::Economy, 1));
    }
    assert_eq!(
        sold(&store, "FH4-20261204", Cabin::Economy).await,
        Some(250)
    );
    assert!(store.bookings(&[]).await.expect("no ids").is_empty());
}

#[tokio::test]
async fn a_schedule_sets_capacity_without_touching_sold() {
    let (client, store) = store().await;
    store
        .commit(&tx(vec![
            book("B1", "FH5-20261205", Cabin::Economy, 4),
            book("B2", "FH6-20261206", Cabin::First, 1),
        ]))
        .await
        .expect("sales before the schedule");
    let flight = |economy: u32| ScheduledFlight {
        flight_id: "FH5-20261205".into(),
        origin: "LHR".into(),
        destination: "JFK".into(),
        departure: chrono::Utc.with_ymd_and_hms(2026, 12, 5, 9, 30, 0).unwrap(),
        capacity: BTreeMap::from([(Cabin::Economy, economy), (Cabin::Business, 20)]),
    };
    store
        .load_schedule(&Schedule {
            flights: vec![flight(150)],
        })
        .await
        .expect("load");
    let expected = vec![
        CabinInventory {
            flight_id: "FH5-20261205".into(),
            cabin: Cabin::Economy,
            capacity: Some(150),
            sold: 4,
            schedule: Some(FlightSchedule {
                origin: "LHR".into(),
                destination: "JFK".into(),
                departure: chrono::Utc.with_ymd_and_hms(2026, 12, 5, 9, 30, 0).unwrap(),
            }),
        },
        CabinInventory {
            flight_id: "FH5-20261205".into(),
            cabin: Cabin::Business,
            capacity: Some(20),
            sold: 0,
            schedule: Some(FlightSchedule {
                origin: "LHR".into(),
                destination: "JFK".into(),
                departure: chrono::Utc.with_ymd_and_hms(2026, 12, 5, 9, 30, 0).unwrap(),
            }),
        },
        // Sold but not in the schedule: counted, flagged by its missing capacity.
        CabinInventory {
            flight_id: "FH6-20261206".into(),
            cabin: Cabin::First,
            capacity: None,
            sold: 1,
            schedule: None,
        },
    ];
    assert_eq!(store.inventory().await.expect("inventory"), expected);

    // Reloading a changed schedule keeps the sales.
    store
        .load_schedule(&Schedule {
            flights: vec![flight(160)],
        })
        .await
        .expect("reload");
    let economy = store.inventory().await.expect("inventory").remove(0);
    assert_eq!((economy.capacity, economy.sold), (Some(160), 4));

    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("FLIGHT#FH5-20261205".into()))
        .key("sk", AttributeValue::S("CABIN#economy".into()))
        .send()
        .await
        .expect("get item")
        .item
        .expect("flight item");
    assert_eq!(item["origin"], AttributeValue::S("LHR".into()));
    assert_eq!(item["destination"], AttributeValue::S("JFK".into()));
    assert_eq!(
        item["departure"],
        AttributeValue::S("2026-12-05T09:30:00.000Z".into())
    );
    assert_eq!(item["sold"], AttributeValue::N("4".into()));
}

#[tokio::test]
async fn a_large_schedule_loads_with_bounded_concurrency() {
    let (_, store) = store().await;
    let flights: Vec<ScheduledFlight> = (0..40)
        .map(|i| ScheduledFlight {
            flight_id: format!("FH{i:04}-20261207"),
            origin: "CDG".into(),
            destination: "NRT".into(),
            departure: chrono::Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap(),
            capacity: Cabin::ALL.into_iter().map(|c| (c, 10 + i)).collect(),
        })
        .collect();
    store
        .load_schedule(&Schedule { flights })
        .await
        .expect("load");
    let inventory = store.inventory().await.expect("inventory");
    assert_eq!(inventory.len(), 160);
    assert!(
        inventory
            .iter()
            .all(|c| c.sold == 0 && c.capacity.is_some())
    );
}

#[tokio::test]
async fn inventory_reads_every_page_of_the_scan() {
    let (client, store) = store().await;
    let flights: Vec<ScheduledFlight> = (0..5)
        .map(|i| ScheduledFlight {
            flight_id: format!("FH7{i}-20261208"),
            origin: "SYD".into(),
            destination: "SIN".into(),
            departure: chrono::Utc.with_ymd_and_hms(2026, 12, 8, 1, 0, 0).unwrap(),
            capacity: Cabin::ALL.into_iter().map(|c| (c, 50)).collect(),
        })
        .collect();
    store
        .load_schedule(&Schedule { flights })
        .await
        .expect("load");
    // Booking items share the table; the scan must skip them, page after page.
    let changes: Vec<BookingChange> = (0..30)
        .map(|i| book(&format!("P{i}"), "FH70-20261208", Cabin::First, 1))
        .collect();
    store.commit(&tx(changes)).await.expect("commit");

    // The emulator must honour `Limit`, or this test proves nothing.
    let first_page = client
        .scan()
        .table_name(store.table())
        .limit(3)
        .send()
        .await
        .expect("scan");
    assert!(
        first_page.last_evaluated_key().is_some(),
        "a Scan with Limit 3 over 50 items has more pages"
    );

    let paged = DynamoInventoryStore::new(client, store.table()).with_scan_page_size(3);
    let small_pages = paged.inventory().await.expect("paged inventory");
    assert_eq!(small_pages.len(), 20);
    assert_eq!(small_pages, store.inventory().await.expect("inventory"));
    let first = small_pages
        .iter()
        .find(|c| c.flight_id == "FH70-20261208" && c.cabin == Cabin::First)
        .unwrap();
    assert_eq!((first.capacity, first.sold), (Some(50), 30));
}

#[tokio::test]
async fn transactions_over_the_limit_are_refused_before_sending() {
    let (_, store) = store().await;
    // 100 bookings on 100 flights: 200 items.
    let changes: Vec<BookingChange> = (0..MAX_TRANSACTION_ITEMS)
        .map(|i| {
            book(
                &format!("L{i}"),
                &format!("FH{i}-20261209"),
                Cabin::Economy,
                1,
            )
        })
        .collect();
    let err = store.commit(&tx(changes)).await.unwrap_err();
    assert!(
        matches!(err, CommitError::Store(StoreError::Permanent(_))),
        "{err:?}"
    );
    assert!(store.inventory().await.expect("inventory").is_empty());
    store
        .commit(&Transaction::default())
        .await
        .expect("an empty transaction is a no-op");
}

#[tokio::test]
async fn a_missing_table_is_a_permanent_error() {
    let client = Client::new(&common::sdk_config().await);
    let store = DynamoInventoryStore::new(client, common::unique_name("missing"));
    let err = store.bookings(&["B1".into()]).await.unwrap_err();
    assert!(matches!(err, StoreError::Permanent(_)), "{err:?}");
    let err = store
        .commit(&tx(vec![book("B1", "FH1-20261201", Cabin::Economy, 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CommitError::Store(StoreError::Permanent(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn create_table_is_idempotent() {
    let client = Client::new(&common::sdk_config().await);
    let table = common::unique_name("twice");
    create_table(&client, &table).await.expect("first");
    create_table(&client, &table).await.expect("second");
}

#[tokio::test]
async fn the_table_has_ttl_on_expires_at_and_booking_items_carry_it() {
    let (client, store) = store().await;
    let ttl = client
        .describe_time_to_live()
        .table_name(store.table())
        .send()
        .await
        .unwrap();
    let description = ttl.time_to_live_description().unwrap();
    assert_eq!(description.attribute_name(), Some("expires_at"));

    let flight = "FH0123-20261201";
    store
        .commit(&tx(vec![book("BK0001", flight, Cabin::Economy, 2)]))
        .await
        .unwrap();
    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("BOOKING#BK0001".into()))
        .key("sk", AttributeValue::S("BOOKING".into()))
        .send()
        .await
        .unwrap();
    let expiry = flyhigh_core::inventory::booking_expiry(flight).unwrap();
    assert_eq!(
        item.item().and_then(|i| i.get("expires_at")),
        Some(&AttributeValue::N(expiry.timestamp().to_string()))
    );
}

/// FH1 LHR-JFK (economy 10: 10 sold, sold out; business 4: 6 sold, oversold), FH2
/// LHR-CDG (economy 3 sold of 150), FH9 unscheduled (1 sold, departs 2026-12-02 by its
/// id); plus a booking item, which no read of cabins may return.
async fn populated() -> (Client, DynamoInventoryStore) {
    let (client, store) = store().await;
    let flight = |id: &str, destination: &str, day: u32| ScheduledFlight {
        flight_id: id.into(),
        origin: "LHR".into(),
        destination: destination.into(),
        departure: chrono::Utc
            .with_ymd_and_hms(2026, 12, day, 23, 45, 0)
            .unwrap(),
        capacity: BTreeMap::from([
            (Cabin::Economy, if day == 1 { 10 } else { 150 }),
            (Cabin::Business, 4),
        ]),
    };
    store
        .load_schedule(&Schedule {
            flights: vec![
                flight("FH1-20261201", "JFK", 1),
                flight("FH2-20261202", "CDG", 2),
            ],
        })
        .await
        .expect("load");
    store
        .commit(&tx(vec![
            book("B1", "FH1-20261201", Cabin::Economy, 10),
            book("B2", "FH1-20261201", Cabin::Business, 6),
            book("B3", "FH2-20261202", Cabin::Economy, 3),
            book("B4", "FH9-20261202", Cabin::First, 1),
        ]))
        .await
        .expect("commit");
    (client, store)
}

fn names(cabins: &[CabinInventory]) -> Vec<String> {
    cabins
        .iter()
        .map(|c| format!("{} {}", c.flight_id, c.cabin))
        .collect()
}

#[tokio::test]
async fn a_flight_is_read_by_a_query_on_its_key() {
    let (_, store) = populated().await;
    let fh1 = store.flight("FH1-20261201").await.expect("flight");
    assert_eq!(
        names(&fh1),
        ["FH1-20261201 economy", "FH1-20261201 business"]
    );
    assert_eq!(
        (fh1[0].sold, fh1[0].capacity, fh1[0].available()),
        (10, Some(10), 0)
    );
    assert_eq!((fh1[1].sold, fh1[1].oversold()), (6, 2));
    assert_eq!(fh1[0].route().as_deref(), Some("LHR-JFK"));
    assert_eq!(
        fh1,
        store.inventory().await.unwrap()[..2].to_vec(),
        "agrees with the scan"
    );
    let fh9 = store.flight("FH9-20261202").await.expect("flight");
    assert_eq!(
        (names(&fh9), fh9[0].schedule.clone()),
        (vec!["FH9-20261202 first".to_string()], None)
    );
    assert!(
        store
            .flight("FH7-20261207")
            .await
            .expect("flight")
            .is_empty()
    );
    assert!(
        store.flight("FH1").await.expect("flight").is_empty(),
        "a prefix is not a flight"
    );
}

#[tokio::test]
async fn the_listing_filters_in_dynamodb_like_the_pure_filter() {
    let (_, store) = populated().await;
    // Small pages: the listing follows LastEvaluatedKey.
    let store = store.with_scan_page_size(2);
    let everything = store.inventory().await.expect("inventory");
    assert_eq!(everything.len(), 5);
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 12, d);
    let cases: Vec<(InventoryFilter, Vec<&str>)> = vec![
        (
            InventoryFilter::default(),
            vec![
                "FH1-20261201 economy",
                "FH1-20261201 business",
                "FH2-20261202 economy",
                "FH2-20261202 business",
                "FH9-20261202 first",
            ],
        ),
        (
            InventoryFilter {
                route: Some("LHR-CDG".parse().unwrap()),
                ..InventoryFilter::default()
            },
            vec!["FH2-20261202 economy", "FH2-20261202 business"],
        ),
        (
            InventoryFilter {
                date: day(2),
                ..InventoryFilter::default()
            },
            vec![
                "FH2-20261202 economy",
                "FH2-20261202 business",
                "FH9-20261202 first",
            ],
        ),
        (
            InventoryFilter {
                oversold_only: true,
                ..InventoryFilter::default()
            },
            vec!["FH1-20261201 business"],
        ),
        (
            InventoryFilter {
                sold_out_only: true,
                ..InventoryFilter::default()
            },
            vec!["FH1-20261201 economy", "FH1-20261201 business"],
        ),
        (
            InventoryFilter {
                date: day(2),
                limit: Some(2),
                ..InventoryFilter::default()
            },
            vec!["FH2-20261202 economy", "FH2-20261202 business"],
        ),
        (
            InventoryFilter {
                route: Some("LHR-JFK".parse().unwrap()),
                date: day(2),
                ..InventoryFilter::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        let got = store.list(&filter).await.expect("list");
        assert_eq!(names(&got), expected, "{filter:?}");
        assert_eq!(got, filter.select(everything.clone()), "{filter:?}");
    }
}

#[tokio::test]
async fn reading_a_missing_table_is_a_permanent_error_naming_it() {
    let client = Client::new(&common::sdk_config().await);
    let store = DynamoInventoryStore::new(client, "no-such-table");
    let err = store.flight("FH1-20261201").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Permanent(m) if m.contains("Query") && m.contains("ResourceNotFound")),
        "{err:?}"
    );
}
