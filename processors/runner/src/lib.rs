//! The local event-source-mapping runner: Lambda's Kinesis poller, on one machine.
//!
//! It reads every shard of a stream (the in-process [`LocalStream`] or Kinesis
//! through `flyhigh-aws`), builds real `aws_lambda_events` `KinesisEvent` batches and
//! invokes a [`Handler`] with Lambda's semantics:
//!
//! - shards are read concurrently, each strictly in order, one batch in flight;
//! - a batch closes at `batch_size` records, 6 MB of payload, or when the batching
//!   window ends;
//! - each invocation gets a deadline `function_timeout` after it starts
//!   ([`Handler::handle_by`], [`handler_fn_by`]), as Lambda's `Context` carries one;
//! - with `ReportBatchItemFailures`, the records before the lowest reported sequence
//!   number are checkpointed and the batch is retried from that record; a function
//!   error, or an identifier that is empty or not in the batch, retries it whole;
//! - with `bisect_batch_on_function_error` (off by default, as in Lambda) a failing
//!   batch is split in two halves, each retried on its own without counting a retry,
//!   down to a single record, which alone takes the retries below;
//! - after `max_retry_attempts` retries the batch goes to the on-failure destination
//!   ([`FailureDestination`]) and the shard moves on, so one bad batch never blocks
//!   a shard forever;
//! - shards are scheduled by lineage: the child of a reshard is read only once every
//!   parent it names is drained (closed, read to its end, its last batch
//!   checkpointed) or no longer listed; the shards are listed again every
//!   `shard_refresh_interval` and when a shard ends, so children made while the
//!   runner runs are found;
//! - each done batch is checkpointed in a [`CheckpointStore`] (in memory by default,
//!   or a JSON file, [`FileCheckpoints`]), and a restarted runner goes on
//!   `AFTER_SEQUENCE_NUMBER` the checkpoint and skips finished shards.
//!
//! Unlike Lambda: one batch in flight per shard (no `ParallelizationFactor`), no
//! record age limit, no event filtering, and a shard stopped by `idle_timeout` leaves
//! its children unread for the run.
//!
//! Layout: [`source`] (the stream port, shard lineage, sequence-number order),
//! [`checkpoint`] (the checkpoint port and its memory and file stores), [`failure`]
//! (the on-failure port), [`mapping`] (the runner), [`local`] (the in-process stream
//! as a source).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use flyhigh_runner::{FileCheckpoints, LocalSource, MappingConfig, Runner, handler_fn};
//! # use flyhigh_runner::{BatchFailure, FailureDestination};
//! # struct Log;
//! # impl FailureDestination for Log {
//! #     async fn send(&self, _: &BatchFailure) -> Result<(), String> { Ok(()) }
//! # }
//! use aws_lambda_events::event::streams::KinesisEventResponse;
//!
//! let stream = flyhigh_producer::LocalStream::new("events", 4);
//! let runner = Runner::new(MappingConfig {
//!     bisect_batch_on_function_error: true,
//!     ..MappingConfig::default()
//! });
//! let handler = handler_fn(|event| async move {
//!     println!("{} records", event.records.len());
//!     Ok(KinesisEventResponse::default())
//! });
//! let checkpoints = FileCheckpoints::open("out/checkpoints/events.json")?;
//! let stats = runner
//!     .run_with_checkpoints(&LocalSource::new(stream), &handler, &Log, &checkpoints)
//!     .await?;
//! println!("{} records done", stats.records_done);
//! # Ok(())
//! # }
//! ```
//!
//! [`LocalStream`]: flyhigh_producer::LocalStream

pub mod checkpoint;
pub mod failure;
pub mod local;
pub mod mapping;
pub mod source;

pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointStore, FileCheckpoints, MemoryCheckpoints,
};
pub use failure::{BatchFailure, FailureDestination, KinesisBatchInfo};
pub use local::LocalSource;
pub use mapping::{
    DEFAULT_FUNCTION_TIMEOUT, FnHandlerBy, Handler, HandlerError, MappingConfig, MappingStats,
    Runner, RunnerError, handler_fn, handler_fn_by,
};
pub use source::{
    ReadOutcome, ShardReader, SourceError, SourceRecord, SourceShard, StartPosition, StreamSource,
    compare_sequence_numbers,
};
