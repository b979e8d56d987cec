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
    /// The source is stopping (a local service shutting down) and everything in the
    /// shard so far was read: the shard has not ended, and a restart reads on from
    /// the checkpoint.
    Stopped,
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

/// A shard as listed, with its lineage: the shards it was made from by a reshard.
///
/// A split makes two children with the split shard as their parent; a merge makes
/// one child with two parents (`parent_shard_id` and `adjacent_parent_shard_id`).
/// The runner starts a child only once each parent it lists is drained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceShard {
    /// The shard id.
    pub shard_id: String,
    /// The shard it was split or merged from, if any.
    pub parent_shard_id: Option<String>,
    /// The other shard of a merge, if any.
    pub adjacent_parent_shard_id: Option<String>,
}

impl SourceShard {
    /// A shard with no parent (one of a stream's first shards).
    pub fn root(shard_id: impl Into<String>) -> SourceShard {
        SourceShard {
            shard_id: shard_id.into(),
            parent_shard_id: None,
            adjacent_parent_shard_id: None,
        }
    }

    /// The parents it names (none, one, or two).
    pub fn parents(&self) -> impl Iterator<Item = &str> {
        [&self.parent_shard_id, &self.adjacent_parent_shard_id]
            .into_iter()
            .flatten()
            .map(String::as_str)
    }
}

/// Orders two sequence numbers as the integers they are.
///
/// Sequence numbers are decimal strings of any length: Kinesis gives 56 digits, moto
/// `"1"`, `"2"`..., so neither string order nor `u128` parsing is right. Leading zeros
/// are ignored.
pub fn compare_sequence_numbers(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A stream with shards.
pub trait StreamSource: Send + Sync {
    /// The reader type.
    type Reader: ShardReader + 'static;

    /// The stream's ARN, as Lambda puts it in every event record.
    fn stream_arn(&self) -> String;

    /// Every shard the stream lists, open and closed, in shard-id order, with its
    /// lineage. The runner calls it again while it runs, to find the children of a
    /// reshard.
    fn shards(&self) -> impl Future<Output = Result<Vec<SourceShard>, SourceError>> + Send;

    /// Opens a reader on a shard.
    fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> impl Future<Output = Result<Self::Reader, SourceError>> + Send;
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;

    #[test]
    fn sequence_numbers_compare_as_integers_of_any_length() {
        let real = "49590338271490256608559692538361571095921575989136588898";
        let next = "49590338271490256608559692538361571095921575989136588899";
        assert_eq!(compare_sequence_numbers("2", "10"), Ordering::Less);
        assert_eq!(compare_sequence_numbers("10", "9"), Ordering::Greater);
        assert_eq!(compare_sequence_numbers("007", "7"), Ordering::Equal);
        assert_eq!(compare_sequence_numbers(real, next), Ordering::Less);
        assert_eq!(compare_sequence_numbers(real, "1"), Ordering::Greater);
        assert_eq!(compare_sequence_numbers(real, real), Ordering::Equal);
    }

    #[test]
    fn a_shard_names_its_parents() {
        let merged = SourceShard {
            shard_id: "shardId-000000000003".into(),
            parent_shard_id: Some("shardId-000000000001".into()),
            adjacent_parent_shard_id: Some("shardId-000000000002".into()),
        };
        assert_eq!(
            merged.parents().collect::<Vec<_>>(),
            ["shardId-000000000001", "shardId-000000000002"]
        );
        assert_eq!(SourceShard::root("s").parents().count(), 0);
    }
}
