//! A Kinesis data stream as the runner's source: [`KinesisSource`] implements
//! `StreamSource`, [`KinesisShardReader`] implements `ShardReader` by following the
//! `GetRecords` iterator chain of one shard.
//!
//! The reader remembers the last sequence number it returned, so that an expired
//! iterator (they live five minutes) is replaced by one `AFTER_SEQUENCE_NUMBER` it,
//! and reading goes on with no gap and no repeat. Sequence numbers stay strings: real
//! ones have 56 digits, emulators return `"1"`.
//!
//! Every call names the stream by its name, never by its ARN: Kinesis takes either,
//! but kinesalite accepts only `StreamName`. The ARN (looked up once with
//! `DescribeStreamSummary`) is only what events carry.
//!
//! [`StreamSource::shards`] lists every shard, closed ones included, with its
//! parents, so that the runner reads the children of a reshard after their parents.
//!
//! Mapping from SDK types and error classification are pure functions below, tested
//! with SDK types built by their builders.

use std::sync::OnceLock;
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::create_stream::CreateStreamError;
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsOutput};
use aws_sdk_kinesis::operation::list_shards::builders::ListShardsFluentBuilder;
use aws_sdk_kinesis::types::{Record, Shard, ShardIteratorType, StreamStatus};
use chrono::{DateTime, Utc};
use flyhigh_runner::source::{
    ReadOutcome, ShardReader, SourceError, SourceRecord, SourceShard, StartPosition, StreamSource,
};

use crate::retry::{Retry, sdk_retry_of, wait_until_active};

/// Most records one `GetRecords` call may return.
pub const GET_RECORDS_MAX_LIMIT: usize = 10_000;

/// How long [`create_stream`] waits for the stream to become `ACTIVE`.
const STREAM_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// Kinesis error codes of throttling and of a service that is briefly unavailable.
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "KMSThrottlingException",
    "LimitExceededException",
    "InternalFailureException",
    "InternalFailure",
    "ServiceUnavailable",
    "ThrottlingException",
];

sdk_retry_of!(aws_sdk_kinesis, TRANSIENT_CODES);

/// A Kinesis data stream, read shard by shard with `GetRecords`.
#[derive(Debug)]
pub struct KinesisSource {
    client: Client,
    stream_name: String,
    stream_arn: OnceLock<String>,
}

impl KinesisSource {
    /// A source on the stream named `stream_name`. Its ARN is looked up
    /// (`DescribeStreamSummary`) by the first [`StreamSource::shards`] or
    /// [`StreamSource::open`], and then kept.
    pub fn new(client: Client, stream_name: impl Into<String>) -> KinesisSource {
        KinesisSource {
            client,
            stream_name: stream_name.into(),
            stream_arn: OnceLock::new(),
        }
    }

    /// The stream name.
    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// The stream's ARN, looked up once.
    pub async fn resolve_stream_arn(&self) -> Result<String, SourceError> {
        if let Some(arn) = self.stream_arn.get() {
            return Ok(arn.clone());
        }
        let out = self
            .client
            .describe_stream_summary()
            .stream_name(&self.stream_name)
            .send()
            .await
            .map_err(|e| source_error("DescribeStreamSummary", &e))?;
        let arn = out
            .stream_description_summary()
            .map(|s| s.stream_arn().to_string())
            .filter(|arn| !arn.is_empty())
            .ok_or_else(|| {
                SourceError::Permanent(format!("stream {} has no ARN", self.stream_name))
            })?;
        Ok(self.stream_arn.get_or_init(|| arn).clone())
    }
}

impl StreamSource for KinesisSource {
    type Reader = KinesisShardReader;

    /// The ARN once looked up; before the first `shards()` or `open()`, an ARN built
    /// from the client's region and the stream name, with an empty account field.
    fn stream_arn(&self) -> String {
        match self.stream_arn.get() {
            Some(arn) => arn.clone(),
            None => {
                let region = self
                    .client
                    .config()
                    .region()
                    .map(|r| r.as_ref().to_string())
                    .unwrap_or_default();
                format!("arn:aws:kinesis:{region}::stream/{}", self.stream_name)
            }
        }
    }

    async fn shards(&self) -> Result<Vec<SourceShard>, SourceError> {
        self.resolve_stream_arn().await?;
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let request = list_shards_page(&self.client, &self.stream_name, next_token.take());
            let out = request
                .send()
                .await
                .map_err(|e| source_error("ListShards", &e))?;
            shards.extend(out.shards().iter().map(source_shard));
            match out.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_string()),
                _ => break,
            }
        }
        Ok(shards)
    }

    async fn open(
        &self,
        shard_id: &str,
        start: StartPosition,
    ) -> Result<KinesisShardReader, SourceError> {
        self.resolve_stream_arn().await?;
        let mut reader = KinesisShardReader {
            client: self.client.clone(),
            stream_name: self.stream_name.clone(),
            shard_id: shard_id.to_string(),
            start,
            cursor: Cursor::default(),
        };
        reader.cursor.iterator = Some(reader.new_iterator().await?);
        Ok(reader)
    }
}

