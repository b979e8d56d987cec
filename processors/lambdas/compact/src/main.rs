//! The compaction Lambda: invoked every hour by an EventBridge schedule, it merges the
//! archive's closed hours into files of the target size, one row per `event_id`.
//!
//! Wiring only (the compactor is `flyhigh_handlers::Compactor`). Configuration, read
//! once at cold start:
//! - `ARCHIVE_BUCKET`, `ARCHIVE_PREFIX` (optional, default `archive`),
//!   `ARCHIVE_KMS_KEY_ID` (optional): as for the archive Lambda;
//! - `TARGET_BYTES` (optional, default 134217728, 128 MiB): the size of compacted
//!   files, one remainder per partition excepted;
//! - `GRACE_MINUTES` (optional, default 15): an hour is closed this long after its
//!   end.
//!
//! - `MAX_PARTITIONS_PER_RUN` (optional, unset: no limit): at most this many
//!   partitions per run.
//!
//! A run's budget is the invocation's deadline (the `Context`): it starts another
//! partition only while `PARTITION_TIME_RESERVE` is left, takes new hours first
//! and re-compactions round robin from its cursor, and reports the rest as
//! `deferred` for the next run (`docs/archive.md`, "Budget and order").
//!
//! The payload is ignored. Each run answers with the `CompactionReport` as JSON; a
//! failure fails the invocation, and the next run (or a retry) finishes the job: a
//! crash at any step leaves every row readable (see
//! `flyhigh_handlers::archive::compaction`). Reserved concurrency must be 1.

use std::time::SystemTime;

use chrono::{Duration, Utc};
use flyhigh_aws::s3::S3ObjectStore;
use flyhigh_handlers::Compactor;
use flyhigh_handlers::archive::{CompactionReport, DEFAULT_GRACE, DEFAULT_TARGET_BYTES};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_support::init_tracing();
    let bucket = lambda_support::required("ARCHIVE_BUCKET")?;
    let prefix = std::env::var("ARCHIVE_PREFIX").unwrap_or_else(|_| "archive".into());
    let kms_key = std::env::var("ARCHIVE_KMS_KEY_ID").ok();
    let target: u64 = lambda_support::number("TARGET_BYTES", DEFAULT_TARGET_BYTES)?;
    let grace = match std::env::var_os("GRACE_MINUTES") {
        Some(_) => Duration::minutes(lambda_support::number("GRACE_MINUTES", 0)?),
        None => DEFAULT_GRACE,
    };
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let max_partitions: usize = lambda_support::number("MAX_PARTITIONS_PER_RUN", 0)?;
    let compactor = Compactor::new(
        S3ObjectStore::new(aws_sdk_s3::Client::new(&config), bucket, &prefix).with_kms_key(kms_key),
    )
    .with_target_bytes(target)
    .with_grace(grace);
    let compactor = if max_partitions > 0 {
        compactor.with_max_partitions_per_run(max_partitions)
    } else {
        compactor
    };
    let compactor = &compactor;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = lambda_support::deadline(&event.context, SystemTime::now());
            let report: CompactionReport =
                compactor.compact_closed_by(Utc::now(), deadline).await?;
            tracing::info!(
                partitions = report.partitions,
                closed = report.closed,
                compacted = report.compacted.len(),
                duplicates_dropped = report.duplicates_dropped(),
                failed = report.failed.len(),
                deferred = report.deferred.len(),
                "closed hours compacted"
            );
            if let Some((partition, error)) = report.failed.first() {
                // Fail the invocation so that its alarm and on-failure destination
                // see it; the partitions done stay done, the next run retries these.
                return Err(Error::from(format!(
                    "{} partitions not compacted, first {partition}: {error}",
                    report.failed.len()
                )));
            }
            Ok::<_, Error>(report)
        },
    ))
    .await
}
