//! The runner: shards → batches → handler, with Lambda's retry semantics.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::Utc;
use tokio::time::Instant;

use crate::failure::{BatchFailure, FailureDestination, KinesisBatchInfo};
use crate::source::{
    ReadOutcome, ShardReader, SourceError, SourceRecord, StartPosition, StreamSource,
};

/// Lambda's limit on the invocation payload for stream batches.
pub const MAX_BATCH_BYTES: usize = 6 * 1024 * 1024;
/// Largest total of record bytes (base64) copied into an on-failure entry; beyond it
/// the entry holds only the batch's position, as Lambda's does (an SQS message holds
/// 256 KiB).
pub const MAX_RECORDS_IN_FAILURE_BYTES: usize = 192 * 1024;
/// Lambda's largest Kinesis batch size.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// An event source mapping's settings, named as in Lambda.
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Records per batch, 1 to 10,000. Default 100 (Lambda's default).
    pub batch_size: usize,
    /// How long to gather records before invoking. Default zero: invoke as soon as
    /// records are there (Lambda's default).
    pub batching_window: Duration,
    /// Retries of a failing batch before it goes to the on-failure destination.
    /// `None` retries until the records expire, as Lambda's `-1`. Default 5.
    pub max_retry_attempts: Option<u32>,
    /// Where to start in each shard. Default trim horizon.
    pub start: StartPosition,
    /// Wait after a read found nothing new (Lambda polls each shard about once a
    /// second; the in-process stream's reader already waits). Default 200 ms.
    pub poll_interval: Duration,
    /// Stop a shard after this long without records; `None` runs until the shard
    /// ends. Default `None`.
    pub idle_timeout: Option<Duration>,
    /// First wait before retrying a failed batch, doubled per retry up to 5 s.
    /// Default 100 ms.
    pub retry_backoff: Duration,
    /// Region written into every event record.
    pub region: String,
    /// Shards processed at once; `None` processes every shard concurrently, as
    /// Lambda does. Lower it to spare a small machine or an emulator that cannot take
    /// concurrent writes (moto's DynamoDB transactions race). Default `None`.
    pub shard_concurrency: Option<usize>,
}

impl Default for MappingConfig {
    fn default() -> Self {
        MappingConfig {
            batch_size: 100,
            batching_window: Duration::ZERO,
            max_retry_attempts: Some(5),
            start: StartPosition::TrimHorizon,
            poll_interval: Duration::from_millis(200),
            idle_timeout: None,
            retry_backoff: Duration::from_millis(100),
            region: "local".into(),
            shard_concurrency: None,
        }
    }
}

/// A function error: the whole batch is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("handler error: {0}")]
pub struct HandlerError(pub String);

/// What the runner invokes: the same signature as a Lambda handler for Kinesis.
pub trait Handler: Send + Sync {
    /// Handles one batch.
    fn handle(
        &self,
        event: KinesisEvent,
    ) -> impl Future<Output = Result<KinesisEventResponse, HandlerError>> + Send;
}

/// A [`Handler`] from an async function.
pub struct FnHandler<F>(F);

/// Wraps an async function as a [`Handler`].
pub fn handler_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(KinesisEvent) -> Fut + Send + Sync,
    Fut: Future<Output = Result<KinesisEventResponse, HandlerError>> + Send,
{
    FnHandler(f)
}

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(KinesisEvent) -> Fut + Send + Sync,
    Fut: Future<Output = Result<KinesisEventResponse, HandlerError>> + Send,
{
    fn handle(
        &self,
        event: KinesisEvent,
    ) -> impl Future<Output = Result<KinesisEventResponse, HandlerError>> + Send {
        (self.0)(event)
    }
}

/// Counters of a run, readable while it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MappingStats {
    /// Records read from the stream.
    pub records_read: u64,
    /// Records whose processing is checkpointed (done, or sent to the on-failure
    /// destination).
    pub records_done: u64,
    /// Handler invocations.
    pub invocations: u64,
    /// Invocations that reported a failure or returned an error.
    pub failed_invocations: u64,
    /// Batches sent to the on-failure destination.
    pub batches_to_failure_destination: u64,
    /// Records in those batches.
    pub records_to_failure_destination: u64,
}

#[derive(Default)]
struct Counters {
    records_read: AtomicU64,
    records_done: AtomicU64,
    invocations: AtomicU64,
    failed_invocations: AtomicU64,
    batches_to_failure_destination: AtomicU64,
    records_to_failure_destination: AtomicU64,
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// The stream could not be read.
    #[error("shard {shard_id}: {error}")]
    Source {
        shard_id: String,
        error: SourceError,
    },
    /// A failed batch could not be recorded at the on-failure destination; the shard
    /// stops rather than skip records nobody recorded.
    #[error("shard {shard_id}: on-failure destination: {error}")]
    FailureDestination { shard_id: String, error: String },
}

/// An event source mapping, run locally.
#[derive(Clone)]
pub struct Runner {
    config: MappingConfig,
    counters: Arc<Counters>,
}