/// A reader positioned in one shard.
#[derive(Debug)]
pub struct KinesisShardReader {
    client: Client,
    stream_name: String,
    shard_id: String,
    start: StartPosition,
    cursor: Cursor,
}

/// Where a reader is in its shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Cursor {
    /// The iterator of the next read; `None` once the shard is closed and read to
    /// its end.
    iterator: Option<String>,
    /// The last record returned, to resume after it with a new iterator.
    last_sequence_number: Option<String>,
}

impl Cursor {
    /// Moves past one `GetRecords` response and says what the read returns.
    fn advance(&mut self, output: &GetRecordsOutput, now: DateTime<Utc>) -> ReadOutcome {
        let records: Vec<SourceRecord> = output
            .records()
            .iter()
            .map(|r| source_record(r, now))
            .collect();
        if let Some(last) = records.last() {
            self.last_sequence_number = Some(last.sequence_number.clone());
        }
        // No next iterator: the shard was closed (resharding) and this was its end.
        // Its last records are returned first; the next read says `Ended`.
        self.iterator = output.next_shard_iterator().map(str::to_string);
        if records.is_empty() && self.iterator.is_none() {
            ReadOutcome::Ended
        } else {
            ReadOutcome::Records(records)
        }
    }
}

impl KinesisShardReader {
    /// The shard.
    pub fn shard_id(&self) -> &str {
        &self.shard_id
    }

    /// The sequence number of the last record returned, if any.
    pub fn last_sequence_number(&self) -> Option<&str> {
        self.cursor.last_sequence_number.as_deref()
    }

    /// An iterator just after the last record returned (or at the start).
    async fn new_iterator(&self) -> Result<String, SourceError> {
        let position = resume_position(&self.start, self.cursor.last_sequence_number.as_deref());
        let (kind, sequence_number) = iterator_type(&position);
        let out = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream_name)
            .shard_id(&self.shard_id)
            .shard_iterator_type(kind)
            .set_starting_sequence_number(sequence_number)
            .send()
            .await
            .map_err(|e| source_error("GetShardIterator", &e))?;
        out.shard_iterator().map(str::to_string).ok_or_else(|| {
            SourceError::Permanent(format!("no shard iterator for {}", self.shard_id))
        })
    }

    async fn get_records(
        &self,
        iterator: &str,
        limit: i32,
    ) -> Result<GetRecordsOutput, SdkError<GetRecordsError>> {
        // The iterator names the stream and shard; no stream parameter is needed.
        self.client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit)
            .send()
            .await
    }
}

impl ShardReader for KinesisShardReader {
    async fn read(&mut self, limit: usize) -> Result<ReadOutcome, SourceError> {
        let Some(iterator) = self.cursor.iterator.clone() else {
            return Ok(ReadOutcome::Ended);
        };
        let limit = i32::try_from(limit.clamp(1, GET_RECORDS_MAX_LIMIT)).unwrap_or(1);
        let output = match self.get_records(&iterator, limit).await {
            Ok(output) => output,
            Err(e) => match get_records_error(&e) {
                GetRecordsFailure::ExpiredIterator => {
                    tracing::debug!(shard_id = %self.shard_id, sequence_number = ?self.cursor.last_sequence_number, "shard iterator expired; getting a new one");
                    let fresh = self.new_iterator().await?;
                    self.cursor.iterator = Some(fresh.clone());
                    self.get_records(&fresh, limit).await.map_err(|e| {
                        match get_records_error(&e) {
                            // A brand-new iterator that expires at once: the clock or the
                            // service is off; try again later.
                            GetRecordsFailure::ExpiredIterator => SourceError::Transient(format!(
                                "shard {}: fresh iterator expired",
                                self.shard_id
                            )),
                            GetRecordsFailure::Source(e) => e,
                        }
                    })?
                }
                GetRecordsFailure::Source(e) => return Err(e),
            },
        };
        let outcome = self.cursor.advance(&output, Utc::now());
        if outcome == ReadOutcome::Ended {
            tracing::debug!(shard_id = %self.shard_id, "shard ended");
        }
        Ok(outcome)
    }
}

/// One `ListShards` request: the first names the stream by name (kinesalite
/// refuses `StreamARN`), the next ones carry only the token. Kinesis refuses a token
/// together with the stream ("NextToken and StreamName cannot be provided
/// together"); moto 5.2 would want both, but pages only past 1,000 shards, which no
/// emulated stream has, and kinesalite never pages.
fn list_shards_page(
    client: &Client,
    stream_name: &str,
    next_token: Option<String>,
) -> ListShardsFluentBuilder {
    match next_token {
        Some(token) => client.list_shards().next_token(token),
        None => client.list_shards().stream_name(stream_name),
    }
}

