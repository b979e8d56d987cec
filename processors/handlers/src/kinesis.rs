//! Conversions between Lambda's Kinesis event types and the core's user records.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use flyhigh_core::UserRecord;

/// The batch's records, in order. Lambda names the shard in each record's `eventID`
/// (`shardId-000000000000:49590338...`).
pub fn user_records(event: &KinesisEvent) -> Vec<UserRecord> {
    event
        .records
        .iter()
        .map(|r| UserRecord {
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

/// The response for a batch whose records from `first_failed` on must be retried.
///
/// Lambda retries from the lowest sequence number reported, so one identifier, the
/// first failed record's, says everything. A record without a sequence number cannot
/// be named (an empty identifier fails the whole batch), so then the batch's first
/// record is reported instead.
pub fn response(records: &[UserRecord], first_failed: Option<usize>) -> KinesisEventResponse {
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
