//! `KinesisSource` against moto, through the real SDK client.
//!
//! Records are put with the SDK directly, one at a time from one task: moto loses
//! records when PutRecord calls on one stream overlap. moto's sequence numbers are
//! small (`"1"`, `"2"`, per shard), so they are compared as strings, never parsed.
//!
//! Needs `FLYHIGH_MOTO_URL` (see `common::moto_url`). Each test has its own stream.

#![cfg(feature = "kinesis")]

mod common;

use aws_sdk_kinesis::Client;
use aws_smithy_types::Blob;
use flyhigh_aws::kinesis::{KinesisShardReader, KinesisSource, create_stream};
use flyhigh_runner::source::{
    ReadOutcome, ShardReader, SourceError, SourceRecord, SourceShard, StartPosition, StreamSource,
};

/// The ids of listed shards.
fn ids(shards: &[SourceShard]) -> Vec<String> {
    shards.iter().map(|s| s.shard_id.clone()).collect()
}

/// What PutRecord said about one record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Put {
    shard_id: String,
    sequence_number: String,
    partition_key: String,
    data: Vec<u8>,
}

async fn stream(shards: i32) -> (Client, String) {
    let client = Client::new(&common::sdk_config().await);
    let name = common::unique_name("bookings");
    create_stream(&client, &name, shards)
        .await
        .expect("create stream");
    (client, name)
}

async fn put(client: &Client, stream: &str, partition_key: &str, data: &[u8]) -> Put {
    let out = client
        .put_record()
        .stream_name(stream)
        .partition_key(partition_key)
        .data(Blob::new(data))
        .send()
        .await
        .expect("put record");
    Put {
        shard_id: out.shard_id().to_string(),
        sequence_number: out.sequence_number().to_string(),
        partition_key: partition_key.to_string(),
        data: data.to_vec(),
    }
}

/// Puts `n` records with keys spread over a dozen flights, one after the other.
async fn put_many(client: &Client, stream: &str, from: usize, n: usize) -> Vec<Put> {
    let mut puts = Vec::with_capacity(n);
    for i in from..from + n {
        let key = format!("FH{:02}-20261201", i % 12);
        puts.push(put(client, stream, &key, format!("record-{i}").as_bytes()).await);
    }
    puts
}

/// Reads until a read returns nothing new (moto never holds records back) or the
/// shard ends.
async fn read_to_end(reader: &mut KinesisShardReader, limit: usize) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    loop {
        match reader.read(limit).await.expect("read") {
            ReadOutcome::Records(records) if records.is_empty() => return out,
            ReadOutcome::Records(records) => {
                assert!(
                    records.len() <= limit,
                    "{} records for a limit of {limit}",
                    records.len()
                );
                out.extend(records);
            }
            ReadOutcome::Ended | ReadOutcome::Stopped => return out,
        }
    }
}

fn as_puts(shard_id: &str, records: &[SourceRecord]) -> Vec<Put> {
    records
        .iter()
        .map(|r| Put {
            shard_id: shard_id.to_string(),
            sequence_number: r.sequence_number.clone(),
            partition_key: r.partition_key.clone(),
            data: r.data.clone(),
        })
        .collect()
}

fn on_shard(puts: &[Put], shard_id: &str) -> Vec<Put> {
    puts.iter()
        .filter(|p| p.shard_id == shard_id)
        .cloned()
        .collect()
}

#[tokio::test]
async fn every_record_comes_back_in_shard_order_with_its_key() {
    let (client, name) = stream(2).await;
    let puts = put_many(&client, &name, 0, 30).await;
    let source = KinesisSource::new(client, &name);
    let shards = ids(&source.shards().await.expect("shards"));
    assert_eq!(shards.len(), 2);
    let started = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut total = 0;
    for shard in &shards {
        let mut reader = source
            .open(shard, StartPosition::TrimHorizon)
            .await
            .expect("open");
        let records = read_to_end(&mut reader, 4).await;
        let expected = on_shard(&puts, shard);
        assert!(!expected.is_empty(), "the keys spread over both shards");
        assert_eq!(
            as_puts(shard, &records),
            expected,
            "shard {shard}: order, keys and bytes"
        );
        assert!(records.iter().all(|r| r.approximate_arrival > started));
        assert_eq!(
            reader.last_sequence_number(),
            expected.last().map(|p| p.sequence_number.as_str())
        );
        total += records.len();
    }
    assert_eq!(total, 30);
}

