//! The producer's synchronous hot path, measured apart from the async worker and the
//! network: serialized events → shard lookup → KPL aggregation per shard → collection
//! into PutRecords requests. The same records through the unaggregated path (one
//! Kinesis record per event, collected into requests) are the baseline.
//!
//! Used by the `aggregation` criterion group (throughput), the `producer-load units`
//! command (PUT payload units for a million events) and this crate's tests (the unit
//! ratio stays within the bar).

use std::collections::VecDeque;
use std::hint::black_box;

use flyhigh_producer::aggregate::{ShardAggregator, UserRecord};
use flyhigh_producer::limits::{self, PUT_PAYLOAD_UNIT_BYTES, entry_size};
use flyhigh_producer::shard_map::ShardMap;
use flyhigh_producer::{Entry, LocalStream, ProducerConfig};
use flyhigh_simulator::{SimConfig, Simulator};

/// `n` simulated events (searches, bookings, cancellations in the simulator's mix),
/// serialized as the producer does, with their design partition keys.
pub fn sample_records(n: usize, seed: u64) -> Vec<UserRecord> {
    Simulator::new(SimConfig::new(seed, n))
        .expect("valid simulator config")
        .map(|e| UserRecord::new(e.partition_key(), e.to_json()))
        .collect()
}

/// A shard map of `shards` equal ranges, as a new stream has.
pub fn even_map(shards: usize) -> ShardMap {
    ShardMap::new(LocalStream::new("bench", shards).shards()).expect("a tiling")
}

/// What a path produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathOutput {
    /// User records in.
    pub user_records: usize,
    /// Bytes of the user records (data plus partition key), as Kinesis would count
    /// them sent one by one.
    pub user_bytes: usize,
    /// Kinesis records out.
    pub kinesis_records: usize,
    /// Bytes of the Kinesis records out.
    pub kinesis_bytes: usize,
    /// PUT payload units billed for the Kinesis records.
    pub payload_units: usize,
    /// PutRecords requests.
    pub requests: usize,
}

impl PathOutput {
    /// The payload units an ideal packing would use: total user bytes / 25 KiB.
    pub fn ideal_units(&self) -> f64 {
        self.user_bytes as f64 / PUT_PAYLOAD_UNIT_BYTES as f64
    }

    /// Units used over the ideal.
    pub fn unit_ratio(&self) -> f64 {
        self.payload_units as f64 / self.ideal_units()
    }

    fn collect(&mut self, pending: &mut VecDeque<Entry>, pending_bytes: &mut usize, all: bool) {
        while !pending.is_empty() && (all || limits::request_full(pending.len(), *pending_bytes)) {
            let request = limits::take_request(pending);
            for e in &request {
                let size = entry_size(e);
                *pending_bytes -= size;
                self.kinesis_records += 1;
                self.kinesis_bytes += size;
                self.payload_units += size.div_ceil(PUT_PAYLOAD_UNIT_BYTES);
            }
            self.requests += 1;
            // Sent, as far as this path is concerned.
            black_box(request);
        }
    }
}

/// Aggregates `records` per shard of `map` and collects the aggregates into requests.
pub fn aggregated_path(
    records: Vec<UserRecord>,
    map: &ShardMap,
    config: &ProducerConfig,
) -> PathOutput {
    let mut out = PathOutput::default();
    let mut aggregators: Vec<ShardAggregator<()>> = (0..map.shards().len())
        .map(|_| ShardAggregator::new(config.aggregate_max_bytes))
        .collect();
    let mut pending = VecDeque::new();
    let mut pending_bytes = 0;
    for record in records {
        out.user_records += 1;
        out.user_bytes += record.size();
        let shard = map.index_of(record.hash_key);
        if let Some(sealed) = aggregators[shard].add(record, ()) {
            pending_bytes += sealed.size();
            pending.push_back(sealed.entry);
            out.collect(&mut pending, &mut pending_bytes, false);
        }
    }
    for aggregator in &mut aggregators {
        if let Some(sealed) = aggregator.seal() {
            pending_bytes += sealed.size();
            pending.push_back(sealed.entry);
        }
    }
    out.collect(&mut pending, &mut pending_bytes, true);
    out
}

/// One Kinesis record per event, collected into requests: the baseline.
pub fn plain_path(records: Vec<UserRecord>) -> PathOutput {
    let mut out = PathOutput::default();
    let mut pending = VecDeque::new();
    let mut pending_bytes = 0;
    for record in records {
        out.user_records += 1;
        out.user_bytes += record.size();
        let entry = Entry::new(record.partition_key, record.data);
        pending_bytes += entry_size(&entry);
        pending.push_back(entry);
        out.collect(&mut pending, &mut pending_bytes, false);
    }
    out.collect(&mut pending, &mut pending_bytes, true);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation_uses_payload_units_within_five_percent_of_ideal() {
        let records = sample_records(200_000, 42);
        let mean = records.iter().map(UserRecord::size).sum::<usize>() / records.len();
        assert!((250..=450).contains(&mean), "events average {mean} bytes");
        let out = aggregated_path(records.clone(), &even_map(4), &ProducerConfig::default());
        assert_eq!(out.user_records, 200_000);
        assert!(out.unit_ratio() <= 1.05, "{out:?}: {:.4}", out.unit_ratio());
        // Unaggregated, every ~330-byte event costs a whole 25 KiB unit.
        let plain = plain_path(records);
        assert_eq!(plain.payload_units, 200_000);
        assert!(plain.unit_ratio() > 50.0);
        assert!(out.kinesis_records * 100 < plain.kinesis_records);
    }

    #[test]
    fn every_request_respects_the_limits() {
        let records = sample_records(20_000, 7);
        let out = aggregated_path(records, &even_map(2), &ProducerConfig::default());
        assert!(
            out.requests
                >= out
                    .kinesis_records
                    .div_ceil(limits::MAX_RECORDS_PER_REQUEST)
        );
        assert!(out.kinesis_bytes <= out.requests * limits::MAX_BYTES_PER_REQUEST);
    }
}
