//! What an operator can read about a running producer: [`ProducerMetrics`], a
//! snapshot from [`crate::Producer::metrics`], also emitted as a `tracing` event
//! (target [`METRICS_TARGET`], level INFO, plus one DEBUG event per shard) every
//! [`ProducerConfig::metrics_interval`](crate::ProducerConfig::metrics_interval) and
//! at close. Field names are the same in both places.
//!
//! [`emf`] renders snapshots as CloudWatch Embedded Metric Format lines
//! ([`EmfEmitter`]); its [`emf::METRICS`] table is the list of metric names, and
//! `docs/producer.md` is the operator's page for them.

pub mod emf;

pub use emf::EmfEmitter;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `tracing` target of the periodic metrics event.
pub const METRICS_TARGET: &str = "flyhigh_producer::metrics";

/// A snapshot of the producer's counters (totals since it started) and gauges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProducerMetrics {
    /// Events accepted by `send`/`try_send`.
    pub user_records_accepted: u64,
    /// Events rejected as invalid (nothing was sent).
    pub user_records_rejected: u64,
    /// User records Kinesis accepted.
    pub user_records_written: u64,
    /// User records dead-lettered (expired, rejected or unsent at close).
    pub user_records_dead_lettered: u64,
    /// Kinesis records (aggregates and plain records) Kinesis accepted.
    pub kinesis_records_written: u64,
    /// PutRecords requests made.
    pub requests: u64,
    /// Whole requests that failed (throttled, 5xx, dropped connections...).
    pub request_errors: u64,
    /// Kinesis records sent again after a failure.
    pub retries: u64,
    /// Throttling answers, per record or per request.
    pub throttles: u64,
    /// Times the shard map was (re)loaded.
    pub shard_map_refreshes: u64,
    /// Dead letters the sink failed to store (they are also logged at ERROR).
    pub dead_letter_failures: u64,
    /// Bytes of accepted records not yet written or dead-lettered (gauge).
    pub buffered_bytes: u64,
    /// Records accepted and not yet written or dead-lettered (gauge).
    pub buffered_records: u64,
    /// The buffer budget (`send` waits when it is spent).
    pub budget_bytes: u64,
    /// Put latency: requests measured.
    pub put_latency_count: u64,
    /// Put latency: mean.
    pub put_latency_mean: Duration,
    /// Put latency: 50th percentile (upper bound of its power-of-two bucket).
    pub put_latency_p50: Duration,
    /// Put latency: 99th percentile (upper bound of its power-of-two bucket).
    pub put_latency_p99: Duration,
    /// Put latency: slowest.
    pub put_latency_max: Duration,
    /// Age of the oldest record accepted and not yet written or dead-lettered
    /// (gauge); zero when nothing is buffered. Compare it with
    /// [`ProducerConfig::record_ttl`](crate::ProducerConfig::record_ttl): past the
    /// TTL a record is dead-lettered.
    pub oldest_buffered_age: Duration,
    /// Bytes of dead letters waiting for their sink (gauge).
    pub dead_letter_queue_bytes: u64,
    /// Writes made to the dead-letter sink (one write may carry several letters).
    pub dead_letter_writes: u64,
    /// One entry per shard the producer writes to, in shard-map order.
    pub shards: Vec<ShardMetrics>,
}

/// What one shard's share of the producer looks like. Rates are measured over the
/// last publishing window (about one second); totals count since the producer
/// started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardMetrics {
    /// The shard's id, or [`UNMAPPED_SHARD`] while the shard map is unknown.
    pub shard_id: String,
    /// User records written per second, over the last window.
    pub user_records_per_sec: f64,
    /// Kinesis records (aggregates and plain records) written per second, over the
    /// last window.
    pub kinesis_records_per_sec: f64,
    /// Bytes written per second, over the last window.
    pub bytes_per_sec: f64,
    /// User records Kinesis accepted on this shard (total).
    pub user_records_written: u64,
    /// Bytes Kinesis accepted on this shard (total).
    pub bytes_written: u64,
    /// Throttling answers from this shard (total).
    pub throttles: u64,
    /// The current share of the shard's limits the producer allows itself, in
    /// (0, 1]: it halves on throttling and recovers on success.
    pub rate_share: f64,
    /// The current adaptive records/s rate; `f64::INFINITY` when unlimited.
    pub allowed_records_per_sec: f64,
    /// The current adaptive bytes/s rate; `f64::INFINITY` when unlimited.
    pub allowed_bytes_per_sec: f64,
    /// Bytes of accepted records bound for this shard, not yet written or
    /// dead-lettered (gauge).
    pub buffered_bytes: u64,
    /// Records bound for this shard, not yet written or dead-lettered (gauge).
    pub buffered_records: u64,
}

