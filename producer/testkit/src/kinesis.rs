//! SDK helpers for tests against a Kinesis emulator: a client that fails fast and
//! visibly, stream creation that waits for `ACTIVE`, and a reader of every record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::operation::create_stream::CreateStreamError;
use aws_sdk_kinesis::operation::describe_stream_summary::DescribeStreamSummaryError;
use aws_sdk_kinesis::operation::get_records::GetRecordsError;
use aws_sdk_kinesis::types::{Record, ShardIteratorType, StreamStatus};

/// How long [`create_stream`] waits for `ACTIVE`.
const STREAM_ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// GetRecords asks for the most a call may return.
const GET_RECORDS_LIMIT: i32 = 10_000;
/// Consecutive throttled GetRecords calls of one shard before [`read_all`] gives up.
const MAX_THROTTLED_READS: u32 = 50;
/// Consecutive empty reads that are still behind the tip before [`read_all`]
/// gives up (Kinesis may return a few empty reads while it skips ahead).
const MAX_EMPTY_READS_BEHIND: u32 = 100;

/// Why a helper failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KinesisTestError {
    /// An SDK call failed.
    #[error("{operation} on {stream}: {message}")]
    Sdk {
        /// The Kinesis operation.
        operation: &'static str,
        /// The stream (and shard) it was about.
        stream: String,
        /// The SDK error with its sources.
        message: String,
    },
    /// The stream did not become `ACTIVE` in time.
    #[error("stream {stream} not ACTIVE after {waited:?}")]
    NotActive {
        /// The stream.
        stream: String,
        /// How long it waited.
        waited: Duration,
    },
    /// A shard could not be read to its end.
    #[error("reading {stream} {shard_id}: {reason}")]
    Unfinished {
        /// The stream.
        stream: String,
        /// The shard.
        shard_id: String,
        /// What kept happening.
        reason: String,
    },
}

fn sdk_error<E, R>(
    operation: &'static str,
    stream: &str,
    error: &SdkError<E, R>,
) -> KinesisTestError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    KinesisTestError::Sdk {
        operation,
        stream: stream.to_owned(),
        message: DisplayErrorContext(error).to_string(),
    }
}

/// A Kinesis client for an emulator at `endpoint_url`: static test credentials,
/// region us-east-1, no credential chain (so no IMDS or profile lookups), retries
/// disabled so that every fault reaches the code under test, and timeouts long
/// enough for a busy emulator on a loaded machine.
pub fn kinesis_client(endpoint_url: &str) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint_url)
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "flyhigh-testkit",
        ))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// A stream (or other resource) name no other test run uses:
/// `<prefix>-<pid>-<time>-<counter>`, within Kinesis's name rules when `prefix` is.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Creates a stream of `shards` shards (an existing one is fine) and waits until it
/// is `ACTIVE`.
pub async fn create_stream(
    client: &Client,
    name: &str,
    shards: i32,
) -> Result<(), KinesisTestError> {
    match client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateStreamError::ResourceInUseException(_))
            ) => {}
        Err(e) => return Err(sdk_error("CreateStream", name, &e)),
    }
    wait_until_active(client, name).await
}

/// The address of the kinesalite that `scripts/test.sh` (or `scripts/kinesalite.sh
/// start`) runs, from `FLYHIGH_KINESALITE_URL`.
///
/// # Panics
///
/// When the variable is not set, with a message saying how to start kinesalite: a
/// test that needs it must fail, not skip.
pub fn kinesalite_url() -> String {
    std::env::var("FLYHIGH_KINESALITE_URL").unwrap_or_else(|_| {
        panic!(
            "FLYHIGH_KINESALITE_URL is not set: run scripts/test.sh, or \
             scripts/kinesalite.sh start && source target/kinesalite.env"
        )
    })
}

/// The URL of the moto server the test run (`scripts/test.sh`, or `scripts/moto.sh
/// start`) runs, from `FLYHIGH_MOTO_URL`.
///
/// # Panics
///
/// When the variable is not set, with a message saying how to start moto: a test
/// that needs it must fail, not skip.
pub fn moto_url() -> String {
    std::env::var("FLYHIGH_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "FLYHIGH_MOTO_URL is not set: run scripts/test.sh, or \
             scripts/moto.sh start && source target/moto.env"
        )
    })
}

