//! Aggregation: packing user records bound for one shard into KPL aggregated records.
//!
//! A [`ShardAggregator`] holds the open aggregate of one shard. Records are appended
//! until the next one would push the aggregate past
//! [`ProducerConfig::aggregate_max_bytes`](crate::ProducerConfig::aggregate_max_bytes);
//! then the aggregate is sealed into an [`Aggregate`]: one Kinesis [`Entry`] whose
//! explicit hash key is its first record's own hash key, so it lands exactly where
//! that record would have landed alone, on the shard the aggregator serves. An
//! aggregate of one record is sent as the plain record (what KPL does too): no
//! framing, and readable by consumers that know nothing of aggregation.
//!
//! Each record carries a member `M` (the producer's reply channel and budget permit;
//! `()` in benchmarks) that comes back with the sealed aggregate in record order,
//! so the i-th member's record has sub-sequence number i.

use flyhigh_schemas::HashKey;
use flyhigh_schemas::aggregation::AggregateBuilder;

use crate::limits::MAX_RECORD_BYTES;
use crate::transport::Entry;

/// A user record ready to aggregate: the event's bytes and where it belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The partition key the application chose.
    pub partition_key: String,
    /// MD5 of the partition key, as Kinesis computes it.
    pub hash_key: HashKey,
    /// The event's bytes.
    pub data: Vec<u8>,
}

impl UserRecord {
    /// A record keyed by `partition_key`.
    pub fn new(partition_key: impl Into<String>, data: Vec<u8>) -> UserRecord {
        let partition_key = partition_key.into();
        UserRecord {
            hash_key: flyhigh_schemas::hash_key(&partition_key),
            partition_key,
            data,
        }
    }

    /// Bytes Kinesis would count for this record sent alone.
    pub fn size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

/// A sealed Kinesis record and the members of its user records, in order.
#[derive(Debug)]
pub struct Aggregate<M> {
    /// What to put.
    pub entry: Entry,
    /// One per user record; the i-th has sub-sequence number i (when aggregated).
    pub members: Vec<M>,
    /// Whether `entry` is a KPL aggregate (false: a single plain record).
    pub aggregated: bool,
}

impl<M> Aggregate<M> {
    /// Bytes Kinesis counts for this record.
    pub fn size(&self) -> usize {
        crate::limits::entry_size(&self.entry)
    }
}

/// The open aggregate of one shard.
#[derive(Debug)]
pub struct ShardAggregator<M> {
    max_bytes: usize,
    builder: AggregateBuilder,
    /// Sizes a would-be aggregate of the held-back first record and the next one
    /// (once per aggregate; reused to keep its buffers).
    scratch: AggregateBuilder,
    /// The first record, held back until a second arrives: a lone record is sent
    /// plain, without being copied into the builder.
    first: Option<UserRecord>,
    /// The partition key and hash key of the aggregate (its first record's).
    head: Option<(String, HashKey)>,
    members: Vec<M>,
}

impl<M> ShardAggregator<M> {
    /// An aggregator sealing aggregates at `max_bytes` (capped at the Kinesis record
    /// limit).
    pub fn new(max_bytes: usize) -> ShardAggregator<M> {
        ShardAggregator {
            max_bytes: max_bytes.min(MAX_RECORD_BYTES),
            builder: AggregateBuilder::new(),
            scratch: AggregateBuilder::new(),
            first: None,
            head: None,
            members: Vec::new(),
        }
    }

    /// User records in the open aggregate.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// The members of the open aggregate, in record order.
    pub fn members(&self) -> &[M] {
        &self.members
    }

    /// The member of the open aggregate's first record.
    pub fn first_member(&self) -> Option<&M> {
        self.members.first()
    }

    /// Whether the open aggregate is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Adds a record. When it does not fit in the open aggregate, that aggregate is
    /// sealed first and returned; the record then opens the next one.
    pub fn add(&mut self, record: UserRecord, member: M) -> Option<Aggregate<M>> {
        let sealed = if self.members.is_empty() {
            None
        } else {
            let size_with = match &self.first {
                // The builder is still empty: size both records as an aggregate.
                Some(first) => {
                    self.scratch.push(&first.partition_key, None, &first.data);
                    let len = self.scratch.encoded_len_with(
                        &record.partition_key,
                        None,
                        record.data.len(),
                    );
                    self.scratch.finish();
                    len
                }
                None => {
                    self.builder
                        .encoded_len_with(&record.partition_key, None, record.data.len())
                }
            };
            let head_key_len = self.head.as_ref().map_or(0, |(k, _)| k.len());
            if size_with + head_key_len > self.max_bytes {
                self.seal()
            } else {
                None
            }
        };
        if self.members.is_empty() {
            self.head = Some((record.partition_key.clone(), record.hash_key));
            self.first = Some(record);
        } else {
            if let Some(first) = self.first.take() {
                self.builder.push(&first.partition_key, None, &first.data);
            }
            self.builder.push(&record.partition_key, None, &record.data);
        }
        self.members.push(member);
        sealed
    }

