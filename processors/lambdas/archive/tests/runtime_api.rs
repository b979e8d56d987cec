//! The archive and compaction Lambda binaries themselves, invoked through the Lambda
//! Runtime API served by `cargo lambda watch`, against S3, DynamoDB and SQS in moto.
//!
//! `scripts/test.sh` starts `cargo lambda watch` for both with `ARCHIVE_BUCKET`,
//! `CHECKPOINT_TABLE` and `DEAD_LETTER_QUEUE_URL` in their environment; this test
//! creates them, invokes the archive function twice with one Kinesis batch (the
//! second is a redelivery), then the compaction function, and reads the objects back.

use base64::Engine;
use flyhigh_core::archive::{DataFile, FileKind, read_file};
use lambda_testkit::{env, invoke, moto_config};
use serde_json::{Value, json};

const SHARD: &str = "shardId-000000000007";

fn record(n: u32, event: &Value) -> Value {
    let sequence = format!("4959033827149025660855969253836157109592157598913700{n:04}");
    json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "FH0777-20261215",
            "sequenceNumber": sequence,
            "data": base64::engine::general_purpose::STANDARD.encode(event.to_string()),
            "approximateArrivalTimestamp": 1763805600.0 + f64::from(n),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": format!("{SHARD}:{sequence}"),
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/flyhigh-archive",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/flyhigh-events",
    })
}

fn booking(n: u32, minute: u32) -> Value {
    json!({
        "event_id": format!("01935b7e-8c1a-7c2e-9a3b-4d5e6f7091{n:02}"),
        "schema_version": 1,
        "occurred_at": format!("2026-11-22T10:{minute:02}:05.000Z"),
        "source": "web-app",
        "event_type": "booking",
        "payload": {
            "booking_id": format!("BKARC{n:04}"),
            "customer_id": "c-77a1",
            "flight_id": "FH0777-20261215",
            "origin": "EDI",
            "destination": "BOS",
            "cabin": "economy",
            "seats": 2,
            "fare": { "amount": "401.10", "currency": "GBP" },
        },
    })
}

async fn data_files(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, Vec<u8>)> {
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("archive/")
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for object in listed.contents() {
        let key = object
            .key()
            .unwrap()
            .strip_prefix("archive/")
            .unwrap()
            .to_string();
        if DataFile::parse(&key).is_some() {
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(object.key().unwrap())
                .send()
                .await
                .unwrap();
            out.push((
                key,
                body.body.collect().await.unwrap().into_bytes().to_vec(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binaries_archive_a_batch_once_and_compact_it_through_the_runtime_api() {
    let (bucket, table, queue_url) = (
        env("ARCHIVE_BUCKET"),
        env("CHECKPOINT_TABLE"),
        env("DEAD_LETTER_QUEUE_URL"),
    );
    let config = moto_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    flyhigh_aws::s3::create_bucket(&s3, &bucket).await.unwrap();
    flyhigh_aws::archive::create_archive_checkpoints_table(
        &aws_sdk_dynamodb::Client::new(&config),
        &table,
    )
    .await
    .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    flyhigh_aws::sqs::create_queue(&sqs, queue_url.rsplit('/').next().unwrap())
        .await
        .unwrap();

    // Two hours' bookings in one batch: two batch files.
    let events = [booking(1, 5), booking(2, 40), booking(3, 59)];
    let mut records: Vec<Value> = (1..).zip(&events).map(|(n, e)| record(n, e)).collect();
    let mut later = booking(4, 1);
    later["occurred_at"] = json!("2026-11-22T11:01:00.000Z");
    records.push(record(4, &later));
    let batch = json!({ "Records": records }).to_string();
    for attempt in ["first", "redelivered"] {
        let (status, body) = invoke("archive-lambda", &batch).await;
        assert_eq!(status, 200, "{attempt}: {body}");
        let response: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            response["batchItemFailures"],
            json!([]),
            "{attempt}: {body}"
        );
    }
    let files = data_files(&s3, &bucket).await;
    assert_eq!(
        files.len(),
        2,
        "one batch file per hour, none added by the redelivery: {files:?}"
    );
    let rows: usize = files
        .iter()
        .map(|(key, bytes)| {
            read_file(DataFile::parse(key).unwrap().partition.table, bytes.clone())
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(rows, 4);

    // The compaction Lambda works within its invocation's deadline (under `cargo lambda
    // watch`, Lambda's default 3 s timeout: one partition a run, the least a run does)
    // and leaves the rest for the next run: both hours are compacted within two runs.
    let mut compacted = 0;
    for run in 1..=2 {
        let (status, body) = invoke("compact-lambda", "{}").await;
        assert_eq!(status, 200, "{body}");
        let report: Value = serde_json::from_str(&body).unwrap();
        let done = report["compacted"].as_array().map_or(0, Vec::len);
        let deferred = report["deferred"].as_array().map_or(0, Vec::len);
        assert!(done >= 1, "run {run} compacted nothing: {body}");
        assert_eq!(compacted + done + deferred, 2, "run {run}: {body}");
        compacted += done;
        if deferred == 0 {
            break;
        }
    }
    assert_eq!(compacted, 2);
    let files = data_files(&s3, &bucket).await;
    assert!(
        files
            .iter()
            .all(|(key, _)| DataFile::parse(key).unwrap().kind == FileKind::Compacted),
        "{files:?}"
    );
    let ids: Vec<String> = files
        .iter()
        .flat_map(|(key, bytes)| {
            read_file(DataFile::parse(key).unwrap().partition.table, bytes.clone()).unwrap()
        })
        .map(|r| r.event.event_id.to_string())
        .collect();
    assert_eq!(ids.len(), 4);
}
