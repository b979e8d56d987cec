//! The demand Lambda binary itself, invoked through the Lambda Runtime API served by
//! `cargo lambda watch`, against DynamoDB in moto.
//!
//! `scripts/test.sh` starts moto and `cargo lambda watch` with `DEMAND_TABLE`,
//! `INVENTORY_TABLE` and `DEAD_LETTER_QUEUE_URL` in the function's environment, and
//! exports them with `FLYHIGH_LAMBDA_URL` and `FLYHIGH_MOTO_URL`; this test creates
//! those resources, loads a flight into the schedule (a cancellation's route comes
//! from there), invokes the function twice with one Kinesis batch, and reads the
//! counters back.
//!
//! The batch has no poison: the dead-letter queue is shared with the inventory
//! Lambda's test, which counts the letters in it.

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use flyhigh_aws::demand::DynamoDemandStore;
use flyhigh_aws::dynamodb::DynamoInventoryStore;
use flyhigh_core::demand::Counts;
use flyhigh_core::{DemandStore, InventoryStore, Schedule, ScheduledFlight};
use flyhigh_schemas::Cabin;
use lambda_testkit::{env, invoke, moto_config};
use serde_json::{Value, json};

const SHARD: &str = "shardId-000000000003";
const ROUTE: &str = "EDI-BOS";
const FLIGHT: &str = "FH0901-20261215";

fn at(minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 10, minute, second)
        .unwrap()
}

fn envelope(n: u32, occurred_at: DateTime<Utc>, event_type: &str, payload: Value) -> Value {
    json!({
        "event_id": format!("01935b7e-8c1a-7c2e-9a3b-4d5e6f7082{n:02}"),
        "schema_version": 1,
        "occurred_at": occurred_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "source": "ios-app",
        "event_type": event_type,
        "payload": payload,
    })
}

/// One Kinesis record of the batch, as Lambda delivers it.
fn record(n: u32, event: &Value) -> Value {
    let sequence = format!("4959033827149025660855969253836157109592157598913659{n:04}");
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": FLIGHT,
            "sequenceNumber": sequence,
            "data": base64::engine::general_purpose::STANDARD.encode(event.to_string()),
            // 2026-11-22T10:00:00Z (the events' day), one second apart: on time.
            "approximateArrivalTimestamp": 1795341600.0 + f64::from(n),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{SHARD}:{sequence}"),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/flyhigh-demand",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/flyhigh-events",
    })
}

/// Two searches, a booking and a cancellation of it on `ROUTE`, over two buckets.
fn batch() -> String {
    let search = |passengers: u32| {
        json!({
            "session_id": "s-0123456789",
            "origin": "EDI",
            "destination": "BOS",
            "departure_date": "2026-12-15",
            "passengers": passengers,
            "cabin": "economy",
        })
    };
    let events = [
        envelope(1, at(0, 5), "search", search(2)),
        envelope(
            2,
            at(0, 10),
            "booking",
            json!({
                "booking_id": "BKDEM0001",
                "customer_id": "c-77a1",
                "flight_id": FLIGHT,
                "origin": "EDI",
                "destination": "BOS",
                "cabin": "economy",
                "seats": 3,
                "fare": { "amount": "612.00", "currency": "GBP" },
            }),
        ),
        envelope(3, at(1, 2), "search", search(4)),
        envelope(
            4,
            at(1, 30),
            "cancellation",
            json!({
                "booking_id": "BKDEM0001",
                "customer_id": "c-77a1",
                "flight_id": FLIGHT,
                "reason": "customer_request",
                "refund": { "amount": "612.00", "currency": "GBP" },
            }),
        ),
    ];
    let records: Vec<Value> = (1..).zip(&events).map(|(n, e)| record(n, e)).collect();
    json!({ "Records": records }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_counts_a_kinesis_batch_once_through_the_runtime_api() {
    let (demand_table, inventory_table) = (env("DEMAND_TABLE"), env("INVENTORY_TABLE"));
    let queue_url = env("DEAD_LETTER_QUEUE_URL");
    let config = moto_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    flyhigh_aws::demand::create_demand_table(&dynamodb, &demand_table)
        .await
        .unwrap();
    flyhigh_aws::dynamodb::create_table(&dynamodb, &inventory_table)
        .await
        .unwrap();
    let queue_name = queue_url.rsplit('/').next().unwrap();
    flyhigh_aws::sqs::create_queue(&sqs, queue_name)
        .await
        .unwrap();
    DynamoInventoryStore::new(dynamodb.clone(), &inventory_table)
        .load_schedule(&Schedule {
            flights: vec![ScheduledFlight {
                flight_id: FLIGHT.into(),
                origin: "EDI".into(),
                destination: "BOS".into(),
                departure: Utc.with_ymd_and_hms(2026, 12, 15, 9, 30, 0).unwrap(),
                capacity: BTreeMap::from([(Cabin::Economy, 180)]),
            }],
        })
        .await
        .unwrap();

    // The second invocation is a redelivery of the same batch: it changes nothing.
    let batch = batch();
    for attempt in ["first", "redelivered"] {
        let (status, body) = invoke("demand-lambda", &batch).await;
        assert_eq!(status, 200, "{attempt}: {body}");
        let response: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{attempt}: {e}: {body}"));
        assert_eq!(
            response["batchItemFailures"],
            json!([]),
            "{attempt}: {body}"
        );
    }

    let store = DynamoDemandStore::new(dynamodb, &demand_table);
    let minute = |m: u32| at(m, 0).timestamp();
    let counters: BTreeMap<i64, Counts> = store
        .counters(ROUTE, minute(0), minute(2))
        .await
        .unwrap()
        .into_iter()
        .map(|(key, counts)| {
            assert_eq!((key.route.as_str(), key.shard_id.as_str()), (ROUTE, SHARD));
            (key.bucket, counts)
        })
        .collect();
    let first = Counts {
        searches: 1,
        passengers: 2,
        bookings: 1,
        seats: 3,
        ..Counts::default()
    };
    let second = Counts {
        searches: 1,
        passengers: 4,
        cancellations: 1,
        ..Counts::default()
    };
    assert_eq!(
        counters,
        BTreeMap::from([(minute(0), first), (minute(1), second)])
    );
    assert!(
        store.routes().await.unwrap().iter().any(|r| r == ROUTE),
        "the route is noted for the evaluator"
    );
    // The shard's progress is the latest arrival counted (record 4, at 10:00:04), not
    // the latest event time (10:01:30).
    assert_eq!(store.watermark(SHARD).await.unwrap(), Some(at(0, 4)));
}
