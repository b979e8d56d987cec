//! The AWS adapters of the FlyHigh processors: the ports of `flyhigh-core` and
//! `flyhigh-runner` implemented on DynamoDB, SNS, SQS, Kinesis and S3.
//!
//! Each adapter takes a ready-built SDK client in `new(client, ...)`; building clients
//! (region, credentials, `AWS_ENDPOINT_URL`) is the wiring of the Lambda binaries and
//! the CLI. Every SDK error is classified inside the adapter by what the caller must
//! do: retry (`Transient`), re-read and plan again (`CommitError::Conflict`), or
//! stop and let an operator look (`Permanent`).
//!
//! # Layout: one module per integration
//!
//! | module       | feature    | implements                                                       | SDK crate          |
//! |--------------|------------|------------------------------------------------------------------|--------------------|
//! | [`dynamodb`] | `dynamodb` | `flyhigh_core::InventoryStore` ([`dynamodb::DynamoInventoryStore`]) | `aws-sdk-dynamodb` |
//! | [`demand`]   | `dynamodb` | `flyhigh_core::DemandStore` ([`demand::DynamoDemandStore`]), `flyhigh_core::AlertStore` ([`demand::DynamoAlertStore`]) | `aws-sdk-dynamodb` |
//! | [`sns`]      | `sns`      | `flyhigh_core::AlertPublisher` ([`sns::SnsTopic`]); with `sqs` also [`sns::subscribe_queue`] | `aws-sdk-sns` |
//! | [`sqs`]      | `sqs`      | `flyhigh_core::DeadLetterSink` ([`sqs::SqsQueue`]); with `runner` also `flyhigh_runner::failure::FailureDestination` | `aws-sdk-sqs` |
//! | [`kinesis`]  | `kinesis`  | `flyhigh_runner::source::StreamSource` ([`kinesis::KinesisSource`]) | `aws-sdk-kinesis`  |
//! | [`s3`]       | `s3`       | `flyhigh_core::ports::ObjectStore` ([`s3::S3ObjectStore`])          | `aws-sdk-s3`       |
//! | [`archive`]  | `s3` and `dynamodb` | `flyhigh_core::ports::ArchiveCheckpoints` ([`archive::DynamoArchiveCheckpoints`]) | `aws-sdk-dynamodb` |
//!
//! Inside each module, the code that builds requests and the code that classifies
//! errors are pure and unit-tested with SDK types built by their builders; only the
//! adapter type calls the SDK. Each module also has a `create_*` function that makes
//! its resource idempotently, for tests and local setups (production resources come
//! from `infra/`).
//!
//! # What links what
//!
//! Each binary enables only the features it needs, so a Lambda links only its SDKs:
//!
//! | binary                                  | features                |
//! |-----------------------------------------|-------------------------|
//! | inventory Lambda (with flight alerts)   | `dynamodb`, `sqs`, `sns` |
//! | demand Lambda (counting)                | `dynamodb`, `sqs`       |
//! | alerts Lambda (surge evaluator, outbox) | `dynamodb`, `sns`       |
//! | archive processor                       | `s3`, `dynamodb` (its checkpoints), `sqs` |
//! | `flyhigh` CLI and runner in AWS mode    | all (the default)       |
//!
//! `runner` (on by default, implied by `kinesis`) adds the `flyhigh-runner` ports,
//! which the Lambdas do not need: Lambda's own event source mapping reads the stream.
//! `s3` also builds `flyhigh-core`'s archive (Arrow and Parquet), which only the
//! archive's binaries need; the archive checkpoints live in DynamoDB, so
//! [`archive`] is there when both `s3` and `dynamodb` are on.
//!
//! # The inventory table
//!
//! One table, string keys `pk` (partition) and `sk` (sort), two item types:
//!
//! ```text
//! item          pk                    sk                 attributes
//! ------------  --------------------  -----------------  -----------------------------------------------
//! booking       BOOKING#<booking_id>  BOOKING            status (booked | cancelled | cancel_pending),
//!                                                        flight_id, cabin (absent while only the
//!                                                        cancellation is known), seats (N),
//!                                                        expires_at (N, epoch seconds: the table's
//!                                                        TTL attribute, see
//!                                                        `flyhigh_core::inventory::booking_expiry`)
//! flight-cabin  FLIGHT#<flight_id>    CABIN#<cabin>      sold (N, changed only by ADD), capacity (N,
//!                                                        absent = unscheduled), origin, destination,
//!                                                        departure (RFC 3339, UTC)
//! ```
//!
//! A batch commits as `TransactWriteItems` of at most
//! [`flyhigh_core::inventory::MAX_TRANSACTION_ITEMS`] actions: each booking write is
//! a `Put` conditional on the status the plan read (`attribute_not_exists(pk)` for a
//! new booking), each flight-cabin counter an `Update` `ADD sold :n`. A replayed
//! batch fails its conditions and changes nothing. Loading the schedule `SET`s
//! capacity and route and never touches `sold`, so it can run before, during or after
//! sales. The sold counter of a hot flight is written once per transaction, not once
//! per booking.
//!
//! The hot-route processor's two tables (demand counters; alerts, outbox and rule
//! states) are described in [`demand`].
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "dynamodb")]
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use flyhigh_aws::dynamodb::DynamoInventoryStore;
//! use flyhigh_core::InventoryStore;
//!
//! let config = aws_config::load_from_env().await;
//! let store = DynamoInventoryStore::new(aws_sdk_dynamodb::Client::new(&config), "flyhigh-inventory");
//! for cabin in store.inventory().await? {
//!     println!("{} {}: {} sold of {:?}", cabin.flight_id, cabin.cabin, cabin.sold, cabin.capacity);
//! }
//! # Ok(())
//! # }
//! ```

mod error_text;
#[cfg(any(
    feature = "dynamodb",
    feature = "sqs",
    feature = "sns",
    feature = "kinesis",
    feature = "s3"
))]
mod retry;
#[cfg(test)]
mod test_sdk;

pub use error_text::error_text;

#[cfg(all(feature = "dynamodb", feature = "s3"))]
pub mod archive;
#[cfg(feature = "dynamodb")]
pub mod demand;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "kinesis")]
pub mod kinesis;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqs")]
pub mod sqs;
