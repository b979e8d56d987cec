//! Test support for code that talks to Kinesis (and DynamoDB): a fault-injecting
//! proxy to put in front of an emulator, and SDK helpers to set up streams and
//! read them back.
//!
//! Emulators never fail the way Kinesis does (kinesalite and moto never throttle,
//! never fail single records, never lose a connection after writing), so tests of
//! retry and duplicate handling put a [`FaultProxy`] between the SDK client and
//! the emulator. Besides random faults it can throttle as Kinesis does, by a
//! per-shard write allowance ([`ShardAllowance`]), for measuring how close an
//! adaptive client gets to what it is allowed. Dev-dependency only: it must not
//! depend on `flyhigh-producer`, whose tests use it.
//!
//! Layout:
//! - `fault`: [`FaultConfig`] (what to inject) and [`FaultStats`] (what was); the
//!   per-request decisions are pure functions of a seed and the request's number.
//! - `allowance`: [`ShardAllowance`] and the per-shard token buckets enforcing it,
//!   pure functions of the instants passed in; `md5` places records on shards.
//! - `wire`: the awsJson bits, pure: error bodies shaped as the request's service
//!   (Kinesis or DynamoDB) sends them, what each PutRecords record costs and where
//!   it goes, and the PutRecords surgery (drop the records chosen to fail, merge
//!   the injected failures back into the upstream's answer at their original
//!   positions).
//! - `proxy`: [`FaultProxy`], the hyper server that only moves bytes and counts.
//! - `kinesis`: [`kinesis_client`], [`create_stream`], [`read_all`].
//!
//! Emulator URLs come from the test environment: `scripts/test.sh` exports
//! `FLYHIGH_KINESALITE_URL` (and `FLYHIGH_MOTO_URL`); by hand,
//! `scripts/kinesalite.sh start && source target/kinesalite.env`.
//!
//! ```
//! use flyhigh_testkit::{FaultConfig, FaultProxy, ShardAllowance, kinesis_client};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let emulator = "http://127.0.0.1:4567"; // e.g. $FLYHIGH_KINESALITE_URL
//! let proxy = FaultProxy::start(
//!     emulator,
//!     FaultConfig {
//!         seed: 7,
//!         record_failure_rate: 0.1,
//!         drop_after_rate: 0.05,
//!         ..FaultConfig::default()
//!     },
//! )?;
//! let client = kinesis_client(&proxy.url());
//! // ... run the code under test with `client`, then check what was injected:
//! assert_eq!(proxy.stats().failed_records, 0);
//! proxy.set_faults(FaultConfig::throttle_all()).expect("valid rates");
//! // Kinesis's own throttling, on a 4-shard stream allowed 100 KiB/s per shard:
//! proxy
//!     .set_faults(FaultConfig {
//!         shard_allowance: Some(ShardAllowance {
//!             bytes_per_sec: 102_400.0,
//!             ..ShardAllowance::kinesis(4)
//!         }),
//!         ..FaultConfig::default()
//!     })
//!     .expect("valid allowance");
//! assert_eq!(proxy.stats().allowance_throttled_records, 0);
//! proxy.shutdown().await;
//! # drop(client);
//! # Ok(())
//! # }
//! ```

mod allowance;
mod fault;
mod kinesis;
mod md5;
mod proxy;
mod wire;

pub use allowance::ShardAllowance;
pub use fault::{FaultConfig, FaultStats, InvalidFaultConfig};
pub use kinesis::{
    KinesisTestError, create_stream, kinesalite_url, kinesis_client, list_shards, moto_url,
    read_all, unique_name, wait_until_active,
};
pub use proxy::FaultProxy;
