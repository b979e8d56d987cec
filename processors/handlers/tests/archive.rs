//! The archive processor end to end in memory: the real [`ArchiveHandler`] and
//! [`Compactor`] on the ports' in-memory adapters, fed simulated days as Kinesis
//! batches per shard, redelivered, retried from checkpoints, raced, crashed.
//!
//! The reference is the simulator's events; the files are read back with
//! `flyhigh_core::archive::read_file` (pyarrow and DuckDB read them in the
//! embedded and moto tests).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{Duration, TimeZone, Utc};
use flyhigh_core::archive::{ArchivedEvent, DataFile, FileKind, ParquetOptions, read_file};
use flyhigh_core::memory::{MemoryArchiveCheckpoints, MemoryDeadLetters, MemoryObjectStore};
use flyhigh_core::ports::{ArchiveCheckpoints, ObjectInfo, ObjectStore};
use flyhigh_core::{KinesisRecord, StoreError};
use flyhigh_handlers::{ArchiveHandler, Compactor};
use flyhigh_schemas::Envelope;
use flyhigh_simulator::{SimConfig, Simulator};

const SHARDS: u128 = 3;

/// A simulated day as Kinesis records per shard, and its events.
fn day(seed: u64, events: usize) -> (Vec<Vec<KinesisRecord>>, Vec<Envelope>) {
    let events: Vec<Envelope> = Simulator::new(SimConfig::new(seed, events))
        .unwrap()
        .collect();
    let mut shards: Vec<Vec<KinesisRecord>> = (0..SHARDS).map(|_| Vec::new()).collect();
    for e in &events {
        let key = e.partition_key();
        let shard = (flyhigh_schemas::hash_key(&key) / (u128::MAX / SHARDS + 1)) as usize;
        let seq = shards[shard].len() + 1;
        shards[shard].push(record(shard, seq, e));
    }
    (shards, events)
}

fn record(shard: usize, seq: usize, e: &Envelope) -> KinesisRecord {
    KinesisRecord {
        shard_id: format!("shardId-{shard:012}"),
        // Kinesis-like: long and increasing; the length grows past 9, 99, ... so
        // that an order by text would be wrong.
        sequence_number: format!("4959{seq}"),
        partition_key: e.partition_key(),
        approximate_arrival: Some(e.occurred_at + Duration::milliseconds(40)),
        data: e.to_json(),
    }
}

/// Every row in the visible data files (staged copies excluded).
async fn visible_rows(store: &MemoryObjectStore) -> Vec<ArchivedEvent> {
    let mut out = Vec::new();
    for (key, bytes) in store.objects() {
        if let Some(file) = DataFile::parse(&key) {
            out.extend(read_file(file.partition.table, bytes).unwrap());
        }
    }
    out
}

fn ids(rows: &[ArchivedEvent]) -> Vec<String> {
    let mut ids: Vec<String> = rows.iter().map(|r| r.event.event_id.to_string()).collect();
    ids.sort();
    ids
}

fn event_ids(events: &[Envelope]) -> Vec<String> {
    let mut ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    ids.sort();
    ids
}

type Handler<'a> =
    ArchiveHandler<&'a MemoryObjectStore, &'a MemoryArchiveCheckpoints, &'a MemoryDeadLetters>;

fn handler<'a>(
    objects: &'a MemoryObjectStore,
    checkpoints: &'a MemoryArchiveCheckpoints,
    letters: &'a MemoryDeadLetters,
) -> Handler<'a> {
    ArchiveHandler::new(objects, checkpoints, letters)
}

#[tokio::test]
async fn every_event_lands_once_with_its_columns() {
    let (shards, events) = day(7, 3_000);
    let (objects, checkpoints, letters) = Default::default();
    let h = handler(&objects, &checkpoints, &letters);
    for shard in &shards {
        for batch in shard.chunks(250) {
            assert_eq!(h.process(batch).await.first_failed, None);
        }
    }
    let rows = visible_rows(&objects).await;
    assert_eq!(ids(&rows), event_ids(&events));
    // The row is the event, and says where its record was.
    let by_id: HashMap<String, &Envelope> =
        events.iter().map(|e| (e.event_id.to_string(), e)).collect();
    for row in &rows {
        assert_eq!(&row.event, by_id[&row.event.event_id.to_string()]);
        assert!(row.shard_id.starts_with("shardId-"));
        assert!(row.sequence_number.starts_with("4959"));
        assert_eq!(
            row.arrived_at,
            Some(row.event.occurred_at + Duration::milliseconds(40))
        );
    }
    // Every file is in its event's partition, and its rows in order.
    for (key, bytes) in objects.objects() {
        let Some(file) = DataFile::parse(&key) else {
            panic!("{key}: only data files are left visible, nothing staged");
        };
        assert_eq!(file.kind, FileKind::Batch);
        let rows = read_file(file.partition.table, bytes).unwrap();
        for w in rows.windows(2) {
            assert!(
                flyhigh_core::archive::row_order(&w[0], &w[1]).is_lt(),
                "{key} is not sorted"
            );
        }
        for r in &rows {
            assert_eq!(
                flyhigh_core::archive::Partition::of(&r.event),
                file.partition
            );
        }
    }
    let stats = h.stats();
    assert_eq!(stats.rows, events.len() as u64);
    assert_eq!(stats.already_archived, 0);
}

