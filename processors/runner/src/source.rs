//! The port the runner reads from: a stream of shards, each read in order.

use std::future::Future;

use chrono::{DateTime, Utc};

/// One record as read from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// Kinesis sequence number (decimal string).
    pub sequence_number: String,
    /// The producer's partition key.
    pub partition_key: String,
    /// When the stream accepted the record.
    pub approximate_arrival: DateTime<Utc>,
    /// The record's bytes.
    pub data: Vec<u8>,
}

/// The result of one read from a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Records in shard order (may be empty when the shard has nothing new yet).
    Records(Vec<SourceRecord>),
    /// The shard will never have more records: it was closed by a reshard, or the
    /// (in-process) stream was closed by its producer and fully read.
    Ended,
}

/// Where reading starts in a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still in the shard.
    TrimHorizon,
    /// Only records written after the reader opens.
    Latest,
    /// Just after this sequence number (a checkpoint).
    AfterSequenceNumber(String),
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Throttled or temporarily unavailable: back off and read again.
    #[error("transient read error: {0}")]
    Transient(String),
    /// The stream or shard does not exist, or access is denied.
    #[error("read error: {0}")]
    Permanent(String),
}

/// A reader positioned in one shard.
pub trait ShardReader: Send {
    /// Reads up to `limit` records after the last ones returned.
    fn read(
        &mut self,
        limit: usize,
    ) -> impl Future<Output = Result<ReadOutcome, SourceError>> + Send;
}

/// A stream with shards.
pub trait StreamSource: Send + Sync {
    /// The reader type.
    type Reader: ShardReader + 'static;

    /// The stream's ARN, as Lambda puts it in every event record.
    fn stream_arn(&self) -> String;

    /// The shard ids, in order.
    fn shards(&self) -> impl Future<Output = Result<Vec<String>, SourceError>> + Send;

    /// Opens a reader on a shard.
    fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> impl Future<Output = Result<Self::Reader, SourceError>> + Send;
}
