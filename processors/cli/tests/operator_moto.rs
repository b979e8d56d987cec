//! The operator commands against moto, run as the built binary with
//! `AWS_ENDPOINT_URL`: `inventory show | list` on a DynamoDB table, `dead-letters
//! list | replay` from SQS back to Kinesis, and the errors a person sees.
//!
//! Needs `FLYHIGH_MOTO_URL` (scripts/moto.sh start && source target/moto.env).

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use base64::Engine;
use flyhigh_aws::dynamodb::{DynamoInventoryStore, create_table};
use flyhigh_aws::kinesis::create_stream;
use flyhigh_aws::sqs::{SqsQueue, create_queue};
use flyhigh_core::inventory::{BookingChange, Transaction};
use flyhigh_core::{
    BookingRecord, BookingStatus, CabinKey, DeadLetter, DeadLetterSink, InventoryStore,
};
use flyhigh_schemas::Cabin;
use flyhigh_testkit::moto_url;
use serde_json::Value;

fn flyhigh_at(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flyhigh"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run flyhigh")
}

fn flyhigh(args: &[&str]) -> Output {
    flyhigh_at(&moto_url(), args)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_short_error(o: &Output, names: &[&str]) {
    let e = err(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {e}");
    assert!(e.starts_with("error: "), "{e}");
    assert!(e.lines().count() <= 2, "{e}");
    assert!(!e.contains("acktrace") && !e.contains("Response {"), "{e}");
    for n in names {
        assert!(e.contains(n), "stderr does not name {n:?}: {e}");
    }
}

async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
        .load()
        .await
}

fn suffix() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{}", std::process::id(), n % 1_000_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_show_and_list_agree_with_the_table() {
    let config = sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = format!("ops-inventory-{}", suffix());
    create_table(&client, &table).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("schedule.csv");
    std::fs::write(
        &csv,
        "flight_id,origin,destination,departure,economy,business\nFH0100-20261201,LHR,JFK,2026-12-01T09:30:00Z,10,2\n",
    )
    .unwrap();
    let o = flyhigh(&[
        "schedule",
        "load",
        "--file",
        csv.to_str().unwrap(),
        "--table",
        &table,
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let store = DynamoInventoryStore::new(client, &table);
    let key = CabinKey::new("FH0100-20261201", Cabin::Business);
    store
        .commit(&Transaction {
            changes: vec![BookingChange {
                expected: None,
                record: BookingRecord {
                    booking_id: "B1".into(),
                    status: BookingStatus::Booked,
                    flight_id: key.flight_id.clone(),
                    cabin: Some(key.cabin),
                    seats: 3,
                    booked_at: None,
                    released_at: None,
                },
                delta: Some((key.clone(), 3)),
                first_index: 0,
            }],
            counters: vec![(key, 3)],
        })
        .await
        .unwrap();

    let o = flyhigh(&[
        "inventory",
        "show",
        "FH0100-20261201",
        "--table",
        &table,
        "--json",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let shown: Value = serde_json::from_str(&out(&o)).unwrap();
    let stored = store.flight("FH0100-20261201").await.unwrap();
    let cabins = shown["cabins"].as_array().unwrap();
    assert_eq!(cabins.len(), stored.len());
    for (s, c) in cabins.iter().zip(&stored) {
        assert_eq!(s["cabin"], c.cabin.as_str());
        assert_eq!(s["sold"], c.sold);
        assert_eq!(s["capacity"], c.capacity.unwrap());
        assert_eq!(s["oversold"], c.oversold());
    }
    assert_eq!(cabins[1]["oversold"], 1);
    assert_eq!(shown["route"], "LHR-JFK");

    let o = flyhigh(&[
        "inventory",
        "list",
        "--table",
        &table,
        "--oversold",
        "--json",
    ]);
    let listed: Vec<Value> = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["cabin"], "business");

    let o = flyhigh(&["inventory", "show", "FH0999-20261201", "--table", &table]);
    assert_short_error(&o, &["FH0999-20261201", &table]);
}

#[test]
fn a_missing_table_and_an_unreachable_endpoint_are_one_line_and_a_hint() {
    let o = flyhigh(&[
        "inventory",
        "show",
        "FH0100-20261201",
        "--table",
        "no-such-table",
    ]);
    assert_short_error(
        &o,
        &[
            "DynamoDB table no-such-table",
            "ResourceNotFoundException",
            "hint:",
            "--table",
        ],
    );

    // Nothing listens on port 9 of the loopback.
    let o = flyhigh_at("http://127.0.0.1:9", &["inventory", "list", "--table", "t"]);
    assert_short_error(&o, &["DynamoDB table t", "hint:", "AWS_ENDPOINT_URL"]);

    let o = flyhigh(&["dead-letters", "list", "--queue", "no-such-queue"]);
    assert_short_error(&o, &["no-such-queue", "hint:", "--queue"]);
}

fn letter(seq: &str, reason_kind: &str, key: &str, data: &[u8]) -> DeadLetter {
    DeadLetter {
        processor: "inventory".into(),
        shard_id: "shardId-000000000000".into(),
        sequence_number: seq.into(),
        sub_sequence_number: None,
        partition_key: key.into(),
        approximate_arrival: None,
        reason_kind: reason_kind.into(),
        reason: "test".into(),
        data_base64: base64::engine::general_purpose::STANDARD.encode(data),
    }
}

/// Every record on the stream: (partition key, data).
async fn read_stream(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, Vec<u8>)> {
    let shards = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap();
    let mut records = Vec::new();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        loop {
            let page = kinesis
                .get_records()
                .shard_iterator(&iterator)
                .send()
                .await
                .unwrap();
            for r in page.records() {
                records.push((
                    r.partition_key().unwrap_or_default().to_string(),
                    r.data().as_ref().to_vec(),
                ));
            }
            match page.next_shard_iterator() {
                Some(next) if !page.records().is_empty() => iterator = next.to_string(),
                _ => break,
            }
        }
    }
    records.sort();
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_peeked_then_replayed_once_to_kinesis() {
    let config = sdk_config().await;
    let s = suffix();
    let (queue_name, stream) = (format!("ops-dlq-{s}"), format!("ops-events-{s}"));
    let sqs = aws_sdk_sqs::Client::new(&config);
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    let url = create_queue(&sqs, &queue_name).await.unwrap();
    create_stream(&kinesis, &stream, 1).await.unwrap();
    let queue = SqsQueue::new(sqs.clone(), &url);
    queue
        .send(&[
            letter(
                "1",
                "future_schema_version",
                "FH0100-20261201",
                b"{\"v\":99}",
            ),
            letter("2", "not_json", "FH0200-20261201", b"\xff garbage"),
            letter(
                "3",
                "future_schema_version",
                "FH0300-20261201",
                b"{\"v\":98}",
            ),
        ])
        .await
        .unwrap();

    // list peeks: twice the same counts, nothing deleted.
    for _ in 0..2 {
        let o = flyhigh(&["dead-letters", "list", "--queue", &queue_name, "--json"]);
        assert!(o.status.success(), "{}", err(&o));
        let v: Value = serde_json::from_str(&out(&o)).unwrap();
        assert_eq!(v["counts"]["total"], 3, "{v}");
        assert_eq!(
            v["counts"]["by_reason"]["future_schema_version"]["inventory"],
            2
        );
        assert_eq!(v["first"].as_array().unwrap().len(), 3);
    }
    let o = flyhigh(&["dead-letters", "list", "--queue", &queue_name]);
    assert!(
        out(&o).contains("not_json") && out(&o).contains("3 dead letters"),
        "{}",
        out(&o)
    );

    // Replay one cause: the original bytes with the original keys.
    let replay = |kind: &str| {
        flyhigh(&[
            "dead-letters",
            "replay",
            "--queue",
            &queue_name,
            "--stream",
            &stream,
            "--reason-kind",
            kind,
        ])
    };
    let o = replay("future_schema_version");
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("replayed 2 letters") && out(&o).contains("1 of another reason_kind"),
        "{}",
        out(&o)
    );
    let expected = vec![
        ("FH0100-20261201".to_string(), b"{\"v\":99}".to_vec()),
        ("FH0300-20261201".to_string(), b"{\"v\":98}".to_vec()),
    ];
    assert_eq!(read_stream(&kinesis, &stream).await, expected);

    // Replayed letters were deleted; the other one is still there (and visible).
    let o = replay("future_schema_version");
    assert!(out(&o).contains("replayed 0 letters"), "{}", out(&o));
    assert_eq!(
        read_stream(&kinesis, &stream).await,
        expected,
        "nothing put twice"
    );
    let o = flyhigh(&["dead-letters", "list", "--queue", &queue_name, "--json"]);
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["counts"]["total"], 1);
    assert_eq!(v["first"][0]["reason_kind"], "not_json");

    // A missing stream: the put fails, the letter stays in the queue.
    let o = flyhigh(&[
        "dead-letters",
        "replay",
        "--queue",
        &queue_name,
        "--stream",
        "no-such-stream",
    ]);
    assert_short_error(&o, &["no-such-stream", "stay in the queue"]);
    let o = flyhigh(&["dead-letters", "list", "--queue", &queue_name, "--json"]);
    let v: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["counts"]["total"], 1);
}
