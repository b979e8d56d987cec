//! An in-process sharded stream that behaves like Kinesis where it matters.
//!
//! Shards split the 128-bit hash-key space into equal contiguous ranges, and a record
//! lands on the shard whose range holds `MD5(partition_key)`, exactly as Kinesis
//! places records. Sequence numbers are decimal strings that increase within a
//! shard. Requests are held to the same limits as PutRecords, so code that works here
//! does not break on the real service for a limit this stream forgot.
//!
//! The producer writes through [`Transport`]; the local runner reads with
//! [`LocalStream::read`]. When the producer is done it calls [`LocalStream::close`],
//! and readers learn that a shard has ended once they have read all of it.
//!
//! Each record is stamped with its arrival time, as Kinesis stamps
//! `ApproximateArrivalTimestamp`, from the stream's clock: the wall clock by default,
//! or the pipeline's ([`LocalStream::with_clock`]; the demo's simulated day), so
//! that consumers compare arrival with event time on one clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use flyhigh_schemas::{HashKey, hash_key};
use tokio::sync::Notify;

use crate::limits::check_put_request;
use crate::rate::ShardLimits;
use crate::transport::{Entry, EntryResult, ShardInfo, Transport, TransportError};

/// A record as stored in a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Decimal sequence number, increasing within the shard.
    pub sequence_number: String,
    /// The producer's partition key.
    pub partition_key: String,
    /// When the stream accepted it, by the stream's clock.
    pub approximate_arrival: DateTime<Utc>,
    /// The bytes.
    pub data: Arc<[u8]>,
}

struct Shard {
    info: ShardInfo,
    records: RwLock<Vec<StoredRecord>>,
}

struct Inner {
    name: String,
    shards: Vec<Shard>,
    next_sequence: AtomicU64,
    closed: AtomicBool,
    appended: Notify,
    clock: RwLock<Clock>,
}

/// What stamps arrival times.
type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// An in-process Kinesis-like stream. Cheap to clone (shared).
#[derive(Clone)]
pub struct LocalStream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStream")
            .field("name", &self.inner.name)
            .field("shards", &self.inner.shards.len())
            .finish()
    }
}

/// The result of [`LocalStream::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRead {
    /// Records from the requested position, in order (possibly none yet).
    Records(Vec<StoredRecord>),
    /// The stream is closed and the shard has been read to its end.
    Ended,
}

impl LocalStream {
    /// A stream of `shard_count` shards (at least one) over equal hash-key ranges.
    pub fn new(name: impl Into<String>, shard_count: usize) -> LocalStream {
        let shards = crate::shard_map::equal_shards(shard_count)
            .into_iter()
            .map(|info| Shard {
                info,
                records: RwLock::new(Vec::new()),
            })
            .collect();
        LocalStream {
            inner: Arc::new(Inner {
                name: name.into(),
                shards,
                next_sequence: AtomicU64::new(1),
                closed: AtomicBool::new(false),
                appended: Notify::new(),
                clock: RwLock::new(Arc::new(Utc::now)),
            }),
        }
    }

    /// Stamps arrival times with `clock` instead of the wall clock (for every clone
    /// of this stream): a local pipeline that runs simulated time gives its own
    /// clock, so that arrival and event times are comparable.
    pub fn with_clock(self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        *self.inner.clock.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(clock);
        self
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// An ARN in the Kinesis format, for events built from this stream.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kinesis:local:000000000000:stream/{}",
            self.inner.name
        )
    }

    /// The shards, in hash-key order.
    pub fn shards(&self) -> Vec<ShardInfo> {
        self.inner.shards.iter().map(|s| s.info.clone()).collect()
    }

    /// The index of the shard owning a partition key.
    pub fn shard_for(&self, partition_key: &str) -> usize {
        self.shard_for_hash(hash_key(partition_key))
    }

    /// The index of the shard owning a hash key.
    pub fn shard_for_hash(&self, h: HashKey) -> usize {
        self.inner
            .shards
            .iter()
            .position(|s| h >= s.info.starting_hash_key && h <= s.info.ending_hash_key)
            .unwrap_or(0)
    }

    /// Appends records as PutRecords would: the whole request is rejected if it breaks
    /// a request limit, and each entry gets its own result.
    pub fn put(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        if self.is_closed() {
            return Err(TransportError::Permanent(format!(
                "stream {} is closed",
                self.inner.name
            )));
        }
        check_put_request(entries)?;
        let now = {
            let clock = self.inner.clock.read().unwrap_or_else(|p| p.into_inner());
            clock()
        };
        let results = entries
            .iter()
            .map(|e| {
                let shard = &self.inner.shards[self.shard_for_hash(e.hash_key())];
                let mut records = shard.records.write().unwrap_or_else(|p| p.into_inner());
                // Taken under the shard's lock, so sequence numbers increase within a shard.
                let n = self.inner.next_sequence.fetch_add(1, Ordering::Relaxed);
                let sequence_number = format!("49{n:054}");
                records.push(StoredRecord {
                    sequence_number: sequence_number.clone(),
                    partition_key: e.partition_key.clone(),
                    approximate_arrival: now,
                    data: Arc::from(e.data.as_slice()),
                });
                EntryResult::Ok {
                    shard_id: shard.info.shard_id.clone(),
                    sequence_number,
                }
            })
            .collect();
        self.inner.appended.notify_waiters();
        Ok(results)
    }

    /// Up to `limit` records of shard `shard` from position `from` (an index: the
    /// reader keeps it).
    pub fn read(&self, shard: usize, from: usize, limit: usize) -> LocalRead {
        let Some(s) = self.inner.shards.get(shard) else {
            return LocalRead::Ended;
        };
        // Read `closed` before the records: a close after this point cannot hide
        // records appended before it.
        let closed = self.is_closed();
        let records = s.records.read().unwrap_or_else(|p| p.into_inner());
        if from >= records.len() {
            return if closed {
                LocalRead::Ended
            } else {
                LocalRead::Records(Vec::new())
            };
        }
        let end = records.len().min(from.saturating_add(limit));
        LocalRead::Records(records[from..end].to_vec())
    }

    /// Waits until records are appended or the stream is closed, or `timeout` passes.
    pub async fn wait_for_records(&self, timeout: Duration) {
        let notified = self.inner.appended.notified();
        if self.is_closed() {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }

    /// Marks the stream as finished: readers see [`LocalRead::Ended`] after the last
    /// record of each shard. Further puts fail.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.appended.notify_waiters();
    }

    /// Whether [`LocalStream::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Records stored in all shards.
    pub fn total_records(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.records.read().map(|r| r.len()).unwrap_or(0))
            .sum()
    }
}

