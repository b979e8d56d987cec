//! Benchmarks of the FlyHigh pipeline (`cargo bench -p flyhigh-benches`).
//!
//! Each group measures a stage against a baseline in the same run, so results are
//! read as ratios rather than absolute numbers that depend on the machine:
//!
//! - `decode`: `flyhigh_schemas::decode` (typed parse and validation) against a plain
//!   `serde_json::Value` parse of the same bytes;
//! - `aggregation`: the producer's synchronous hot path for ~330-byte events (shard
//!   lookup, KPL aggregation per shard, collection into PutRecords requests; see
//!   [`aggregation`]) against collecting the same records unaggregated;
//! - `producer`: events through the producer into the in-process stream against
//!   putting the same pre-serialized records straight into the stream;
//! - `inventory_handler`: a batch through the inventory handler (decode, plan, pack,
//!   commit to the in-memory store) against decoding the batch alone, and the same
//!   events packed in KPL aggregates as the producer writes them (deaggregation and
//!   its MD5 check on top);
//! - `sqlite_store`: the handler over the SQLite file store (the embedded default)
//!   against the same handler over the in-memory store.
//!
//! End-to-end throughput is measured by the main job itself: `flyhigh demo` reports
//! `events_per_second` in its summary.

pub mod aggregation;
pub mod records;

/// The value after `name` in a load command's arguments, or `default`.
///
/// # Panics
///
/// When the value does not parse: the command was started with a wrong argument.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, got {v}"))
        })
        .unwrap_or(default)
}
