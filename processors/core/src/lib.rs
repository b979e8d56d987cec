//! The pure core of the FlyHigh processors: what the pipeline decides, with no I/O.
//!
//! Layout:
//! - [`schedule`]: the flight schedule (capacities per cabin) an operator loads.
//! - [`inventory`]: the seat-inventory fold. A booking's life is a small state machine
//!   ([`inventory::apply`]); a batch of events becomes a [`inventory::Plan`] of
//!   conditional booking writes plus one aggregated counter change per flight and
//!   cabin, packed into store transactions of bounded size.
//! - [`records`]: Kinesis records as the processors see them, expanded from KPL
//!   aggregates into user records ([`EventRecord`]), decoding into events or poison
//!   with a reason.
//! - [`listing`]: the filters of an operator's inventory listing (route, date,
//!   oversold, sold out, limit).
//! - [`ports`]: the small traits the handlers need ([`ports::InventoryStore`],
//!   [`ports::DeadLetterSink`]); the AWS and embedded adapters implement them.
//!
//! Dependencies point inwards: adapters and handlers depend on this crate, and this
//! crate depends only on `flyhigh-schemas`. No AWS crate, no async runtime.

pub mod inventory;
pub mod listing;
pub mod memory;
pub mod ports;
pub mod records;
pub mod schedule;

pub use inventory::{BookingRecord, BookingStatus, CabinInventory, CabinKey, FlightSchedule};
pub use listing::{InventoryFilter, Route};
pub use ports::{CommitError, DeadLetter, DeadLetterSink, InventoryStore, StoreError};
pub use records::{EventRecord, KinesisRecord};
pub use schedule::{Schedule, ScheduledFlight};
