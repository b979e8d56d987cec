//! [`ProducerConfig`]: every setting, its default, and why.

use std::sync::Arc;
use std::time::Duration;

use crate::dead_letter::{DeadLetterSink, FileDeadLetters};
use crate::rate::ShardLimits;

/// Producer settings. `ProducerConfig::default()` suits a booking backend writing a
/// few thousand events per second to a provisioned stream; each field says why.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Bytes of accepted, not yet written records the producer may hold (each record
    /// counts its data, its partition key and [`RECORD_OVERHEAD_BYTES`] of
    /// bookkeeping). When it is spent, `send` waits and `try_send` fails with
    /// [`SendError::BufferFull`](crate::SendError::BufferFull). Default 32 MiB: about
    /// 8 s of a 4-shard stream at its 1 MiB/s per shard limit, enough to ride out
    /// a brief throttle without letting an outage grow the process.
    pub buffer_budget_bytes: usize,
    /// The most of the budget the records of one shard may hold, as a share of it.
    /// When a shard's share is spent (it is throttled: a hot flight), `send` waits
    /// and `try_send` fails for that shard's keys only; records for every other
    /// shard still find room. Default 0.5; a stream of one shard may use it all.
    /// In `(0, 1]`; 1 turns the per-shard limit off.
    pub shard_budget_share: f64,
    /// How long a shard's open aggregate waits for more records before it is sent.
    /// Default 50 ms: inventory stays near real time, and under load aggregates fill
    /// up long before.
    pub linger: Duration,
    /// Whether to pack user records bound for one shard into KPL aggregated records.
    /// Default true: ~150 booking events per Kinesis record instead of one, so ~150×
    /// fewer records against the 1,000 records/s shard limit and PUT payload units
    /// used almost fully. Turn off only for consumers that cannot deaggregate.
    pub aggregation: bool,
    /// Largest aggregate, in bytes (data plus partition key). Default 51,200 = two
    /// 25 KiB PUT payload units, as KPL: an aggregate sealed just short of it wastes
    /// less than one event of its last unit, and it keeps a retry cheap. Capped at
    /// the 1 MiB record limit.
    pub aggregate_max_bytes: usize,
    /// How long an accepted record may wait for Kinesis before it is dead-lettered and
    /// its receipt fails. Default 120 s: outlasts throttling episodes and short
    /// outages; past that an operator replays the dead letters rather than the
    /// producer hold memory indefinitely. An aggregate expires with its oldest record,
    /// so no record waits longer than this.
    pub record_ttl: Duration,
    /// First retry delay after a failure (full jitter, doubling per consecutive
    /// failure of a shard). Default 100 ms, Kinesis's own suggestion for
    /// throttled writers.
    pub backoff_base: Duration,
    /// Largest retry delay. Default 5 s: a shard that recovers is used again quickly.
    pub backoff_max: Duration,
    /// PutRecords requests in flight at once. Default 8: enough to keep 8 shards busy
    /// at 50 ms round trips without opening a connection storm.
    pub max_requests_in_flight: usize,
    /// A request that has not answered after this long counts as failed (transient)
    /// and its records are retried. Default 30 s.
    pub request_timeout: Duration,
    /// Per-shard write limits the token buckets start from. Default `None`: the
    /// transport's ([`ShardLimits::KINESIS`] for Kinesis, unlimited for the
    /// in-process stream).
    pub shard_limits: Option<ShardLimits>,
    /// How often the shard map is reloaded even without a sign of a reshard (a put
    /// landing on an unexpected shard reloads it at once). Default 60 s.
    pub shard_map_refresh: Duration,
    /// Where records the producer gives up on go (written on their own task, never
    /// on the worker). Default: a [`FileDeadLetters`] in
    /// [`FileDeadLetters::default_location`] (a writable state or temporary
    /// directory, not the working directory), created only when needed.
    pub dead_letters: Arc<dyn DeadLetterSink>,
    /// How often the metrics are emitted as a `tracing` event (and as EMF lines,
    /// see `metrics_emf_namespace`). Default 60 s; `None` turns the periodic event
    /// off (one is still emitted at close).
    pub metrics_interval: Option<Duration>,
    /// When set, the metrics are also printed to stdout as CloudWatch Embedded
    /// Metric Format documents in this namespace (e.g. `FlyHigh/Producer`), every
    /// `metrics_interval` and at close: on Lambda, and on ECS with the awslogs
    /// driver, CloudWatch turns them into metrics with no agent and no API call.
    /// Default `None`.
    pub metrics_emf_namespace: Option<String>,
    /// Seed for retry jitter; `None` seeds from the OS. Tests set it.
    pub rng_seed: Option<u64>,
}

