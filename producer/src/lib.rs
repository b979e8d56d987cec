//! The FlyHigh producer SDK: what a booking app embeds to send events into the stream.
//!
//! ```no_run
//! # #![cfg_attr(not(feature = "kinesis"), allow(unused))] // the feature is on by default
//! # #[cfg(feature = "kinesis")]
//! use flyhigh_producer::aws_config::{self, BehaviorVersion};
//! use flyhigh_producer::Producer;
//! # fn booking() -> flyhigh_producer::Envelope { unimplemented!() }
//! # #[cfg(not(feature = "kinesis"))] fn main() {}
//! # #[cfg(feature = "kinesis")]
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
//!     let producer = Producer::builder().stream("flyhigh-events").kinesis(&sdk).build().await?;
//!     producer.send(&booking()).await?; // an Envelope: see the example below
//!     producer.close().await; // waits until every event is written or dead-lettered
//!     Ok(())
//! }
//! ```
//!
//! This crate and `tokio` are the only dependencies an app needs: it re-exports the
//! event types ([`Envelope`], [`Payload`], [`Booking`]...; the whole contract as
//! [`schemas`]) and, with the `kinesis` feature (on by default), [`aws_config`] and
//! [`aws_sdk_kinesis`]. `build` fails at once, naming what to fix, when a setting is
//! out of range or the stream is missing, not writable or not allowed
//! ([`BuildError`]).
//!
//! Pure Rust and in-process: no helper daemon, no JVM, memory bounded by a byte
//! budget you set.
//!
//! ```text
//! send(event) ─► validate ─► JSON ─► budget: the whole and the key's shard's share
//!  (field errors,                     (send waits, try_send fails)
//!   nothing sent)                                │
//!                                                ▼
//!   worker ─► route by hash key ─► KPL-aggregate per shard (≤ 50 KiB or linger)
//!          ─► dispatch into PutRecords (≤ 500, ≤ 5 MiB): per-shard token buckets,
//!             one batch per key in flight
//!          ─► Transport: Kinesis (aws-sdk-kinesis) or LocalStream (in-process)
//!          ─► written: Receipt → (shard, sequence number, sub-sequence)
//!             throttled / failed: back to the front of its queue, jittered
//!             backoff, one rate decrease per response per shard
//!             expired / rejected: dead-letter task (own task, bounded queue) ─► sink,
//!             then Receipt → error
//! ```
//!
//! Layout (pure modules first, I/O last):
//! - [`limits`]: the Kinesis service limits as named constants and the pure batcher.
//! - [`aggregate`]: packing one shard's user records into KPL aggregated records (the
//!   codec itself is `flyhigh_schemas::aggregation`, shared with the consumers).
//! - [`shard_map`]: which shard owns a hash key.
//! - `rate`: per-shard token buckets, the adaptation rule (additive increase,
//!   multiplicative decrease, once per response per shard) and the backoff.
//! - [`config`]: [`ProducerConfig`], every setting with its default and why;
//!   [`builder`]: [`ProducerBuilder`], the checked way to start a producer.
//! - [`dead_letter`]: the [`DeadLetterSink`] port, a JSON-lines file sink (default,
//!   in a writable place) and an in-memory one; the SQS sink with feature `sqs`.
//! - [`metrics`]: [`ProducerMetrics`] (per shard too), as `tracing` events and as
//!   CloudWatch EMF ([`EmfEmitter`]); the operator's page is `docs/producer.md`.
//! - [`transport`]: the [`Transport`] port (put records, list shards) and the
//!   classification of put failures.
//! - [`local`]: [`LocalStream`], an in-process sharded stream that places records
//!   the way Kinesis does; the embedded default and tests use it.
//! - `kinesis` (feature `kinesis`, on by default): [`KinesisTransport`].
//! - [`producer`]: [`Producer`], the async handle. Private behind it: `budget`
//!   (the byte budget and its per-shard shares), `exchange` (what the handle and
//!   the worker send each other) and `worker`, which owns the buffered records:
//!   a select loop over pure pieces (`routing`, `dispatch`, `outcome`, `epochs`)
//!   and the `dead_letters` task.
//! - [`replay`](mod@replay): putting dead letters back through a producer, once
//!   each; `flyhigh dead-letters replay` uses it.
//!
//! # Example
//!
//! In process, over a [`LocalStream`], with every outcome checked:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use flyhigh_producer::{Booking, Cabin, Envelope, Money, Payload};
//! use flyhigh_producer::{LocalStream, MemoryDeadLetters, Producer};
//!
//! let stream = LocalStream::new("bookings", 4);
//! let dead_letters = MemoryDeadLetters::new();
//! let producer = Producer::builder()
//!     // Default: a JSON-lines file in the working directory.
//!     .dead_letters(dead_letters.clone())
//!     .build_with(stream.clone())
//!     .await
//!     .expect("valid settings");
//! let event = Envelope::new("web-app", "2026-11-22T10:15:00.250Z".parse().unwrap(),
//!     Payload::Booking(Booking {
//!         booking_id: "BK7Q2M9X4".into(), customer_id: "c-5f1e0a".into(),
//!         flight_id: "FH0123-20261201".into(), origin: "LHR".into(), destination: "JFK".into(),
//!         cabin: Cabin::Economy, seats: 2, fare: Money::new("412.80".parse().unwrap(), "GBP"),
//!     }));
//! // `send` waits only when the buffer budget is spent; the receipt resolves once
//! // Kinesis has the record (or it is dead-lettered).
//! let receipt = producer.send(&event).await.expect("valid event");
//! producer.flush().await.expect("open");
//! let delivery = receipt.await.expect("written");
//! assert_eq!(&*delivery.shard_id, stream.shards()[stream.shard_for("FH0123-20261201")].shard_id);
//! let report = producer.close().await;
//! assert_eq!(report.dead_lettered, 0);
//! assert!(dead_letters.letters().is_empty());
//! # });
//! ```
//!
//! # Guarantees
//!
//! - **Validation.** An invalid event is rejected by `send` with every offending
//!   field ([`SendError::Invalid`]); nothing is sent. An out-of-range setting is
//!   refused at start-up, named ([`BuildError::Config`], [`ProducerConfig::validate`]),
//!   never a panic or a spin later; so is a Kinesis stream that does not exist or
//!   takes no writes.
//! - **Delivery.** Every accepted record ends in exactly one of two places: Kinesis
//!   (its [`Receipt`] gives the shard, sequence number and sub-sequence number) or
//!   the dead-letter sink (its receipt gives the reason). Nothing expires silently.
//!   Delivery is at least once: when a connection drops after Kinesis wrote a
//!   request, the retry writes it again, so consumers must be idempotent (ours
//!   are). If the sink itself fails, the receipt says so
//!   ([`DeliveryError::DeadLetterFailed`]) and the failure is logged and counted.
//! - **Order.** For one partition key, records are written in the order `send`
//!   accepted them, across retries: at most one Kinesis record holding a given key
//!   is in flight, two records sharing a key never travel in the same request
//!   (PutRecords does not promise order within a request), and a failed record is
//!   retried before any later one holding its keys. A dead-lettered record leaves
//!   the sequence; the records after it still go. Right after a reshard, until the
//!   map is reloaded, an aggregate may carry records whose keys now belong to a
//!   sibling shard: they are written, but their order against the same key's records
//!   on the sibling shard is not guaranteed (KPL has the same window).
//! - **Memory.** Buffered records (data, key and [`RECORD_OVERHEAD_BYTES`] each)
//!   never exceed [`ProducerConfig::buffer_budget_bytes`]: `send` waits and
//!   `try_send` fails with [`SendError::BufferFull`] when it is spent, whatever
//!   Kinesis does. A record stays charged until it is resolved, also while its dead
//!   letter waits for the sink, so records expiring under throttling cannot grow
//!   the process past the budget either; the sink task copies one call's letters
//!   (under 2 MiB of records) out of their aggregates at a time. In-flight
//!   requests hold a copy of their records on top (at most
//!   [`ProducerConfig::max_requests_in_flight`] requests).
//! - **Isolation.** The records of one shard may hold at most
//!   [`ProducerConfig::shard_budget_share`] of the budget (half, by default): a
//!   throttled shard (a hot flight) makes `send` wait for its own keys only. The
//!   dead-letter sink runs on its own task, so a slow sink stalls no shard.
//! - **Throughput and politeness.** User records bound for one shard are packed into
//!   KPL aggregated records (readable by KCL, Firehose, the aws-kinesis-agg libraries
//!   and our consumers), sized to waste little of the 25 KiB PUT payload units
//!   Kinesis bills. Each shard has token buckets for records/s and bytes/s whose
//!   rate halves once per PutRecords response in which any of the shard's records
//!   was throttled (not once per record, and not again for requests sent before
//!   the last decrease) and wins back 2% of the limit per clean response; every
//!   retry waits a jittered exponential backoff, so a throttled stream is not
//!   hammered. Without a shard map (no `kinesis:ListShards`), one bucket starts at
//!   one shard's limits and adapts the same way.
//! - **Shutdown.** [`Producer::flush`] waits until everything accepted so far is
//!   written or dead-lettered; [`Producer::close`] does the same and stops;
//!   [`Producer::close_within`] dead-letters whatever is left at its deadline.
//!
//! # Settings
//!
//! [`Producer::builder`] is the front door: one setter per setting, named as the
//! [`ProducerConfig`] field (or [`ProducerBuilder::config`] to start from a whole
//! config), every one checked by `build`. ([`Producer::new`] and
//! [`Producer::try_new`] remain for a ready [`ProducerConfig`] and transport; they
//! check the settings but not the stream.) Every setting, its default and the
//! reason for it are on [`ProducerConfig`]:
//! `buffer_budget_bytes` (32 MiB), `linger` (50 ms), `aggregation` (on),
//! `aggregate_max_bytes` (51,200), `record_ttl` (120 s), `backoff_base` (100 ms),
//! `backoff_max` (5 s), `max_requests_in_flight` (8), `request_timeout` (30 s),
//! `shard_limits` (the transport's: Kinesis's 1,000 records/s and 1 MiB/s per
//! shard), `shard_budget_share` (0.5), `shard_map_refresh` (60 s), `dead_letters`
//! (a file in [`FileDeadLetters::default_location`]), `metrics_interval` (60 s),
//! `metrics_emf_namespace` (off), `rng_seed` (from the OS).
//!
//! # Operating it
//!
//! [`Producer::metrics`] returns a [`ProducerMetrics`] snapshot (user records per
//! Kinesis record, records per request, retries, throttles, dead letters, buffered
//! bytes, the oldest buffered record's age, put latency, and per shard
//! ([`ShardMetrics`]) records and bytes per second, throttles, the current allowed
//! rate and buffered bytes); the same fields are logged as a `tracing` event with
//! target [`metrics::METRICS_TARGET`] every `metrics_interval`, and with
//! `metrics_emf_namespace` set, printed as CloudWatch Embedded Metric Format
//! lines. `docs/producer.md` lists every metric with the alarm it supports.
//!
//! The SDK's own retries must be off under the producer: it retries per record with
//! per-shard backoff, and two retry layers multiply under throttling (three SDK
//! attempts per producer attempt, against a stream already over its limit). The
//! builder sees to it: [`ProducerBuilder::kinesis`] makes the client with
//! `RetryConfig::disabled()`, and [`ProducerBuilder::kinesis_client`] turns them off
//! on the client it is given. Only a [`KinesisTransport`] made by hand needs its
//! client built that way.
//!
//! IAM: `kinesis:PutRecords` and `kinesis:ListShards` to produce, and
//! `kinesis:DescribeStreamSummary` for the check `build` makes.

