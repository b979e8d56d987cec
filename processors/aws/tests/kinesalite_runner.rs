//! The runner over kinesalite through the real SDK, with a reshard while it runs:
//! simulated events → Kinesis (kinesalite) → `KinesisSource` → `Runner` → the real
//! inventory handler over SQLite, with `SplitShard` in the middle of the traffic.
//!
//! It checks what the lineage promises: no record lost or counted twice (the stored
//! inventory equals the independent recomputation, and every sequence number put is
//! delivered exactly once), and every record of the split shard delivered before
//! any record of its children.
//!
//! Needs `FLYHIGH_KINESALITE_URL` (`scripts/kinesalite.sh start && source
//! target/kinesalite.env`). kinesalite rather than moto: moto never ends a closed
//! shard, and kinesalite lists shards only by stream name, which this also pins.

#![cfg(feature = "kinesis")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_types::Blob;
use flyhigh_aws::kinesis::KinesisSource;
use flyhigh_core::InventoryStore;
use flyhigh_core::memory::MemoryDeadLetters;
use flyhigh_embedded::SqliteInventoryStore;
use flyhigh_handlers::InventoryHandler;
use flyhigh_runner::source::StreamSource;
use flyhigh_runner::{MappingConfig, Runner, handler_fn};
use flyhigh_schemas::Envelope;
use flyhigh_simulator::{SimConfig, Simulator, compare, expected_inventory};
use flyhigh_testkit::{
    create_stream, kinesalite_url, kinesis_client, unique_name, wait_until_active,
};

const EVENTS: usize = 3_000;
const PARENT: &str = "shardId-000000000000";

use flyhigh_runner::failure::MemoryFailures as Failures;

/// Puts events as plain JSON records (one envelope each), 500 per request, keyed
/// as the design says; returns (shard id, sequence number) of each.
async fn put(client: &Client, stream: &str, events: &[Envelope]) -> Vec<(String, String)> {
    let mut written = Vec::new();
    for chunk in events.chunks(500) {
        let entries = chunk
            .iter()
            .map(|e| {
                PutRecordsRequestEntry::builder()
                    .partition_key(e.partition_key())
                    .data(Blob::new(serde_json::to_vec(e).unwrap()))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .expect("put records");
        assert_eq!(
            out.failed_record_count(),
            Some(0),
            "kinesalite never fails a record"
        );
        written.extend(out.records().iter().map(|r| {
            (
                r.shard_id().unwrap().to_string(),
                r.sequence_number().unwrap().to_string(),
            )
        }));
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_while_the_runner_reads_loses_nothing_counts_nothing_twice_and_keeps_lineage() {
    let client = kinesis_client(&kinesalite_url());
    let stream = unique_name("runner-split");
    create_stream(&client, &stream, 2)
        .await
        .expect("create stream");

    let mut sim = Simulator::new(SimConfig::new(11, EVENTS)).unwrap();
    let schedule = sim.schedule();
    let events: Vec<Envelope> = sim.by_ref().collect();
    let store = SqliteInventoryStore::open_in_memory().unwrap();
    store.load_schedule(&schedule).await.unwrap();
    let handler = InventoryHandler::new(store, MemoryDeadLetters::new());

    // Every delivered record as (shard, sequence number), in invocation order.
    let delivered: Mutex<Vec<(String, String)>> = Mutex::default();
    let invoke = handler_fn(|event| {
        let (handler, delivered) = (&handler, &delivered);
        async move {
            delivered
                .lock()
                .unwrap()
                .extend(event.records.iter().map(|r| {
                    let id = r.event_id.clone().unwrap_or_default();
                    let shard = id.split(':').next().unwrap_or_default().to_string();
                    (shard, r.kinesis.sequence_number.clone())
                }));
            Ok(handler.handle(event).await)
        }
    });
    let runner = Runner::new(MappingConfig {
        batch_size: 25,
        idle_timeout: Some(Duration::from_secs(3)),
        poll_interval: Duration::from_millis(50),
        shard_refresh_interval: Duration::from_millis(50),
        bisect_batch_on_function_error: true,
        region: "us-east-1".into(),
        ..MappingConfig::default()
    });
    let source = KinesisSource::new(client.clone(), &stream);
    let failures = Failures::default();

    let traffic = async {
        let (first, second) = events.split_at(EVENTS / 2);
        let mut written = put(&client, &stream, first).await;
        // Split once the runner is reading the parent.
        while runner.stats().records_done == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client
            .split_shard()
            .stream_name(&stream)
            .shard_to_split(PARENT)
            .new_starting_hash_key((u128::MAX / 4).to_string())
            .send()
            .await
            .expect("split shard");
        wait_until_active(&client, &stream)
            .await
            .expect("active after split");
        written.extend(put(&client, &stream, second).await);
        written
    };
    let (stats, written) = tokio::join!(runner.run(&source, &invoke, &failures), traffic);
    let stats = stats.expect("runner");

    // The split happened and the children took records.
    let shards = source.shards().await.unwrap();
    let children: BTreeSet<String> = shards
        .iter()
        .filter(|s| s.parents().any(|p| p == PARENT))
        .map(|s| s.shard_id.clone())
        .collect();
    assert_eq!(children.len(), 2, "{shards:?}");
    let per_shard = |list: &[(String, String)]| {
        let mut map: BTreeMap<String, usize> = BTreeMap::new();
        for (shard, _) in list {
            *map.entry(shard.clone()).or_default() += 1;
        }
        map
    };
    let written_per_shard = per_shard(&written);
    assert!(
        children
            .iter()
            .all(|c| written_per_shard.get(c).is_some_and(|&n| n > 0)),
        "{written_per_shard:?}"
    );
    assert!(written_per_shard.get(PARENT).is_some_and(|&n| n > 0));

    // Every record put was delivered exactly once.
    let delivered = delivered.into_inner().unwrap();
    let mut sorted = delivered.clone();
    sorted.sort();
    let mut expected = written.clone();
    expected.sort();
    assert_eq!(
        sorted.len(),
        delivered.iter().collect::<BTreeSet<_>>().len(),
        "a record delivered twice"
    );
    assert_eq!(sorted, expected, "delivered = written");
    assert_eq!(stats.records_done, EVENTS as u64);
    assert!(failures.sent().is_empty());
    assert!(stats.shards_finished >= 1, "{stats:?}");

    // Every parent record before any child record.
    let last_parent = delivered.iter().rposition(|(s, _)| s == PARENT).unwrap();
    let first_child = delivered
        .iter()
        .position(|(s, _)| children.contains(s))
        .unwrap();
    assert!(
        last_parent < first_child,
        "parent record at {last_parent}, child record at {first_child}"
    );

    // And the inventory is exactly the recomputation from the events sent.
    let stored = handler.store().inventory().await.unwrap();
    let differences = compare(&expected_inventory(&events), &stored);
    assert!(differences.is_empty(), "{differences:?}");
}
