//! What a running deployment reports: each processor's counts ([`DeploymentStats`]),
//! how far each is behind the stream ([`Lag`], per shard too) and how long events
//! take to reach each stage ([`Latencies`]), read through a [`StatusHandle`].

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use flyhigh_handlers::{Latency, LatencySummary};
use flyhigh_runner::{CheckpointStore, MappingStats, Runner};
use serde::Serialize;

use crate::deployment::{Archive, Checkpoints, Clock, Demand, Inventory};
use crate::stream::Stream;

#[derive(Debug, Default)]
pub(crate) struct EvaluationCounters {
    pub(crate) runs: std::sync::atomic::AtomicU64,
    pub(crate) buckets_judged: std::sync::atomic::AtomicU64,
    pub(crate) compactions: std::sync::atomic::AtomicU64,
    pub(crate) hours_compacted: std::sync::atomic::AtomicU64,
}

/// How long events take to reach each stage, measured on the deployment's clock
/// (see [`flyhigh_handlers::latency`]).
#[derive(Debug)]
pub struct Latencies {
    /// Event (`occurred_at`) → committed in the inventory.
    pub inventory: Arc<Latency>,
    /// Event → counted in the demand counters.
    pub demand: Arc<Latency>,
    /// Event → in a Parquet file the archive checkpoint has committed.
    pub archive: Arc<Latency>,
    /// The bucket that raised a surge alert closed (`window_end`) → the alert
    /// published: how long detection waits (the late allowance, the evaluator's
    /// schedule) and takes.
    pub surge_alert: Arc<Latency>,
}

impl Latencies {
    pub(crate) fn on(clock: &Clock) -> Latencies {
        let stage = || Arc::new(Latency::with_clock(clock.clone()));
        Latencies {
            inventory: stage(),
            demand: stage(),
            archive: stage(),
            surge_alert: stage(),
        }
    }

    /// Each stage's percentiles, by stage name.
    pub fn summaries(&self) -> BTreeMap<String, LatencySummary> {
        [
            ("inventory", &self.inventory),
            ("demand", &self.demand),
            ("archive", &self.archive),
            ("surge_alert", &self.surge_alert),
        ]
        .into_iter()
        .map(|(name, l)| (name.to_string(), l.summary()))
        .collect()
    }
}

/// What the pipeline has done so far, per processor.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentStats {
    pub inventory: ProcessorStats<flyhigh_handlers::HandlerStats>,
    pub demand: ProcessorStats<flyhigh_handlers::demand::DemandStats>,
    pub archive: ProcessorStats<flyhigh_handlers::archive::ArchiveStats>,
    /// Evaluator runs and buckets judged.
    pub evaluator_runs: u64,
    pub buckets_judged: u64,
    /// Compaction runs (scheduled).
    pub compactions: u64,
    /// Archive hours those runs compacted.
    pub hours_compacted: u64,
}

/// One processor: its handler's counts and its mapping's.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessorStats<H> {
    pub handler: H,
    pub runner: MappingStats,
}

/// Reads a deployment's stats; cheap to clone.
#[derive(Clone)]
pub struct StatusHandle {
    pub(crate) inventory: Arc<Inventory>,
    pub(crate) demand: Arc<Demand>,
    pub(crate) archive: Arc<Archive>,
    pub(crate) runners: [Runner; 3],
    pub(crate) evaluations: Arc<EvaluationCounters>,
    pub(crate) stream: Stream,
    pub(crate) positions: [Arc<Checkpoints>; 3],
    pub(crate) latencies: Arc<Latencies>,
}

/// How far each processor is behind the end of the stream, from its checkpoints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lag {
    pub inventory: ProcessorLag,
    pub demand: ProcessorLag,
    pub archive: ProcessorLag,
}

/// How far one processor is behind, summed over shards, and per shard.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProcessorLag {
    /// Kinesis records after its checkpoints.
    pub records: u64,
    /// Age of the oldest of them (Kinesis's iterator age), in seconds; 0 when none.
    pub seconds_behind: f64,
    /// The same per shard, in shard order.
    pub shards: Vec<ShardLag>,
}

/// How far one processor is behind in one shard.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShardLag {
    pub shard_id: String,
    /// Kinesis records after the shard's checkpoint.
    pub records: u64,
    /// Age of the oldest of them, in seconds; 0 when none.
    pub seconds_behind: f64,
}

impl StatusHandle {
    /// Each processor's lag, from its checkpoints against the durable stream; `None`
    /// for the in-memory stream.
    pub async fn lag(&self) -> Option<Lag> {
        let Stream::Durable(stream) = &self.stream else {
            return None;
        };
        Some(Lag {
            inventory: lag_of(stream, &self.positions[0]).await?,
            demand: lag_of(stream, &self.positions[1]).await?,
            archive: lag_of(stream, &self.positions[2]).await?,
        })
    }

    /// Each stage's latency percentiles so far, by stage name.
    pub fn latency(&self) -> BTreeMap<String, LatencySummary> {
        self.latencies.summaries()
    }

    /// What each processor has done so far.
    pub fn stats(&self) -> DeploymentStats {
        use std::sync::atomic::Ordering::Relaxed;
        DeploymentStats {
            inventory: ProcessorStats {
                handler: self.inventory.stats(),
                runner: self.runners[0].stats(),
            },
            demand: ProcessorStats {
                handler: self.demand.stats(),
                runner: self.runners[1].stats(),
            },
            archive: ProcessorStats {
                handler: self.archive.stats(),
                runner: self.runners[2].stats(),
            },
            evaluator_runs: self.evaluations.runs.load(Relaxed),
            buckets_judged: self.evaluations.buckets_judged.load(Relaxed),
            compactions: self.evaluations.compactions.load(Relaxed),
            hours_compacted: self.evaluations.hours_compacted.load(Relaxed),
        }
    }
}

/// How far the mapping with `checkpoints` is behind the end of `stream`; `None`
/// when the stream cannot be read.
pub(crate) async fn lag_of(
    stream: &flyhigh_embedded::DurableStream,
    checkpoints: &Checkpoints,
) -> Option<ProcessorLag> {
    let arn = flyhigh_runner::StreamSource::stream_arn(stream);
    let now = Utc::now();
    let mut positions = Vec::new();
    for (i, shard) in stream.shards().iter().enumerate() {
        let at = checkpoints
            .load(&arn, &shard.shard_id)
            .await
            .ok()
            .flatten()
            .and_then(|c| c.sequence_number);
        positions.push((i, at));
    }
    let backlog = stream.backlog(positions).await.ok()?;
    let age = |oldest: Option<DateTime<Utc>>| {
        oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
    };
    let shards: Vec<ShardLag> = stream
        .shards()
        .iter()
        .zip(&backlog)
        .map(|(shard, b)| ShardLag {
            shard_id: shard.shard_id.clone(),
            records: b.records,
            seconds_behind: age(b.oldest_arrival),
        })
        .collect();
    Some(ProcessorLag {
        records: shards.iter().map(|s| s.records).sum(),
        seconds_behind: shards.iter().map(|s| s.seconds_behind).fold(0.0, f64::max),
        shards,
    })
}