/// Bookkeeping bytes charged to the budget per record, beyond its data and key: its
/// reply channel, budget permit, deadline and place in an aggregate's key table.
pub const RECORD_OVERHEAD_BYTES: usize = 256;

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            buffer_budget_bytes: 32 * 1024 * 1024,
            shard_budget_share: 0.5,
            linger: Duration::from_millis(50),
            aggregation: true,
            aggregate_max_bytes: 2 * crate::limits::PUT_PAYLOAD_UNIT_BYTES,
            record_ttl: Duration::from_secs(120),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_requests_in_flight: 8,
            request_timeout: Duration::from_secs(30),
            shard_limits: None,
            shard_map_refresh: Duration::from_secs(60),
            dead_letters: Arc::new(FileDeadLetters::in_default_location()),
            metrics_interval: Some(Duration::from_secs(60)),
            metrics_emf_namespace: None,
            rng_seed: None,
        }
    }
}

/// The longest [`ProducerConfig::record_ttl`]: a week, the stream's longest default
/// retention worth buffering for (anything longer is a mistake, and `Duration::MAX`
/// overflowed the send path's deadline arithmetic).
pub const MAX_RECORD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The shortest [`ProducerConfig::metrics_interval`] and
/// [`ProducerConfig::shard_map_refresh`]: one second (zero busy-looped the worker).
pub const MIN_PERIOD: Duration = Duration::from_secs(1);

/// A setting [`ProducerConfig::validate`] refuses: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid producer setting {setting}: {reason}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The field of [`ProducerConfig`], e.g. `record_ttl`.
    pub setting: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

fn refuse(setting: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError {
        setting,
        reason: reason.into(),
    })
}

impl ProducerConfig {
    /// Checks every setting; the first one out of range is named in the error.
    /// [`Producer::try_new`](crate::Producer::try_new) calls it, so a bad value fails
    /// at start-up instead of panicking or spinning on the send path.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.buffer_budget_bytes == 0 {
            refuse("buffer_budget_bytes", "must be above 0")?;
        }
        if !(self.shard_budget_share > 0.0 && self.shard_budget_share <= 1.0) {
            refuse(
                "shard_budget_share",
                format!("{} is not within (0, 1]", self.shard_budget_share),
            )?;
        }
        if self
            .metrics_emf_namespace
            .as_ref()
            .is_some_and(|ns| ns.is_empty() || ns.len() > 255)
        {
            refuse(
                "metrics_emf_namespace",
                "must be 1 to 255 characters (CloudWatch's limit)",
            )?;
        }
        if self.aggregate_max_bytes == 0
            || self.aggregate_max_bytes > crate::limits::MAX_RECORD_BYTES
        {
            refuse(
                "aggregate_max_bytes",
                format!(
                    "{} is not within 1..={} (the Kinesis record limit)",
                    self.aggregate_max_bytes,
                    crate::limits::MAX_RECORD_BYTES
                ),
            )?;
        }
        if self.record_ttl.is_zero() || self.record_ttl > MAX_RECORD_TTL {
            refuse(
                "record_ttl",
                format!("{:?} is not within (0, 7 days]", self.record_ttl),
            )?;
        }
        if self.linger > MAX_RECORD_TTL {
            refuse("linger", format!("{:?} is longer than 7 days", self.linger))?;
        }
        if self.backoff_base.is_zero() {
            refuse("backoff_base", "must be above 0 (retries would storm)")?;
        }
        if self.backoff_max < self.backoff_base || self.backoff_max > MAX_RECORD_TTL {
            refuse(
                "backoff_max",
                format!(
                    "{:?} must be at least backoff_base ({:?}) and at most 7 days",
                    self.backoff_max, self.backoff_base
                ),
            )?;
        }
        if self.max_requests_in_flight == 0 {
            refuse("max_requests_in_flight", "must be at least 1")?;
        }
        if self.request_timeout.is_zero() || self.request_timeout > MAX_RECORD_TTL {
            refuse(
                "request_timeout",
                format!("{:?} is not within (0, 7 days]", self.request_timeout),
            )?;
        }
        if let Some(limits) = &self.shard_limits {
            for (setting, value) in [
                ("shard_limits.records_per_sec", limits.records_per_sec),
                ("shard_limits.bytes_per_sec", limits.bytes_per_sec),
            ] {
                // Infinity is "no limit"; zero, negative and NaN have no meaning.
                if value.is_nan() || value <= 0.0 {
                    refuse(
                        setting,
                        format!("{value} must be above 0 (f64::INFINITY for no limit)"),
                    )?;
                }
            }
        }
        if self.shard_map_refresh < MIN_PERIOD || self.shard_map_refresh > MAX_RECORD_TTL {
            refuse(
                "shard_map_refresh",
                format!("{:?} is not within [1 s, 7 days]", self.shard_map_refresh),
            )?;
        }
        if let Some(interval) = self.metrics_interval
            && (interval < MIN_PERIOD || interval > MAX_RECORD_TTL)
        {
            refuse(
                "metrics_interval",
                format!(
                    "{interval:?} is not within [1 s, 7 days] (None turns the periodic event off)"
                ),
            )?;
        }
        Ok(())
    }
}