#[tokio::test]
async fn a_batch_delivered_twice_adds_no_row() {
    let (shards, events) = day(11, 2_000);
    let (objects, checkpoints, letters) = Default::default();
    let h = handler(&objects, &checkpoints, &letters);
    for shard in &shards {
        for batch in shard.chunks(100) {
            assert_eq!(h.process(batch).await.first_failed, None);
            assert_eq!(h.process(batch).await.first_failed, None);
        }
    }
    assert_eq!(ids(&visible_rows(&objects).await), event_ids(&events));
    assert_eq!(h.stats().already_archived, events.len() as u64);
}

#[tokio::test]
async fn a_retry_from_a_checkpoint_adds_no_row() {
    let (shards, events) = day(12, 2_000);
    let (objects, checkpoints, letters) = Default::default();
    let h = handler(&objects, &checkpoints, &letters);
    for shard in &shards {
        // Batches that overlap the one before by a third, as a retry from a record
        // in the middle of a batch (or a replay from an older checkpoint) delivers.
        let mut start = 0;
        while start < shard.len() {
            let end = (start + 90).min(shard.len());
            assert_eq!(h.process(&shard[start..end]).await.first_failed, None);
            if end == shard.len() {
                break;
            }
            start = end - 30;
        }
    }
    assert_eq!(ids(&visible_rows(&objects).await), event_ids(&events));
}

#[tokio::test]
async fn a_failure_at_each_step_reports_the_batch_and_the_retry_completes_it() {
    let (shards, events) = day(13, 1_500);
    for step in ["load", "put", "commit", "promote"] {
        let (objects, checkpoints, letters): (
            MemoryObjectStore,
            MemoryArchiveCheckpoints,
            MemoryDeadLetters,
        ) = Default::default();
        let h = handler(&objects, &checkpoints, &letters);
        for shard in &shards {
            for (i, batch) in shard.chunks(120).enumerate() {
                if i == 1 {
                    match step {
                        "load" => checkpoints.fail_next_loads(1),
                        "put" => objects.fail_next_puts(1),
                        "commit" => checkpoints.fail_next_saves(1),
                        _ => objects.fail_next_promotes(1),
                    }
                }
                let outcome = h.process(batch).await;
                if i == 1 {
                    assert_eq!(
                        outcome.first_failed,
                        Some(0),
                        "{step}: the whole batch is retried"
                    );
                    // What a query sees is still exactly what was committed before.
                    let seen = visible_rows(&objects).await;
                    let unique: HashSet<String> = ids(&seen).into_iter().collect();
                    assert_eq!(unique.len(), seen.len(), "{step}: a row twice");
                    assert_eq!(
                        h.process(batch).await.first_failed,
                        None,
                        "{step}: the retry"
                    );
                } else {
                    assert_eq!(outcome.first_failed, None, "{step}");
                }
            }
        }
        assert_eq!(
            ids(&visible_rows(&objects).await),
            event_ids(&events),
            "{step}"
        );
        if step == "promote" {
            assert!(
                h.stats().recovered_files > 0,
                "the retry promoted the pending files"
            );
        }
    }
}

