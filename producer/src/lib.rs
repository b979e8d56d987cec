//! The FlyHigh producer SDK: what a booking app embeds to send events into the stream.
//!
//! ```text
//! send(event) ─► validate ─► JSON ─► bounded queue ─► worker: collect into PutRecords
//!                (field errors                          (≤ 500 records, ≤ 5 MiB, linger)
//!                 returned, nothing sent)                 │
//!                                                         ▼
//!                                        Transport ─► Kinesis (aws-sdk-kinesis)
//!                                                  └► LocalStream (in-process, sharded
//!                                                      by MD5 hash key like Kinesis)
//! ```
//!
//! Layout:
//! - [`limits`]: the Kinesis service limits as named constants and the pure batcher
//!   that respects them.
//! - [`transport`]: the [`Transport`] port and the classification of put failures.
//! - [`local`]: [`LocalStream`], an in-process sharded stream that hashes partition
//!   keys to shards the way Kinesis does; the embedded default and tests use it.
//! - `kinesis` (feature `kinesis`, on by default): [`KinesisTransport`].
//! - [`producer`]: [`Producer`], the async API.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use flyhigh_producer::{LocalStream, Producer, ProducerConfig};
//! use flyhigh_schemas::{Booking, Cabin, Envelope, Money, Payload};
//!
//! let stream = LocalStream::new("bookings", 4);
//! let producer = Producer::new(stream.clone(), ProducerConfig::default());
//! let event = Envelope::new("web-app", "2026-11-22T10:15:00.250Z".parse().unwrap(),
//!     Payload::Booking(Booking {
//!         booking_id: "BK7Q2M9X4".into(), customer_id: "c-5f1e0a".into(),
//!         flight_id: "FH0123-20261201".into(), origin: "LHR".into(), destination: "JFK".into(),
//!         cabin: Cabin::Economy, seats: 2, fare: Money::new("412.80".parse().unwrap(), "GBP"),
//!     }));
//! producer.send(&event).await.expect("valid event");
//! let report = producer.close().await;
//! assert_eq!(report.records_sent, 1);
//! assert_eq!(stream.total_records(), 1);
//! # });
//! ```
//!
//! # Guarantees (this version)
//!
//! - An invalid event is rejected by `send` with every offending field; nothing is sent.
//! - An accepted event is written, or reported in [`FlushReport::failed`] with the
//!   reason after [`ProducerConfig::max_attempts`]; it is never dropped silently.
//! - Only failed records are retried, with jittered exponential backoff.
//! - Memory is bounded by the queue ([`ProducerConfig::queue_capacity`] events):
//!   `send` waits when it is full.
//! - Requests are sent one at a time, so records reach a shard in `send` order unless
//!   a record is retried after a later one for the same key was accepted.

pub mod limits;
pub mod local;
pub mod producer;
pub mod transport;

#[cfg(feature = "kinesis")]
pub mod kinesis;

#[cfg(feature = "kinesis")]
pub use kinesis::KinesisTransport;
pub use local::LocalStream;
pub use producer::{FailedRecord, FlushReport, Producer, ProducerConfig, ProducerStats, SendError};
pub use transport::{Entry, EntryResult, Transport, TransportError};
