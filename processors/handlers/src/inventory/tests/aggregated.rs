//! The inventory handler on Kinesis records that are KPL aggregates, as our producer
//! (and any KPL producer) writes them: each user record is processed, a damaged
//! aggregate is dead-lettered whole, and failures name Kinesis sequence numbers.

use flyhigh_core::memory::{MemoryDeadLetters, MemoryStore};
use flyhigh_schemas::aggregation::MAGIC;
use flyhigh_schemas::{AggregateBuilder, Search};

use super::*;

const OTHER: &str = "FH0999-20261201";

fn search() -> Envelope {
    Envelope::new(
        "test-app",
        "2026-11-22T09:15:00.250Z".parse().unwrap(),
        Payload::Search(Search {
            session_id: "s-91ac7f0e".into(),
            origin: "LHR".into(),
            destination: "JFK".into(),
            departure_date: "2026-12-01".parse().unwrap(),
            return_date: None,
            passengers: 1,
            cabin: Cabin::Economy,
        }),
    )
}

/// A KPL aggregate of these user records (partition key, bytes), as our producer
/// writes it.
fn aggregate(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = AggregateBuilder::new();
    for (key, data) in records {
        builder.push(key, None, data);
    }
    builder.finish()
}

/// An aggregate of events, each under the partition key the design prescribes.
fn aggregate_events(events: &[Envelope]) -> Vec<u8> {
    let records: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|e| (e.partition_key(), e.to_json()))
        .collect();
    aggregate(&records)
}

fn economy_of(flight: &str) -> CabinKey {
    CabinKey::new(flight, Cabin::Economy)
}

/// Base64 as dead letters carry it.
fn base64(data: &[u8]) -> String {
    flyhigh_core::KinesisRecord {
        shard_id: String::new(),
        sequence_number: String::new(),
        partition_key: String::new(),
        approximate_arrival: None,
        data: data.to_vec(),
    }
    .data_base64()
}

#[tokio::test]
async fn every_user_record_of_an_aggregate_is_processed() {
    let dead = MemoryDeadLetters::new();
    let handler = InventoryHandler::new(MemoryStore::new(), &dead);
    let events = [
        booking("BK000001", FLIGHT, 2),
        search(),
        booking("BK000002", OTHER, 3),
        booking("BK000003", FLIGHT, 1),
        cancellation("BK000001", FLIGHT),
    ];
    let payloads = vec![
        aggregate_events(&events),
        // A plain record next to it, as a producer without aggregation writes it.
        booking("BK000004", OTHER, 4).to_json(),
    ];
    let response = handler.handle(kinesis_event(&payloads, 1)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(handler.store().sold(&economy_of(FLIGHT)), 1);
    assert_eq!(handler.store().sold(&economy_of(OTHER)), 7);
    assert_eq!(
        handler.store().booking("BK000001").unwrap().status,
        BookingStatus::Cancelled
    );
    let stats = handler.stats();
    assert_eq!((stats.records, stats.user_records), (2, 6));
    assert_eq!((stats.searches, stats.inventory_events), (1, 5));
    assert!(dead.letters().is_empty());
}

#[tokio::test]
async fn a_damaged_aggregate_is_dead_lettered_whole_with_its_reason_and_the_rest_is_processed() {
    let dead = MemoryDeadLetters::new();
    let handler = InventoryHandler::new(MemoryStore::new(), &dead);
    let mut bad_digest = aggregate_events(&[booking("BK000010", FLIGHT, 5)]);
    let last = bad_digest.len() - 1;
    bad_digest[last] ^= 0xff;
    // A well-formed digest over a protobuf that names a partition key it lacks.
    let bad_index = {
        let body = [0x1a, 0x04, 0x08, 0x00, 0x1a, 0x00];
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&body);
        data.extend_from_slice(&md5_of(&body));
        data
    };
    let payloads = vec![
        booking("BK000001", FLIGHT, 2).to_json(),
        bad_digest.clone(),
        aggregate_events(&[
            booking("BK000002", FLIGHT, 1),
            booking("BK000003", OTHER, 1),
        ]),
        bad_index.clone(),
        booking("BK000004", FLIGHT, 3).to_json(),
    ];
    let response = handler.handle(kinesis_event(&payloads, 20)).await;
    assert!(failures(&response).is_empty(), "never blocks the shard");
    assert_eq!(handler.store().sold(&economy_of(FLIGHT)), 6);
    assert_eq!(handler.store().sold(&economy_of(OTHER)), 1);

    let letters = dead.letters();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].reason_kind, "aggregate_checksum_mismatch");
    assert_eq!(letters[0].reason, "aggregated record fails its MD5 check");
    assert_eq!(letters[0].sequence_number, seq(21));
    assert_eq!(letters[0].sub_sequence_number, None);
    assert_eq!(letters[0].shard_id, "shardId-000000000000");
    assert_eq!(letters[0].data_base64, base64(&bad_digest));
    assert_eq!(letters[1].reason_kind, "aggregate_malformed");
    assert_eq!(
        letters[1].reason,
        "malformed aggregated record at byte 6: partition_key_index out of range"
    );
    assert_eq!(letters[1].sequence_number, seq(23));
    assert_eq!(letters[1].data_base64, base64(&bad_index));
    assert_eq!(handler.stats().dead_lettered, 2);
}

