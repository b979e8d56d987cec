//! Given/when/then tests of the inventory handler over in-memory ports.

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use flyhigh_core::memory::{MemoryDeadLetters, MemoryStore};
use flyhigh_core::{BookingStatus, CabinKey};
use flyhigh_schemas::{Booking, Cabin, Cancellation, CancellationReason, Money};

use super::*;

fn booking(id: &str, flight: &str, seats: u8) -> Envelope {
    Envelope::new(
        "test-app",
        "2026-11-22T10:15:00.250Z".parse().unwrap(),
        Payload::Booking(Booking {
            booking_id: id.into(),
            customer_id: "c-5f1e0a".into(),
            flight_id: flight.into(),
            origin: "LHR".into(),
            destination: "JFK".into(),
            cabin: Cabin::Economy,
            seats,
            fare: Money::new("412.80".parse().unwrap(), "GBP"),
        }),
    )
}

fn cancellation(id: &str, flight: &str) -> Envelope {
    Envelope::new(
        "test-app",
        "2026-11-22T11:15:00.250Z".parse().unwrap(),
        Payload::Cancellation(Cancellation {
            booking_id: id.into(),
            customer_id: "c-5f1e0a".into(),
            flight_id: flight.into(),
            reason: CancellationReason::CustomerRequest,
            refund: Money::new("0".parse().unwrap(), "GBP"),
        }),
    )
}

const FLIGHT: &str = "FH0123-20261201";

fn economy() -> CabinKey {
    CabinKey::new(FLIGHT, Cabin::Economy)
}

fn seq(n: u64) -> String {
    format!("4959{n:052}")
}

/// A Kinesis event as Lambda delivers it, with sequence numbers from `first_seq`.
fn kinesis_event(payloads: &[Vec<u8>], first_seq: u64) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    for (i, data) in payloads.iter().enumerate() {
        let seq = seq(first_seq + i as u64);
        let mut record = KinesisEventRecord::default();
        record.event_id = Some(format!("shardId-000000000000:{seq}"));
        record.event_source = Some("aws:kinesis".into());
        record.kinesis.sequence_number = seq;
        record.kinesis.partition_key = FLIGHT.into();
        record.kinesis.data.0 = data.clone();
        record.kinesis.approximate_arrival_timestamp.0 = chrono::Utc::now();
        event.records.push(record);
    }
    event
}

fn json(events: &[Envelope]) -> Vec<Vec<u8>> {
    events.iter().map(Envelope::to_json).collect()
}

fn failures(response: &KinesisEventResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_batch_delivered_twice_changes_inventory_once() {
    let handler = InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new());
    let event = kinesis_event(
        &json(&[
            booking("BK000001", FLIGHT, 2),
            booking("BK000002", FLIGHT, 3),
        ]),
        1,
    );
    assert!(failures(&handler.handle(event.clone()).await).is_empty());
    assert!(failures(&handler.handle(event).await).is_empty());
    assert_eq!(handler.store().sold(&economy()), 5);
    assert_eq!(handler.stats().no_ops, 2);
}

#[tokio::test]
async fn the_same_booking_emitted_twice_is_counted_once() {
    let handler = InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new());
    let first = booking("BK000001", FLIGHT, 2);
    let again = booking("BK000001", FLIGHT, 2);
    assert_ne!(first.event_id, again.event_id);
    handler.handle(kinesis_event(&json(&[first]), 1)).await;
    handler.handle(kinesis_event(&json(&[again]), 2)).await;
    assert_eq!(handler.store().sold(&economy()), 2);
}

#[tokio::test]
async fn a_booking_is_cancelled_at_most_once() {
    let handler = InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new());
    let events = [
        booking("BK000001", FLIGHT, 2),
        booking("BK000002", FLIGHT, 1),
        cancellation("BK000001", FLIGHT),
        cancellation("BK000001", FLIGHT),
    ];
    handler.handle(kinesis_event(&json(&events), 1)).await;
    handler
        .handle(kinesis_event(
            &json(&[cancellation("BK000001", FLIGHT)]),
            10,
        ))
        .await;
    assert_eq!(handler.store().sold(&economy()), 1);
    assert_eq!(
        handler.store().booking("BK000001").unwrap().status,
        BookingStatus::Cancelled
    );
}

