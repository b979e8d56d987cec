//! The runner: shards → batches → handler, with Lambda's retry semantics.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::Utc;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use self::lineage::{Lineage, ShardState};
use crate::checkpoint::{CheckpointError, CheckpointStore, MemoryCheckpoints};
use crate::failure::{BatchFailure, FailureDestination, KinesisBatchInfo};
use crate::source::{
    ReadOutcome, ShardReader, SourceError, SourceRecord, SourceShard, StartPosition, StreamSource,
};

/// Lambda's limit on the invocation payload for stream batches.
pub const MAX_BATCH_BYTES: usize = 6 * 1024 * 1024;
/// Largest total of record bytes (base64) copied into an on-failure entry; beyond it
/// the entry holds only the batch's position, as Lambda's does (an SQS message holds
/// 256 KiB).
pub const MAX_RECORDS_IN_FAILURE_BYTES: usize = 192 * 1024;
/// Attempts at the listing that decides a run is over.
const FINAL_LISTING_ATTEMPTS: u32 = 5;
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
    /// When a batch fails (function error or a reported item failure), split it in
    /// two halves and retry each, without counting a retry, down to one record,
    /// as Lambda's `BisectBatchOnFunctionError`. Default false (Lambda's default).
    pub bisect_batch_on_function_error: bool,
    /// How often the shards are listed again to find the children of a reshard
    /// (also done whenever a shard reaches its end). Default 10 s.
    pub shard_refresh_interval: Duration,
    /// The function's timeout: each invocation is given the deadline this long after
    /// it starts ([`Handler::handle_by`]), as Lambda gives its `Context` deadline.
    /// The runner does not cut an invocation short; a handler that watches its
    /// deadline (the archive) stops at a boundary and reports where to go on.
    /// Default 300 s (the archive Lambda's timeout).
    pub function_timeout: Duration,
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
            bisect_batch_on_function_error: false,
            shard_refresh_interval: Duration::from_secs(10),
            function_timeout: DEFAULT_FUNCTION_TIMEOUT,
        }
    }
}

/// [`MappingConfig::function_timeout`]'s default.
pub const DEFAULT_FUNCTION_TIMEOUT: Duration = Duration::from_secs(300);

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

    /// Handles one batch that must be answered by `deadline` (what the runner
    /// calls, as Lambda passes its `Context`). By default the deadline is not
    /// looked at.
    fn handle_by(
        &self,
        event: KinesisEvent,
        deadline: std::time::Instant,
    ) -> impl Future<Output = Result<KinesisEventResponse, HandlerError>> + Send {
        let _ = deadline;
        self.handle(event)
    }
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

/// A [`Handler`] from an async function of the batch and its deadline.
pub struct FnHandlerBy<F>(F);

/// Wraps an async function of a batch and its deadline as a [`Handler`]; called
/// through [`Handler::handle`] (without a deadline), it gets one
/// [`DEFAULT_FUNCTION_TIMEOUT`] away.
pub fn handler_fn_by<F, Fut>(f: F) -> FnHandlerBy<F>
where
    F: Fn(KinesisEvent, std::time::Instant) -> Fut + Send + Sync,
    Fut: Future<Output = Result<KinesisEventResponse, HandlerError>> + Send,
{
    FnHandlerBy(f)
}