#[tokio::test]
async fn a_crash_between_commit_and_promotion_is_finished_by_the_next_consumer() {
    let (shards, events) = day(14, 800);
    let (objects, checkpoints, letters) = Default::default();
    {
        let first = handler(&objects, &checkpoints, &letters);
        objects.fail_next_promotes(1);
        assert_eq!(first.process(&shards[0]).await.first_failed, Some(0));
    }
    // The committed rows are not visible yet: pending in the checkpoint.
    assert!(
        !checkpoints
            .get("shardId-000000000000")
            .unwrap()
            .pending
            .is_empty()
    );
    // Another consumer (a new Lambda instance) takes the shard over.
    let second = handler(&objects, &checkpoints, &letters);
    for shard in &shards {
        assert_eq!(second.process(shard).await.first_failed, None);
    }
    assert_eq!(ids(&visible_rows(&objects).await), event_ids(&events));
    assert!(second.stats().recovered_files > 0);
    assert!(
        checkpoints
            .get("shardId-000000000000")
            .unwrap()
            .pending
            .is_empty()
    );
}

/// A store wrapper that yields to the scheduler before every call, so two consumers
/// on one runtime interleave at every store call.
struct Yielding<T>(T);

impl<T: ObjectStore> ObjectStore for Yielding<T> {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.put(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        tokio::task::yield_now().await;
        self.0.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        tokio::task::yield_now().await;
        self.0.list(prefix).await
    }
    async fn promote(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        tokio::task::yield_now().await;
        self.0.promote(from, to).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        tokio::task::yield_now().await;
        self.0.delete(keys).await
    }
}

impl<T: ArchiveCheckpoints> ArchiveCheckpoints for Yielding<T> {
    async fn load(
        &self,
        shard_id: &str,
    ) -> Result<Option<flyhigh_core::archive::ArchiveCheckpoint>, StoreError> {
        tokio::task::yield_now().await;
        self.0.load(shard_id).await
    }
    async fn save(
        &self,
        shard_id: &str,
        next: &flyhigh_core::archive::ArchiveCheckpoint,
    ) -> Result<bool, StoreError> {
        tokio::task::yield_now().await;
        self.0.save(shard_id, next).await
    }
}

#[tokio::test]
async fn two_consumers_racing_on_a_shard_archive_each_record_once() {
    let (shards, events) = day(15, 1_200);
    let objects = Yielding(MemoryObjectStore::new());
    let checkpoints = Yielding(MemoryArchiveCheckpoints::new());
    let letters = MemoryDeadLetters::new();
    let a = ArchiveHandler::new(&objects, &checkpoints, &letters);
    let b = ArchiveHandler::new(&objects, &checkpoints, &letters);
    for shard in &shards {
        // Both get overlapping batches of the same shard at once, with different
        // sizes, as a lease handover or a duplicate invocation would.
        let mut start = 0;
        while start < shard.len() {
            let end_a = (start + 60).min(shard.len());
            let end_b = (start + 85).min(shard.len());
            let (ra, rb) = tokio::join!(
                a.process(&shard[start..end_a]),
                b.process(&shard[start..end_b])
            );
            // A loser retries until the checkpoint settles; either way both succeed.
            assert_eq!((ra.first_failed, rb.first_failed), (None, None));
            start = end_a.max(end_b);
        }
    }
    let rows = visible_rows(&objects.0).await;
    assert_eq!(ids(&rows), event_ids(&events));
    assert!(
        a.stats().commit_conflicts + b.stats().commit_conflicts > 0,
        "the consumers did race for the checkpoint"
    );
}

#[tokio::test]
async fn poison_is_dead_lettered_and_not_again_once_its_batch_is_archived() {
    let (mut shards, events) = day(16, 600);
    let shard = &mut shards[0];
    let n = shard.len();
    for (i, garbage) in [
        (3usize, b"not json".to_vec()),
        (n / 2, b"{\"event_type\":\"refund\"}".to_vec()),
    ] {
        shard[i].data = garbage;
    }
    let poisoned: HashSet<String> = [3usize, n / 2]
        .iter()
        .map(|i| shard[*i].sequence_number.clone())
        .collect();
    let (objects, checkpoints, letters) = Default::default();
    let h = handler(&objects, &checkpoints, &letters);
    for batch in shards[0].chunks(50) {
        assert_eq!(h.process(batch).await.first_failed, None);
        assert_eq!(h.process(batch).await.first_failed, None);
    }
    let sent: Vec<String> = letters
        .letters()
        .iter()
        .map(|l| l.sequence_number.clone())
        .collect();
    assert_eq!(
        sent.len(),
        2,
        "each poison record once, redeliveries included: {sent:?}"
    );
    assert_eq!(sent.iter().cloned().collect::<HashSet<_>>(), poisoned);
    assert!(letters.letters().iter().all(|l| l.processor == "archive"));
    let archived = visible_rows(&objects).await.len();
    let expected = shards[0].len() - 2;
    assert_eq!(archived, expected);
    let _ = events;
}

