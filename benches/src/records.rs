//! Kinesis records as a consumer receives them, built from simulated events: one
//! event per record, or packed in KPL aggregates as the producer writes them.

use flyhigh_core::KinesisRecord;
use flyhigh_producer::ProducerConfig;
use flyhigh_producer::aggregate::{ShardAggregator, UserRecord};
use flyhigh_schemas::Envelope;

fn shard_id(shard: usize) -> String {
    format!("shardId-{shard:012}")
}

fn sequence_number(i: usize) -> String {
    format!("49{i:054}")
}

/// One Kinesis record per event, on `shard`, numbered from 0.
pub fn plain<'a>(
    shard: usize,
    events: impl IntoIterator<Item = &'a Envelope>,
) -> Vec<KinesisRecord> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| KinesisRecord {
            shard_id: shard_id(shard),
            sequence_number: sequence_number(i),
            partition_key: e.partition_key(),
            approximate_arrival: None,
            data: e.to_json(),
        })
        .collect()
}

/// The events packed in KPL aggregates of up to the producer's default 51,200 bytes,
/// one Kinesis record per aggregate, on `shard`, numbered from 0.
pub fn aggregated<'a>(
    shard: usize,
    events: impl IntoIterator<Item = &'a Envelope>,
) -> Vec<KinesisRecord> {
    let mut aggregator = ShardAggregator::new(ProducerConfig::default().aggregate_max_bytes);
    let mut sealed = Vec::new();
    for e in events {
        sealed.extend(aggregator.add(UserRecord::new(e.partition_key(), e.to_json()), ()));
    }
    sealed.extend(aggregator.seal());
    sealed
        .into_iter()
        .enumerate()
        .map(|(i, a)| KinesisRecord {
            shard_id: shard_id(shard),
            sequence_number: sequence_number(i),
            partition_key: a.entry.partition_key,
            approximate_arrival: None,
            data: a.entry.data,
        })
        .collect()
}

/// The first `n` events of an airline-scale day (10 million events, no surge): the
/// density a Lambda batch of real traffic has, minutes of event time per 10,000
/// records rather than the demo's hours.
pub fn dense_events(n: usize) -> Vec<Envelope> {
    let mut config = flyhigh_simulator::SimConfig::new(7, 10_000_000);
    config.surge = flyhigh_simulator::SurgeConfig::disabled();
    flyhigh_simulator::Simulator::new(config)
        .map(|sim| sim.take(n).collect())
        .unwrap_or_default()
}
