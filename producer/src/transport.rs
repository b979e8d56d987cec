//! The transport port: how records reach a stream and how the stream's shards are
//! learnt. [`crate::LocalStream`] and `KinesisTransport` implement it; tests wrap
//! it to inject faults.

use std::future::Future;

use flyhigh_schemas::HashKey;

use crate::rate::ShardLimits;

/// One Kinesis record to put: a plain user record or an aggregate of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Chooses the shard (MD5 of it, as a 128-bit hash key) unless
    /// `explicit_hash_key` is set.
    pub partition_key: String,
    /// Places the record at this hash key instead of the partition key's. The
    /// producer sets it on aggregates so they land on the shard their records belong to.
    pub explicit_hash_key: Option<HashKey>,
    /// The record's bytes.
    pub data: Vec<u8>,
}

impl Entry {
    /// A record placed by its partition key.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Vec<u8>>) -> Entry {
        Entry {
            partition_key: partition_key.into(),
            explicit_hash_key: None,
            data: data.into(),
        }
    }

    /// The hash key that places this record: the explicit one, or MD5 of the
    /// partition key.
    pub fn hash_key(&self) -> HashKey {
        self.explicit_hash_key
            .unwrap_or_else(|| flyhigh_schemas::hash_key(&self.partition_key))
    }
}

/// The per-record result of a put, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryResult {
    /// Written.
    Ok {
        /// The shard it landed on.
        shard_id: String,
        /// Its sequence number.
        sequence_number: String,
    },
    /// Not written.
    Failed {
        /// The service's error code, e.g. `ProvisionedThroughputExceededException`.
        code: String,
        /// The service's message.
        message: String,
    },
}

/// A whole request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The stream is over its throughput: back off and retry the whole request.
    #[error("throttled: {0}")]
    Throttled(String),
    /// Timeouts, dropped connections, 5xx: retry.
    #[error("transient: {0}")]
    Transient(String),
    /// The request can never succeed (no such stream, access denied, invalid
    /// request): fail its records.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What to do with a record that failed inside a successful request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFailure {
    /// Over the shard's throughput: retry after backing off, and slow the shard down.
    Throttled,
    /// An internal error of the service: retry after backing off.
    Transient,
    /// Retrying cannot help (e.g. KMS key disabled or access denied): dead-letter.
    Permanent,
}

/// Classifies a per-record error code from PutRecords.
pub fn classify_entry_failure(code: &str) -> EntryFailure {
    match code {
        "ProvisionedThroughputExceededException" | "KMSThrottlingException" => {
            EntryFailure::Throttled
        }
        "InternalFailure" | "InternalFailureException" | "ServiceUnavailable" => {
            EntryFailure::Transient
        }
        code if code.starts_with("KMS") || code == "AccessDeniedException" => {
            EntryFailure::Permanent
        }
        // An unknown code is most likely new and transient; the record's time-to-live
        // bounds it.
        _ => EntryFailure::Transient,
    }
}

/// A shard's id and hash-key range (inclusive), as ListShards reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-000000000000` and so on.
    pub shard_id: String,
    /// First hash key of the range.
    pub starting_hash_key: HashKey,
    /// Last hash key of the range.
    pub ending_hash_key: HashKey,
}

/// Puts records into a stream.
pub trait Transport: Send + Sync + 'static {
    /// Puts one request's worth of records (within [`crate::limits`]); returns one
    /// result per entry, in order.
    fn put_records(
        &self,
        entries: &[Entry],
    ) -> impl Future<Output = Result<Vec<EntryResult>, TransportError>> + Send;

    /// The stream's open shards (those that accept writes). The producer aggregates
    /// only records that land on the same shard, so it needs their hash-key ranges.
    fn list_shards(&self) -> impl Future<Output = Result<Vec<ShardInfo>, TransportError>> + Send;

    /// Throughput each shard accepts. Kinesis's published limits unless the transport
    /// knows better (the in-process stream has none).
    fn shard_limits(&self) -> ShardLimits {
        ShardLimits::KINESIS
    }

    /// The stream's name, for metrics (the EMF `StreamName` dimension). Default
    /// empty.
    fn stream_name(&self) -> String {
        String::new()
    }
}

impl<T: Transport> Transport for std::sync::Arc<T> {
    fn put_records(
        &self,
        entries: &[Entry],
    ) -> impl Future<Output = Result<Vec<EntryResult>, TransportError>> + Send {
        (**self).put_records(entries)
    }

    fn list_shards(&self) -> impl Future<Output = Result<Vec<ShardInfo>, TransportError>> + Send {
        (**self).list_shards()
    }

    fn shard_limits(&self) -> ShardLimits {
        (**self).shard_limits()
    }

    fn stream_name(&self) -> String {
        (**self).stream_name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_failures_are_classified_by_what_to_do() {
        assert_eq!(
            classify_entry_failure("ProvisionedThroughputExceededException"),
            EntryFailure::Throttled
        );
        assert_eq!(
            classify_entry_failure("InternalFailure"),
            EntryFailure::Transient
        );
        assert_eq!(
            classify_entry_failure("KMSDisabledException"),
            EntryFailure::Permanent
        );
        assert_eq!(
            classify_entry_failure("SomethingNew"),
            EntryFailure::Transient
        );
    }

    #[test]
    fn an_explicit_hash_key_overrides_the_partition_key() {
        let plain = Entry::new("FH0001-20261201", b"{}".to_vec());
        assert_eq!(
            plain.hash_key(),
            flyhigh_schemas::hash_key("FH0001-20261201")
        );
        let placed = Entry {
            explicit_hash_key: Some(7),
            ..plain
        };
        assert_eq!(placed.hash_key(), 7);
    }
}