/// The [`ShardMetrics::shard_id`] of records buffered while the shard map is
/// unknown.
pub const UNMAPPED_SHARD: &str = "(unmapped)";

impl ProducerMetrics {
    /// User records per Kinesis record written: the aggregation factor.
    pub fn user_records_per_kinesis_record(&self) -> f64 {
        ratio(self.user_records_written, self.kinesis_records_written)
    }

    /// Kinesis records per PutRecords request.
    pub fn kinesis_records_per_request(&self) -> f64 {
        ratio(self.kinesis_records_written + self.retries, self.requests)
    }

    /// Emits the snapshot as one `tracing` event at INFO (the stream's fields and
    /// `shards`, their count), then one event per shard at DEBUG (message
    /// `producer shard metrics`, the [`ShardMetrics`] fields): a 500-shard stream
    /// stays one readable line at INFO, and the per-shard detail is a filter away
    /// (`RUST_LOG=flyhigh_producer::metrics=debug`).
    pub fn trace(&self) {
        tracing::info!(
            target: METRICS_TARGET,
            user_records_accepted = self.user_records_accepted,
            user_records_rejected = self.user_records_rejected,
            user_records_written = self.user_records_written,
            user_records_dead_lettered = self.user_records_dead_lettered,
            kinesis_records_written = self.kinesis_records_written,
            user_records_per_kinesis_record = self.user_records_per_kinesis_record(),
            requests = self.requests,
            kinesis_records_per_request = self.kinesis_records_per_request(),
            request_errors = self.request_errors,
            retries = self.retries,
            throttles = self.throttles,
            shard_map_refreshes = self.shard_map_refreshes,
            dead_letter_failures = self.dead_letter_failures,
            buffered_bytes = self.buffered_bytes,
            buffered_records = self.buffered_records,
            budget_bytes = self.budget_bytes,
            put_latency_count = self.put_latency_count,
            put_latency_mean_ms = self.put_latency_mean.as_secs_f64() * 1e3,
            put_latency_p50_ms = self.put_latency_p50.as_secs_f64() * 1e3,
            put_latency_p99_ms = self.put_latency_p99.as_secs_f64() * 1e3,
            put_latency_max_ms = self.put_latency_max.as_secs_f64() * 1e3,
            oldest_buffered_age_ms = self.oldest_buffered_age.as_secs_f64() * 1e3,
            dead_letter_queue_bytes = self.dead_letter_queue_bytes,
            dead_letter_writes = self.dead_letter_writes,
            shards = self.shards.len(),
            "producer metrics"
        );
        for shard in &self.shards {
            tracing::debug!(
                target: METRICS_TARGET,
                shard_id = %shard.shard_id,
                user_records_per_sec = shard.user_records_per_sec,
                kinesis_records_per_sec = shard.kinesis_records_per_sec,
                bytes_per_sec = shard.bytes_per_sec,
                user_records_written = shard.user_records_written,
                bytes_written = shard.bytes_written,
                throttles = shard.throttles,
                rate_share = shard.rate_share,
                allowed_records_per_sec = shard.allowed_records_per_sec,
                allowed_bytes_per_sec = shard.allowed_bytes_per_sec,
                buffered_bytes = shard.buffered_bytes,
                buffered_records = shard.buffered_records,
                "producer shard metrics"
            );
        }
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// The live counters, shared by the handle and the worker.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub written: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub kinesis_written: AtomicU64,
    pub requests: AtomicU64,
    pub request_errors: AtomicU64,
    pub retries: AtomicU64,
    pub throttles: AtomicU64,
    pub refreshes: AtomicU64,
    pub dead_letter_failures: AtomicU64,
    pub buffered_records: AtomicU64,
    /// Record bytes queued for the dead-letter sink or being written by it.
    pub dead_letter_queue_bytes: AtomicU64,
    /// Calls made to the dead-letter sink.
    pub dead_letter_writes: AtomicU64,
    pub latency: Mutex<LatencyHistogram>,
    /// What the worker last published (about once a second): per-shard figures and
    /// when its oldest unresolved record was accepted.
    pub published: Mutex<Published>,
}

/// The worker's part of a snapshot, published about once a second.
#[derive(Debug, Default, Clone)]
pub(crate) struct Published {
    pub shards: Vec<ShardMetrics>,
    pub oldest_accepted: Option<chrono::DateTime<chrono::Utc>>,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self, buffered_bytes: u64, budget_bytes: u64) -> ProducerMetrics {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let latency = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let published = self
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        ProducerMetrics {
            user_records_accepted: get(&self.accepted),
            user_records_rejected: get(&self.rejected),
            user_records_written: get(&self.written),
            user_records_dead_lettered: get(&self.dead_lettered),
            kinesis_records_written: get(&self.kinesis_written),
            requests: get(&self.requests),
            request_errors: get(&self.request_errors),
            retries: get(&self.retries),
            throttles: get(&self.throttles),
            shard_map_refreshes: get(&self.refreshes),
            dead_letter_failures: get(&self.dead_letter_failures),
            buffered_bytes,
            buffered_records: get(&self.buffered_records),
            budget_bytes,
            put_latency_count: latency.count,
            put_latency_mean: latency.mean(),
            put_latency_p50: latency.quantile(0.5),
            put_latency_p99: latency.quantile(0.99),
            put_latency_max: latency.max,
            oldest_buffered_age: published
                .oldest_accepted
                .and_then(|at| (chrono::Utc::now() - at).to_std().ok())
                .unwrap_or_default(),
            dead_letter_queue_bytes: get(&self.dead_letter_queue_bytes),
            dead_letter_writes: get(&self.dead_letter_writes),
            shards: published.shards,
        }
    }
}

