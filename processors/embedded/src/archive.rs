//! The archive processor's ports on local files: the [`ObjectStore`] of the
//! embedded default.
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
//!
//! It behaves like the in-memory reference adapter
//! ([`flyhigh_core::memory::MemoryObjectStore`]); where a file system cannot (a key
//! that is also a directory, say) the difference is documented on the type.
//!
//! # Example
//!
//! ```
//! use flyhigh_core::archive::staged_key;
//! use flyhigh_core::ports::ObjectStore;
//! use flyhigh_embedded::{ARCHIVE_DIR, LocalObjectStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let out = tempfile::tempdir()?;
//! let objects = LocalObjectStore::open(out.path().join(ARCHIVE_DIR))?;
//!
//! // Stage, then promote.
//! let key = "event_type=booking/dt=2026-12-01/hour=09/b_shardId-000000000000_1-0_9-0.parquet";
//! objects.put(&staged_key(key), b"PAR1...".to_vec()).await?;
//! assert!(objects.promote(&staged_key(key), key).await?);
//!
//! let listed = objects.list("event_type=booking/").await?;
//! assert_eq!(listed.len(), 1);
//! assert!(out.path().join(ARCHIVE_DIR).join(key).is_file());
//! # Ok(())
//! # }
//! ```
//!
//! [`ObjectStore`]: flyhigh_core::ports::ObjectStore

mod objects;

pub use objects::LocalObjectStore;
