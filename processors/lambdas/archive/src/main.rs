//! The archive Lambda: Kinesis batches → Parquet batch files in S3, each record
//! archived once.
//!
//! Wiring only (the handler is `flyhigh_handlers::ArchiveHandler`). Configuration,
//! read once at cold start:
//! - `ARCHIVE_BUCKET`: the bucket; `ARCHIVE_PREFIX` (optional, default `archive`):
//!   the prefix the tables live under;
//! - `ARCHIVE_KMS_KEY_ID` (optional): the KMS key every object is encrypted with
//!   (SSE-KMS); unset, the bucket's default encryption applies;
//! - `CHECKPOINT_TABLE`: the DynamoDB table of each shard's archive checkpoint;
//! - `DEAD_LETTER_QUEUE_URL`: the SQS queue for poison records.
//!
//! Each invocation gets Lambda's deadline: a batch touching thousands of partitions
//! is committed in parts, and one cut short by the deadline reports the first
//! record it did not archive, so the retry goes on from there.
//!
//! The event source mapping must enable `ReportBatchItemFailures` and keep
//! `ParallelizationFactor` at 1: a shard's checkpoint moves one batch at a time (a
//! second consumer is safe, only wasteful). See `infra/archive.yaml`.

use flyhigh_aws::archive::DynamoArchiveCheckpoints;
use flyhigh_aws::s3::S3ObjectStore;
use flyhigh_aws::sqs::SqsQueue;
use flyhigh_handlers::ArchiveHandler;
use lambda_runtime::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_support::init_tracing();
    let bucket = lambda_support::required("ARCHIVE_BUCKET")?;
    let prefix = std::env::var("ARCHIVE_PREFIX").unwrap_or_else(|_| "archive".into());
    let kms_key = std::env::var("ARCHIVE_KMS_KEY_ID").ok();
    let table = lambda_support::required("CHECKPOINT_TABLE")?;
    let queue_url = lambda_support::required("DEAD_LETTER_QUEUE_URL")?;
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let handler = ArchiveHandler::new(
        S3ObjectStore::new(aws_sdk_s3::Client::new(&config), bucket, &prefix).with_kms_key(kms_key),
        DynamoArchiveCheckpoints::new(aws_sdk_dynamodb::Client::new(&config), table),
        SqsQueue::new(aws_sdk_sqs::Client::new(&config), queue_url),
    );
    lambda_support::serve_kinesis_by(|event, deadline| handler.handle_by(event, deadline)).await
}
