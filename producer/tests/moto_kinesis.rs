//! The producer's Kinesis transport through the real AWS SDK against moto server:
//! what is sent is read back with GetRecords, exactly once, in order per key.
//!
//! Needs `FLYHIGH_MOTO_URL` (set by `scripts/test.sh`). The producer sends from one
//! task, which moto needs (it loses records under concurrent PutRecords).

#![cfg(feature = "kinesis")]

use std::collections::{BTreeMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_kinesis::Client;
use std::sync::Arc;

use flyhigh_producer::{
    DeadLetterReason, KinesisTransport, MemoryDeadLetters, Producer, ProducerConfig,
};
use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};
use flyhigh_schemas::{Booking, Cabin, Envelope, Money, Payload};
use flyhigh_testkit::read_all;

async fn client() -> Client {
    let url = flyhigh_testkit::moto_url();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    Client::new(&config)
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    )
}

fn booking(i: usize) -> Envelope {
    Envelope::new(
        "test-app",
        "2026-11-22T10:15:00.250Z".parse().unwrap(),
        Payload::Booking(Booking {
            booking_id: format!("BK{i:06}"),
            customer_id: "c-5f1e0a".into(),
            flight_id: format!("FH{:04}-20261201", i % 13),
            origin: "LHR".into(),
            destination: "JFK".into(),
            cabin: Cabin::Economy,
            seats: 1,
            fare: Money::new("99.00".parse().unwrap(), "EUR"),
        }),
    )
}

#[tokio::test]
async fn events_sent_through_kinesis_come_back_once_each_in_order_per_key() {
    let client = client().await;
    let stream = unique("producer-events");
    client
        .create_stream()
        .stream_name(&stream)
        .shard_count(3)
        .send()
        .await
        .unwrap();

    // moto loses records under concurrent puts to one stream: one request at a time.
    let dead = MemoryDeadLetters::new();
    let producer = Producer::new(
        KinesisTransport::new(client.clone(), &stream),
        ProducerConfig {
            max_requests_in_flight: 1,
            dead_letters: Arc::new(dead.clone()),
            ..ProducerConfig::default()
        },
    );
    let sent: Vec<Envelope> = (0..1_200).map(booking).collect();
    for event in &sent {
        producer.send(event).await.unwrap();
    }
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, 0, "{:?}", report.last_error);
    assert_eq!(report.records_written, 1_200);
    // The map came from ListShards: 13 flights over 3 shards, so aggregates.
    let metrics = producer.metrics();
    assert_eq!(metrics.shard_map_refreshes, 1);
    assert!(
        metrics.user_records_per_kinesis_record() > 20.0,
        "{metrics:?}"
    );

    let mut received: Vec<(String, Envelope)> = Vec::new();
    for (_, r) in read_all(&client, &stream).await.unwrap() {
        match deaggregate(r.data().as_ref()).unwrap() {
            Deaggregated::Single(data) => received.push((
                r.partition_key().unwrap_or_default().to_string(),
                flyhigh_schemas::decode(data).unwrap(),
            )),
            Deaggregated::Aggregated(users) => {
                for u in users {
                    received.push((
                        u.partition_key.to_string(),
                        flyhigh_schemas::decode(u.data).unwrap(),
                    ));
                }
            }
        }
    }
    assert_eq!(received.len(), 1_200);
    let ids: HashSet<_> = received.iter().map(|(_, e)| e.event_id).collect();
    assert_eq!(ids, sent.iter().map(|e| e.event_id).collect());
    // Bookings are keyed by flight, and each flight's bookings arrive in send order.
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, event) in &received {
        let Payload::Booking(b) = &event.payload else {
            panic!("not a booking")
        };
        assert_eq!(key, &b.flight_id);
        per_key
            .entry(key.clone())
            .or_default()
            .push(b.booking_id.clone());
    }
    for ids in per_key.values() {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "out of order: {ids:?}");
    }
}

#[tokio::test]
async fn records_for_a_missing_stream_are_dead_lettered_not_dropped() {
    let client = client().await;
    let dead = MemoryDeadLetters::new();
    let producer = Producer::new(
        KinesisTransport::new(client, unique("no-such-stream")),
        ProducerConfig {
            dead_letters: Arc::new(dead.clone()),
            ..ProducerConfig::default()
        },
    );
    let mut receipts = Vec::new();
    for i in 0..3 {
        receipts.push(producer.send(&booking(i)).await.unwrap());
    }
    let report = producer.close().await;
    assert_eq!(report.records_written, 0);
    assert_eq!(report.dead_lettered, 3);
    for r in receipts {
        let err = r.await.unwrap_err();
        assert!(err.to_string().contains("ResourceNotFound"), "{err}");
    }
    let letters = dead.letters();
    assert_eq!(letters.len(), 3);
    assert!(
        letters
            .iter()
            .all(|l| l.reason == DeadLetterReason::Rejected)
    );
}
