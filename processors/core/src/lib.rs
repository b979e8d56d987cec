//! The pure core of the FlyHigh processors: what the pipeline decides, with no I/O.
//!
//! Layout:
//! - [`schedule`]: the flight schedule (capacities per cabin) an operator loads.
//! - [`inventory`]: the seat-inventory fold. A booking's life is a small state machine
//!   ([`inventory::apply`]); a batch of events becomes a [`inventory::Plan`] of
//!   conditional booking writes plus one aggregated counter change per flight and
//!   cabin, packed into store transactions of bounded size.
//! - [`demand`]: the hot-route processor. Demand counted per route, bucket of event
//!   time and shard, exactly once by a high-water mark per counter, a shard's progress
//!   taken from arrival times ([`demand::counting`]); surges judged once per route
//!   against its own baseline ([`demand::surge`]), over a bounded route registry
//!   ([`demand::registry`]); near-sold-out, sold-out and oversold latches per cabin,
//!   judged event by event in stream order, with clearances ([`demand::flights`]).
//! - `archive` (feature `archive`): the archive processor. Events as rows of
//!   sorted, zstd Parquet in Hive partitions by event type, day and hour; batch
//!   files committed exactly once per shard by a conditional archive checkpoint;
//!   compaction of closed hours into large files without duplicate `event_id`s.
//! - [`records`]: Kinesis records as the processors see them, expanded from KPL
//!   aggregates into user records ([`EventRecord`]), decoding into events or poison
//!   with a reason.
//! - [`listing`]: the filters of an operator's inventory listing (route, date,
//!   oversold, sold out, limit).
//! - [`ports`]: the small traits the handlers need ([`ports::InventoryStore`],
//!   [`ports::DemandStore`], [`ports::AlertStore`], [`ports::AlertPublisher`],
//!   [`ports::DeadLetterSink`]); the AWS and embedded adapters implement them, and
//!   [`memory`] does for tests.
//!
//! Dependencies point inwards: adapters and handlers depend on this crate, and this
//! crate depends only on `flyhigh-schemas`. No AWS crate, no async runtime.

#[cfg(feature = "archive")]
pub mod archive;
pub mod demand;
pub mod inventory;
pub mod listing;
pub mod memory;
pub mod ports;
pub mod records;
pub mod schedule;

pub use inventory::{BookingRecord, BookingStatus, CabinInventory, CabinKey, FlightSchedule};
pub use listing::{InventoryFilter, Route};
pub use ports::{
    Added, AlertFilter, AlertPublisher, AlertStore, CommitError, DeadLetter, DeadLetterSink,
    DemandStore, InventoryStore, NotedRoute, ShardWatermark, StoreError, StoredAlert,
};
pub use records::{EventRecord, KinesisRecord, Position};
pub use schedule::{Schedule, ScheduledFlight};
