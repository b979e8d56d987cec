//! The Kinesis transport: the only module of this crate that calls the AWS SDK
//! (building clients with the SDK's retries off, the start-up stream check, puts
//! and shard listing).

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::describe_stream_summary::DescribeStreamSummaryError;
use aws_sdk_kinesis::operation::list_shards::ListShardsError;
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamStatus};
use rand::Rng;

use crate::builder::BuildError;
use crate::sdk_error::{error_chain, error_text};
use crate::transport::{Entry, EntryResult, ShardInfo, Transport, TransportError};

/// The IAM action [`KinesisTransport::check_stream`] needs.
pub const CHECK_STREAM_ACTION: &str = "kinesis:DescribeStreamSummary";

/// DescribeStreamSummary attempts when Kinesis throttles it (20 calls/s per
/// account: a fleet starting at once can hit it). Nothing else is retried: every
/// other failure says something a person must fix.
const CHECK_ATTEMPTS: u32 = 3;

/// The first delay between throttled DescribeStreamSummary attempts (full jitter,
/// doubling).
const CHECK_BACKOFF: Duration = Duration::from_millis(100);

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

    /// The stream written to.
    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// Checks that the stream exists and takes writes, with one DescribeStreamSummary
    /// (IAM: [`CHECK_STREAM_ACTION`]): `ACTIVE` and `UPDATING` streams do; a missing,
    /// `CREATING` or `DELETING` stream, denied access or an endpoint that does not
    /// answer is a [`BuildError`] saying what to fix. Only a throttled call is tried
    /// again (at most three calls, with jittered backoff).
    /// [`ProducerBuilder::build`](crate::builder::ProducerBuilder::build) calls it.
    pub async fn check_stream(&self) -> Result<(), BuildError> {
        let mut attempt = 1;
        loop {
            let result = self
                .client
                .describe_stream_summary()
                .stream_name(&self.stream_name)
                .send()
                .await;
            let error = match result {
                Ok(output) => {
                    return match output.stream_description_summary() {
                        Some(summary) => writable(&self.stream_name, summary.stream_status()),
                        None => Err(BuildError::Unreachable {
                            stream: self.stream_name.clone(),
                            message: "DescribeStreamSummary answered without a stream summary"
                                .into(),
                        }),
                    };
                }
                Err(error) => classify_check_error(&self.stream_name, &error),
            };
            match error {
                CheckFailure::Throttled(message) if attempt < CHECK_ATTEMPTS => {
                    let cap = CHECK_BACKOFF * (1 << (attempt - 1));
                    let pause = rand::thread_rng().gen_range(Duration::ZERO..=cap);
                    tracing::debug!(
                        stream = %self.stream_name, attempt, error = %message,
                        "DescribeStreamSummary throttled; trying again"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                CheckFailure::Throttled(message) => {
                    return Err(BuildError::Unreachable {
                        stream: self.stream_name.clone(),
                        message: format!("throttled on all {attempt} attempts: {message}"),
                    });
                }
                CheckFailure::Fatal(e) => return Err(e),
            }
        }
    }
}

/// A Kinesis client configured from `sdk` (region, credentials, endpoint, timeouts)
/// with the SDK's retries off: the producer retries per record with per-shard
/// backoff, and two retry layers multiply under throttling.
pub(crate) fn client_without_sdk_retries(sdk: &SdkConfig) -> Client {
    Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(sdk)
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

/// `client` with everything kept but its retries, which are turned off (see
/// [`client_without_sdk_retries`]).
pub(crate) fn without_sdk_retries(client: &Client) -> Client {
    Client::from_conf(
        client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

/// Whether a stream in `status` takes writes: `ACTIVE` and `UPDATING` (a reshard
/// or retention change) do, `CREATING` and `DELETING` (and any status this SDK
/// does not know) do not.
fn writable(stream: &str, status: &StreamStatus) -> Result<(), BuildError> {
    match status {
        StreamStatus::Active | StreamStatus::Updating => Ok(()),
        other => Err(BuildError::StreamNotWritable {
            stream: stream.to_owned(),
            status: other.as_str().to_owned(),
        }),
    }
}

/// A failed DescribeStreamSummary: worth another call (throttled), or final.
#[derive(Debug)]
enum CheckFailure {
    Throttled(String),
    Fatal(BuildError),
}

/// Classifies a DescribeStreamSummary failure by what the person starting the
/// producer must do.
fn classify_check_error<R: std::fmt::Debug + 'static>(
    stream: &str,
    error: &SdkError<DescribeStreamSummaryError, R>,
) -> CheckFailure {
    let unreachable = |message: String| {
        CheckFailure::Fatal(BuildError::Unreachable {
            stream: stream.to_owned(),
            message,
        })
    };
    let SdkError::ServiceError(service) = error else {
        // Dispatch, timeout, response and construction failures (no region, no
        // credentials, connection refused): their causes, never their Debug.
        return unreachable(error_chain(error));
    };
    let e = service.err();
    let text = error_text(e);
    match e {
        DescribeStreamSummaryError::ResourceNotFoundException(_) => {
            CheckFailure::Fatal(BuildError::StreamNotFound {
                stream: stream.to_owned(),
            })
        }
        DescribeStreamSummaryError::AccessDeniedException(_) => {
            CheckFailure::Fatal(BuildError::AccessDenied {
                stream: stream.to_owned(),
                action: CHECK_STREAM_ACTION,
                message: text,
            })
        }
        DescribeStreamSummaryError::LimitExceededException(_) => CheckFailure::Throttled(text),
        // Invalid credentials (`UnrecognizedClientException`), 5xx and the rest: the
        // code and message say which.
        _ => match e.code() {
            Some(
                "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded",
            ) => CheckFailure::Throttled(text),
            _ => unreachable(text),
        },
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
    use aws_sdk_kinesis::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_kinesis::types::error::{
        AccessDeniedException, LimitExceededException, ProvisionedThroughputExceededException,
        ResourceNotFoundException,
    };
    use aws_smithy_types::body::SdkBody;

    fn service_error(e: PutRecordsError) -> SdkError<PutRecordsError, HttpResponse> {
        SdkError::service_error(
            e,
            HttpResponse::new(400u16.try_into().unwrap(), SdkBody::empty()),
        )
    }

    fn check_error(e: DescribeStreamSummaryError) -> CheckFailure {
        classify_check_error(
            "flyhigh-events",
            &SdkError::service_error(
                e,
                HttpResponse::new(400u16.try_into().unwrap(), SdkBody::empty()),
            ),
        )
    }

    #[test]
    fn only_active_and_updating_streams_take_writes() {
        assert_eq!(writable("s", &StreamStatus::Active), Ok(()));
        assert_eq!(writable("s", &StreamStatus::Updating), Ok(()));
        for (status, name) in [
            (StreamStatus::Creating, "CREATING"),
            (StreamStatus::Deleting, "DELETING"),
            (StreamStatus::from("ARCHIVED"), "ARCHIVED"),
        ] {
            assert_eq!(
                writable("s", &status),
                Err(BuildError::StreamNotWritable {
                    stream: "s".into(),
                    status: name.into()
                })
            );
        }
    }

    #[test]
    fn a_missing_stream_and_denied_access_are_named_and_throttling_is_tried_again() {
        let missing = DescribeStreamSummaryError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Stream flyhigh-events under account 123456789012 not found.")
                .build(),
        );
        assert!(matches!(
            check_error(missing),
            CheckFailure::Fatal(BuildError::StreamNotFound { stream }) if stream == "flyhigh-events"
        ));
        // As parsed from a response: the metadata carries the code and message.
        let not_authorized = "User: arn:aws:iam::1:user/app is not authorized";
        let denied = DescribeStreamSummaryError::AccessDeniedException(
            AccessDeniedException::builder()
                .message(not_authorized)
                .meta(
                    ErrorMetadata::builder()
                        .code("AccessDeniedException")
                        .message(not_authorized)
                        .build(),
                )
                .build(),
        );
        let CheckFailure::Fatal(e @ BuildError::AccessDenied { .. }) = check_error(denied) else {
            panic!("not AccessDenied");
        };
        let text = e.to_string();
        for needed in [
            "kinesis:DescribeStreamSummary",
            "kinesis:PutRecords",
            "kinesis:ListShards",
            "AccessDeniedException: User: arn:aws:iam::1:user/app is not authorized",
        ] {
            assert!(text.contains(needed), "{text}");
        }
        let limited = DescribeStreamSummaryError::LimitExceededException(
            LimitExceededException::builder()
                .message("Rate exceeded")
                .build(),
        );
        assert!(matches!(check_error(limited), CheckFailure::Throttled(_)));
        let throttled = DescribeStreamSummaryError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        );
        assert!(matches!(check_error(throttled), CheckFailure::Throttled(_)));
    }

    #[test]
    fn other_failures_are_one_line_without_debug_dumps() {
        let internal = DescribeStreamSummaryError::generic(
            ErrorMetadata::builder()
                .code("InternalFailure")
                .message("internal error")
                .build(),
        );
        let CheckFailure::Fatal(e @ BuildError::Unreachable { .. }) = check_error(internal) else {
            panic!("not Unreachable");
        };
        let text = e.to_string();
        assert!(text.contains("InternalFailure: internal error"), "{text}");
        assert!(
            !text.contains('\n') && !text.contains("ErrorMetadata"),
            "{text}"
        );

        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let dispatch: SdkError<DescribeStreamSummaryError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(io.into()));
        let CheckFailure::Fatal(BuildError::Unreachable { message, .. }) =
            classify_check_error("s", &dispatch)
        else {
            panic!("not Unreachable");
        };
        assert_eq!(message, "dispatch failure: io error: Connection refused");
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