// ---- compaction ----

/// The day archived in small batches, every batch delivered twice, plus Kinesis-level
/// duplicates: some events written again by a producer retry (same `event_id`, new
/// sequence number).
async fn archived_day(
    seed: u64,
    n: usize,
    options: &ParquetOptions,
) -> (MemoryObjectStore, Vec<Envelope>) {
    let (mut shards, events) = day(seed, n);
    for (s, shard) in shards.iter_mut().enumerate() {
        let again: Vec<Envelope> = shard
            .iter()
            .step_by(37)
            .map(|r| flyhigh_schemas::decode(&r.data).unwrap())
            .collect();
        for e in again {
            let seq = shard.len() + 1;
            shard.push(record(s, seq, &e));
        }
    }
    let (objects, checkpoints, letters): (
        MemoryObjectStore,
        MemoryArchiveCheckpoints,
        MemoryDeadLetters,
    ) = Default::default();
    {
        let h = ArchiveHandler::new(&objects, &checkpoints, &letters).with_options(options.clone());
        for shard in &shards {
            for batch in shard.chunks(64) {
                assert_eq!(h.process(batch).await.first_failed, None);
                assert_eq!(h.process(batch).await.first_failed, None);
            }
        }
    }
    (objects, events)
}

fn after_the_day() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap()
}

fn small_files() -> ParquetOptions {
    ParquetOptions {
        write_batch_rows: 32,
        ..ParquetOptions::default()
    }
}

const TARGET: u64 = 12 * 1024;

#[tokio::test]
async fn compaction_leaves_full_files_and_one_remainder_and_no_duplicate() {
    let options = small_files();
    let (objects, events) = archived_day(21, 6_000, &options).await;
    let before = visible_rows(&objects).await;
    assert!(
        before.len() > events.len(),
        "the day carries Kinesis-level duplicates"
    );
    let compactor = Compactor::new(&objects)
        .with_target_bytes(TARGET)
        .with_options(options.clone());
    let report = compactor.compact_closed(after_the_day()).await.unwrap();
    assert!(report.duplicates_dropped() > 0);
    assert_eq!(
        report.duplicates_dropped() as usize,
        before.len() - events.len()
    );
    assert_eq!(ids(&visible_rows(&objects).await), event_ids(&events));
    let mut small_per_partition: BTreeMap<String, usize> = BTreeMap::new();
    for info in objects.list("").await.unwrap() {
        let file = DataFile::parse(&info.key).expect("only data files");
        assert_eq!(file.kind, FileKind::Compacted, "{}", info.key);
        if info.size < TARGET {
            *small_per_partition
                .entry(file.partition.path())
                .or_default() += 1;
        }
        let rows = read_file(
            file.partition.table,
            objects.get(&info.key).await.unwrap().unwrap(),
        )
        .unwrap();
        for w in rows.windows(2) {
            assert!(flyhigh_core::archive::row_order(&w[0], &w[1]).is_lt());
        }
    }
    assert!(
        small_per_partition.values().all(|n| *n <= 1),
        "{small_per_partition:?}"
    );
    assert!(
        report.compacted.iter().any(|p| p.files_written > 1),
        "some partition split at the target"
    );
    // A second run finds nothing to do.
    let again = compactor.compact_closed(after_the_day()).await.unwrap();
    assert!(again.compacted.is_empty(), "{again:?}");
}

#[tokio::test]
async fn compaction_waits_for_the_hour_to_close() {
    let options = small_files();
    let (objects, _) = archived_day(22, 1_000, &options).await;
    let compactor = Compactor::new(&objects).with_target_bytes(TARGET);
    // Twenty minutes into the day, only the first hour... has not closed (grace 15 min).
    let early = Utc.with_ymd_and_hms(2026, 12, 1, 1, 10, 0).unwrap();
    let report = compactor.compact_closed(early).await.unwrap();
    assert_eq!(report.closed, 0);
    let later = Utc.with_ymd_and_hms(2026, 12, 1, 1, 15, 0).unwrap();
    let report = compactor.compact_closed(later).await.unwrap();
    assert_eq!(report.closed, 3, "hour 00 of the three tables");
}

