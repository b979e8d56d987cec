use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use flyhigh_core::inventory::{
    self, BookingChange, InventoryEvent, MAX_TRANSACTION_ITEMS, Transaction,
};
use flyhigh_core::{Schedule, ScheduledFlight};
use flyhigh_schemas::{Booking, Cabin, Cancellation, CancellationReason, Money};
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;

const FLIGHT: &str = "FH0123-20261201";

fn booking(id: &str, flight: &str, cabin: Cabin, seats: u8) -> Booking {
    Booking {
        booking_id: id.into(),
        customer_id: "cust-0001".into(),
        flight_id: flight.into(),
        origin: "LHR".into(),
        destination: "JFK".into(),
        cabin,
        seats,
        fare: Money::new(Decimal::new(12_500, 2), "GBP"),
    }
}

fn cancellation(id: &str, flight: &str) -> Cancellation {
    Cancellation {
        booking_id: id.into(),
        customer_id: "cust-0001".into(),
        flight_id: flight.into(),
        reason: CancellationReason::CustomerRequest,
        refund: Money::new(Decimal::ZERO, "GBP"),
    }
}

fn schedule(flight: &str, capacity: &[(Cabin, u32)]) -> Schedule {
    Schedule {
        flights: vec![ScheduledFlight {
            flight_id: flight.into(),
            origin: "LHR".into(),
            destination: "JFK".into(),
            departure: Utc.with_ymd_and_hms(2026, 12, 1, 8, 30, 0).unwrap(),
            capacity: capacity.iter().copied().collect(),
        }],
    }
}