impl Runner {
    /// A runner with these settings (batch size clamped to 1..=10,000).
    pub fn new(mut config: MappingConfig) -> Runner {
        config.batch_size = config.batch_size.clamp(1, MAX_BATCH_SIZE);
        Runner {
            config,
            counters: Arc::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> MappingStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MappingStats {
            records_read: get(&c.records_read),
            records_done: get(&c.records_done),
            invocations: get(&c.invocations),
            failed_invocations: get(&c.failed_invocations),
            batches_to_failure_destination: get(&c.batches_to_failure_destination),
            records_to_failure_destination: get(&c.records_to_failure_destination),
        }
    }

    /// Reads every shard until it ends (or idles out), invoking `handler`.
    pub async fn run<S, H, F>(
        &self,
        source: &S,
        handler: &H,
        failures: &F,
    ) -> Result<MappingStats, RunnerError>
    where
        S: StreamSource,
        H: Handler,
        F: FailureDestination,
    {
        let shards = source.shards().await.map_err(|error| RunnerError::Source {
            shard_id: "*".into(),
            error,
        })?;
        let arn = source.stream_arn();
        let concurrency = self.config.shard_concurrency.unwrap_or(shards.len()).max(1);
        let permits = tokio::sync::Semaphore::new(concurrency);
        let runs = shards.iter().map(|shard_id| async {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire().await;
            self.run_shard(source, shard_id, &arn, handler, failures)
                .await
        });
        futures::future::try_join_all(runs).await?;
        Ok(self.stats())
    }

    async fn run_shard<S, H, F>(
        &self,
        source: &S,
        shard_id: &str,
        arn: &str,
        handler: &H,
        failures: &F,
    ) -> Result<(), RunnerError>
    where
        S: StreamSource,
        H: Handler,
        F: FailureDestination,
    {
        let source_error = |error| RunnerError::Source {
            shard_id: shard_id.to_string(),
            error,
        };
        let mut reader = source
            .open(shard_id, self.config.start.clone())
            .await
            .map_err(source_error)?;
        let mut buffer: VecDeque<SourceRecord> = VecDeque::new();
        let mut ended = false;
        let mut last_records = Instant::now();
        let mut read_failures = 0u32;
        loop {
            let window_ends = Instant::now() + self.config.batching_window;
            while !ended && buffer.len() < self.config.batch_size {
                match reader.read(self.config.batch_size - buffer.len()).await {
                    Ok(ReadOutcome::Ended) => ended = true,
                    Ok(ReadOutcome::Records(records)) if records.is_empty() => {
                        read_failures = 0;
                        let now = Instant::now();
                        if !buffer.is_empty() && now >= window_ends {
                            break;
                        }
                        if buffer.is_empty()
                            && self
                                .config
                                .idle_timeout
                                .is_some_and(|idle| now.duration_since(last_records) >= idle)
                        {
                            ended = true;
                            break;
                        }
                        let wake = if buffer.is_empty() {
                            now + self.config.poll_interval
                        } else {
                            window_ends.min(now + self.config.poll_interval)
                        };
                        tokio::time::sleep_until(wake).await;
                    }
                    Ok(ReadOutcome::Records(records)) => {
                        read_failures = 0;
                        last_records = Instant::now();
                        self.counters
                            .records_read
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                        buffer.extend(records);
                        if Instant::now() >= window_ends {
                            break;
                        }
                    }
                    Err(SourceError::Transient(e)) => {
                        read_failures += 1;
                        tracing::warn!(shard_id, error = %e, "read failed; backing off");
                        tokio::time::sleep(backoff(self.config.poll_interval, read_failures)).await;
                    }
                    Err(error) => return Err(source_error(error)),
                }
            }
            if buffer.is_empty() {
                if ended {
                    return Ok(());
                }
                continue;
            }
            let batch = take_batch(&mut buffer, self.config.batch_size);
            self.deliver(shard_id, arn, batch, handler, failures)
                .await?;
        }
    }

    /// Invokes the handler until the batch is done or out of retries.
    async fn deliver<H: Handler, F: FailureDestination>(
        &self,
        shard_id: &str,
        arn: &str,
        batch: Vec<SourceRecord>,
        handler: &H,
        failures: &F,
    ) -> Result<(), RunnerError> {
        let mut start = 0;
        let mut attempt = 0u32;
        loop {
            let pending = &batch[start..];
            let event = kinesis_event(shard_id, arn, &self.config.region, pending);
            self.counters.invocations.fetch_add(1, Ordering::Relaxed);
            let condition = match handler.handle(event).await {
                Ok(response) => match first_failure(pending, &response) {
                    FirstFailure::None => {
                        self.counters
                            .records_done
                            .fetch_add(pending.len() as u64, Ordering::Relaxed);
                        return Ok(());
                    }
                    FirstFailure::At(i) => {
                        self.counters
                            .records_done
                            .fetch_add(i as u64, Ordering::Relaxed);
                        start += i;
                        format!(
                            "partial batch failure from sequence number {}",
                            batch[start].sequence_number
                        )
                    }
                    FirstFailure::Invalid(id) => {
                        format!("invalid batch item identifier {id:?}: whole batch retried")
                    }
                },
                Err(e) => e.to_string(),
            };
            self.counters
                .failed_invocations
                .fetch_add(1, Ordering::Relaxed);
            attempt += 1;
            if self
                .config
                .max_retry_attempts
                .is_some_and(|max| attempt > max)
            {
                let pending = &batch[start..];
                let failure = batch_failure(shard_id, arn, pending, condition, attempt);
                failures
                    .send(&failure)
                    .await
                    .map_err(|error| RunnerError::FailureDestination {
                        shard_id: shard_id.to_string(),
                        error,
                    })?;
                tracing::error!(shard_id, start_sequence_number = %failure.kinesis_batch_info.start_sequence_number,
                    records = pending.len(), "batch sent to the on-failure destination");
                self.counters
                    .batches_to_failure_destination
                    .fetch_add(1, Ordering::Relaxed);
                self.counters
                    .records_to_failure_destination
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                self.counters
                    .records_done
                    .fetch_add(pending.len() as u64, Ordering::Relaxed);
                return Ok(());
            }
            tracing::warn!(shard_id, attempt, %condition, "retrying batch");
            tokio::time::sleep(backoff(self.config.retry_backoff, attempt)).await;
        }
    }
}

/// Exponential backoff from `base`, doubling per attempt, capped at 5 s.
fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(5))
}