/// A listed shard with its lineage.
fn source_shard(shard: &Shard) -> SourceShard {
    let non_empty = |id: Option<&str>| id.filter(|id| !id.is_empty()).map(str::to_string);
    SourceShard {
        shard_id: shard.shard_id().to_string(),
        parent_shard_id: non_empty(shard.parent_shard_id()),
        adjacent_parent_shard_id: non_empty(shard.adjacent_parent_shard_id()),
    }
}

/// Where a new iterator must start: after the last record returned, or where the
/// reader started when it has returned nothing yet.
fn resume_position(start: &StartPosition, last_sequence_number: Option<&str>) -> StartPosition {
    match last_sequence_number {
        Some(seq) => StartPosition::AfterSequenceNumber(seq.to_string()),
        None => start.clone(),
    }
}

fn iterator_type(position: &StartPosition) -> (ShardIteratorType, Option<String>) {
    match position {
        StartPosition::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
        StartPosition::Latest => (ShardIteratorType::Latest, None),
        StartPosition::AfterSequenceNumber(seq) => {
            (ShardIteratorType::AfterSequenceNumber, Some(seq.clone()))
        }
    }
}

/// A record as the runner sees it. `fallback_arrival` stands in for an arrival time
/// Kinesis always sets but the model leaves optional.
fn source_record(record: &Record, fallback_arrival: DateTime<Utc>) -> SourceRecord {
    SourceRecord {
        sequence_number: record.sequence_number().to_string(),
        partition_key: record.partition_key().unwrap_or_default().to_string(),
        approximate_arrival: record
            .approximate_arrival_timestamp()
            .and_then(to_chrono)
            .unwrap_or(fallback_arrival),
        data: record.data().as_ref().to_vec(),
    }
}

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// What a failed `GetRecords` means for the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GetRecordsFailure {
    /// Get a new iterator and read again.
    ExpiredIterator,
    /// Report to the caller.
    Source(SourceError),
}

fn get_records_error(err: &SdkError<GetRecordsError>) -> GetRecordsFailure {
    let message = || format!("Kinesis GetRecords: {}", crate::error_text(err));
    let retry = match err.as_service_error() {
        Some(GetRecordsError::ExpiredIteratorException(_)) => {
            return GetRecordsFailure::ExpiredIterator;
        }
        Some(
            GetRecordsError::ProvisionedThroughputExceededException(_)
            | GetRecordsError::KmsThrottlingException(_)
            | GetRecordsError::InternalFailureException(_),
        ) => Retry::Transient,
        Some(
            GetRecordsError::ResourceNotFoundException(_)
            | GetRecordsError::AccessDeniedException(_)
            | GetRecordsError::InvalidArgumentException(_)
            | GetRecordsError::KmsAccessDeniedException(_)
            | GetRecordsError::KmsDisabledException(_)
            | GetRecordsError::KmsInvalidStateException(_)
            | GetRecordsError::KmsNotFoundException(_)
            | GetRecordsError::KmsOptInRequired(_),
        ) => Retry::Permanent,
        _ => retry_of(err),
    };
    GetRecordsFailure::Source(to_source_error(retry, message()))
}

fn source_error<E>(op: &str, err: &SdkError<E>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    to_source_error(
        retry_of(err),
        format!("Kinesis {op}: {}", crate::error_text(err)),
    )
}

fn to_source_error(retry: Retry, message: String) -> SourceError {
    match retry {
        Retry::Transient => SourceError::Transient(message),
        Retry::Permanent => SourceError::Permanent(message),
    }
}

/// Creates a provisioned stream of `shard_count` shards, or finds it when it exists,
/// and waits until it is `ACTIVE`. Meant for tests and the local setup; production
/// streams come from `infra/`.
pub async fn create_stream(
    client: &Client,
    name: &str,
    shard_count: i32,
) -> Result<(), SourceError> {
    match client
        .create_stream()
        .stream_name(name)
        .shard_count(shard_count)
        .send()
        .await
    {
        Ok(_) => tracing::info!(stream = name, shard_count, "stream created"),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateStreamError::ResourceInUseException(_))
            ) =>
        {
            tracing::debug!(stream = name, "stream already exists");
        }
        Err(e) => return Err(source_error("CreateStream", &e)),
    }
    let active = wait_until_active(STREAM_ACTIVE_TIMEOUT, || async {
        let out = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| source_error("DescribeStreamSummary", &e))?;
        Ok(out.stream_description_summary().map(|s| s.stream_status())
            == Some(&StreamStatus::Active))
    })
    .await?;
    if active {
        Ok(())
    } else {
        Err(SourceError::Transient(format!(
            "stream {name} not ACTIVE after {STREAM_ACTIVE_TIMEOUT:?}"
        )))
    }
}

#[cfg(test)]
mod tests;
