//! The producer through the real AWS SDK against kinesalite on loopback, directly and
//! behind the project's fault-injecting proxy: what is sent is read back with
//! GetRecords, deaggregated, and compared with what was sent.
//!
//! Needs `FLYHIGH_KINESALITE_URL` (set by `scripts/test.sh`; by hand:
//! `scripts/kinesalite.sh start && source target/kinesalite.env`). kinesalite, unlike
//! moto, takes concurrent PutRecords without losing records.

#![cfg(feature = "kinesis")]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use flyhigh_producer::{
    KinesisTransport, MemoryDeadLetters, Producer, ProducerConfig, SendError, ShardLimits,
};
use flyhigh_schemas::Envelope;
use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};
use flyhigh_simulator::{SimConfig, Simulator};
use flyhigh_testkit::{
    FaultConfig, FaultProxy, create_stream, kinesalite_url, kinesis_client, read_all, unique_name,
    wait_until_active,
};

/// An event read back: its shard, partition key and id.
struct Read {
    shard_id: String,
    partition_key: String,
    event: Envelope,
}

async fn read_events(client: &aws_sdk_kinesis::Client, stream: &str) -> (Vec<Read>, usize) {
    let records = read_all(client, stream).await.expect("read the stream");
    let kinesis_records = records.len();
    let mut out = Vec::new();
    for (shard_id, r) in records {
        match deaggregate(r.data().as_ref()).expect("a valid record") {
            Deaggregated::Single(data) => out.push(Read {
                shard_id,
                partition_key: r.partition_key().unwrap_or_default().to_string(),
                event: flyhigh_schemas::decode(data).expect("an event"),
            }),
            Deaggregated::Aggregated(users) => {
                for u in users {
                    out.push(Read {
                        shard_id: shard_id.clone(),
                        partition_key: u.partition_key.to_string(),
                        event: flyhigh_schemas::decode(u.data).expect("an event"),
                    });
                }
            }
        }
    }
    (out, kinesis_records)
}

/// Every sent event was read; per partition key, first occurrences come in send
/// order and all on one shard. Returns the number of duplicates.
fn check(sent: &[Envelope], got: &[Read]) -> usize {
    let sent_ids: HashSet<_> = sent.iter().map(|e| e.event_id).collect();
    let got_ids: HashSet<_> = got.iter().map(|r| r.event.event_id).collect();
    assert_eq!(
        got_ids.len(),
        sent_ids.len(),
        "events lost or foreign events read"
    );
    assert_eq!(got_ids, sent_ids);
    let mut expected: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for e in sent {
        expected
            .entry(e.partition_key())
            .or_default()
            .push(e.event_id);
    }
    let mut read: BTreeMap<&str, (Vec<_>, HashSet<&str>)> = BTreeMap::new();
    for r in got {
        assert_eq!(
            r.partition_key,
            r.event.partition_key(),
            "partition key kept"
        );
        let entry = read.entry(r.partition_key.as_str()).or_default();
        entry.0.push(r.event.event_id);
        entry.1.insert(r.shard_id.as_str());
    }
    for (key, want) in &expected {
        let (have, shards) = &read[key.as_str()];
        assert_eq!(shards.len(), 1, "key {key} on several shards: {shards:?}");
        let mut seen = HashSet::new();
        let firsts: Vec<_> = have
            .iter()
            .filter(|id| seen.insert(**id))
            .copied()
            .collect();
        assert_eq!(&firsts, want, "order of key {key}");
    }
    got.len() - sent.len()
}

