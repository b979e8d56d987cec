//! The embedded adapters: the whole FlyHigh pipeline in one process, with no AWS
//! account and no Docker.
//!
//! In AWS mode the processors keep seat inventory in DynamoDB, park poison records in
//! SQS, send exhausted batches to an on-failure destination and archive Parquet in
//! S3. The embedded default
//! (`flyhigh demo`) runs the same handlers against the same ports
//! ([`flyhigh_core::ports`], [`flyhigh_runner::failure`]), implemented here on local
//! files:
//!
//! - [`sqlite`]: [`SqliteInventoryStore`], seat inventory in one SQLite file (WAL mode,
//!   so `flyhigh inventory` can read it while the demo writes). A store transaction is
//!   one SQLite transaction with the same all-or-nothing, conditional semantics as a
//!   DynamoDB `TransactWriteItems`.
//! - [`jsonl`]: [`JsonLinesFile`], an append-only JSON lines file. It is the
//!   [`DeadLetterSink`](flyhigh_core::DeadLetterSink) (one
//!   [`DeadLetter`](flyhigh_core::DeadLetter) per line) and the
//!   [`FailureDestination`](flyhigh_runner::failure::FailureDestination) (one
//!   [`BatchFailure`](flyhigh_runner::failure::BatchFailure) per line); its generic
//!   [`JsonLinesFile::append`] suits any other serializable record, such as alerts.
//!   [`read_all`] reads a file back, for tests and the CLI's summary.
//! - [`demand`]: the hot-route processor's ports. [`SqliteDemandStore`] keeps demand
//!   counters, the route registry, shard watermarks, alerts with their outbox and the
//!   rules' state in one SQLite file; it is both the
//!   [`DemandStore`](flyhigh_core::DemandStore) and the
//!   [`AlertStore`](flyhigh_core::AlertStore), with the conditions of the in-memory
//!   reference stores, exact across threads and processes sharing the file.
//!   [`AlertLog`] is the [`AlertPublisher`](flyhigh_core::AlertPublisher): one alert
//!   per line of a JSON lines file, and optionally a line on the console.
//! - [`archive`]: the archive processor's ports. [`LocalObjectStore`] is the
//!   [`ObjectStore`](flyhigh_core::ports::ObjectStore): one file per object under a
//!   root directory, at the path its S3 key spells, so the directory is the
//!   Hive-partitioned dataset DuckDB queries; every put replaces its file atomically.
//!   [`SqliteArchiveCheckpoints`] is the
//!   [`ArchiveCheckpoints`](flyhigh_core::ports::ArchiveCheckpoints): one row per
//!   shard, saved conditionally on its version, exact across threads and processes
//!   sharing the file.
//! - [`stream`]: [`DurableStream`], the durable local stream `flyhigh serve` writes
//!   to: Kinesis records (KPL aggregates, sequence numbers, arrival times, shards
//!   placed as [`LocalStream`](flyhigh_producer::LocalStream) places them) in one
//!   SQLite file in WAL mode. A put is acknowledged only once synced, with group
//!   commit (one writer thread, one sync for every request waiting); user records
//!   whose `event_id` is already in the stream are dropped in the same transaction,
//!   so a client's retry is harmless; records older than the retention are trimmed;
//!   a reopened file holds exactly what was committed. It is the producer's
//!   [`Transport`](flyhigh_producer::Transport) and the runner's
//!   [`StreamSource`](flyhigh_runner::StreamSource) ([`DurableShardReader`]), read
//!   while it is written.
//!
//! # Files
//!
//! The adapters write where they are told; under the demo's data directory the
//! conventional names are:
//!
//! | file | written by | holds |
//! |---|---|---|
//! | [`INVENTORY_FILE`] (+ `-wal`, `-shm`) | [`SqliteInventoryStore`] | tables `bookings` and `cabins` |
//! | [`DEAD_LETTER_FILE`] | [`JsonLinesFile`] as dead-letter sink | records that can never be processed, with the reason |
//! | [`FAILED_BATCH_FILE`] | [`JsonLinesFile`] as failure destination | batches that exhausted their retries, with their bytes for replay |
//! | [`DEMAND_FILE`] (+ `-wal`, `-shm`) | [`SqliteDemandStore`] | tables `counters`, `routes`, `watermarks`, `alerts`, `outbox`, `route_states` and `cabin_states` |
//! | [`ALERTS_FILE`] | [`AlertLog`] | every alert published, one [`Alert`](flyhigh_schemas::Alert) per line |
//! | [`ARCHIVE_DIR`]`/` | [`LocalObjectStore`] | the archive: Parquet files under `event_type=/dt=/hour=/`, staged copies under `_staging/` |
//! | [`ARCHIVE_CHECKPOINTS_FILE`] (+ `-wal`, `-shm`) | [`SqliteArchiveCheckpoints`] | table `archive_checkpoints` |
//! | [`STREAM_FILE`] (+ `-wal`, `-shm`) | [`DurableStream`] | tables `records`, `event_ids` and `meta` |
//!
//! # Example
//!
//! ```
//! use flyhigh_core::inventory::{self, InventoryEvent, MAX_TRANSACTION_ITEMS};
//! use flyhigh_core::{DeadLetterSink, InventoryStore};
//! use flyhigh_embedded::{DEAD_LETTER_FILE, JsonLinesFile, SqliteInventoryStore, read_all};
//! use flyhigh_schemas::{Booking, Cabin, Money};
//! use rust_decimal::Decimal;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = SqliteInventoryStore::open(&dir.path().join(flyhigh_embedded::INVENTORY_FILE))?;
//!
//! // Fold a batch over what the store holds, and commit it.
//! let booking = Booking {
//!     booking_id: "BK0001".into(),
//!     customer_id: "cust-42".into(),
//!     flight_id: "FH0123-20261201".into(),
//!     origin: "LHR".into(),
//!     destination: "JFK".into(),
//!     cabin: Cabin::Economy,
//!     seats: 2,
//!     fare: Money::new(Decimal::new(45000, 2), "GBP"),
//! };
//! let current = store.bookings(&[booking.booking_id.clone()]).await?;
//! let plan = inventory::plan(&current, [(0, InventoryEvent::Booking(&booking))]);
//! for tx in inventory::pack(plan.changes, MAX_TRANSACTION_ITEMS) {
//!     store.commit(&tx).await?;
//! }
//! let cabins = store.inventory().await?;
//! assert_eq!((cabins[0].sold, cabins[0].capacity), (2, None)); // counted, flagged unscheduled
//!
//! // Poison records go to a JSON lines file.
//! let dead_letters = JsonLinesFile::create(dir.path().join(DEAD_LETTER_FILE))?;
//! dead_letters.send(&[]).await?;
//! assert!(read_all::<flyhigh_core::DeadLetter>(dead_letters.path())?.is_empty());
//! # Ok(())
//! # }
//! ```