/// Latencies in power-of-two microsecond buckets: constant memory, quantiles within
/// a factor of two, which is what an operator needs to tell 20 ms from 2 s.
#[derive(Debug, Clone, Default)]
pub(crate) struct LatencyHistogram {
    buckets: [u64; 32],
    count: u64,
    sum: Duration,
    max: Duration,
}

impl LatencyHistogram {
    pub fn record(&mut self, latency: Duration) {
        let micros = latency.as_micros().max(1) as u64;
        let bucket = (64 - micros.leading_zeros() as usize).min(self.buckets.len() - 1);
        self.buckets[bucket] += 1;
        self.count += 1;
        self.sum += latency;
        self.max = self.max.max(latency);
    }

    fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(self.sum.as_secs_f64() / self.count as f64)
        }
    }

    fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                // Bucket i holds latencies in [2^(i-1), 2^i) microseconds.
                return Duration::from_micros(1u64 << i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_factor_of_two() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5);
        assert!(
            p50 >= Duration::from_millis(50) && p50 <= Duration::from_millis(100),
            "{p50:?}"
        );
        let p99 = h.quantile(0.99);
        assert!(
            p99 >= Duration::from_millis(99) && p99 <= Duration::from_millis(100),
            "{p99:?}"
        );
        assert_eq!(h.max, Duration::from_millis(100));
        assert_eq!(h.mean(), Duration::from_micros(50_500));
    }

    #[test]
    fn ratios_of_nothing_are_zero() {
        let m = ProducerMetrics::default();
        assert_eq!(m.user_records_per_kinesis_record(), 0.0);
        let m = ProducerMetrics {
            user_records_written: 300,
            kinesis_records_written: 2,
            requests: 1,
            ..Default::default()
        };
        assert_eq!(m.user_records_per_kinesis_record(), 150.0);
        assert_eq!(m.kinesis_records_per_request(), 2.0);
    }

    use crate::test_support::Captured;

    fn traced(m: &ProducerMetrics, level: tracing::Level) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .with_max_level(level)
            .finish();
        tracing::subscriber::with_default(subscriber, || m.trace());
        captured.text()
    }

    #[test]
    fn trace_logs_the_stream_at_info_and_each_shard_at_debug() {
        let m = ProducerMetrics {
            oldest_buffered_age: Duration::from_millis(1500),
            dead_letter_queue_bytes: 300,
            dead_letter_writes: 2,
            shards: vec![
                ShardMetrics {
                    shard_id: UNMAPPED_SHARD.into(),
                    allowed_records_per_sec: f64::INFINITY,
                    ..Default::default()
                },
                ShardMetrics {
                    shard_id: "shardId-000000000001".into(),
                    throttles: 7,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let info = traced(&m, tracing::Level::INFO);
        assert_eq!(info.lines().count(), 1, "{info}");
        for field in [
            "oldest_buffered_age_ms=1500",
            "dead_letter_queue_bytes=300",
            "dead_letter_writes=2",
            "shards=2",
        ] {
            assert!(info.contains(field), "{field} in {info}");
        }
        let debug = traced(&m, tracing::Level::DEBUG);
        let shards: Vec<&str> = debug
            .lines()
            .filter(|l| l.contains("producer shard metrics"))
            .collect();
        assert_eq!(shards.len(), 2, "{debug}");
        assert!(shards[0].contains("shard_id=(unmapped)"), "{debug}");
        assert!(
            shards[1].contains("shard_id=shardId-000000000001"),
            "{debug}"
        );
        assert!(shards[1].contains("throttles=7"), "{debug}");
        assert_eq!(debug.matches("producer metrics").count(), 1, "{debug}");
    }
}