#[tokio::test]
async fn a_cancellation_before_its_booking_nets_out() {
    let handler = InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new());
    handler
        .handle(kinesis_event(&json(&[cancellation("BK000001", FLIGHT)]), 1))
        .await;
    assert_eq!(
        handler.store().booking("BK000001").unwrap().status,
        BookingStatus::CancelPending
    );
    handler
        .handle(kinesis_event(&json(&[booking("BK000001", FLIGHT, 4)]), 2))
        .await;
    assert_eq!(handler.store().sold(&economy()), 0);
    assert_eq!(
        handler.store().booking("BK000001").unwrap().status,
        BookingStatus::Cancelled
    );
}

#[tokio::test]
async fn poison_records_are_dead_lettered_with_the_reason_and_the_rest_is_processed() {
    let dead = MemoryDeadLetters::new();
    let handler = InventoryHandler::new(MemoryStore::new(), &dead);
    let mut future = serde_json::to_value(booking("BK000009", FLIGHT, 1)).unwrap();
    future["schema_version"] = 99.into();
    let mut unknown = serde_json::to_value(booking("BK000010", FLIGHT, 1)).unwrap();
    unknown["event_type"] = "refund".into();
    let mut invalid = booking("BK000011", FLIGHT, 1);
    if let Payload::Booking(b) = &mut invalid.payload {
        b.seats = 0;
    }
    let payloads = vec![
        booking("BK000001", FLIGHT, 2).to_json(),
        b"\x00\x9f garbage".to_vec(),
        b"{\"event_type\": \"booking\",".to_vec(),
        serde_json::to_vec(&unknown).unwrap(),
        serde_json::to_vec(&future).unwrap(),
        invalid.to_json(),
        booking("BK000002", FLIGHT, 3).to_json(),
    ];
    let response = handler.handle(kinesis_event(&payloads, 1)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(handler.store().sold(&economy()), 5);
    let letters = dead.letters();
    let kinds: Vec<&str> = letters.iter().map(|l| l.reason_kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "not_utf8",
            "not_json",
            "unknown_event_type",
            "future_schema_version",
            "invalid"
        ]
    );
    assert!(
        letters[4].reason.contains("payload.seats"),
        "{}",
        letters[4].reason
    );
    assert_eq!(letters[1].sequence_number, format!("4959{:052}", 3));
    assert_eq!(
        letters[1].data_base64,
        "eyJldmVudF90eXBlIjogImJvb2tpbmciLA=="
    );
    assert_eq!(handler.stats().dead_lettered, 5);
}

#[tokio::test]
async fn a_store_failure_reports_the_first_unapplied_record_and_the_retry_completes() {
    let handler = InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new());
    let mut events = vec![];
    for i in 0..5 {
        events.push(booking(&format!("BK{i:06}"), FLIGHT, 1));
    }
    let event = kinesis_event(&json(&events), 100);
    handler.store().fail_next_commits(1);
    let response = handler.handle(event.clone()).await;
    assert_eq!(failures(&response), [format!("4959{:052}", 100)]);
    assert_eq!(handler.store().sold(&economy()), 0);
    // Lambda retries from the reported record.
    assert!(failures(&handler.handle(event).await).is_empty());
    assert_eq!(handler.store().sold(&economy()), 5);
}

#[tokio::test]
async fn a_failing_dead_letter_sink_fails_the_poison_record_instead_of_dropping_it() {
    let dead = MemoryDeadLetters::new();
    dead.fail_next(1);
    let handler = InventoryHandler::new(MemoryStore::new(), &dead);
    let payloads = vec![
        booking("BK000001", FLIGHT, 2).to_json(),
        b"not json".to_vec(),
        booking("BK000002", FLIGHT, 1).to_json(),
    ];
    let event = kinesis_event(&payloads, 1);
    assert_eq!(
        failures(&handler.handle(event.clone()).await),
        [format!("4959{:052}", 2)]
    );
    assert!(failures(&handler.handle(event).await).is_empty());
    assert_eq!(dead.letters().len(), 1);
    assert_eq!(handler.store().sold(&economy()), 3);
}

