//! The helpers and `FaultProxy` through the real `aws-sdk-kinesis` client against
//! kinesalite, and the kinesalite behaviour the project's tests rely on.
//!
//! Needs `FLYHIGH_KINESALITE_URL`, exported by `scripts/test.sh`; by hand:
//! `scripts/kinesalite.sh start && source target/kinesalite.env`. Without it these
//! tests fail rather than skip, so a broken setup cannot pass silently.

use std::collections::{BTreeMap, HashSet};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use flyhigh_testkit::{
    FaultConfig, FaultProxy, create_stream, kinesalite_url, kinesis_client, list_shards, read_all,
    unique_name,
};

fn entry(key: &str, data: impl Into<Vec<u8>>) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(key)
        .data(Blob::new(data))
        .build()
        .unwrap()
}

/// Kinesis sequence numbers are decimal integers of any length: order by length,
/// then digits.
fn sequence_key(sequence_number: &str) -> (usize, &str) {
    (sequence_number.len(), sequence_number)
}

/// The key of every record read back, with how often it was found.
fn key_counts(records: &[(String, aws_sdk_kinesis::types::Record)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, record) in records {
        let key = record.partition_key().unwrap_or_default().to_owned();
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn explicit_hash_keys_route_records_and_read_all_returns_them_in_shard_order() {
    let client = kinesis_client(&kinesalite_url());
    let stream = unique_name("testkit-ehk");
    create_stream(&client, &stream, 4).await.unwrap();
    let shards = client
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .unwrap();
    assert_eq!(shards.shards().len(), 4);
    assert_eq!(list_shards(&client, &stream).await.unwrap().len(), 4);

    // Ten records per shard, each aimed at its shard by ExplicitHashKey, with
    // partition keys that would hash elsewhere.
    let mut expected = BTreeMap::new();
    let mut entries = Vec::new();
    for shard in shards.shards() {
        let start = shard.hash_key_range().unwrap().starting_hash_key();
        for i in 0..10 {
            let key = format!("{}-{i}", shard.shard_id());
            expected.insert(key.clone(), shard.shard_id().to_owned());
            entries.push(
                PutRecordsRequestEntry::builder()
                    .partition_key("same-key-for-all")
                    .explicit_hash_key(start)
                    .data(Blob::new(key))
                    .build()
                    .unwrap(),
            );
        }
    }
    let out = client
        .put_records()
        .stream_name(&stream)
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count(), Some(0));

    let records = read_all(&client, &stream).await.unwrap();
    assert_eq!(records.len(), 40);
    let mut found = BTreeMap::new();
    for (shard_id, record) in &records {
        let key = String::from_utf8(record.data().as_ref().to_vec()).unwrap();
        found.insert(key, shard_id.clone());
        // kinesalite's sequence numbers look like Kinesis's: 56 decimal digits.
        let seq = record.sequence_number();
        assert!(
            seq.len() == 56 && seq.bytes().all(|b| b.is_ascii_digit()),
            "{seq}"
        );
    }
    assert_eq!(
        found, expected,
        "every record in the shard its hash key names"
    );
    for window in records.windows(2) {
        let ((shard_a, a), (shard_b, b)) = (&window[0], &window[1]);
        if shard_a == shard_b {
            assert!(sequence_key(a.sequence_number()) < sequence_key(b.sequence_number()));
            // Within a shard, records come back in the order they were put.
            assert!(a.data().as_ref() < b.data().as_ref());
        }
    }
}

#[tokio::test]
async fn concurrent_put_records_lose_nothing() {
    let client = kinesis_client(&kinesalite_url());
    let stream = unique_name("testkit-concurrent");
    create_stream(&client, &stream, 3).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let (client, stream) = (client.clone(), stream.clone());
            tokio::spawn(async move {
                for batch in 0..5 {
                    let entries = (0..50)
                        .map(|i| entry(&format!("t{task}-b{batch}-r{i}"), "x"))
                        .collect();
                    let out = client
                        .put_records()
                        .stream_name(&stream)
                        .set_records(Some(entries))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(out.failed_record_count(), Some(0));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let counts = key_counts(&read_all(&client, &stream).await.unwrap());
    assert_eq!(counts.len(), 8 * 5 * 50);
    assert!(counts.values().all(|&n| n == 1), "each record exactly once");
}

/// Sends `keys` in batches of `batch` from one task, retrying failed records and
/// whole failed requests (retries in the SDK are off), until all are accepted.
/// Returns how many requests failed as a whole.
async fn send_until_accepted(client: &Client, stream: &str, keys: &[String], batch: usize) -> u32 {
    let mut request_failures = 0;
    for chunk in keys.chunks(batch) {
        let mut pending: Vec<&String> = chunk.iter().collect();
        for attempt in 0.. {
            assert!(attempt < 100, "still {} records pending", pending.len());
            let entries = pending.iter().map(|k| entry(k, k.as_bytes())).collect();
            match client
                .put_records()
                .stream_name(stream)
                .set_records(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    pending = pending
                        .into_iter()
                        .zip(out.records())
                        .filter(|(_, r)| r.error_code().is_some())
                        .map(|(k, _)| k)
                        .collect();
                }
                Err(_) => request_failures += 1,
            }
            if pending.is_empty() {
                break;
            }
        }
    }
    request_failures
}

#[tokio::test]
async fn through_the_proxy_the_stream_holds_exactly_what_upstream_wrote() {
    let client = kinesis_client(&kinesalite_url());
    let stream = unique_name("testkit-faults");
    create_stream(&client, &stream, 2).await.unwrap();
    let proxy = FaultProxy::start(
        &kinesalite_url(),
        FaultConfig {
            seed: 11,
            record_failure_rate: 0.2,
            request_error_rate: 0.1,
            drop_before_rate: 0.05,
            drop_after_rate: 0.15,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let faulty = kinesis_client(&proxy.url());
    let keys: Vec<String> = (0..600).map(|i| format!("r{i:04}")).collect();
    let request_failures = send_until_accepted(&faulty, &stream, &keys, 50).await;

    let stats = proxy.stats();
    // One sender, so the seeded decisions are reproducible: these all happen.
    assert!(stats.failed_records > 0, "{stats:?}");
    assert!(stats.dropped_after > 0, "{stats:?}");
    assert!(
        stats.internal_failures + stats.throughput_exceeded + stats.throttling_errors > 0,
        "{stats:?}"
    );
    assert_eq!(
        u64::from(request_failures),
        stats.dropped_before
            + stats.dropped_after
            + stats.internal_failures
            + stats.throughput_exceeded
            + stats.throttling_errors,
        "every failed call was an injected fault: {stats:?}"
    );

    let records = read_all(&client, &stream).await.unwrap();
    let counts = key_counts(&records);
    let sent: HashSet<&String> = keys.iter().collect();
    assert_eq!(counts.keys().collect::<HashSet<_>>(), sent, "nothing lost");
    assert_eq!(
        records.len() as u64,
        stats.written_records,
        "the stream holds what upstream reported written, no more"
    );
    let duplicates = records.len() - keys.len();
    assert!(
        duplicates > 0,
        "dropped answers after a write produce duplicates: {stats:?}"
    );
    proxy.shutdown().await;
}

/// The error code of a service error.
fn code<E, R>(error: SdkError<E, R>) -> Option<String>
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(e) => e.err().code().map(str::to_owned),
        other => panic!("expected a service error, got {other:?}"),
    }
}

/// What kinesalite 3.3.3 enforces, pinned so that an upgrade that changes it is
/// noticed: per-request validation like Kinesis, but no 5 MiB request limit and
/// no throughput limits, so the producer's own batcher must enforce those.
#[tokio::test]
async fn kinesalite_enforces_record_and_count_limits_but_not_the_request_size() {
    let client = kinesis_client(&kinesalite_url());
    let stream = unique_name("testkit-limits");
    create_stream(&client, &stream, 1).await.unwrap();
    let put = |entries: Vec<PutRecordsRequestEntry>| {
        client
            .put_records()
            .stream_name(&stream)
            .set_records(Some(entries))
            .send()
    };

    let too_many = (0..501).map(|i| entry(&format!("k{i}"), "x")).collect();
    assert_eq!(
        code(put(too_many).await.unwrap_err()).as_deref(),
        Some("ValidationException")
    );
    let too_big = vec![entry("k", vec![b'x'; 1024 * 1024 + 1])];
    assert_eq!(
        code(put(too_big).await.unwrap_err()).as_deref(),
        Some("ValidationException")
    );
    // 500 x 10.5 KiB = 5.1 MiB of data: Kinesis rejects this request, kinesalite
    // takes it (it only refuses HTTP bodies over 7 MiB, with a bare 413).
    let over_five_mib = (0..500)
        .map(|i| entry(&format!("k{i}"), vec![b'x'; 10 * 1024 + 512]))
        .collect();
    assert_eq!(
        put(over_five_mib).await.unwrap().failed_record_count(),
        Some(0)
    );
}
