//! The Kinesis transport: the only module of this crate that calls the AWS SDK.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use aws_sdk_kinesis::operation::list_shards::ListShardsError;

use crate::transport::{Entry, EntryResult, ShardInfo, Transport, TransportError};

/// Puts records into a Kinesis data stream with PutRecords and lists its shards with
/// ListShards (IAM: `kinesis:PutRecords`, `kinesis:ListShards`).
///
/// The producer retries on its own, per record and with per-shard backoff; build the
/// client with the SDK's retries off (`RetryConfig::disabled()`) or at most low, so
/// that a throttled request is not retried twice over.
#[derive(Debug, Clone)]
pub struct KinesisTransport {
    client: Client,
    stream_name: String,
}

impl KinesisTransport {
    /// A transport over a ready-built client (endpoint, region and credentials are
    /// the client's; `AWS_ENDPOINT_URL` works as usual).
    pub fn new(client: Client, stream_name: impl Into<String>) -> KinesisTransport {
        KinesisTransport {
            client,
            stream_name: stream_name.into(),
        }
    }
}

impl Transport for KinesisTransport {
    async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        let records = entries
            .iter()
            .map(|e| {
                PutRecordsRequestEntry::builder()
                    .partition_key(&e.partition_key)
                    .set_explicit_hash_key(e.explicit_hash_key.map(|h| h.to_string()))
                    .data(Blob::new(e.data.clone()))
                    .build()
                    .map_err(|err| TransportError::Permanent(err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .put_records()
            .stream_name(&self.stream_name)
            .set_records(Some(records))
            .send()
            .await
            .map_err(classify_put_error)?;
        let results: Vec<EntryResult> = output
            .records()
            .iter()
            .map(
                |r| match (r.shard_id(), r.sequence_number(), r.error_code()) {
                    (Some(shard), Some(seq), None) => EntryResult::Ok {
                        shard_id: shard.to_string(),
                        sequence_number: seq.to_string(),
                    },
                    (_, _, code) => EntryResult::Failed {
                        code: code.unwrap_or("MissingResult").to_string(),
                        message: r.error_message().unwrap_or_default().to_string(),
                    },
                },
            )
            .collect();
        if results.len() != entries.len() {
            // Never guess which records a short answer covers: retry them all.
            return Err(TransportError::Transient(format!(
                "PutRecords answered {} results for {} records",
                results.len(),
                entries.len()
            )));
        }
        Ok(results)
    }

    fn stream_name(&self) -> String {
        self.stream_name.clone()
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            // Kinesis refuses StreamName together with NextToken.
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(&self.stream_name),
            };
            let output = request.send().await.map_err(classify_list_error)?;
            for shard in output.shards() {
                // A closed shard (after a split or merge) has an ending sequence number
                // and takes no writes.
                if shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some()
                {
                    continue;
                }
                let Some(range) = shard.hash_key_range() else {
                    continue;
                };
                let parse = |s: &str| {
                    s.parse::<u128>().map_err(|e| {
                        TransportError::Permanent(format!(
                            "shard {} has hash key {s:?}: {e}",
                            shard.shard_id()
                        ))
                    })
                };
                shards.push(ShardInfo {
                    shard_id: shard.shard_id().to_string(),
                    starting_hash_key: parse(range.starting_hash_key())?,
                    ending_hash_key: parse(range.ending_hash_key())?,
                });
            }
            next_token = output.next_token().map(str::to_string);
            if next_token.is_none() {
                return Ok(shards);
            }
        }
    }
}

/// `Code: message` of a service error, for logs, dead letters and receipts.
fn error_text(e: &impl ProvideErrorMetadata) -> String {
    format!(
        "{}: {}",
        e.code().unwrap_or("Unknown"),
        e.message().unwrap_or_default()
    )
}

/// Classifies a ListShards failure by what the producer must do.
fn classify_list_error<R>(error: SdkError<ListShardsError, R>) -> TransportError {
    match &error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let text = error_text(e);
            match e {
                ListShardsError::LimitExceededException(_) => TransportError::Throttled(text),
                ListShardsError::ResourceNotFoundException(_)
                | ListShardsError::AccessDeniedException(_)
                | ListShardsError::InvalidArgumentException(_) => TransportError::Permanent(text),
                _ => TransportError::Transient(text),
            }
        }
        _ => TransportError::Transient(error.to_string()),
    }
}

/// Classifies a whole-request failure by what the producer must do.
pub fn classify_put_error<R>(error: SdkError<PutRecordsError, R>) -> TransportError {
    match &error {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let text = error_text(e);
            match e {
                PutRecordsError::ProvisionedThroughputExceededException(_)
                | PutRecordsError::KmsThrottlingException(_) => TransportError::Throttled(text),
                PutRecordsError::ResourceNotFoundException(_)
                | PutRecordsError::InvalidArgumentException(_)
                | PutRecordsError::AccessDeniedException(_)
                | PutRecordsError::KmsAccessDeniedException(_)
                | PutRecordsError::KmsDisabledException(_)
                | PutRecordsError::KmsInvalidStateException(_)
                | PutRecordsError::KmsNotFoundException(_)
                | PutRecordsError::KmsOptInRequired(_) => TransportError::Permanent(text),
                _ => match e.code() {
                    Some(
                        "ThrottlingException" | "LimitExceededException" | "RequestLimitExceeded",
                    ) => TransportError::Throttled(text),
                    _ => TransportError::Transient(text),
                },
            }
        }
        // Timeouts, dispatch and response errors: the request may or may not have been
        // applied; retrying can duplicate records, which consumers tolerate.
        _ => TransportError::Transient(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::config::http::HttpResponse;
    use aws_sdk_kinesis::types::error::{
        ProvisionedThroughputExceededException, ResourceNotFoundException,
    };
    use aws_smithy_types::body::SdkBody;

    fn service_error(e: PutRecordsError) -> SdkError<PutRecordsError, HttpResponse> {
        SdkError::service_error(
            e,
            HttpResponse::new(400u16.try_into().unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn throttling_is_retried_and_missing_stream_is_permanent() {
        let throttled = PutRecordsError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("Rate exceeded")
                .build(),
        );
        assert!(matches!(
            classify_put_error(service_error(throttled)),
            TransportError::Throttled(_)
        ));
        let missing = PutRecordsError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("no stream")
                .build(),
        );
        assert!(matches!(
            classify_put_error(service_error(missing)),
            TransportError::Permanent(_)
        ));
    }
}