#[tokio::test]
async fn a_hot_flight_costs_a_bounded_number_of_counter_writes() {
    let handler = InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new());
    let events: Vec<Envelope> = (0..1_000)
        .map(|i| booking(&format!("BK{i:06}"), FLIGHT, 1))
        .collect();
    assert!(failures(&handler.handle(kinesis_event(&json(&events), 1)).await).is_empty());
    assert_eq!(handler.store().sold(&economy()), 1_000);
    // 99 bookings and one counter per transaction.
    assert_eq!(handler.store().counter_writes(&economy()), 11);
}

#[tokio::test]
async fn oversold_and_unscheduled_flights_are_counted_never_clamped() {
    let store = MemoryStore::new();
    let schedule = flyhigh_core::Schedule {
        flights: vec![flyhigh_core::ScheduledFlight {
            flight_id: FLIGHT.into(),
            origin: "LHR".into(),
            destination: "JFK".into(),
            departure: "2026-12-01T09:00:00Z".parse().unwrap(),
            capacity: [(Cabin::Economy, 3)].into_iter().collect(),
        }],
    };
    store.load_schedule(&schedule).await.unwrap();
    let handler = InventoryHandler::new(&store, MemoryDeadLetters::new());
    let events = [
        booking("BK000001", FLIGHT, 2),
        booking("BK000002", FLIGHT, 2),
        booking("BK000003", "FH0999-20261201", 1),
    ];
    handler.handle(kinesis_event(&json(&events), 1)).await;
    let inventory = store.inventory().await.unwrap();
    let hot = inventory.iter().find(|c| c.flight_id == FLIGHT).unwrap();
    assert_eq!((hot.sold, hot.available(), hot.oversold()), (4, 0, 1));
    let unscheduled = inventory
        .iter()
        .find(|c| c.flight_id == "FH0999-20261201")
        .unwrap();
    assert!(!unscheduled.scheduled());
    assert_eq!(unscheduled.sold, 1);
}

#[tokio::test]
async fn a_conflicting_writer_is_detected_and_the_batch_replanned() {
    let store = MemoryStore::new();
    let handler = InventoryHandler::new(&store, MemoryDeadLetters::new());
    handler
        .handle(kinesis_event(&json(&[booking("BK000001", FLIGHT, 2)]), 1))
        .await;
    // Another delivery cancels the booking between this handler's read and write.
    store.race_next_commit(flyhigh_core::BookingRecord {
        booking_id: "BK000001".into(),
        status: BookingStatus::Cancelled,
        flight_id: FLIGHT.into(),
        cabin: Some(Cabin::Economy),
        seats: 2,
        booked_at: None,
        released_at: None,
    });
    let response = handler
        .handle(kinesis_event(&json(&[cancellation("BK000001", FLIGHT)]), 2))
        .await;
    assert!(failures(&response).is_empty());
    assert_eq!(handler.stats().conflicts, 1);
    // Re-planned against the stored state, the cancellation is a no-op: the seats are
    // not released a second time by this handler.
    assert_eq!(store.sold(&economy()), 2);
}

#[tokio::test]
async fn regression_a_changed_duplicate_is_counted_and_keeps_the_first_booking() {
    let handler = InventoryHandler::new(MemoryStore::new(), MemoryDeadLetters::new());
    let first = booking("BK000001", FLIGHT, 2);
    let mut changed = booking("BK000001", FLIGHT, 5);
    if let Payload::Booking(b) = &mut changed.payload {
        b.cabin = Cabin::Business;
    }
    let same = booking("BK000001", FLIGHT, 2);
    handler.handle(kinesis_event(&json(&[first]), 1)).await;
    let response = handler
        .handle(kinesis_event(&json(&[changed, same]), 2))
        .await;
    assert!(failures(&response).is_empty());
    assert_eq!(handler.stats().changed_duplicates, 1);
    assert_eq!(handler.stats().no_ops, 2);
    assert_eq!(handler.store().sold(&economy()), 2);
    assert_eq!(
        handler
            .store()
            .sold(&CabinKey::new(FLIGHT, Cabin::Business)),
        0
    );
}

