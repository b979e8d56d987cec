//! The on-failure destination: where a batch goes when it has failed every retry.
//!
//! Like Lambda's on-failure destination for stream event sources, the entry describes
//! the batch (shard, sequence-number range, arrival times, size) so that an operator
//! can find and replay it. The entry also carries the records' bytes when they fit,
//! since an in-process stream is gone when the process ends.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A batch that exhausted its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchFailure {
    /// Why the last attempt failed (function error, or the failures it reported).
    pub condition: String,
    /// Attempts made, the first one included.
    pub attempts: u32,
    /// When it was given up.
    pub timestamp: DateTime<Utc>,
    /// Where the batch was.
    pub kinesis_batch_info: KinesisBatchInfo,
    /// The records' bytes, base64, in shard order, when they fit
    /// (`mapping::MAX_RECORDS_IN_FAILURE_BYTES`); otherwise empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records_base64: Vec<String>,
}

/// The batch's place in the stream, as Lambda reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisBatchInfo {
    /// Shard id.
    pub shard_id: String,
    /// First sequence number of the batch.
    pub start_sequence_number: String,
    /// Last sequence number of the batch.
    pub end_sequence_number: String,
    /// Arrival of the first record.
    pub approximate_arrival_of_first_record: DateTime<Utc>,
    /// Arrival of the last record.
    pub approximate_arrival_of_last_record: DateTime<Utc>,
    /// Records in the batch.
    pub batch_size: usize,
    /// The stream.
    pub stream_arn: String,
}

/// Where failed batches go (a local file, or SQS in AWS mode).
pub trait FailureDestination: Send + Sync {
    /// Stores the entry durably. An error stops the shard (the runner never skips a
    /// batch it could not record).
    fn send(&self, failure: &BatchFailure) -> impl Future<Output = Result<(), String>> + Send;
}

/// An in-memory [`FailureDestination`], for tests and examples: keeps every entry.
#[derive(Debug, Default)]
pub struct MemoryFailures(std::sync::Mutex<Vec<BatchFailure>>);

impl MemoryFailures {
    /// The entries received, in order.
    pub fn sent(&self) -> Vec<BatchFailure> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl FailureDestination for MemoryFailures {
    async fn send(&self, failure: &BatchFailure) -> Result<(), String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(failure.clone());
        Ok(())
    }
}
