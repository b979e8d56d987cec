//! The archive processor's ports on local files: the [`ObjectStore`] and the
//! [`ArchiveCheckpoints`] of the embedded default.
//!
//! In AWS mode the archive is Parquet objects in S3 and the per-shard checkpoints are
//! conditional writes in DynamoDB. Here:
//!
//! - [`LocalObjectStore`] keeps every object as a file under a root directory, at the
//!   path its key spells (`event_type=booking/dt=2026-12-01/hour=09/b_....parquet` is
//!   `<root>/event_type=booking/dt=2026-12-01/hour=09/b_....parquet`), so the
//!   directory *is* a Hive-partitioned dataset that DuckDB reads with the analysts'
//!   queries unchanged, and staged copies sit under `<root>/_staging/`, outside every
//!   table's location. A put is a write to a temporary file, an `fsync` and a rename
//!   over the final name: a reader (DuckDB, compaction, `get`) sees the old bytes or
//!   the new, never a torn file, as the port requires.
//! - [`SqliteArchiveCheckpoints`] keeps each shard's [`ArchiveCheckpoint`] as one row
//!   of a SQLite file ([`ARCHIVE_CHECKPOINTS_FILE`](crate::ARCHIVE_CHECKPOINTS_FILE)),
//!   saved by one conditional statement, so two consumers (threads or processes)
//!   racing to commit the same version get exactly one `true` between them.
//!
//! Both behave like the in-memory reference adapters
//! ([`flyhigh_core::memory::MemoryObjectStore`],
//! [`flyhigh_core::memory::MemoryArchiveCheckpoints`]); where a file system cannot
//! (a key that is also a directory, say) the difference is documented on the type.
//!
//! # Example
//!
//! ```
//! use flyhigh_core::archive::{ArchiveCheckpoint, staged_key};
//! use flyhigh_core::ports::{ArchiveCheckpoints, ObjectStore};
//! use flyhigh_core::records::Position;
//! use flyhigh_embedded::{
//!     ARCHIVE_CHECKPOINTS_FILE, ARCHIVE_DIR, LocalObjectStore, SqliteArchiveCheckpoints,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let out = tempfile::tempdir()?;
//! let objects = LocalObjectStore::open(out.path().join(ARCHIVE_DIR))?;
//! let checkpoints = SqliteArchiveCheckpoints::open(&out.path().join(ARCHIVE_CHECKPOINTS_FILE))?;
//!
//! // Stage, commit conditionally, promote.
//! let key = "event_type=booking/dt=2026-12-01/hour=09/b_shardId-000000000000_1-0_9-0.parquet";
//! objects.put(&staged_key(key), b"PAR1...".to_vec()).await?;
//! let next = ArchiveCheckpoint::default().commit(Position::new("9", None), vec![key.into()]);
//! assert!(checkpoints.save("shardId-000000000000", &next).await?);
//! assert!(objects.promote(&staged_key(key), key).await?);
//! assert!(checkpoints.save("shardId-000000000000", &next.promoted()).await?);
//!
//! let listed = objects.list("event_type=booking/").await?;
//! assert_eq!(listed.len(), 1);
//! assert!(out.path().join(ARCHIVE_DIR).join(key).is_file());
//! # Ok(())
//! # }
//! ```
//!
//! [`ObjectStore`]: flyhigh_core::ports::ObjectStore
//! [`ArchiveCheckpoints`]: flyhigh_core::ports::ArchiveCheckpoints
//! [`ArchiveCheckpoint`]: flyhigh_core::archive::ArchiveCheckpoint

mod checkpoints;
mod objects;

pub use checkpoints::{APPLICATION_ID, SCHEMA_VERSION, SqliteArchiveCheckpoints};
pub use objects::LocalObjectStore;