#[tokio::test]
async fn compaction_is_deterministic() {
    let options = small_files();
    let (a, _) = archived_day(23, 2_500, &options).await;
    let (b, _) = archived_day(23, 2_500, &options).await;
    assert_eq!(
        a.objects(),
        b.objects(),
        "the same batches give the same batch files"
    );
    for store in [&a, &b] {
        Compactor::new(store)
            .with_target_bytes(TARGET)
            .compact_closed(after_the_day())
            .await
            .unwrap();
    }
    assert_eq!(
        a.objects(),
        b.objects(),
        "and the same compacted files, byte for byte"
    );
}

/// A store that fails every mutation after the first `allowed` ones, as if the
/// compactor crashed there.
struct CrashAfter<'a> {
    inner: &'a MemoryObjectStore,
    allowed: AtomicI64,
}

impl CrashAfter<'_> {
    fn step(&self) -> Result<(), StoreError> {
        if self.allowed.fetch_sub(1, Ordering::SeqCst) <= 0 {
            Err(StoreError::Transient("crashed here".into()))
        } else {
            Ok(())
        }
    }
}

impl ObjectStore for CrashAfter<'_> {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.step()?;
        self.inner.put(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn promote(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        self.step()?;
        self.inner.promote(from, to).await
    }
    async fn delete(&self, keys: &[String]) -> Result<(), StoreError> {
        // One key at a time, so a crash can fall between any two deletes.
        for key in keys {
            self.step()?;
            self.inner.delete(std::slice::from_ref(key)).await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_compaction_crash_at_each_step_loses_nothing_and_a_rerun_finishes() {
    let options = small_files();
    let (pristine, _) = archived_day(24, 3_000, &options).await;
    // The busiest partition, compacted into about four files, so that a crash can
    // fall before the first output, between two outputs, between outputs and
    // deletes, and between any two deletes.
    let (partition, _) = {
        let mut sizes: BTreeMap<flyhigh_core::archive::Partition, u64> = BTreeMap::new();
        for info in pristine.list("").await.unwrap() {
            *sizes
                .entry(DataFile::parse(&info.key).unwrap().partition)
                .or_default() += info.size;
        }
        sizes.into_iter().max_by_key(|(_, s)| *s).unwrap()
    };
    let partition_ids = |store: &MemoryObjectStore| {
        let mut ids: Vec<String> = store
            .objects()
            .into_iter()
            .filter(|(k, _)| DataFile::parse(k).is_some_and(|f| f.partition == partition))
            .flat_map(|(_, bytes)| read_file(partition.table, bytes).unwrap())
            .map(|r| r.event.event_id.to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut expected = partition_ids(&pristine);
    expected.dedup();
    let unique: HashSet<String> = expected.iter().cloned().collect();
    fn compactor<'a>(
        store: &'a MemoryObjectStore,
        target: u64,
        options: &ParquetOptions,
    ) -> Compactor<&'a MemoryObjectStore> {
        Compactor::new(store)
            .with_target_bytes(target)
            .with_options(options.clone())
    }

    // The partition in one file, to size the target at a quarter of it.
    let one = copy_of(&pristine).await;
    let whole = compactor(&one, u64::MAX, &options)
        .compact_partition(partition)
        .await
        .unwrap()
        .unwrap();
    let target = whole.bytes_written / 4;
    // A full run, to count its mutations (puts, then one delete per merged file).
    let probe = copy_of(&pristine).await;
    let full = compactor(&probe, target, &options)
        .compact_partition(partition)
        .await
        .unwrap()
        .unwrap();
    assert!(full.files_written >= 3, "{full:?}");
    assert_eq!(partition_ids(&probe), expected);
    let mutations = (full.files_written + full.files_merged) as i64;
    for allowed in 0..mutations {
        let store = copy_of(&pristine).await;
        let crashing = CrashAfter {
            inner: &store,
            allowed: AtomicI64::new(allowed),
        };
        assert!(
            Compactor::new(&crashing)
                .with_target_bytes(target)
                .with_options(options.clone())
                .compact_partition(partition)
                .await
                .is_err(),
            "a crash after {allowed} of {mutations} mutations"
        );
        // Still reads, nothing missing (rows may be doubled until the rerun).
        let seen: HashSet<String> = partition_ids(&store).into_iter().collect();
        assert_eq!(seen, unique, "crash after {allowed} mutations lost rows");
        compactor(&store, target, &options)
            .compact_partition(partition)
            .await
            .unwrap();
        assert_eq!(
            partition_ids(&store),
            expected,
            "rerun after a crash at {allowed}"
        );
        assert!(
            compactor(&store, target, &options)
                .compact_partition(partition)
                .await
                .unwrap()
                .is_none(),
            "the rerun finished the job (crash at {allowed})"
        );
        let small = store
            .list(&format!("{}/", partition.path()))
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.size < target)
            .count();
        assert!(
            small <= 1,
            "one remainder at most after a crash at {allowed}"
        );
    }
}

/// A store holding the same objects as `store`.
async fn copy_of(store: &MemoryObjectStore) -> MemoryObjectStore {
    let copy = MemoryObjectStore::new();
    for (key, bytes) in store.objects() {
        copy.put(&key, bytes).await.unwrap();
    }
    copy
}

/// Regression: checkpoints were keyed by shard id alone, so pointing the mapping at
/// another stream (whose shard ids and low sequence numbers start over) skipped its
/// records as archived.
#[tokio::test]
async fn checkpoints_of_two_streams_with_the_same_shard_ids_are_apart() {
    let (first, first_events) = day(41, 400);
    let (second, second_events) = day(42, 400);
    let (objects, checkpoints, letters) = Default::default();
    let h = handler(&objects, &checkpoints, &letters);
    for (stream, shards) in [
        ("arn:aws:kinesis:eu-west-1:1:stream/old", &first),
        ("arn:aws:kinesis:eu-west-1:1:stream/new", &second),
    ] {
        for shard in shards.iter() {
            assert_eq!(h.process_stream(stream, shard).await.first_failed, None);
        }
    }
    let mut expected = event_ids(&first_events);
    expected.extend(event_ids(&second_events));
    expected.sort();
    assert_eq!(ids(&visible_rows(&objects).await), expected);
    assert!(
        checkpoints
            .get("arn:aws:kinesis:eu-west-1:1:stream/new/shardId-000000000000")
            .is_some()
    );
}

// ---- long tails: batches over many partitions, deadlines, compaction budgets ----

/// One shard's records whose events are dated one hour apart back from `start`
/// (before the simulated day, so their flights are still ahead): as many partitions
/// as events (a client with a random clock, a replayed month).
fn spread_over_hours(seed: u64, n: usize, start: chrono::DateTime<Utc>) -> Vec<KinesisRecord> {
    let events: Vec<Envelope> = Simulator::new(SimConfig::new(seed, n))
        .unwrap()
        .take(n)
        .collect();
    events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.occurred_at = start - Duration::hours(i as i64);
            KinesisRecord {
                // Kinesis's own length (56 digits): a batch file's key names two.
                sequence_number: format!(
                    "495903382714902566085596925383615710959215759891{:08}",
                    i + 1
                ),
                ..record(0, i + 1, &e)
            }
        })
        .collect()
}