/// The next batch: up to `batch_size` records within [`MAX_BATCH_BYTES`] (at least one).
fn take_batch(buffer: &mut VecDeque<SourceRecord>, batch_size: usize) -> Vec<SourceRecord> {
    let mut bytes = 0;
    let mut n = 0;
    for r in buffer.iter() {
        // Base64 grows data by 4/3; the rest of a record's JSON is about 500 bytes.
        let size = r.data.len().div_ceil(3) * 4 + 500;
        if n == batch_size || (n > 0 && bytes + size > MAX_BATCH_BYTES) {
            break;
        }
        bytes += size;
        n += 1;
    }
    buffer.drain(..n).collect()
}

#[derive(Debug, PartialEq, Eq)]
enum FirstFailure {
    None,
    At(usize),
    Invalid(String),
}

/// The lowest failed record a response names, as Lambda reads it.
fn first_failure(batch: &[SourceRecord], response: &KinesisEventResponse) -> FirstFailure {
    let mut first: Option<usize> = None;
    for failure in &response.batch_item_failures {
        let id = failure.item_identifier.clone().unwrap_or_default();
        match batch.iter().position(|r| r.sequence_number == id) {
            Some(i) => first = Some(first.map_or(i, |f| f.min(i))),
            None => return FirstFailure::Invalid(id),
        }
    }
    first.map_or(FirstFailure::None, FirstFailure::At)
}

/// A `KinesisEvent` as Lambda builds it.
pub fn kinesis_event(
    shard_id: &str,
    arn: &str,
    region: &str,
    records: &[SourceRecord],
) -> KinesisEvent {
    let mut event = KinesisEvent::default();
    event.records = records
        .iter()
        .map(|r| {
            let mut record = KinesisEventRecord::default();
            record.aws_region = Some(region.to_string());
            record.event_id = Some(format!("{shard_id}:{}", r.sequence_number));
            record.event_name = Some("aws:kinesis:record".into());
            record.event_source = Some("aws:kinesis".into());
            record.event_source_arn = Some(arn.to_string());
            record.event_version = Some("1.0".into());
            record.invoke_identity_arn =
                Some("arn:aws:iam::000000000000:role/flyhigh-local-runner".into());
            record.kinesis.kinesis_schema_version = Some("1.0".into());
            record.kinesis.partition_key = r.partition_key.clone();
            record.kinesis.sequence_number = r.sequence_number.clone();
            record.kinesis.data.0 = r.data.clone();
            record.kinesis.approximate_arrival_timestamp.0 = r.approximate_arrival;
            record
        })
        .collect();
    event
}

fn batch_failure(
    shard_id: &str,
    arn: &str,
    records: &[SourceRecord],
    condition: String,
    attempts: u32,
) -> BatchFailure {
    use base64::Engine;
    let encoded: usize = records.iter().map(|r| r.data.len().div_ceil(3) * 4).sum();
    let (first, last) = (&records[0], &records[records.len() - 1]);
    BatchFailure {
        condition,
        attempts,
        timestamp: Utc::now(),
        kinesis_batch_info: KinesisBatchInfo {
            shard_id: shard_id.to_string(),
            start_sequence_number: first.sequence_number.clone(),
            end_sequence_number: last.sequence_number.clone(),
            approximate_arrival_of_first_record: first.approximate_arrival,
            approximate_arrival_of_last_record: last.approximate_arrival,
            batch_size: records.len(),
            stream_arn: arn.to_string(),
        },
        records_base64: if encoded <= MAX_RECORDS_IN_FAILURE_BYTES {
            records
                .iter()
                .map(|r| base64::engine::general_purpose::STANDARD.encode(&r.data))
                .collect()
        } else {
            Vec::new()
        },
    }
}

#[cfg(test)]
mod tests;
