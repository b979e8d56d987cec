//! The archive under long tails: a batch over thousands of partitions, and
//! compaction with one partition fed all day, on the in-memory ports behind a fixed
//! latency per object-store call (S3's is ~20 ms per PUT/COPY/DELETE).
//!
//! `cargo run --release -p flyhigh-benches --bin archive-long-tail [-- --partitions N --latency-ms M]`
//!
//! 1. **Batch**: one shard's batch whose N events are dated an hour apart (N
//!    partitions), archived by the handler as it was before (one part, one call at
//!    a time: its commit is refused, as DynamoDB refuses an item past 400 KB) and
//!    as it is (parts, calls concurrent): parts, commits, time.
//! 2. **Compaction**: 24 hourly runs, each after a new hour of three partitions
//!    closed and late events landed in hour 0, with a budget of
//!    `--partitions-per-run` partitions (4 by default): the time of each run, and
//!    how many closed hours were left without a compaction.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use flyhigh_core::KinesisRecord;
use flyhigh_core::archive::{DataFile, FileKind, PartLimits};
use flyhigh_core::memory::{MemoryArchiveCheckpoints, MemoryDeadLetters, MemoryObjectStore};
use flyhigh_core::ports::{ObjectInfo, ObjectStore, StoreError};
use flyhigh_handlers::{ArchiveHandler, Compactor};
use flyhigh_schemas::Envelope;
use flyhigh_simulator::{SimConfig, Simulator};

/// The in-memory store, each call taking `latency`.
struct Slow {
    inner: MemoryObjectStore,
    latency: Duration,
}

impl ObjectStore for Slow {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        tokio::time::sleep(self.latency).await;
        self.inner.put(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        tokio::time::sleep(self.latency).await;
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        tokio::time::sleep(self.latency).await;
        self.inner.list(prefix).await
    }
    async fn promote(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        // A copy and a delete.
        tokio::time::sleep(self.latency * 2).await;
        self.inner.promote(from, to).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        tokio::time::sleep(self.latency).await;
        self.inner.delete(keys).await
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

fn events(seed: u64, n: usize) -> Vec<Envelope> {
    Simulator::new(SimConfig::new(seed, n))
        .expect("simulator")
        .take(n)
        .collect()
}

fn record(i: usize, e: &Envelope) -> KinesisRecord {
    KinesisRecord {
        shard_id: "shardId-000000000000".into(),
        sequence_number: format!("495903382714902566085596925383615710959215759891{i:08}"),
        partition_key: e.partition_key(),
        approximate_arrival: Some(e.occurred_at),
        data: e.to_json(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let partitions = arg("--partitions", 3_000) as usize;
    let latency = Duration::from_millis(arg("--latency-ms", 20));
    let per_run = arg("--partitions-per-run", 4) as usize;

    // 1. A batch over `partitions` partitions.
    let start = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
    let records: Vec<KinesisRecord> = events(51, partitions)
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.occurred_at = start - chrono::Duration::hours(i as i64);
            record(i + 1, &e)
        })
        .collect();
    println!(
        "batch of {} records over {partitions} partitions, {latency:?} per store call",
        records.len()
    );
    println!("| | parts | commits | files | result | time |");
    println!("|---|---|---|---|---|---|");
    for (name, limits, concurrency) in [
        (
            "before: one part, one call at a time",
            PartLimits {
                max_pending_bytes: usize::MAX,
                max_files: usize::MAX,
            },
            1,
        ),
        (
            "now: parts, 32 calls at a time",
            PartLimits::default(),
            flyhigh_core::archive::S3_CONCURRENCY,
        ),
    ] {
        let objects = Slow {
            inner: MemoryObjectStore::new(),
            latency,
        };
        let (checkpoints, letters) = (MemoryArchiveCheckpoints::new(), MemoryDeadLetters::new());
        let handler = ArchiveHandler::new(&objects, &checkpoints, &letters)
            .with_part_limits(limits)
            .with_concurrency(concurrency);
        let started = Instant::now();
        let outcome = handler.process(&records).await;
        let took = started.elapsed();
        let stats = handler.stats();
        let result = match &outcome.error {
            None => "committed".to_string(),
            Some(e) => format!("failed: {}", e.chars().take(60).collect::<String>()),
        };
        println!(
            "| {name} | {} | {} | {} | {result} | {:.2} s |",
            stats.parts,
            stats.parts,
            stats.files,
            took.as_secs_f64()
        );
    }

    // 2. Compaction with hour 0 fed all day.
    let objects = Slow {
        inner: MemoryObjectStore::new(),
        latency,
    };
    let checkpoints = MemoryArchiveCheckpoints::new();
    let letters = MemoryDeadLetters::new();
    let handler = ArchiveHandler::new(&objects, &checkpoints, &letters);
    let day = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let all = events(52, 25 * 2 * 2_000);
    let mut chunks = all.chunks(2_000);
    let mut seq = 0;
    let mut archive = |hour: i64, chunk: &[Envelope]| {
        let records: Vec<KinesisRecord> = chunk
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.occurred_at = day + chrono::Duration::hours(hour) + chrono::Duration::minutes(7);
                seq += 1;
                record(seq, &e)
            })
            .collect();
        records
    };
    let first = archive(0, chunks.next().unwrap());
    assert_eq!(handler.process(&first).await.first_failed, None);
    let compactor = Compactor::new(&objects)
        .with_target_bytes(64 * 1024)
        .with_max_partitions_per_run(per_run);
    let run_at =
        |hour: i64| day + chrono::Duration::hours(hour + 1) + chrono::Duration::minutes(20);
    compactor
        .compact_closed(run_at(0))
        .await
        .expect("compaction");
    println!();
    println!(
        "compaction, {per_run} partitions per run, hour 0 fed every hour ({} events an hour, as many late)",
        2_000
    );
    let (mut slowest, mut total, mut left_behind) = (Duration::ZERO, Duration::ZERO, 0);
    for hour in 1..=24 {
        let fresh = archive(hour, chunks.next().unwrap());
        let late = archive(0, chunks.next().unwrap());
        assert_eq!(handler.process(&fresh).await.first_failed, None);
        assert_eq!(handler.process(&late).await.first_failed, None);
        let started = Instant::now();
        let report = compactor
            .compact_closed(run_at(hour))
            .await
            .expect("compaction");
        let took = started.elapsed();
        slowest = slowest.max(took);
        total += took;
        let uncompacted: std::collections::BTreeSet<String> = objects
            .inner
            .list("event_type=")
            .await
            .expect("list")
            .iter()
            .filter_map(|o| DataFile::parse(&o.key))
            .filter(|f| f.kind == FileKind::Batch && f.partition.hour != 0)
            .map(|f| f.partition.path())
            .collect();
        left_behind += uncompacted.len();
        println!(
            "run {hour:2}: {} compacted, {} deferred, {} newer hours left uncompacted, {:.2} s",
            report.compacted.len(),
            report.deferred.len(),
            uncompacted.len(),
            took.as_secs_f64()
        );
    }
    println!(
        "24 runs: slowest {:.2} s, mean {:.2} s, newer partitions left uncompacted after their run: {left_behind}",
        slowest.as_secs_f64(),
        total.as_secs_f64() / 24.0
    );
}