impl<F, Fut> Handler for FnHandlerBy<F>
where
    F: Fn(KinesisEvent, std::time::Instant) -> Fut + Send + Sync,
    Fut: Future<Output = Result<KinesisEventResponse, HandlerError>> + Send,
{
    fn handle(
        &self,
        event: KinesisEvent,
    ) -> impl Future<Output = Result<KinesisEventResponse, HandlerError>> + Send {
        (self.0)(event, std::time::Instant::now() + DEFAULT_FUNCTION_TIMEOUT)
    }

    fn handle_by(
        &self,
        event: KinesisEvent,
        deadline: std::time::Instant,
    ) -> impl Future<Output = Result<KinesisEventResponse, HandlerError>> + Send {
        (self.0)(event, deadline)
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
    /// Failed batches split in two (`bisect_batch_on_function_error`).
    pub bisections: u64,
    /// Shards read to their end after a reshard closed them (or, in-process, after
    /// the stream was closed) and marked finished.
    pub shards_finished: u64,
}

#[derive(Default)]
struct Counters {
    records_read: AtomicU64,
    records_done: AtomicU64,
    invocations: AtomicU64,
    failed_invocations: AtomicU64,
    batches_to_failure_destination: AtomicU64,
    records_to_failure_destination: AtomicU64,
    bisections: AtomicU64,
    shards_finished: AtomicU64,
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
    /// A checkpoint could not be loaded or saved; the run stops rather than lose
    /// track of what it has done.
    #[error("shard {shard_id}: checkpoint: {error}")]
    Checkpoint { shard_id: String, error: String },
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
            bisections: get(&c.bisections),
            shards_finished: get(&c.shards_finished),
        }
    }

    /// Reads every shard until it ends (or idles out), invoking `handler`, with
    /// checkpoints in memory: each shard starts at [`MappingConfig::start`].
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
        self.run_with_checkpoints(source, handler, failures, &MemoryCheckpoints::default())
            .await
    }

    /// Reads every shard until it ends (or idles out), invoking `handler`, going on
    /// from the checkpoints in `checkpoints` and saving new ones there.
    ///
    /// Shards are scheduled by lineage: a child of a reshard starts once each parent
    /// it names is finished (closed, read to its end, last batch checkpointed) or no
    /// longer listed (trimmed). The shards are listed again every
    /// [`MappingConfig::shard_refresh_interval`] and whenever a shard finishes, so
    /// children created while the runner runs are found. The run ends when no shard
    /// is being read and a fresh listing offers none to start.
    pub async fn run_with_checkpoints<S, H, F, C>(
        &self,
        source: &S,
        handler: &H,
        failures: &F,
        checkpoints: &C,
    ) -> Result<MappingStats, RunnerError>
    where
        S: StreamSource,
        H: Handler,
        F: FailureDestination,
        C: CheckpointStore,
    {
        let mut lineage = Lineage::default();
        let mut listing_failures = 0u32;
        // The first listing also resolves the stream's ARN (`KinesisSource`).
        let mut listed = loop {
            match source.shards().await {
                Ok(shards) => break shards,
                Err(SourceError::Transient(e)) => {
                    listing_failures += 1;
                    tracing::warn!(error = %e, "listing shards failed; backing off");
                    tokio::time::sleep(backoff(self.config.poll_interval, listing_failures)).await;
                }
                Err(error) => return Err(listing_error(error)),
            }
        };
        let arn = source.stream_arn();
        let arn = arn.as_str();
        let mut running = FuturesUnordered::new();
        // Whether the listing at hand was made after the last shard stopped.
        let mut confirmed = false;
        loop {
            // Learn the shards listed for the first time.
            for shard in &listed {
                if lineage.knows(&shard.shard_id) {
                    continue;
                }
                let checkpoint = checkpoints
                    .load(arn, &shard.shard_id)
                    .await
                    .map_err(|e| checkpoint_error(&shard.shard_id, e))?
                    .unwrap_or_default();
                if checkpoint.finished {
                    tracing::debug!(shard_id = %shard.shard_id, "shard finished in an earlier run");
                }
                lineage.learn(&shard.shard_id, checkpoint);
            }
            let concurrency = self.config.shard_concurrency.unwrap_or(usize::MAX).max(1);
            for (shard_id, start) in lineage.ready(&listed, &self.config.start) {
                if running.len() >= concurrency {
                    break;
                }
                lineage.set(&shard_id, ShardState::Running);
                tracing::info!(shard_id, start = ?start, "reading shard");
                running.push(async move {
                    let end = self
                        .run_shard(
                            source,
                            &shard_id,
                            arn,
                            start,
                            handler,
                            failures,
                            checkpoints,
                        )
                        .await;
                    (shard_id, end)
                });
            }
            if running.is_empty() {
                // Nothing left to read in the listing at hand; one fresh listing decides,
                // so that children of a shard that just ended are not missed because the
                // listing after its end failed or was never made (an idle stop).
                if !confirmed {
                    confirmed = true;
                    if let Some(shards) = self.relist(source, FINAL_LISTING_ATTEMPTS).await? {
                        listed = shards;
                    }
                    continue;
                }
                let waiting = lineage.waiting(&listed);
                if !waiting.is_empty() {
                    tracing::warn!(shards = ?waiting, "shards left unread: a parent stopped before its end; run again to read them");
                }
                return Ok(self.stats());
            }
            confirmed = false;
            let relist_at = Instant::now() + self.config.shard_refresh_interval;
            let finished = tokio::select! {
                Some((shard_id, end)) = running.next() => match end? {
                    ShardEnd::Closed => {
                        checkpoints
                            .finish(arn, &shard_id)
                            .await
                            .map_err(|e| checkpoint_error(&shard_id, e))?;
                        self.counters.shards_finished.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(shard_id, "shard finished");
                        lineage.set(&shard_id, ShardState::Finished);
                        true
                    }
                    ShardEnd::Idle => {
                        tracing::info!(shard_id, "shard idle; stopped reading it");
                        lineage.set(&shard_id, ShardState::Stopped);
                        false
                    }
                    ShardEnd::Stopped => {
                        // Not finished: the shard goes on after a restart.
                        tracing::info!(shard_id, "the stream stopped; shard read so far");
                        lineage.set(&shard_id, ShardState::Stopped);
                        false
                    }
                },
                () = tokio::time::sleep_until(relist_at) => true,
            };
            if finished {
                // A shard reaching its end is when its children become readable.
                if let Some(shards) = self.relist(source, 1).await? {
                    listed = shards;
                }
            }
        }
    }

    /// Lists the shards again, trying up to `attempts` times on transient errors;
    /// `None` when every attempt failed (the caller keeps its last listing).
    async fn relist<S: StreamSource>(
        &self,
        source: &S,
        attempts: u32,
    ) -> Result<Option<Vec<SourceShard>>, RunnerError> {
        for attempt in 1..=attempts.max(1) {
            match source.shards().await {
                Ok(shards) => return Ok(Some(shards)),
                Err(SourceError::Transient(e)) => {
                    tracing::warn!(error = %e, attempt, "listing shards failed; keeping the last listing");
                    if attempt < attempts {
                        tokio::time::sleep(backoff(self.config.poll_interval, attempt)).await;
                    }
                }
                Err(error) => return Err(listing_error(error)),
            }
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_shard<S, H, F, C>(
        &self,
        source: &S,
        shard_id: &str,
        arn: &str,
        start: StartPosition,
        handler: &H,
        failures: &F,
        checkpoints: &C,
    ) -> Result<ShardEnd, RunnerError>
    where
        S: StreamSource,
        H: Handler,
        F: FailureDestination,
        C: CheckpointStore,
    {
        let source_error = |error| RunnerError::Source {
            shard_id: shard_id.to_string(),
            error,
        };
        let mut reader = source.open(shard_id, start).await.map_err(source_error)?;
        let mut buffer: VecDeque<SourceRecord> = VecDeque::new();
        let mut end = None;
        let mut last_records = Instant::now();
        let mut read_failures = 0u32;
        let shard = ShardContext { shard_id, arn };
        loop {
            let window_ends = Instant::now() + self.config.batching_window;
            while end.is_none() && buffer.len() < self.config.batch_size {
                match reader.read(self.config.batch_size - buffer.len()).await {
                    Ok(ReadOutcome::Ended) => end = Some(ShardEnd::Closed),
                    Ok(ReadOutcome::Stopped) => end = Some(ShardEnd::Stopped),
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
                            end = Some(ShardEnd::Idle);
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
                if let Some(end) = end {
                    return Ok(end);
                }
                continue;
            }
            let batch = take_batch(&mut buffer, self.config.batch_size);
            self.deliver(&shard, batch, handler, failures, checkpoints)
                .await?;
        }
    }

    /// Invokes the handler until every record of the batch is done or sent to the
    /// on-failure destination, checkpointing as it goes.
    ///
    /// The batch is worked through as segments in shard order. A failing segment is
    /// retried from its first failed record. With
    /// [`MappingConfig::bisect_batch_on_function_error`], as Lambda does, a reported
    /// item failure splits the segment at that record and the rest is retried whole,
    /// and a failing segment of two or more records that made no progress (a
    /// function error, or a failure reported at its first record) is split in two
    /// halves, each retried on its own; neither counts a retry. Only a one-record
    /// segment, or any segment when bisecting is off, counts retries towards
    /// [`MappingConfig::max_retry_attempts`].
    async fn deliver<H, F, C>(
        &self,
        shard: &ShardContext<'_>,
        batch: Vec<SourceRecord>,
        handler: &H,
        failures: &F,
        checkpoints: &C,
    ) -> Result<(), RunnerError>
    where
        H: Handler,
        F: FailureDestination,
        C: CheckpointStore,
    {
        let shard_id = shard.shard_id;
        let mut segments = VecDeque::from([Segment {
            start: 0,
            end: batch.len(),
            retries: 0,
        }]);
        while let Some(mut segment) = segments.pop_front() {
            let pending = &batch[segment.start..segment.end];
            let event = kinesis_event(shard_id, shard.arn, &self.config.region, pending);
            self.counters.invocations.fetch_add(1, Ordering::Relaxed);
            let mut reported = false;
            let deadline = std::time::Instant::now() + self.config.function_timeout;
            let (failed_from, condition) = match handler.handle_by(event, deadline).await {
                Ok(response) => match first_failure(pending, &response) {
                    FirstFailure::None => {
                        self.done(shard, pending, checkpoints).await?;
                        continue;
                    }
                    FirstFailure::At(i) => {
                        reported = true;
                        self.done(shard, &pending[..i], checkpoints).await?;
                        let from = segment.start + i;
                        let condition = format!(
                            "partial batch failure from sequence number {}",
                            batch[from].sequence_number
                        );
                        (from, condition)
                    }
                    FirstFailure::Invalid(id) => (
                        segment.start,
                        format!("invalid batch item identifier {id:?}: whole batch retried"),
                    ),
                },
                Err(e) => (segment.start, e.to_string()),
            };
            self.counters
                .failed_invocations
                .fetch_add(1, Ordering::Relaxed);
            // Lambda with both settings splits at the reported record and retries the
            // rest; a failure at the very first record made no progress and is bisected
            // like a function error.
            let progressed = reported && failed_from > segment.start;
            segment.start = failed_from;
            if self.config.bisect_batch_on_function_error && progressed {
                segments.push_front(segment);
                continue;
            }
            if self.config.bisect_batch_on_function_error && segment.len() > 1 {
                // Halves are retried at once in Lambda; a pause keeps a throttled store
                // from being hit again by every level of the bisection.
                tokio::time::sleep(self.config.retry_backoff).await;
                let (left, right) = segment.halves();
                tracing::warn!(shard_id, %condition, left = left.len(), right = right.len(), "bisecting failed batch");
                self.counters.bisections.fetch_add(1, Ordering::Relaxed);
                segments.push_front(right);
                segments.push_front(left);
                continue;
            }
            segment.retries += 1;
            if self
                .config
                .max_retry_attempts
                .is_some_and(|max| segment.retries > max)
            {
                let pending = &batch[segment.start..segment.end];
                let failure =
                    batch_failure(shard_id, shard.arn, pending, condition, segment.retries);
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
                self.done(shard, pending, checkpoints).await?;
                continue;
            }
            tracing::warn!(shard_id, attempt = segment.retries, %condition, "retrying batch");
            tokio::time::sleep(backoff(self.config.retry_backoff, segment.retries)).await;
            segments.push_front(segment);
        }
        Ok(())
    }

    /// Counts `records` as done and checkpoints the last of them.
    async fn done<C: CheckpointStore>(
        &self,
        shard: &ShardContext<'_>,
        records: &[SourceRecord],
        checkpoints: &C,
    ) -> Result<(), RunnerError> {
        let Some(last) = records.last() else {
            return Ok(());
        };
        checkpoints
            .save(shard.arn, shard.shard_id, &last.sequence_number)
            .await
            .map_err(|e| checkpoint_error(shard.shard_id, e))?;
        self.counters
            .records_done
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// The shard a task reads.
struct ShardContext<'a> {
    shard_id: &'a str,
    arn: &'a str,
}

/// Why a shard's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardEnd {
    /// Closed and read to its end, every batch checkpointed.
    Closed,
    /// Stopped after [`MappingConfig::idle_timeout`] without records.
    Idle,
    /// The source stopped (a service shutting down), every batch so far checkpointed;
    /// not finished.
    Stopped,
}

/// Records `start..end` of a batch, and the retries counted against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: usize,
    end: usize,
    retries: u32,
}

impl Segment {
    fn len(&self) -> usize {
        self.end - self.start
    }

    /// The two halves (the first one is the smaller when the length is odd); a
    /// bisection counts no retry, so both keep the segment's count.
    fn halves(&self) -> (Segment, Segment) {
        let mid = self.start + self.len() / 2;
        (
            Segment { end: mid, ..*self },
            Segment {
                start: mid,
                ..*self
            },
        )
    }
}

fn listing_error(error: SourceError) -> RunnerError {
    RunnerError::Source {
        shard_id: "*".into(),
        error,
    }
}

fn checkpoint_error(shard_id: &str, error: CheckpointError) -> RunnerError {
    RunnerError::Checkpoint {
        shard_id: shard_id.to_string(),
        error: error.to_string(),
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

mod lineage;
#[cfg(test)]
mod reshard_tests;
#[cfg(test)]
mod tests;