#[tokio::test]
async fn an_event_beyond_the_retention_horizon_is_dead_lettered_not_applied() {
    let dead = MemoryDeadLetters::new();
    // FLIGHT departs on 2026-12-01; its booking records expire 401 days later.
    let expiry = flyhigh_core::inventory::booking_expiry(FLIGHT).unwrap();
    assert_eq!(
        expiry,
        "2028-01-06T00:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    let late = expiry - chrono::Duration::days(1);
    let handler = InventoryHandler::new(MemoryStore::new(), &dead).with_clock(move || late);
    let event = kinesis_event(&json(&[booking("BK000001", FLIGHT, 2)]), 1);
    assert!(failures(&handler.handle(event).await).is_empty());
    assert_eq!(handler.store().sold(&economy()), 0);
    assert_eq!(handler.stats().beyond_horizon, 1);
    let letters = dead.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason_kind, REASON_BEYOND_HORIZON);
    assert!(
        letters[0].reason.contains("2028-01-06"),
        "{}",
        letters[0].reason
    );

    // Three days earlier the same event is applied.
    let early = expiry - chrono::Duration::days(3);
    let handler = InventoryHandler::new(MemoryStore::new(), &dead).with_clock(move || early);
    let event = kinesis_event(&json(&[booking("BK000001", FLIGHT, 2)]), 1);
    handler.handle(event).await;
    assert_eq!(handler.store().sold(&economy()), 2);
}

#[tokio::test]
async fn a_redelivery_after_the_booking_records_expired_counts_nothing_twice() {
    // Booked and cancelled while the flight is live; the stream (or an archive
    // replay) delivers the whole history again after the records expired.
    let dead = MemoryDeadLetters::new();
    let store = MemoryStore::new();
    let expiry = flyhigh_core::inventory::booking_expiry(FLIGHT).unwrap();
    let events = kinesis_event(
        &json(&[
            booking("BK000001", FLIGHT, 2),
            booking("BK000002", FLIGHT, 3),
            cancellation("BK000002", FLIGHT),
        ]),
        1,
    );
    let live =
        InventoryHandler::new(&store, &dead).with_clock(|| "2026-11-30T00:00:00Z".parse().unwrap());
    live.handle(events.clone()).await;
    assert_eq!(store.sold(&economy()), 2);
    assert_eq!(store.purge_expired(expiry), 2);

    let late = InventoryHandler::new(&store, &dead).with_clock(move || expiry);
    assert!(failures(&late.handle(events).await).is_empty());
    assert_eq!(store.sold(&economy()), 2, "no booking counted again");
    assert_eq!(late.stats().beyond_horizon, 2);
    // The cancellation met nothing and left a tombstone, moving no seat.
    assert_eq!(
        store.booking("BK000002").map(|r| r.status),
        Some(BookingStatus::CancelPending)
    );
    assert_eq!(store.booking("BK000001"), None);
}

#[tokio::test]
async fn regression_poison_after_the_reported_failure_is_dead_lettered_once_by_the_retry() {
    let dead = MemoryDeadLetters::new();
    let handler = InventoryHandler::new(MemoryStore::new(), &dead);
    let payloads = vec![
        booking("BK000001", FLIGHT, 2).to_json(),
        b"not json".to_vec(),
    ];
    let event = kinesis_event(&payloads, 1);
    handler.store().fail_next_commits(1);
    assert_eq!(failures(&handler.handle(event.clone()).await), [seq(1)]);
    // The poison record lies after the failure: the retry writes its letter.
    assert!(dead.letters().is_empty());
    assert!(failures(&handler.handle(event).await).is_empty());
    assert_eq!(dead.letters().len(), 1);
}

mod aggregated;
mod model;
mod reference;
mod scripted;