    /// Seals the open aggregate, if any.
    pub fn seal(&mut self) -> Option<Aggregate<M>> {
        if self.members.is_empty() {
            return None;
        }
        let members = std::mem::take(&mut self.members);
        let (partition_key, hash_key) = self.head.take().unwrap_or_default();
        if let Some(first) = self.first.take() {
            return Some(Aggregate {
                entry: Entry {
                    partition_key: first.partition_key,
                    explicit_hash_key: None,
                    data: first.data,
                },
                members,
                aggregated: false,
            });
        }
        Some(Aggregate {
            entry: Entry {
                partition_key,
                explicit_hash_key: Some(hash_key),
                data: self.builder.finish(),
            },
            members,
            aggregated: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};
    use proptest::prelude::*;

    fn record(key: &str, len: usize, fill: u8) -> UserRecord {
        UserRecord::new(key, vec![fill; len])
    }

    #[test]
    fn a_lone_record_is_sent_plain() {
        let mut agg = ShardAggregator::new(50 * 1024);
        assert!(agg.add(record("FH1", 300, b'a'), 0u32).is_none());
        let sealed = agg.seal().unwrap();
        assert!(!sealed.aggregated);
        assert_eq!(sealed.entry.partition_key, "FH1");
        assert_eq!(sealed.entry.explicit_hash_key, None);
        assert_eq!(sealed.entry.data, vec![b'a'; 300]);
        assert!(agg.seal().is_none());
    }

    #[test]
    fn aggregates_are_sealed_before_they_pass_the_size_limit_and_keep_order() {
        let max = 4 * 1024;
        let mut agg = ShardAggregator::new(max);
        let mut sealed = Vec::new();
        for i in 0..100u32 {
            let key = format!("FH{:02}", i % 5);
            sealed.extend(agg.add(record(&key, 200, i as u8), i));
        }
        sealed.extend(agg.seal());
        let mut seen = Vec::new();
        for a in &sealed {
            assert!(a.size() <= max, "{} > {max}", a.size());
            assert!(a.aggregated);
            assert_eq!(
                a.entry.explicit_hash_key,
                Some(flyhigh_schemas::hash_key(&a.entry.partition_key))
            );
            let Ok(Deaggregated::Aggregated(records)) = deaggregate(&a.entry.data) else {
                panic!("not an aggregate")
            };
            assert_eq!(records.len(), a.members.len());
            assert_eq!(records[0].partition_key, a.entry.partition_key);
            for (r, m) in records.iter().zip(&a.members) {
                assert_eq!(r.partition_key, format!("FH{:02}", m % 5));
                assert_eq!(r.data, vec![*m as u8; 200].as_slice());
            }
            seen.extend(a.members.iter().copied());
        }
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        // Nearly full: each sealed aggregate but the last wastes less than a record.
        for a in &sealed[..sealed.len() - 1] {
            assert!(a.size() + 200 + 16 > max);
        }
    }

    proptest! {
        #[test]
        fn every_record_comes_back_once_in_order(
            sizes in proptest::collection::vec((0usize..8, 0usize..3_000), 1..300),
            max in 1_000usize..60_000,
        ) {
            let mut agg = ShardAggregator::new(max);
            let mut sealed = Vec::new();
            for (i, (k, len)) in sizes.iter().enumerate() {
                sealed.extend(agg.add(record(&format!("k{k}"), *len, i as u8), i));
            }
            sealed.extend(agg.seal());
            let mut seen = Vec::new();
            for a in &sealed {
                // A record too big to share an aggregate travels alone.
                prop_assert!(a.size() <= max || a.members.len() == 1);
                match deaggregate(&a.entry.data).unwrap() {
                    Deaggregated::Single(data) => {
                        prop_assert!(!a.aggregated);
                        prop_assert_eq!(a.members.len(), 1);
                        prop_assert_eq!(data.len(), sizes[a.members[0]].1);
                    }
                    Deaggregated::Aggregated(records) => {
                        prop_assert_eq!(records.len(), a.members.len());
                        for (r, m) in records.iter().zip(&a.members) {
                            prop_assert_eq!(r.data.len(), sizes[*m].1);
                        }
                    }
                }
                seen.extend(a.members.iter().copied());
            }
            prop_assert_eq!(seen, (0..sizes.len()).collect::<Vec<_>>());
        }
    }
}