fn events(n: usize, seed: u64) -> Vec<Envelope> {
    Simulator::new(SimConfig::new(seed, n))
        .expect("config")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_events_arrive_exactly_once_in_order_per_key() {
    let client = kinesis_client(&kinesalite_url());
    let stream = unique_name("producer-100k");
    create_stream(&client, &stream, 4).await.unwrap();
    let dead = MemoryDeadLetters::new();
    let producer = Producer::new(
        KinesisTransport::new(client.clone(), &stream),
        ProducerConfig {
            dead_letters: Arc::new(dead.clone()),
            ..ProducerConfig::default()
        },
    );
    let sent = events(100_000, 42);
    // Two application tasks sending at once, as a web backend would.
    let (first, second) = sent.split_at(sent.len() / 2);
    tokio::join!(
        async {
            for e in first {
                producer.send(e).await.unwrap();
            }
        },
        async {
            for e in second {
                producer.send(e).await.unwrap();
            }
        }
    );
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, 0, "{:?}", report.last_error);
    assert_eq!(report.records_written, 100_000);
    assert!(dead.letters().is_empty());

    let (got, kinesis_records) = read_events(&client, &stream).await;
    // Keys are ordered within each sending task; across the two tasks there is no
    // order to keep, so check each task's events on their own.
    let first_ids: HashSet<_> = first.iter().map(|e| e.event_id).collect();
    let (got_first, got_second): (Vec<Read>, Vec<Read>) = got
        .into_iter()
        .partition(|r| first_ids.contains(&r.event.event_id));
    assert_eq!(check(first, &got_first), 0, "duplicates without faults");
    assert_eq!(check(second, &got_second), 0, "duplicates without faults");
    let m = producer.metrics();
    assert_eq!(m.kinesis_records_written as usize, kinesis_records);
    assert!(m.user_records_per_kinesis_record() > 50.0, "{m:?}");
    assert_eq!(m.retries, 0, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_faults_lose_nothing_and_keep_per_key_order() {
    let direct = kinesis_client(&kinesalite_url());
    let stream = unique_name("producer-faults");
    create_stream(&direct, &stream, 3).await.unwrap();
    // 30% of records fail inside answered requests, and 30% of requests fail whole:
    // errors (500, throughput exceeded, throttling), connections dropped before the
    // request is forwarded, and dropped after it was written (duplicates).
    let proxy = FaultProxy::start(
        &kinesalite_url(),
        FaultConfig {
            seed: 7,
            record_failure_rate: 0.30,
            request_error_rate: 0.15,
            drop_before_rate: 0.075,
            drop_after_rate: 0.075,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let dead = MemoryDeadLetters::new();
    let producer = Producer::new(
        KinesisTransport::new(kinesis_client(&proxy.url()), &stream),
        ProducerConfig {
            dead_letters: Arc::new(dead.clone()),
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
            aggregate_max_bytes: 16 * 1024,
            rng_seed: Some(3),
            ..ProducerConfig::default()
        },
    );
    let sent = events(20_000, 7);
    let mut receipts = Vec::with_capacity(sent.len());
    for e in &sent {
        receipts.push(producer.send(e).await.unwrap());
    }
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, 0, "{:?}", report.last_error);
    for r in receipts {
        let d = r.await.expect("written");
        assert!(d.shard_id.starts_with("shardId-"));
    }
    let (got, _) = read_events(&direct, &stream).await;
    let duplicates = check(&sent, &got);
    let faults = proxy.stats();
    let m = producer.metrics();
    println!("faults: {faults:?}\nproducer: {m:?}\nduplicates read: {duplicates}");
    assert!(
        faults.failed_records > 0
            && faults.internal_failures + faults.throughput_exceeded + faults.throttling_errors > 0
    );
    assert!(
        faults.dropped_before > 0 && faults.dropped_after > 0,
        "{faults:?}"
    );
    assert!(m.retries > 0 && m.throttles > 0, "{m:?}");
    // Only a request written and then dropped can duplicate records.
    assert!(duplicates == 0 || faults.dropped_after > 0);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_full_throttling_send_waits_and_everything_drains_once_it_ends() {
    let direct = kinesis_client(&kinesalite_url());
    let stream = unique_name("producer-throttled");
    create_stream(&direct, &stream, 2).await.unwrap();
    let proxy = FaultProxy::start(&kinesalite_url(), FaultConfig::throttle_all()).unwrap();
    let dead = MemoryDeadLetters::new();
    let budget = 1024 * 1024 + 64 * 1024;
    let producer = Producer::new(
        KinesisTransport::new(kinesis_client(&proxy.url()), &stream),
        ProducerConfig {
            buffer_budget_bytes: budget,
            dead_letters: Arc::new(dead.clone()),
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(100),
            shard_limits: Some(ShardLimits::KINESIS),
            ..ProducerConfig::default()
        },
    );
    let sent = events(20_000, 11);
    let mut accepted = 0;
    let full = loop {
        match producer.try_send(&sent[accepted]) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(full, SendError::BufferFull { .. }), "{full}");
    assert!(producer.buffered_bytes() <= budget);
    let waited =
        tokio::time::timeout(Duration::from_millis(500), producer.send(&sent[accepted])).await;
    assert!(
        waited.is_err(),
        "send returned while throttled with the budget spent"
    );
    let m = producer.metrics();
    assert!(m.throttles > 0 && m.user_records_written == 0, "{m:?}");
    assert!(m.buffered_bytes as usize <= budget);

    // Throttling ends: the rest goes through `send`, which now proceeds.
    proxy.set_faults(FaultConfig::default()).unwrap();
    for e in &sent[accepted..] {
        producer.send(e).await.unwrap();
    }
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, 0, "{:?}", report.last_error);
    let (got, _) = read_events(&direct, &stream).await;
    assert_eq!(check(&sent, &got), 0);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_split_while_producing_reloads_the_map_and_keeps_order_per_key() {
    let client = kinesis_client(&kinesalite_url());
    let stream = unique_name("producer-split");
    create_stream(&client, &stream, 1).await.unwrap();
    let dead = MemoryDeadLetters::new();
    let producer = Producer::new(
        KinesisTransport::new(client.clone(), &stream),
        ProducerConfig {
            dead_letters: Arc::new(dead.clone()),
            linger: Duration::from_millis(5),
            ..ProducerConfig::default()
        },
    );
    let all = events(6_000, 5);
    let (before, after) = all.split_at(3_000);
    for e in before {
        producer.send(e).await.unwrap();
    }
    producer.flush().await.unwrap();
    assert_eq!(producer.metrics().shard_map_refreshes, 1);

    // Split the only shard in two halves.
    client
        .split_shard()
        .stream_name(&stream)
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    wait_until_active(&client, &stream).await.unwrap();

    // The next put lands on a child shard: the producer notices and reloads the map.
    let probe = events(1, 99).remove(0);
    producer.send(&probe).await.unwrap();
    producer.flush().await.unwrap();
    let reloaded = async {
        while producer.metrics().shard_map_refreshes < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reloaded)
        .await
        .expect("the shard map was not reloaded after the split");

    let mut receipts = Vec::new();
    for e in after {
        receipts.push((e.partition_key(), producer.send(e).await.unwrap()));
    }
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, 0, "{:?}", report.last_error);

    // After the reload every record goes to the child that owns its key.
    let shards = client
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .unwrap();
    let children: Vec<_> = shards
        .shards()
        .iter()
        .filter(|s| s.parent_shard_id().is_some())
        .map(|s| {
            let r = s.hash_key_range().unwrap();
            let start: u128 = r.starting_hash_key().parse().unwrap();
            let end: u128 = r.ending_hash_key().parse().unwrap();
            (s.shard_id().to_string(), start, end)
        })
        .collect();
    assert_eq!(children.len(), 2);
    let owner = |key: &str| {
        let h = flyhigh_schemas::hash_key(key);
        children
            .iter()
            .find(|(_, s, e)| *s <= h && h <= *e)
            .unwrap()
            .0
            .clone()
    };
    for (key, receipt) in receipts {
        let d = receipt.await.unwrap();
        assert_eq!(*d.shard_id, owner(&key), "key {key}");
    }

    // Nothing lost or doubled; per key, the parent's records (all written before the
    // split) come first, then the key's child in order.
    let (got, _) = read_events(&client, &stream).await;
    assert_eq!(got.len(), all.len() + 1);
    let parent: Vec<&Read> = got
        .iter()
        .filter(|r| r.shard_id == "shardId-000000000000")
        .collect();
    assert_eq!(parent.len(), before.len());
    let mut read: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in parent
        .iter()
        .copied()
        .chain(got.iter().filter(|r| r.shard_id != "shardId-000000000000"))
    {
        if r.event.event_id != probe.event_id {
            read.entry(r.partition_key.clone())
                .or_default()
                .push(r.event.event_id);
        }
    }
    let mut want: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for e in all {
        want.entry(e.partition_key()).or_default().push(e.event_id);
    }
    assert_eq!(read, want);
    assert!(dead.letters().is_empty());
}
