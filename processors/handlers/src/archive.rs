//! The archive processor: every event as a row of Parquet, exactly once per stream
//! record, and the compaction of closed hours (feature `archive`).
//!
//! - [`handler`]: [`ArchiveHandler`], Kinesis batches → batch files in Hive
//!   partitions, committed by the shard's archive checkpoint (stage, commit
//!   conditionally, promote), so that a redelivery, a retry from any record, a
//!   replay or a second consumer racing on the shard adds no row; a batch spanning
//!   thousands of partitions is committed in parts that fit the checkpoint item,
//!   and stops at a part boundary before its [`Deadline`](crate::Deadline).
//! - [`compaction`]: [`Compactor`], a closed hour's files → files of the target size
//!   (128 MiB by default, one remainder per partition), sorted, one row per
//!   `event_id`, safe to rerun or to crash at any step; a run has a budget (a
//!   deadline, a most partitions), takes new hours first and late files round
//!   robin, so no partition starves the others.
//!
//! The pure parts (rows, Parquet, layout, plans) are `flyhigh_core::archive`; the
//! stores are `flyhigh_aws` (S3, DynamoDB) and `flyhigh_embedded` (a directory,
//! SQLite). `docs/archive.md` tells the design; `docs/analytics.md` the tables.

pub mod compaction;
pub mod handler;

pub use compaction::{
    CURSOR_KEY, CompactionReport, Compactor, PARTITION_TIME_RESERVE, PartitionReport,
};
pub use flyhigh_core::archive::{DEFAULT_GRACE, DEFAULT_TARGET_BYTES};
pub use handler::{ArchiveHandler, ArchiveStats, PART_TIME_RESERVE};

/// The processor's name in dead letters and logs.
pub const PROCESSOR: &str = "archive";