/// What the handler does with one batch: read, plan, pack, commit.
async fn process(
    store: &SqliteInventoryStore,
    events: &[InventoryEvent<'_>],
) -> Result<(), CommitError> {
    for tx in plan_batch(store, events).await {
        store.commit(&tx).await?;
    }
    Ok(())
}

async fn plan_batch(
    store: &SqliteInventoryStore,
    events: &[InventoryEvent<'_>],
) -> Vec<Transaction> {
    let ids: Vec<String> = events.iter().map(|e| e.booking_id().to_string()).collect();
    let current = store.bookings(&ids).await.unwrap();
    let plan = inventory::plan(&current, events.iter().copied().enumerate());
    inventory::pack(plan.changes, MAX_TRANSACTION_ITEMS)
}

async fn sold(store: &SqliteInventoryStore, flight: &str, cabin: Cabin) -> Option<i64> {
    let all = store.inventory().await.unwrap();
    all.iter()
        .find(|c| c.flight_id == flight && c.cabin == cabin)
        .map(|c| c.sold)
}

async fn status(store: &SqliteInventoryStore, id: &str) -> Option<BookingStatus> {
    store.booking(id).unwrap().map(|r| r.status)
}

#[tokio::test]
async fn a_new_booking_increments_sold() {
    // Given an empty store
    let store = SqliteInventoryStore::open_in_memory().unwrap();

    // When a booking of 3 seats is committed
    let b = booking("BK0001", FLIGHT, Cabin::Economy, 3);
    process(&store, &[InventoryEvent::Booking(&b)])
        .await
        .unwrap();

    // Then 3 seats are sold and the booking is recorded as booked
    assert_eq!(sold(&store, FLIGHT, Cabin::Economy).await, Some(3));
    let stored = store.bookings(&["BK0001".into()]).await.unwrap();
    assert_eq!(
        stored["BK0001"],
        BookingRecord {
            booking_id: "BK0001".into(),
            status: BookingStatus::Booked,
            flight_id: FLIGHT.into(),
            cabin: Some(Cabin::Economy),
            seats: 3,
            booked_at: None,
            released_at: None,
        }
    );
}

#[tokio::test]
async fn the_same_transaction_committed_twice_conflicts_and_changes_nothing() {
    // Given a booking planned against an empty store and committed
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    let b = booking("BK0001", FLIGHT, Cabin::Business, 2);
    let txs = plan_batch(&store, &[InventoryEvent::Booking(&b)]).await;
    assert_eq!(txs.len(), 1);
    store.commit(&txs[0]).await.unwrap();

    // When the same transaction is committed again (a retry after a lost reply)
    let again = store.commit(&txs[0]).await;

    // Then it conflicts, and the seats are counted once
    assert_eq!(again, Err(CommitError::Conflict));
    assert_eq!(sold(&store, FLIGHT, Cabin::Business).await, Some(2));
}

#[tokio::test]
async fn a_transaction_with_one_conflicting_change_applies_none() {
    // Given BK0002 already booked
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    let b2 = booking("BK0002", FLIGHT, Cabin::Economy, 1);
    process(&store, &[InventoryEvent::Booking(&b2)])
        .await
        .unwrap();

    // When a transaction plans three new bookings, one of them BK0002 as if absent
    let stale: Vec<BookingChange> = ["BK0001", "BK0002", "BK0003"]
        .into_iter()
        .map(|id| {
            let b = booking(id, FLIGHT, Cabin::Economy, 4);
            let t = inventory::apply(None, InventoryEvent::Booking(&b)).unwrap();
            BookingChange {
                expected: None,
                record: t.record,
                delta: t.delta,
                first_index: 0,
            }
        })
        .collect();
    let txs = inventory::pack(stale, MAX_TRANSACTION_ITEMS);
    assert_eq!(txs.len(), 1);
    let result = store.commit(&txs[0]).await;

    // Then it conflicts and nothing of it is applied: neither bookings nor counters
    assert_eq!(result, Err(CommitError::Conflict));
    assert_eq!(status(&store, "BK0001").await, None);
    assert_eq!(status(&store, "BK0003").await, None);
    assert_eq!(store.booking("BK0002").unwrap().unwrap().seats, 1);
    assert_eq!(sold(&store, FLIGHT, Cabin::Economy).await, Some(1));
}

#[tokio::test]
async fn a_cancellation_releases_the_booked_seats() {
    // Given a booking of 4 seats
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    let b = booking("BK0001", FLIGHT, Cabin::First, 4);
    process(&store, &[InventoryEvent::Booking(&b)])
        .await
        .unwrap();

    // When it is cancelled, twice
    let c = cancellation("BK0001", FLIGHT);
    process(&store, &[InventoryEvent::Cancellation(&c)])
        .await
        .unwrap();
    process(&store, &[InventoryEvent::Cancellation(&c)])
        .await
        .unwrap();

    // Then its seats are released once
    assert_eq!(sold(&store, FLIGHT, Cabin::First).await, Some(0));
    assert_eq!(
        status(&store, "BK0001").await,
        Some(BookingStatus::Cancelled)
    );
}

#[tokio::test]
async fn a_cancellation_before_its_booking_nets_out() {
    // Given a cancellation that arrived first
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    let c = cancellation("BK0001", FLIGHT);
    process(&store, &[InventoryEvent::Cancellation(&c)])
        .await
        .unwrap();
    assert_eq!(
        store.booking("BK0001").unwrap(),
        Some(BookingRecord {
            booking_id: "BK0001".into(),
            status: BookingStatus::CancelPending,
            flight_id: FLIGHT.into(),
            cabin: None,
            seats: 0,
            booked_at: None,
            released_at: None,
        })
    );

    // When the booking arrives in a later batch
    let b = booking("BK0001", FLIGHT, Cabin::Economy, 2);
    process(&store, &[InventoryEvent::Booking(&b)])
        .await
        .unwrap();

    // Then it is cancelled and no seat is sold
    assert_eq!(
        status(&store, "BK0001").await,
        Some(BookingStatus::Cancelled)
    );
    assert_eq!(sold(&store, FLIGHT, Cabin::Economy).await.unwrap_or(0), 0);
}

#[tokio::test]
async fn loading_the_schedule_keeps_what_was_sold() {
    // Given seats sold before the schedule was loaded
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    let b = booking("BK0001", FLIGHT, Cabin::Economy, 5);
    process(&store, &[InventoryEvent::Booking(&b)])
        .await
        .unwrap();

    // When the schedule is loaded, and loaded again with a bigger aircraft
    store
        .load_schedule(&schedule(
            FLIGHT,
            &[(Cabin::Economy, 150), (Cabin::Business, 20)],
        ))
        .await
        .unwrap();
    store
        .load_schedule(&schedule(
            FLIGHT,
            &[(Cabin::Economy, 180), (Cabin::Business, 24)],
        ))
        .await
        .unwrap();

    // Then capacities are the latest, and sold is untouched
    let got = store.inventory().await.unwrap();
    assert_eq!(
        got,
        vec![
            CabinInventory {
                flight_id: FLIGHT.into(),
                cabin: Cabin::Economy,
                capacity: Some(180),
                sold: 5,
                schedule: Some(FlightSchedule {
                    origin: "LHR".into(),
                    destination: "JFK".into(),
                    departure: Utc.with_ymd_and_hms(2026, 12, 1, 8, 30, 0).unwrap(),
                }),
            },
            CabinInventory {
                flight_id: FLIGHT.into(),
                cabin: Cabin::Business,
                capacity: Some(24),
                sold: 0,
                schedule: Some(FlightSchedule {
                    origin: "LHR".into(),
                    destination: "JFK".into(),
                    departure: Utc.with_ymd_and_hms(2026, 12, 1, 8, 30, 0).unwrap(),
                }),
            },
        ]
    );
    assert_eq!(got[0].available(), 175);
}

#[tokio::test]
async fn an_unscheduled_flight_is_counted_with_no_capacity() {
    // Given a schedule without FH0999
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    store
        .load_schedule(&schedule(FLIGHT, &[(Cabin::Economy, 150)]))
        .await
        .unwrap();

    // When FH0999 is booked
    let b = booking("BK0001", "FH0999-20261201", Cabin::Economy, 1);
    process(&store, &[InventoryEvent::Booking(&b)])
        .await
        .unwrap();

    // Then it is counted and flagged as unscheduled
    let got = store.inventory().await.unwrap();
    let unscheduled = got
        .iter()
        .find(|c| c.flight_id == "FH0999-20261201")
        .unwrap();
    assert_eq!((unscheduled.capacity, unscheduled.sold), (None, 1));
    assert!(!unscheduled.scheduled());
}

#[tokio::test]
async fn an_oversold_cabin_is_recorded_not_clamped() {
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    store
        .load_schedule(&schedule(FLIGHT, &[(Cabin::First, 2)]))
        .await
        .unwrap();

    let b1 = booking("BK0001", FLIGHT, Cabin::First, 2);
    let b2 = booking("BK0002", FLIGHT, Cabin::First, 1);
    process(
        &store,
        &[InventoryEvent::Booking(&b1), InventoryEvent::Booking(&b2)],
    )
    .await
    .unwrap();

    let got = store.inventory().await.unwrap();
    assert_eq!(
        (got[0].sold, got[0].oversold(), got[0].available()),
        (3, 1, 0)
    );
}

#[tokio::test]
async fn reopening_the_file_keeps_the_data() {
    // Given a store file with a schedule and a booking
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/inventory.sqlite");
    {
        let store = SqliteInventoryStore::open(&path).unwrap();
        store
            .load_schedule(&schedule(FLIGHT, &[(Cabin::Economy, 150)]))
            .await
            .unwrap();
        let b = booking("BK0001", FLIGHT, Cabin::Economy, 2);
        process(&store, &[InventoryEvent::Booking(&b)])
            .await
            .unwrap();
    }

    // When it is opened again
    let store = SqliteInventoryStore::open(&path).unwrap();

    // Then everything is still there
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(status(&store, "BK0001").await, Some(BookingStatus::Booked));
    assert_eq!(
        store.inventory().await.unwrap(),
        vec![CabinInventory {
            flight_id: FLIGHT.into(),
            cabin: Cabin::Economy,
            capacity: Some(150),
            sold: 2,
            schedule: Some(FlightSchedule {
                origin: "LHR".into(),
                destination: "JFK".into(),
                departure: Utc.with_ymd_and_hms(2026, 12, 1, 8, 30, 0).unwrap(),
            }),
        }]
    );
    let journal: String = store
        .lock()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
}

#[test]
fn a_file_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.sqlite");
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();

    let err = SqliteInventoryStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::Permanent(ref m) if m.contains("schema version")),
        "{err}"
    );
}