fn record_ids(records: &[KinesisRecord]) -> Vec<String> {
    let events: Vec<Envelope> = records
        .iter()
        .map(|r| flyhigh_schemas::decode(&r.data).unwrap())
        .collect();
    event_ids(&events)
}

#[tokio::test]
async fn an_archive_batch_spanning_thousands_of_hours_commits_in_parts_that_fit_the_checkpoint_item()
 {
    // The bug: one checkpoint item listed every file of the batch; past ~2,000
    // partitions it was larger than DynamoDB's 400 KB, the commit failed every
    // time and the shard's archive stopped.
    let start = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
    let records = spread_over_hours(31, 3_100, start);
    let (objects, checkpoints, letters) = Default::default();
    let h = handler(&objects, &checkpoints, &letters);
    assert_eq!(h.process(&records).await.first_failed, None);
    assert!(checkpoints.largest_pending_bytes() <= flyhigh_core::archive::MAX_PENDING_BYTES);
    assert!(checkpoints.largest_pending_bytes() > 0);
    assert_eq!(ids(&visible_rows(&objects).await), record_ids(&records));
    // Redelivered whole, and retried from a record in the middle: no row more.
    assert_eq!(h.process(&records).await.first_failed, None);
    assert_eq!(h.process(&records[1_234..]).await.first_failed, None);
    assert_eq!(ids(&visible_rows(&objects).await), record_ids(&records));
    assert_eq!(h.stats().rows, 3_100);
}