pub mod archive;
pub mod demand;
pub mod jsonl;
pub mod sqlite;
pub mod stream;

pub use archive::{LocalObjectStore, SqliteArchiveCheckpoints};
pub use demand::{AlertLog, SqliteDemandStore};
pub use jsonl::{JsonLinesError, JsonLinesFile, read_all};
pub use sqlite::SqliteInventoryStore;
pub use stream::{
    Backlog, DurableShardReader, DurableStream, ShardStats, StreamConfig, StreamError, StreamStats,
};

/// Conventional name of the inventory database in the demo's data directory.
pub const INVENTORY_FILE: &str = "inventory.sqlite";

/// Conventional name of the hot-route processor's database in the demo's data
/// directory.
pub const DEMAND_FILE: &str = "demand.sqlite";

/// Conventional name of the published alerts in the demo's data directory.
pub const ALERTS_FILE: &str = "alerts.jsonl";

/// Conventional name of the dead-letter file in the demo's data directory.
pub const DEAD_LETTER_FILE: &str = "dead-letters.jsonl";

/// Conventional name of the failed-batch file in the demo's data directory.
pub const FAILED_BATCH_FILE: &str = "failed-batches.jsonl";

/// Conventional name of the archive's root directory in the demo's data directory
/// (the Hive-partitioned dataset DuckDB reads).
pub const ARCHIVE_DIR: &str = "archive";

/// Conventional name of the archive checkpoint database in the demo's data directory.
pub const ARCHIVE_CHECKPOINTS_FILE: &str = "archive-checkpoints.sqlite";

/// Conventional name of the durable stream's database in the data directory.
pub const STREAM_FILE: &str = "stream.sqlite";
