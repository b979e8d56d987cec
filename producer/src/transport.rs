//! The transport port: how a batch of records reaches a stream.

use std::future::Future;

/// One record to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Chooses the shard (MD5 of it, as a 128-bit hash key).
    pub partition_key: String,
    /// The record's bytes.
    pub data: Vec<u8>,
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
    /// Over the shard's throughput: retry after backing off.
    Throttled,
    /// An internal error of the service: retry.
    Transient,
    /// Retrying cannot help (e.g. KMS key disabled or access denied).
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
        // An unknown code is most likely new and transient; the attempt limit bounds it.
        _ => EntryFailure::Transient,
    }
}

/// Puts records into a stream.
pub trait Transport: Send + Sync + 'static {
    /// Puts one request's worth of records (within [`crate::limits`]); returns one
    /// result per entry, in order.
    fn put_records(
        &self,
        entries: &[Entry],
    ) -> impl Future<Output = Result<Vec<EntryResult>, TransportError>> + Send;
}

impl<T: Transport> Transport for std::sync::Arc<T> {
    fn put_records(
        &self,
        entries: &[Entry],
    ) -> impl Future<Output = Result<Vec<EntryResult>, TransportError>> + Send {
        (**self).put_records(entries)
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
}