#[tokio::test]
async fn a_batch_cut_by_the_deadline_reports_its_first_unfinished_record_and_the_retry_finishes() {
    use flyhigh_core::archive::PartLimits;
    use flyhigh_handlers::Deadline;

    let start = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
    let records = spread_over_hours(32, 40, start);
    let (objects, checkpoints, letters) = Default::default();
    let limits = PartLimits {
        max_files: 8,
        ..PartLimits::default()
    };
    let h = handler(&objects, &checkpoints, &letters).with_part_limits(limits);
    // A deadline already past: one part per invocation, then the first record of
    // the next part is reported.
    let past = || Deadline::at(std::time::Instant::now());
    let outcome = h.process_stream_by("", &records, past()).await;
    assert_eq!(outcome.first_failed, Some(8));
    assert!(outcome.error.unwrap().contains("deadline"));
    assert_eq!(visible_rows(&objects).await.len(), 8);
    // Lambda retries from the reported record; each retry makes one part of progress.
    let mut from = 8;
    let mut invocations = 1;
    loop {
        let outcome = h.process_stream_by("", &records[from..], past()).await;
        invocations += 1;
        let Some(failed) = outcome.first_failed else {
            break;
        };
        from += failed;
        assert_eq!(visible_rows(&objects).await.len(), from);
    }
    assert_eq!(invocations, 5);
    assert_eq!(h.stats().deadline_stops, 4);
    assert_eq!(ids(&visible_rows(&objects).await), record_ids(&records));

    // Cut once, then retried without a deadline: the retry finishes the batch,
    // and a redelivery of the whole batch adds nothing.
    let (objects, checkpoints, letters) = Default::default();
    let h = handler(&objects, &checkpoints, &letters).with_part_limits(limits);
    let first = h.process_stream_by("", &records, past()).await.first_failed;
    assert_eq!(first, Some(8));
    assert_eq!(
        h.process_stream_by("", &records[8..], Deadline::none())
            .await
            .first_failed,
        None
    );
    assert_eq!(h.process(&records).await.first_failed, None);
    assert_eq!(ids(&visible_rows(&objects).await), record_ids(&records));
    assert_eq!(h.stats().parts, 5);
}

#[tokio::test]
async fn two_consumers_racing_on_a_shard_in_small_parts_archive_each_record_once() {
    use flyhigh_core::archive::PartLimits;

    let start = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
    let records = spread_over_hours(33, 300, start);
    let objects = Yielding(MemoryObjectStore::new());
    let checkpoints = Yielding(MemoryArchiveCheckpoints::new());
    let letters = MemoryDeadLetters::new();
    let limits = |max_files| PartLimits {
        max_files,
        ..PartLimits::default()
    };
    let a = ArchiveHandler::new(&objects, &checkpoints, &letters).with_part_limits(limits(3));
    let b = ArchiveHandler::new(&objects, &checkpoints, &letters).with_part_limits(limits(5));
    let mut start = 0;
    while start < records.len() {
        let end_a = (start + 60).min(records.len());
        let end_b = (start + 85).min(records.len());
        let (ra, rb) = tokio::join!(
            a.process(&records[start..end_a]),
            b.process(&records[start..end_b])
        );
        // A consumer losing every commit of a part reports it; the retry finishes.
        for (r, end) in [(ra, end_a), (rb, end_b)] {
            if let Some(i) = r.first_failed {
                assert_eq!(a.process(&records[start + i..end]).await.first_failed, None);
            }
        }
        start = end_a.max(end_b);
    }
    assert_eq!(ids(&visible_rows(&objects.0).await), record_ids(&records));
    assert!(a.stats().commit_conflicts + b.stats().commit_conflicts > 0);
}

/// Archives `records` into `objects` (one shard, its own checkpoints).
async fn archive_into(
    objects: &MemoryObjectStore,
    checkpoints: &MemoryArchiveCheckpoints,
    records: &[KinesisRecord],
) {
    let letters = MemoryDeadLetters::new();
    let h = ArchiveHandler::new(objects, checkpoints, &letters).with_options(small_files());
    assert_eq!(h.process(records).await.first_failed, None);
}

