//! The Lambda handlers, shared by the Lambda binaries and the local runner.
//!
//! A handler takes a real `aws_lambda_events` [`KinesisEvent`] and returns a
//! [`KinesisEventResponse`] with partial batch failures, exactly as Lambda calls it
//! with `ReportBatchItemFailures` enabled. It is generic over the ports of
//! `flyhigh-core`, so the Lambda binary (DynamoDB, SQS), the local runner (SQLite,
//! files) and the tests (in memory) all run this same code.
//!
//! - [`kinesis`]: `KinesisEvent` ⇄ core Kinesis records and batch responses.
//! - [`inventory`]: [`InventoryHandler`], seat inventory exactly once; with a
//!   [`FlightAlerts`] watch, near-sold-out, sold-out and oversold alerts from its
//!   committed state.
//! - [`demand`]: the hot-route processor: [`DemandHandler`] counts demand per route
//!   and bucket exactly once, [`SurgeEvaluator`] judges each route once on a
//!   schedule, [`Outbox`] publishes every alert.
//! - `archive` (feature `archive`): the archive processor: `ArchiveHandler`
//!   writes every event once into Parquet batch files committed by a per-shard
//!   checkpoint, `Compactor` merges closed hours into large files.
//! - [`deadline`]: [`Deadline`], when the invocation must have answered (Lambda's
//!   `Context`, the local runner's batch timeout), for handlers that stop at a part
//!   boundary.
//! - [`latency`]: [`Latency`], how long events take from `occurred_at` to each
//!   handler's commit, in HDR histograms.
//! - [`batch`]: what every handler shares: expanding a batch into events and poison,
//!   writing the dead letters of the records before a reported failure.
//!
//! Every handler reads Kinesis records through
//! [`KinesisRecord::event_records`](flyhigh_core::KinesisRecord::event_records), so a
//! KPL aggregate (what our producer and any KPL producer write) is processed user
//! record by user record, a damaged aggregate is dead-lettered whole with its
//! reason, and failures are still reported by Kinesis sequence number.
//!
//! [`KinesisEvent`]: aws_lambda_events::event::kinesis::KinesisEvent
//! [`KinesisEventResponse`]: aws_lambda_events::event::streams::KinesisEventResponse

#[cfg(feature = "archive")]
pub mod archive;
pub mod batch;
pub mod deadline;
pub mod demand;
pub mod inventory;
pub mod kinesis;
pub mod latency;

#[cfg(feature = "archive")]
pub use archive::{ArchiveHandler, Compactor};
pub use deadline::Deadline;
pub use demand::{DemandHandler, FlightAlerts, Outbox, SurgeEvaluator};
pub use inventory::{HandlerStats, InventoryHandler};
pub use latency::{Latency, LatencySummary};