#[tokio::test]
async fn bookings_reads_more_ids_than_one_in_list() {
    // Given 1,000 bookings, one third of them stored
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    let all: Vec<Booking> = (0..1000)
        .map(|i| booking(&format!("BK{i:06}"), FLIGHT, Cabin::Economy, 1))
        .collect();
    let stored: Vec<InventoryEvent<'_>> =
        all.iter().step_by(3).map(InventoryEvent::Booking).collect();
    process(&store, &stored).await.unwrap();

    // When all of them (and some twice) are read
    let mut ids: Vec<String> = all.iter().map(|b| b.booking_id.clone()).collect();
    ids.extend(ids[..10].to_vec());
    let got = store.bookings(&ids).await.unwrap();

    // Then exactly the stored ones come back
    assert_eq!(got.len(), stored.len());
    assert!(
        all.iter()
            .step_by(3)
            .all(|b| got.contains_key(&b.booking_id))
    );
    assert!(store.bookings(&[]).await.unwrap().is_empty());
    assert_eq!(sold(&store, FLIGHT, Cabin::Economy).await, Some(334));
}

#[test]
fn busy_and_locked_are_transient_everything_else_permanent() {
    let err = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
    assert!(matches!(
        classify("x", &err(rusqlite::ffi::SQLITE_BUSY)),
        StoreError::Transient(_)
    ));
    assert!(matches!(
        classify("x", &err(rusqlite::ffi::SQLITE_LOCKED)),
        StoreError::Transient(_)
    ));
    assert!(matches!(
        classify("x", &err(rusqlite::ffi::SQLITE_FULL)),
        StoreError::Permanent(_)
    ));
    assert!(matches!(
        classify("x", &err(rusqlite::ffi::SQLITE_CORRUPT)),
        StoreError::Permanent(_)
    ));
    assert!(matches!(
        classify("x", &rusqlite::Error::InvalidQuery),
        StoreError::Permanent(_)
    ));
}