#[tokio::test]
async fn after_sequence_number_resumes_just_after_it() {
    let (client, name) = stream(2).await;
    let puts = put_many(&client, &name, 0, 24).await;
    let source = KinesisSource::new(client, &name);
    for shard in ids(&source.shards().await.expect("shards")) {
        let expected = on_shard(&puts, &shard);
        for k in [0, expected.len() / 2, expected.len() - 1] {
            let checkpoint =
                StartPosition::AfterSequenceNumber(expected[k].sequence_number.clone());
            let mut reader = source.open(&shard, checkpoint).await.expect("open");
            let records = read_to_end(&mut reader, 100).await;
            assert_eq!(
                as_puts(&shard, &records),
                expected[k + 1..],
                "shard {shard} after record {k}"
            );
        }
    }
}

#[tokio::test]
async fn reading_goes_on_as_records_arrive() {
    let (client, name) = stream(1).await;
    let source = KinesisSource::new(client.clone(), &name);
    let shard = ids(&source.shards().await.expect("shards")).remove(0);
    let first = put_many(&client, &name, 0, 3).await;
    let mut from_start = source
        .open(&shard, StartPosition::TrimHorizon)
        .await
        .expect("open");
    let mut latest = source
        .open(&shard, StartPosition::Latest)
        .await
        .expect("open latest");
    assert_eq!(
        as_puts(&shard, &read_to_end(&mut from_start, 10).await),
        first
    );
    assert!(
        read_to_end(&mut latest, 10).await.is_empty(),
        "LATEST skips what was there"
    );

    let second = put_many(&client, &name, 3, 4).await;
    assert_eq!(
        as_puts(&shard, &read_to_end(&mut from_start, 10).await),
        second,
        "the iterator chain goes on"
    );
    assert_eq!(as_puts(&shard, &read_to_end(&mut latest, 10).await), second);
}

#[tokio::test]
async fn shards_are_listed_in_order() {
    let (client, name) = stream(5).await;
    let shards = KinesisSource::new(client, &name)
        .shards()
        .await
        .expect("shards");
    let expected: Vec<SourceShard> = (0..5)
        .map(|i| SourceShard::root(format!("shardId-{i:012}")))
        .collect();
    assert_eq!(shards, expected);
}

#[tokio::test]
async fn after_a_split_the_listing_by_name_shows_parent_and_children() {
    let (client, name) = stream(1).await;
    let before = put_many(&client, &name, 0, 5).await;
    let source = KinesisSource::new(client.clone(), &name);
    let parent = "shardId-000000000000";
    client
        .split_shard()
        .stream_name(&name)
        .shard_to_split(parent)
        .new_starting_hash_key((u128::MAX / 2 + 1).to_string())
        .send()
        .await
        .expect("split shard");
    let shards = source.shards().await.expect("shards");
    assert_eq!(shards[0], SourceShard::root(parent), "{shards:?}");
    assert_eq!(shards.len(), 3, "{shards:?}");
    for child in &shards[1..] {
        assert_eq!(child.parents().collect::<Vec<_>>(), [parent], "{shards:?}");
    }
    let mut reader = source
        .open(parent, StartPosition::TrimHorizon)
        .await
        .expect("open parent");
    // moto 5.2 keeps handing out iterators for a closed shard, so the end of a
    // parent is tested against kinesalite (tests/kinesalite_runner.rs); here only
    // that its records are all there.
    assert_eq!(
        as_puts(parent, &read_to_end(&mut reader, 100).await),
        before
    );
}

#[tokio::test]
async fn the_stream_arn_is_looked_up_and_kept() {
    let (client, name) = stream(1).await;
    let source = KinesisSource::new(client, &name);
    assert_eq!(
        source.stream_arn(),
        format!("arn:aws:kinesis:us-east-1::stream/{name}"),
        "before any call"
    );
    source.shards().await.expect("shards");
    let arn = source.stream_arn();
    assert!(
        arn.starts_with("arn:aws:kinesis:us-east-1:") && arn.ends_with(&format!(":stream/{name}")),
        "{arn}"
    );
    assert_ne!(arn, format!("arn:aws:kinesis:us-east-1::stream/{name}"));
}

#[tokio::test]
async fn a_missing_stream_is_a_permanent_error() {
    let client = Client::new(&common::sdk_config().await);
    let source = KinesisSource::new(client, common::unique_name("missing"));
    let err = source.shards().await.unwrap_err();
    assert!(matches!(err, SourceError::Permanent(_)), "{err:?}");
    let err = source
        .open("shardId-000000000000", StartPosition::TrimHorizon)
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Permanent(_)), "{err:?}");
}

#[tokio::test]
async fn create_stream_is_idempotent() {
    let client = Client::new(&common::sdk_config().await);
    let name = common::unique_name("twice");
    create_stream(&client, &name, 1).await.expect("first");
    create_stream(&client, &name, 1).await.expect("second");
}
