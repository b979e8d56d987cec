//! The FlyHigh event contract: what every booking app sends and every processor reads.
//!
//! Layout:
//! - [`event`]: the [`Envelope`] and the three event kinds ([`Search`], [`Booking`],
//!   [`Cancellation`]) as Rust types, serialized as UTF-8 JSON.
//! - [`validate`]: field-level validation that reports *every* offending field with a
//!   reason, never just the first.
//! - [`decode`]: bytes → [`Envelope`] for consumers, classifying what is wrong with a
//!   record that cannot be used (garbage, bad JSON, unknown `event_type`, future
//!   `schema_version`, invalid fields).
//! - [`partition`]: partition keys per the design and the Kinesis hash-key function
//!   (MD5 → 128-bit) shared by the producer and the in-process stream.
//! - [`aggregation`]: the KPL aggregated-record format (magic, protobuf
//!   `AggregatedRecord`, MD5), written by the producer with an [`AggregateBuilder`] and
//!   read by every consumer with [`deaggregate`], byte-compatible with the KPL, the
//!   KCL and the `aws-kinesis-agg` libraries.
//! - [`json_schema`]: the JSON Schema (draft 2020-12) of the envelope, generated from
//!   these types for producers not written in Rust; checked in as
//!   `json/envelope.schema.json` and kept equal to the types by `tests/json_schema.rs`.
//! - [`alert`]: the [`Alert`] the hot-route processor publishes (SNS message body and
//!   attributes), with its JSON Schema checked in as `json/alert.schema.json`.
//! - [`archive`] (feature `arrow`): the archive's tables (one per event type), their
//!   Arrow schemas, and their Athena DDL with partition projection.
//! - `fixtures/`: valid and invalid example records with the verdicts every consumer
//!   (and the JSON Schema) must reach, run by `tests/fixtures.rs`.
//!
//! The crate is pure: no AWS, no async runtime.
//!
//! # Schema evolution
//!
//! `schema_version` is a single integer, [`SCHEMA_VERSION`]. Within one version only
//! *optional* fields may be added, and readers ignore fields they do not know, so an
//! older consumer reads a newer producer's events of the same version. Anything else
//! (a new required field, a renamed or retyped field, a new `event_type`) is a new
//! version: consumers learn it first and are deployed before any producer emits it. A
//! consumer that meets a version above the one it knows dead-letters the record with
//! the reason `future schema_version` instead of misreading it; replaying the
//! dead-letter queue after the consumer upgrade recovers it. See `docs/schema-evolution.md`.
//!
//! # Example
//!
//! ```
//! use flyhigh_schemas::{Booking, Cabin, Envelope, Money, Payload};
//!
//! let event = Envelope::new(
//!     "web-app",
//!     "2026-11-22T10:15:00.250Z".parse().unwrap(),
//!     Payload::Booking(Booking {
//!         booking_id: "BK7Q2M9X4".into(),
//!         customer_id: "c-5f1e0a".into(),
//!         flight_id: "FH0123-20261201".into(),
//!         origin: "LHR".into(),
//!         destination: "JFK".into(),
//!         cabin: Cabin::Economy,
//!         seats: 2,
//!         fare: Money::new("412.80".parse().unwrap(), "GBP"),
//!     }),
//! );
//! event.validate().expect("a valid booking");
//! assert_eq!(event.partition_key(), "FH0123-20261201");
//! let bytes = event.to_json();
//! let back = flyhigh_schemas::decode(&bytes).unwrap();
//! assert_eq!(back, event);
//! ```

pub mod aggregation;
pub mod alert;
#[cfg(feature = "arrow")]
pub mod archive;
pub mod decode;
pub mod event;
pub mod json_schema;
pub mod partition;
pub mod validate;

pub use aggregation::{
    AggregateBuilder, AggregateError, Deaggregated, UserRecordRef, deaggregate, is_aggregated,
};
pub use alert::{ALERT_VERSION, Alert, AlertRule, AlertStatus, Severity};
pub use decode::{DecodeError, decode};
pub use event::{
    Booking, Cabin, Cancellation, CancellationReason, Envelope, EventType, Money, Payload,
    SCHEMA_VERSION, Search,
};
pub use partition::{HashKey, hash_key};
pub use validate::{FieldError, ValidationErrors};

/// Largest serialized event accepted, in bytes. Far below the 1 MiB Kinesis record
/// limit so that many events fit in one aggregated record.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;