#[tokio::test]
async fn another_process_holding_the_write_lock_is_transient() {
    // Given another connection that holds the write lock past the busy timeout
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.sqlite");
    let store = SqliteInventoryStore::open(&path).unwrap();
    store
        .lock()
        .busy_timeout(Duration::from_millis(10))
        .unwrap();
    let other = Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    // When a transaction is committed
    let b = booking("BK0001", FLIGHT, Cabin::Economy, 1);
    let result = process(&store, &[InventoryEvent::Booking(&b)]).await;

    // Then it is a transient error, and it applies once the lock is released
    assert!(
        matches!(result, Err(CommitError::Store(StoreError::Transient(_)))),
        "{result:?}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    process(&store, &[InventoryEvent::Booking(&b)])
        .await
        .unwrap();
    assert_eq!(sold(&store, FLIGHT, Cabin::Economy).await, Some(1));
}

// ---------------------------------------------------------------------------------
// Property: the store, driven the way the handler drives it, agrees with a naive
// in-memory fold of the same events.

const FLIGHTS: [&str; 3] = ["FH0001-20261201", "FH0002-20261201", "XY9-20261202"];

/// A booking's identity and what it books; the producer always sends the same ones.
#[derive(Debug, Clone)]
struct Spec {
    flight: usize,
    cabin: usize,
    seats: u8,
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Book(usize),
    Cancel(usize),
}

/// The reference: one status per booking, counters moved on transitions only.
#[derive(Default)]
struct Reference {
    status: HashMap<usize, BookingStatus>,
    sold: BTreeMap<(String, Cabin), i64>,
}

impl Reference {
    fn apply(&mut self, specs: &[Spec], ev: Ev) {
        use BookingStatus::*;
        let (id, booking) = match ev {
            Ev::Book(id) => (id, true),
            Ev::Cancel(id) => (id, false),
        };
        let spec = &specs[id];
        let key = (FLIGHTS[spec.flight].to_string(), Cabin::ALL[spec.cabin]);
        let seats = i64::from(spec.seats);
        let next = match (self.status.get(&id).copied(), booking) {
            (None, true) => {
                *self.sold.entry(key).or_default() += seats;
                Booked
            }
            (None, false) => CancelPending,
            (Some(Booked), false) => {
                *self.sold.entry(key).or_default() -= seats;
                Cancelled
            }
            (Some(CancelPending), true) => Cancelled,
            (Some(s), _) => s,
        };
        self.status.insert(id, next);
    }
}

fn booking_id(id: usize) -> String {
    format!("BK{id:06}")
}

fn scenario() -> impl Strategy<Value = (Vec<Spec>, Vec<Ev>, Vec<usize>, usize)> {
    let specs =
        prop::collection::vec((0..FLIGHTS.len(), 0..4usize, 1..=9u8), 1..40).prop_map(|v| {
            v.into_iter()
                .map(|(flight, cabin, seats)| Spec {
                    flight,
                    cabin,
                    seats,
                })
                .collect::<Vec<_>>()
        });
    specs.prop_flat_map(|specs| {
        let n = specs.len();
        let ev = prop_oneof![3 => (0..n).prop_map(Ev::Book), 1 => (0..n).prop_map(Ev::Cancel)];
        (
            Just(specs),
            prop::collection::vec(ev, 0..300),
            prop::collection::vec(1..60usize, 1..20),
            2..=MAX_TRANSACTION_ITEMS,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn committed_plans_agree_with_a_naive_fold(
        (specs, events, batch_sizes, max_items) in scenario()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store = SqliteInventoryStore::open_in_memory().unwrap();
        let bookings: Vec<Booking> = specs
            .iter()
            .enumerate()
            .map(|(id, s)| booking(&booking_id(id), FLIGHTS[s.flight], Cabin::ALL[s.cabin], s.seats))
            .collect();
        let cancellations: Vec<Cancellation> =
            specs.iter().enumerate().map(|(id, s)| cancellation(&booking_id(id), FLIGHTS[s.flight])).collect();
        let mut reference = Reference::default();

        // Split the events into batches of the generated sizes (cycled).
        let mut rest = &events[..];
        for size in batch_sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*size).min(rest.len()));
            rest = tail;
            let batch_events: Vec<InventoryEvent<'_>> = batch
                .iter()
                .map(|ev| match *ev {
                    Ev::Book(id) => InventoryEvent::Booking(&bookings[id]),
                    Ev::Cancel(id) => InventoryEvent::Cancellation(&cancellations[id]),
                })
                .collect();

            rt.block_on(async {
                let ids: Vec<String> = batch_events.iter().map(|e| e.booking_id().to_string()).collect();
                let current = store.bookings(&ids).await.unwrap();
                let plan = inventory::plan(&current, batch_events.iter().copied().enumerate());
                for tx in inventory::pack(plan.changes, max_items) {
                    prop_assert!(tx.items() <= max_items);
                    store.commit(&tx).await.unwrap();
                    // A redelivered transaction never applies twice.
                    if !tx.changes.is_empty() {
                        let before = store.inventory().await.unwrap();
                        prop_assert_eq!(store.commit(&tx).await, Err(CommitError::Conflict));
                        prop_assert_eq!(store.inventory().await.unwrap(), before);
                    }
                }
                Ok::<(), TestCaseError>(())
            })?;
            for ev in batch {
                reference.apply(&specs, *ev);
            }
        }

        let got: BTreeMap<(String, Cabin), i64> = rt
            .block_on(store.inventory())
            .unwrap()
            .into_iter()
            .filter(|c| c.sold != 0)
            .map(|c| ((c.flight_id, c.cabin), c.sold))
            .collect();
        let want: BTreeMap<(String, Cabin), i64> = reference.sold.into_iter().filter(|(_, n)| *n != 0).collect();
        prop_assert_eq!(got, want);

        let ids: Vec<String> = (0..specs.len()).map(booking_id).collect();
        let stored = rt.block_on(store.bookings(&ids)).unwrap();
        prop_assert_eq!(stored.len(), reference.status.len());
        for (id, status) in &reference.status {
            prop_assert_eq!(stored[&booking_id(*id)].status, *status);
        }
    }
}

fn expires_at(store: &SqliteInventoryStore, id: &str) -> Option<i64> {
    store
        .lock()
        .query_row(
            "SELECT expires_at FROM bookings WHERE booking_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

#[tokio::test]
async fn booking_rows_expire_by_their_flight_and_only_expired_rows_are_purged() {
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    let soon = booking("BK0001", "FH0123-20250101", Cabin::Economy, 1);
    let later = booking("BK0002", FLIGHT, Cabin::Economy, 1);
    let pending = cancellation("BK0003", FLIGHT);
    process(
        &store,
        &[
            InventoryEvent::Booking(&soon),
            InventoryEvent::Booking(&later),
            InventoryEvent::Cancellation(&pending),
        ],
    )
    .await
    .unwrap();
    let expiry = inventory::booking_expiry(FLIGHT).unwrap();
    assert_eq!(expires_at(&store, "BK0002"), Some(expiry.timestamp()));
    // Cancel-pending tombstones expire by the same rule.
    assert_eq!(expires_at(&store, "BK0003"), Some(expiry.timestamp()));

    // A second before the expiry nothing of FLIGHT goes; the 2025 flight does.
    let purged = store
        .purge_expired(expiry - chrono::Duration::seconds(1))
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(status(&store, "BK0001").await, None);
    assert_eq!(status(&store, "BK0002").await, Some(BookingStatus::Booked));
    assert_eq!(store.purge_expired(expiry).unwrap(), 2);
    // Counters are not booking state: they stay.
    assert_eq!(sold(&store, FLIGHT, Cabin::Economy).await, Some(1));
}

#[tokio::test]
async fn a_version_1_file_is_migrated_with_expiries_from_its_flights() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE bookings (booking_id TEXT NOT NULL PRIMARY KEY, status TEXT NOT NULL,
                flight_id TEXT NOT NULL, cabin TEXT NULL, seats INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE cabins (flight_id TEXT NOT NULL, cabin TEXT NOT NULL,
                capacity INTEGER NULL, sold INTEGER NOT NULL DEFAULT 0, origin TEXT NULL,
                destination TEXT NULL, departure TEXT NULL, PRIMARY KEY (flight_id, cabin))
                WITHOUT ROWID;
             INSERT INTO bookings VALUES ('BK0001', 'booked', 'FH0123-20261201', 'economy', 2);
             INSERT INTO cabins (flight_id, cabin, sold) VALUES ('FH0123-20261201', 'economy', 2);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = SqliteInventoryStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(status(&store, "BK0001").await, Some(BookingStatus::Booked));
    assert_eq!(
        expires_at(&store, "BK0001"),
        Some(inventory::booking_expiry(FLIGHT).unwrap().timestamp())
    );
    assert_eq!(sold(&store, FLIGHT, Cabin::Economy).await, Some(2));
}

#[tokio::test]
async fn a_version_2_file_gains_event_positions_and_keeps_its_bookings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.sqlite");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE bookings (booking_id TEXT NOT NULL PRIMARY KEY, status TEXT NOT NULL,
                flight_id TEXT NOT NULL, cabin TEXT NULL, seats INTEGER NOT NULL,
                expires_at INTEGER NULL) WITHOUT ROWID;
             CREATE TABLE cabins (flight_id TEXT NOT NULL, cabin TEXT NOT NULL,
                capacity INTEGER NULL, sold INTEGER NOT NULL DEFAULT 0, origin TEXT NULL,
                destination TEXT NULL, departure TEXT NULL, PRIMARY KEY (flight_id, cabin))
                WITHOUT ROWID;
             INSERT INTO bookings VALUES ('BK0001', 'booked', 'FH0123-20261201', 'economy', 2, NULL);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store = SqliteInventoryStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let old = store.booking("BK0001").unwrap().unwrap();
    assert_eq!((old.booked_at, old.released_at), (None, None));
    // A booking and its cancellation: each record keeps where its seats moved.
    let b = booking("BK0002", FLIGHT, Cabin::Economy, 3);
    let booked_at = flyhigh_core::Position::new("4959000123", Some(7));
    let t = inventory::apply_at(None, InventoryEvent::Booking(&b), Some(&booked_at)).unwrap();
    store
        .commit(&inventory::Transaction {
            changes: vec![inventory::BookingChange {
                expected: None,
                record: t.record.clone(),
                delta: t.delta.clone(),
                first_index: 0,
            }],
            counters: vec![t.delta.clone().unwrap()],
        })
        .await
        .unwrap();
    let stored = store.booking("BK0002").unwrap().unwrap();
    assert_eq!(stored, t.record);
    assert_eq!(stored.booked_at, Some(booked_at.clone()));
    assert_eq!(
        inventory::seat_effect(&stored, &booked_at),
        Some((flyhigh_core::CabinKey::new(FLIGHT, Cabin::Economy), 3))
    );
}

/// Regression: `PRAGMA journal_mode=WAL` on a fresh file returned `SQLITE_BUSY` to
/// the second of two connections switching it at once, without waiting for the busy
/// timeout, so one of two processes starting together failed to open.
#[test]
fn two_processes_opening_a_fresh_file_at_once_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for attempt in 0..50 {
        let path = dir.path().join(format!("{attempt}-inventory.sqlite"));
        let barrier = std::sync::Barrier::new(2);
        let [a, b] = std::thread::scope(|s| {
            let run = || {
                s.spawn(|| {
                    barrier.wait();
                    SqliteInventoryStore::open(&path).map(|store| store.schema_version())
                })
            };
            let (a, b) = (run(), run());
            [a.join().expect("thread a"), b.join().expect("thread b")]
        });
        assert_eq!(
            (&a, &b),
            (&Ok(Ok(SCHEMA_VERSION)), &Ok(Ok(SCHEMA_VERSION))),
            "attempt {attempt}"
        );
    }
}
