//! The local event-source-mapping runner: Lambda's Kinesis poller, on one machine.
//!
//! It reads every shard of a stream (the in-process [`LocalStream`] or Kinesis
//! through `flyhigh-aws`), builds real `aws_lambda_events` `KinesisEvent` batches and
//! invokes a [`Handler`] with Lambda's semantics:
//!
//! - shards are read concurrently, each strictly in order, one batch in flight;
//! - a batch closes at `batch_size` records, 6 MB of payload, or when the batching
//!   window ends;
//! - with `ReportBatchItemFailures`, the records before the lowest reported sequence
//!   number are checkpointed and the batch is retried from that record; a function
//!   error, or an identifier that is empty or not in the batch, retries it whole;
//! - after `max_retry_attempts` retries the batch goes to the on-failure destination
//!   ([`FailureDestination`]) and the shard moves on, so one bad batch never blocks
//!   a shard forever.
//!
//! Layout: [`source`] (the stream port), [`failure`] (the on-failure port),
//! [`mapping`] (the runner), [`local`] (the in-process stream as a source).
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
    Handler, HandlerError, MappingConfig, MappingStats, Runner, RunnerError, handler_fn,
};
pub use source::{
    ReadOutcome, ShardReader, SourceError, SourceRecord, SourceShard, StartPosition, StreamSource,
    compare_sequence_numbers,
};