impl Transport for LocalStream {
    async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        self.put(entries)
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        Ok(self.shards())
    }

    /// An in-process stream has no throughput limit.
    fn shard_limits(&self) -> ShardLimits {
        ShardLimits::UNLIMITED
    }

    fn stream_name(&self) -> String {
        self.name().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_RECORD_BYTES;

    fn entry(key: &str) -> Entry {
        Entry::new(key, b"{}".to_vec())
    }

    #[test]
    fn shards_cover_the_hash_key_space_without_gaps() {
        for n in [1, 2, 3, 4, 7, 16] {
            let shards = LocalStream::new("s", n).shards();
            assert_eq!(shards[0].starting_hash_key, 0);
            assert_eq!(shards[n - 1].ending_hash_key, u128::MAX);
            for w in shards.windows(2) {
                assert_eq!(
                    w[0].ending_hash_key + 1,
                    w[1].starting_hash_key,
                    "{n} shards"
                );
            }
        }
    }

    #[test]
    fn arrival_times_come_from_the_streams_clock() {
        let simulated: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
        let stream = LocalStream::new("s", 1);
        let clone = stream.clone().with_clock(move || simulated);
        clone.put(&[entry("a")]).unwrap();
        let LocalRead::Records(records) = stream.read(0, 0, 10) else {
            panic!("open stream")
        };
        assert_eq!(records[0].approximate_arrival, simulated, "for every clone");
        let wall = LocalStream::new("w", 1);
        let before = Utc::now();
        wall.put(&[entry("a")]).unwrap();
        let LocalRead::Records(records) = wall.read(0, 0, 10) else {
            panic!("open stream")
        };
        assert!(records[0].approximate_arrival >= before);
    }

    #[test]
    fn records_land_on_the_shard_owning_their_hash_key() {
        let stream = LocalStream::new("s", 4);
        let keys: Vec<String> = (0..200).map(|i| format!("FH{i:04}-20261201")).collect();
        let entries: Vec<Entry> = keys.iter().map(|k| entry(k)).collect();
        let results = stream.put(&entries).unwrap();
        let shards = stream.shards();
        for (key, result) in keys.iter().zip(results) {
            let EntryResult::Ok { shard_id, .. } = result else {
                panic!("put failed")
            };
            let info = shards.iter().find(|s| s.shard_id == shard_id).unwrap();
            let h = hash_key(key);
            assert!(h >= info.starting_hash_key && h <= info.ending_hash_key);
        }
        // 200 keys over 4 equal ranges: every shard gets some.
        assert!(
            (0..4)
                .all(|i| matches!(stream.read(i, 0, 1000), LocalRead::Records(r) if !r.is_empty()))
        );
    }

    #[test]
    fn sequence_numbers_increase_within_a_shard_and_reads_end_after_close() {
        let stream = LocalStream::new("s", 1);
        stream.put(&[entry("a"), entry("b")]).unwrap();
        stream.put(&[entry("c")]).unwrap();
        let LocalRead::Records(records) = stream.read(0, 0, 10) else {
            panic!()
        };
        assert_eq!(
            records
                .iter()
                .map(|r| r.partition_key.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert!(
            records
                .windows(2)
                .all(|w| w[0].sequence_number < w[1].sequence_number)
        );
        assert_eq!(stream.read(0, 3, 10), LocalRead::Records(vec![]));
        stream.close();
        assert_eq!(stream.read(0, 3, 10), LocalRead::Ended);
        assert!(stream.put(&[entry("d")]).is_err());
    }

    #[test]
    fn an_explicit_hash_key_places_the_record() {
        let stream = LocalStream::new("s", 4);
        let shards = stream.shards();
        let entry = Entry {
            explicit_hash_key: Some(shards[2].starting_hash_key),
            ..entry("any-key")
        };
        let results = stream.put(&[entry]).unwrap();
        assert!(
            matches!(&results[0], EntryResult::Ok { shard_id, .. } if *shard_id == shards[2].shard_id)
        );
    }

    #[test]
    fn requests_beyond_the_kinesis_limits_are_rejected() {
        let stream = LocalStream::new("s", 1);
        let too_many: Vec<Entry> = (0..501).map(|i| entry(&i.to_string())).collect();
        assert!(stream.put(&too_many).is_err());
        let big = Entry::new("k", vec![0; MAX_RECORD_BYTES]);
        assert!(stream.put(&[big]).is_err());
        assert!(stream.put(&[Entry::new("k".repeat(257), vec![])]).is_err());
        assert_eq!(stream.total_records(), 0);
    }
}