pub mod aggregate;
mod budget;
pub mod builder;
pub mod config;
pub mod dead_letter;
mod exchange;
pub mod limits;
pub mod local;
pub mod metrics;
pub mod producer;
mod rate;
pub mod replay;
#[cfg(any(feature = "kinesis", feature = "sqs"))]
mod sdk_error;
pub mod shard_map;
pub mod transport;
mod worker;

#[cfg(test)]
mod test_support;

#[cfg(feature = "kinesis")]
pub mod kinesis;

pub use builder::{BuildError, ProducerBuilder};
pub use config::{ConfigError, MAX_RECORD_TTL, MIN_PERIOD, ProducerConfig, RECORD_OVERHEAD_BYTES};
#[cfg(feature = "sqs")]
pub use dead_letter::SqsDeadLetters;
pub use dead_letter::{
    DeadLetter, DeadLetterError, DeadLetterReason, DeadLetterSink, FileDeadLetters,
    MemoryDeadLetters, SinkFuture,
};
#[cfg(feature = "kinesis")]
pub use kinesis::KinesisTransport;
pub use local::LocalStream;
pub use metrics::{EmfEmitter, ProducerMetrics, ShardMetrics};
pub use producer::{Delivery, DeliveryError, FlushReport, Producer, Receipt, SendError};
pub use rate::ShardLimits;
pub use replay::{ReplayLedger, ReplayReport, letter_id, replay};
pub use transport::{Entry, EntryResult, ShardInfo, Transport, TransportError};

// One dependency (plus tokio) for an app: the events it builds, the whole contract,
// and the SDK crates whose `SdkConfig` and `Client` the builder takes.
#[cfg(any(feature = "kinesis", feature = "sqs"))]
pub use aws_config;
#[cfg(feature = "kinesis")]
pub use aws_sdk_kinesis;
#[cfg(feature = "sqs")]
pub use aws_sdk_sqs;
pub use flyhigh_schemas as schemas;
pub use flyhigh_schemas::{
    Booking, Cabin, Cancellation, CancellationReason, Envelope, Money, Payload, Search,
};
