//! Conversions between Lambda's Kinesis event types and the core's Kinesis records.
//!
//! Lambda delivers Kinesis records as they are in the stream, KPL aggregates
//! included; the handlers expand them with
//! [`KinesisRecord::event_records`](flyhigh_core::KinesisRecord::event_records), and
//! report failures here by Kinesis sequence number.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use flyhigh_core::KinesisRecord;

/// The batch's Kinesis records, in order. Lambda names the shard in each record's
/// `eventID` (`shardId-000000000000:49590338...`).
pub fn kinesis_records(event: &KinesisEvent) -> Vec<KinesisRecord> {
    event
        .records
        .iter()
        .map(|r| KinesisRecord {
            shard_id: r
                .event_id
                .as_deref()
                .and_then(|id| id.split_once(':'))
                .map(|(shard, _)| shard.to_string())
                .unwrap_or_default(),
            sequence_number: r.kinesis.sequence_number.clone(),
            partition_key: r.kinesis.partition_key.clone(),
            approximate_arrival: Some(r.kinesis.approximate_arrival_timestamp.0),
            data: r.kinesis.data.0.clone(),
        })
        .collect()
}

/// The answer to a batch a handler has processed: logs a reported failure with the
/// record it names, and builds the partial batch failure.
pub fn respond(
    processor: &str,
    records: &[KinesisRecord],
    outcome: &crate::batch::BatchOutcome,
) -> KinesisEventResponse {
    if let (Some(index), Some(error)) = (outcome.first_failed, &outcome.error) {
        let record = &records[index];
        tracing::warn!(processor, shard_id = %record.shard_id, sequence_number = %record.sequence_number, %error, "batch failed; retrying from record");
    }
    response(records, outcome.first_failed)
}

/// The response for a batch whose Kinesis records from `first_failed` on must be
/// retried.
///
/// Lambda retries from the lowest sequence number reported, so one identifier, the
/// first failed record's, says everything. It is always a Kinesis sequence number:
/// a failed user record inside an aggregate fails its whole Kinesis record. A record without a sequence number cannot
/// be named (an empty identifier fails the whole batch), so then the batch's first
/// record is reported instead.
pub fn response(records: &[KinesisRecord], first_failed: Option<usize>) -> KinesisEventResponse {
    let mut response = KinesisEventResponse::default();
    if let Some(index) = first_failed {
        let named = records.get(index).filter(|r| !r.sequence_number.is_empty());
        let identifier = named
            .or_else(|| records.first())
            .map(|r| r.sequence_number.clone())
            .unwrap_or_default();
        response.add_failure(identifier);
    }
    response
}