#[tokio::test]
async fn compaction_with_one_partition_fed_all_day_still_compacts_the_newer_hours() {
    // The bug: compaction went oldest partition first and reread every kept file,
    // so one old partition that got late events all day came first in every run
    // and used up the run's time: newer closed hours were never compacted.
    let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let objects = MemoryObjectStore::new();
    let checkpoints = MemoryArchiveCheckpoints::new();
    let events: Vec<Envelope> = Simulator::new(SimConfig::new(34, 2_400))
        .unwrap()
        .take(2_400)
        .collect();
    let mut chunks = events.chunks(50);
    let mut seq = 0;
    let mut batch = |hour: i64, chunk: &[Envelope]| -> Vec<KinesisRecord> {
        chunk
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.occurred_at = start + Duration::hours(hour) + Duration::minutes(7);
                seq += 1;
                record(0, seq, &e)
            })
            .collect()
    };
    let mut archived: Vec<KinesisRecord> = Vec::new();
    // Hour 0 is compacted once; from then on it gets late events every hour.
    let first = batch(0, chunks.next().unwrap());
    archive_into(&objects, &checkpoints, &first).await;
    archived.extend(first);
    // Four partitions per run at most (a time budget, in this model): one new hour
    // of three tables and one more.
    let compactor = Compactor::new(&objects)
        .with_target_bytes(TARGET)
        .with_options(small_files())
        .with_max_partitions_per_run(4);
    let run_at = |hour: i64| start + Duration::hours(hour + 1) + Duration::minutes(20);
    compactor.compact_closed(run_at(0)).await.unwrap();
    for hour in 1..=20 {
        // The hour's events, and late ones for hour 0.
        let fresh = batch(hour, chunks.next().unwrap());
        let late = batch(0, chunks.next().unwrap());
        archive_into(&objects, &checkpoints, &fresh).await;
        archive_into(&objects, &checkpoints, &late).await;
        archived.extend(fresh);
        archived.extend(late);
        let report = compactor.compact_closed(run_at(hour)).await.unwrap();
        assert!(report.compacted.len() <= 4, "{report:?}");
        // Every closed hour after hour 0 has been compacted by now: no batch file
        // is left in it.
        for info in objects.list("event_type=").await.unwrap() {
            let file = DataFile::parse(&info.key).unwrap();
            let age = file
                .partition
                .date
                .and_hms_opt(file.partition.hour, 0, 0)
                .unwrap()
                .and_utc();
            if age > start {
                assert_eq!(
                    file.kind,
                    FileKind::Compacted,
                    "run {hour} left {} uncompacted: {report:?}",
                    info.key
                );
            }
        }
    }
    // Once the feeding stops, hour 0 is caught up within a bounded number of runs,
    // and every event is there once.
    for _ in 0..3 {
        compactor.compact_closed(run_at(21)).await.unwrap();
    }
    let report = compactor.compact_closed(run_at(21)).await.unwrap();
    assert!(
        report.compacted.is_empty() && report.deferred.is_empty(),
        "{report:?}"
    );
    for info in objects.list("event_type=").await.unwrap() {
        assert_eq!(
            DataFile::parse(&info.key).unwrap().kind,
            FileKind::Compacted
        );
    }
    assert_eq!(ids(&visible_rows(&objects).await), record_ids(&archived));
}

#[tokio::test]
async fn a_compaction_run_past_its_deadline_does_one_partition_and_defers_the_rest() {
    use flyhigh_handlers::Deadline;

    let options = small_files();
    let (objects, events) = archived_day(22, 1_500, &options).await;
    let compactor = Compactor::new(&objects)
        .with_target_bytes(TARGET)
        .with_options(options);
    let past = || Deadline::at(std::time::Instant::now());
    let first = compactor
        .compact_closed_by(after_the_day(), past())
        .await
        .unwrap();
    assert_eq!(first.compacted.len(), 1);
    assert_eq!(first.deferred.len() + 1, first.closed);
    // Each run makes progress: one partition each, and then none is left.
    let mut runs = 1;
    loop {
        let report = compactor
            .compact_closed_by(after_the_day(), past())
            .await
            .unwrap();
        if report.compacted.is_empty() {
            break;
        }
        runs += 1;
    }
    assert_eq!(runs, first.closed);
    assert_eq!(ids(&visible_rows(&objects).await), event_ids(&events));
}

#[tokio::test]
async fn the_handler_runs_spawned_as_the_local_runner_spawns_it() {
    // A mapped stream of borrowing closures in the handler made its future fail
    // `Send` for a caller that spawns it (the demo's mapping, through the runner's
    // `handler_fn`): this only compiles while it is `Send`.
    use std::sync::Arc;
    let handler = Arc::new(ArchiveHandler::new(
        MemoryObjectStore::new(),
        MemoryArchiveCheckpoints::new(),
        MemoryDeadLetters::new(),
    ));
    let records = spread_over_hours(35, 30, Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap());
    let invoke = {
        let handler = handler.clone();
        move |records: Vec<KinesisRecord>| {
            let handler = handler.clone();
            async move { handler.process(&records).await.first_failed }
        }
    };
    let failed = tokio::spawn(async move { invoke(records).await })
        .await
        .unwrap();
    assert_eq!(failed, None);
    assert_eq!(handler.stats().rows, 30);
}
