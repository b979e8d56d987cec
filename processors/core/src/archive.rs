//! The archive processor's pure part: every event as a row of Athena-ready Parquet,
//! exactly once per stream record, compacted into large files once its hour closes
//! (feature `archive`).
//!
//! - [`rows`]: [`ArchivedEvent`] (an event and its place in the stream) ⇄ Arrow
//!   record batches in the columns of `flyhigh_schemas::archive`.
//! - [`order`]: [`row_order`], the order of rows within a file, and [`sort_rows`].
//! - [`files`]: the one factory of Parquet writer properties
//!   ([`writer_properties`]: zstd, page statistics and index, bloom filters on lookup
//!   columns, sort order, `created_by`), writing a file or a run of files of a target
//!   size, reading one back.
//! - [`layout`]: the location generator: Hive partitions `event_type=/dt=/hour=`,
//!   batch files named by shard and range, compacted files by generation, staged
//!   copies under `_staging/`.
//! - [`checkpoint`]: the per-shard [`ArchiveCheckpoint`] and the plan of a batch's
//!   files (stage, commit conditionally, promote).
//! - [`compaction`]: which files of a closed hour to merge, and the merge itself
//!   (sorted, one row per `event_id`).
//!
//! The handler and the compactor that drive these through the
//! [`ObjectStore`](crate::ports::ObjectStore) and
//! [`ArchiveCheckpoints`](crate::ports::ArchiveCheckpoints) ports are in
//! `flyhigh_handlers::archive`; `docs/archive.md` tells the whole design.

pub mod checkpoint;
pub mod compaction;
pub mod files;
pub mod layout;
pub mod order;
pub mod rows;

pub use checkpoint::{
    ArchiveCheckpoint, BatchPlan, MAX_FILES_PER_PART, MAX_PENDING_BYTES, PartLimits, PlannedFile,
    S3_CONCURRENCY, cut_parts, pending_list_bytes, plan_batch,
};
pub use compaction::{CompactionPlan, DEFAULT_GRACE, DEFAULT_TARGET_BYTES};
pub use files::{
    FileRun, ParquetOptions, read_event_ids, read_file, write_file, writer_properties,
};
pub use layout::{DataFile, FileKind, Partition, STAGING, staged_key};
pub use order::{row_order, sort_rows};
pub use rows::ArchivedEvent;

/// A footer key-value pair, for the `metadata` of [`write_file`] and [`FileRun`].
pub use parquet::file::metadata::KeyValue;

/// Why events could not become a file, or a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// A value the column type cannot hold (validated events never have one).
    #[error("{field}: {reason}")]
    Unrepresentable {
        /// The column.
        field: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// An event handed to the wrong table's writer.
    #[error("a {event_type} event is not a row of {table}")]
    WrongTable {
        /// The table written.
        table: flyhigh_schemas::archive::ArchiveTable,
        /// The event's type.
        event_type: &'static str,
    },
    /// A file read back lacks a column or has it in another type.
    #[error("column {column}: {reason}")]
    Column {
        /// The column.
        column: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Invalid [`ParquetOptions`].
    #[error("parquet options: {0}")]
    Options(String),
    /// Arrow refused a batch.
    #[error("arrow: {0}")]
    Arrow(String),
    /// The Parquet writer or reader failed.
    #[error("parquet: {0}")]
    Parquet(String),
}