/// Waits until `name` is `ACTIVE`: after CreateStream, or after a SplitShard,
/// MergeShards or UpdateShardCount.
pub async fn wait_until_active(client: &Client, name: &str) -> Result<(), KinesisTestError> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
        {
            Ok(out) => {
                if out.stream_description_summary().map(|s| s.stream_status())
                    == Some(&StreamStatus::Active)
                {
                    return Ok(());
                }
            }
            // Not visible yet right after CreateStream (real Kinesis is eventually
            // consistent here).
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DescribeStreamSummaryError::ResourceNotFoundException(_))
                ) => {}
            Err(e) => return Err(sdk_error("DescribeStreamSummary", name, &e)),
        }
        if started.elapsed() > STREAM_ACTIVE_TIMEOUT {
            return Err(KinesisTestError::NotActive {
                stream: name.to_owned(),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Every record of `stream`, as `(shard_id, record)`: shards in ListShards order,
/// each read from TRIM_HORIZON with GetRecords until it is caught up (an empty
/// read at the tip, or the end of a closed shard), records in shard order.
///
/// Records are returned as stored: aggregated records are not deaggregated.
/// Throttled reads are retried after a short sleep; an expired iterator is renewed
/// after the last record read.
pub async fn read_all(
    client: &Client,
    stream: &str,
) -> Result<Vec<(String, Record)>, KinesisTestError> {
    let mut all = Vec::new();
    for shard_id in list_shards(client, stream).await? {
        for record in read_shard(client, stream, &shard_id).await? {
            all.push((shard_id.clone(), record));
        }
    }
    Ok(all)
}

/// The ids of every shard of `stream`, following `NextToken`.
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<String>, KinesisTestError> {
    let mut ids = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        // ListShards takes either the stream name or a token, never both.
        let request = match &next_token {
            None => client.list_shards().stream_name(stream),
            Some(token) => client.list_shards().next_token(token),
        };
        let out = request
            .send()
            .await
            .map_err(|e| sdk_error("ListShards", stream, &e))?;
        ids.extend(out.shards().iter().map(|s| s.shard_id().to_owned()));
        match out.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => return Ok(ids),
        }
    }
}

async fn shard_iterator(
    client: &Client,
    stream: &str,
    shard_id: &str,
    after: Option<&str>,
) -> Result<Option<String>, KinesisTestError> {
    let request = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard_id);
    let request = match after {
        Some(sequence_number) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence_number),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let out = request
        .send()
        .await
        .map_err(|e| sdk_error("GetShardIterator", &format!("{stream} {shard_id}"), &e))?;
    Ok(out.shard_iterator().map(str::to_owned))
}

async fn read_shard(
    client: &Client,
    stream: &str,
    shard_id: &str,
) -> Result<Vec<Record>, KinesisTestError> {
    let unfinished = |reason: String| KinesisTestError::Unfinished {
        stream: stream.to_owned(),
        shard_id: shard_id.to_owned(),
        reason,
    };
    let mut records: Vec<Record> = Vec::new();
    let mut iterator = shard_iterator(client, stream, shard_id, None).await?;
    let (mut throttled, mut empty_behind) = (0u32, 0u32);
    while let Some(current) = iterator.take() {
        let out = match client
            .get_records()
            .shard_iterator(&current)
            .limit(GET_RECORDS_LIMIT)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => match e.as_service_error() {
                Some(
                    GetRecordsError::ProvisionedThroughputExceededException(_)
                    | GetRecordsError::KmsThrottlingException(_),
                ) => {
                    throttled += 1;
                    if throttled > MAX_THROTTLED_READS {
                        return Err(unfinished(format!(
                            "GetRecords throttled {throttled} times in a row"
                        )));
                    }
                    // Kinesis allows 5 reads per second per shard.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    iterator = Some(current);
                    continue;
                }
                Some(GetRecordsError::ExpiredIteratorException(_)) => {
                    let last = records.last().map(|r| r.sequence_number());
                    iterator = shard_iterator(client, stream, shard_id, last).await?;
                    continue;
                }
                _ => {
                    return Err(sdk_error("GetRecords", &format!("{stream} {shard_id}"), &e));
                }
            },
        };
        throttled = 0;
        let caught_up = out.records().is_empty() && out.millis_behind_latest().unwrap_or(0) == 0;
        if out.records().is_empty() && !caught_up {
            empty_behind += 1;
            if empty_behind > MAX_EMPTY_READS_BEHIND {
                return Err(unfinished(format!(
                    "{empty_behind} empty reads in a row still behind the tip"
                )));
            }
        } else {
            empty_behind = 0;
        }
        records.extend(out.records().iter().cloned());
        if caught_up {
            break;
        }
        // None: a closed shard read to its end.
        iterator = out.next_shard_iterator().map(str::to_owned);
    }
    Ok(records)
}
