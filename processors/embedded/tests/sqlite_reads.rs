//! The operator reads of `SqliteInventoryStore`: one flight by key, and the filtered
//! listing, agreeing with the pure filter over the whole inventory.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};
use flyhigh_core::inventory::{BookingChange, Transaction};
use flyhigh_core::{
    BookingRecord, BookingStatus, CabinKey, InventoryFilter, InventoryStore, Schedule,
    ScheduledFlight,
};
use flyhigh_embedded::SqliteInventoryStore;
use flyhigh_schemas::Cabin;

fn flight(id: &str, origin: &str, destination: &str, day: u32, economy: u32) -> ScheduledFlight {
    ScheduledFlight {
        flight_id: id.into(),
        origin: origin.into(),
        destination: destination.into(),
        departure: Utc.with_ymd_and_hms(2026, 12, day, 23, 45, 0).unwrap(),
        capacity: BTreeMap::from([(Cabin::Economy, economy), (Cabin::Business, 4)]),
    }
}

async fn sell(store: &SqliteInventoryStore, id: &str, flight: &str, cabin: Cabin, seats: u8) {
    let key = CabinKey::new(flight, cabin);
    let tx = Transaction {
        changes: vec![BookingChange {
            expected: None,
            record: BookingRecord {
                booking_id: id.into(),
                status: BookingStatus::Booked,
                flight_id: flight.into(),
                cabin: Some(cabin),
                seats,
                booked_at: None,
                released_at: None,
            },
            delta: Some((key.clone(), i64::from(seats))),
            first_index: 0,
        }],
        counters: vec![(key, i64::from(seats))],
    };
    store.commit(&tx).await.expect("commit");
}

/// FH1 LHR-JFK (economy 10: 10 sold, sold out; business 4: 6 sold, oversold),
/// FH2 LHR-CDG (3 sold), FH9 unscheduled (1 sold, departs 2026-12-02 by its id).
async fn populated() -> SqliteInventoryStore {
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    store
        .load_schedule(&Schedule {
            flights: vec![
                flight("FH1-20261201", "LHR", "JFK", 1, 10),
                flight("FH2-20261202", "LHR", "CDG", 2, 150),
            ],
        })
        .await
        .unwrap();
    sell(&store, "B1", "FH1-20261201", Cabin::Economy, 9).await;
    sell(&store, "B2", "FH1-20261201", Cabin::Economy, 1).await;
    sell(&store, "B3", "FH1-20261201", Cabin::Business, 6).await;
    sell(&store, "B4", "FH2-20261202", Cabin::Economy, 3).await;
    sell(&store, "B5", "FH9-20261202", Cabin::First, 1).await;
    store
}

fn names(cabins: &[flyhigh_core::CabinInventory]) -> Vec<String> {
    cabins
        .iter()
        .map(|c| format!("{} {}", c.flight_id, c.cabin))
        .collect()
}

#[tokio::test]
async fn a_flight_is_read_by_key_with_what_the_schedule_says() {
    let store = populated().await;
    let fh1 = store.flight("FH1-20261201").await.unwrap();
    assert_eq!(
        names(&fh1),
        ["FH1-20261201 economy", "FH1-20261201 business"]
    );
    let economy = &fh1[0];
    assert_eq!(
        (economy.capacity, economy.sold, economy.available()),
        (Some(10), 10, 0)
    );
    assert_eq!(fh1[1].oversold(), 2);
    let schedule = economy.schedule.as_ref().expect("scheduled");
    assert_eq!(schedule.route(), "LHR-JFK");
    assert_eq!(
        schedule.departure,
        Utc.with_ymd_and_hms(2026, 12, 1, 23, 45, 0).unwrap()
    );

    let fh9 = store.flight("FH9-20261202").await.unwrap();
    assert_eq!(
        (fh9.len(), fh9[0].capacity, fh9[0].schedule.clone()),
        (1, None, None)
    );
    assert_eq!(
        fh9[0].departure_date(),
        NaiveDate::from_ymd_opt(2026, 12, 2)
    );

    assert!(store.flight("FH7-20261201").await.unwrap().is_empty());
    // A prefix of an id is not the flight.
    assert!(store.flight("FH1").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_listing_filters_like_the_pure_filter_over_everything() {
    let store = populated().await;
    let everything = store.inventory().await.unwrap();
    let day = |d| NaiveDate::from_ymd_opt(2026, 12, d);
    let filters = [
        InventoryFilter::default(),
        InventoryFilter {
            route: Some("LHR-JFK".parse().unwrap()),
            ..InventoryFilter::default()
        },
        InventoryFilter {
            date: day(2),
            ..InventoryFilter::default()
        },
        InventoryFilter {
            oversold_only: true,
            ..InventoryFilter::default()
        },
        InventoryFilter {
            sold_out_only: true,
            ..InventoryFilter::default()
        },
        InventoryFilter {
            route: Some("LHR-CDG".parse().unwrap()),
            date: day(2),
            limit: Some(1),
            ..InventoryFilter::default()
        },
    ];
    for filter in &filters {
        assert_eq!(
            store.list(filter).await.unwrap(),
            filter.select(everything.clone()),
            "{filter:?}"
        );
    }
    assert_eq!(
        names(&store.list(&filters[3]).await.unwrap()),
        ["FH1-20261201 business"]
    );
    assert_eq!(
        names(&store.list(&filters[4]).await.unwrap()),
        ["FH1-20261201 economy", "FH1-20261201 business"]
    );
    // 2026-12-02: FH2 by its schedule, FH9 by its id.
    assert_eq!(
        names(&store.list(&filters[2]).await.unwrap()),
        [
            "FH2-20261202 economy",
            "FH2-20261202 business",
            "FH9-20261202 first"
        ]
    );
    assert_eq!(
        names(&store.list(&filters[5]).await.unwrap()),
        ["FH2-20261202 economy"]
    );
}

#[tokio::test]
async fn lowering_a_capacity_below_seats_sold_shows_as_oversold() {
    let store = populated().await;
    store
        .load_schedule(&Schedule {
            flights: vec![flight("FH2-20261202", "LHR", "CDG", 2, 2)],
        })
        .await
        .unwrap();
    let fh2 = store.flight("FH2-20261202").await.unwrap();
    assert_eq!(
        (fh2[0].sold, fh2[0].capacity, fh2[0].oversold()),
        (3, Some(2), 1)
    );
    let oversold = store
        .list(&InventoryFilter {
            oversold_only: true,
            ..InventoryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        names(&oversold),
        ["FH1-20261201 business", "FH2-20261202 economy"]
    );
}