#[tokio::test]
async fn a_poison_event_inside_an_aggregate_is_dead_lettered_alone_with_its_sub_sequence_number() {
    let dead = MemoryDeadLetters::new();
    let handler = InventoryHandler::new(MemoryStore::new(), &dead);
    let garbage = b"{\"event_type\": \"booking\",".to_vec();
    let payloads = vec![aggregate(&[
        (FLIGHT.into(), booking("BK000001", FLIGHT, 2).to_json()),
        ("bad-key".into(), garbage.clone()),
        (FLIGHT.into(), booking("BK000002", FLIGHT, 1).to_json()),
    ])];
    let response = handler.handle(kinesis_event(&payloads, 40)).await;
    assert!(failures(&response).is_empty());
    assert_eq!(handler.store().sold(&economy_of(FLIGHT)), 3);
    let letters = dead.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason_kind, "not_json");
    assert_eq!(letters[0].sequence_number, seq(40));
    assert_eq!(letters[0].sub_sequence_number, Some(1));
    assert_eq!(letters[0].partition_key, "bad-key");
    // Its own bytes, so that a replay sends exactly the poison record.
    assert_eq!(letters[0].data_base64, base64(&garbage));
    // The letter says which user record it is; older readers ignore the field.
    let json = serde_json::to_value(&letters[0]).unwrap();
    assert_eq!(json["sub_sequence_number"], 1);
}

#[tokio::test]
async fn a_failure_inside_an_aggregate_names_its_kinesis_sequence_number_and_the_retry_completes() {
    let dead = MemoryDeadLetters::new();
    let handler = InventoryHandler::new(MemoryStore::new(), &dead);
    let payloads = vec![
        b"not an event".to_vec(),
        aggregate_events(&[
            booking("BK000001", FLIGHT, 2),
            booking("BK000002", FLIGHT, 3),
            booking("BK000003", OTHER, 1),
        ]),
    ];
    let event = kinesis_event(&payloads, 60);
    handler.store().fail_next_commits(1);
    let response = handler.handle(event.clone()).await;
    // The aggregate's own sequence number: Lambda can only retry whole Kinesis records.
    assert_eq!(failures(&response), [seq(61)]);
    assert_eq!(handler.store().sold(&economy_of(FLIGHT)), 0);

    // Lambda retries from the reported record: the aggregate again, from its start.
    let mut retry = event.clone();
    retry.records.remove(0);
    assert!(failures(&handler.handle(retry.clone()).await).is_empty());
    assert_eq!(handler.store().sold(&economy_of(FLIGHT)), 5);
    assert_eq!(handler.store().sold(&economy_of(OTHER)), 1);
    // Replaying it once more (an operator replay) changes nothing.
    assert!(failures(&handler.handle(retry).await).is_empty());
    assert_eq!(handler.store().sold(&economy_of(FLIGHT)), 5);
    assert_eq!(dead.letters().len(), 1, "the plain poison record, once");
}

#[tokio::test]
async fn a_failing_dead_letter_sink_fails_the_damaged_aggregate_instead_of_dropping_it() {
    let dead = MemoryDeadLetters::new();
    dead.fail_next(1);
    let handler = InventoryHandler::new(MemoryStore::new(), &dead);
    let mut damaged = aggregate_events(&[booking("BK000001", FLIGHT, 2)]);
    damaged[MAGIC.len() + 3] ^= 0x01;
    let payloads = vec![
        booking("BK000002", FLIGHT, 1).to_json(),
        damaged,
        booking("BK000003", FLIGHT, 1).to_json(),
    ];
    let event = kinesis_event(&payloads, 80);
    assert_eq!(failures(&handler.handle(event.clone()).await), [seq(81)]);
    assert!(failures(&handler.handle(event).await).is_empty());
    let letters = dead.letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason_kind, "aggregate_checksum_mismatch");
    assert_eq!(handler.store().sold(&economy_of(FLIGHT)), 2);
}

/// MD5 of ASCII bytes, through the Kinesis hash-key function (MD5 of a string, read
/// big-endian), which saves this crate an md-5 dependency for one test.
fn md5_of(ascii: &[u8]) -> [u8; 16] {
    flyhigh_schemas::hash_key(std::str::from_utf8(ascii).unwrap()).to_be_bytes()
}
