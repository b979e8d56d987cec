//! Load commands for the producer (measurements, not tests):
//!
//! ```text
//! cargo run --release -p flyhigh-benches --bin producer-load -- units [--events N] [--shards S]
//! cargo run --release -p flyhigh-benches --bin producer-load -- soak [--seconds S] [--budget-mib M] [--ttl-secs T]
//! cargo run --release -p flyhigh-benches --bin producer-load -- partial [--seconds S] [--rate R] \
//!     [--events-per-sec N] [--budget-mib M] [--baseline-seconds B] [--mode random|allowance] \
//!     [--allowed-share A]
//! ```
//!
//! - `units`: PUT payload units used for N simulated events (default 1,000,000)
//!   against the ideal (total bytes / 25 KiB), and single-core throughput of the
//!   aggregate-and-collect path against the unaggregated path, both timed in the same
//!   run (best of 5). Exits 1 when the units exceed 1.05 × ideal.
//! - `soak`: the real producer and AWS SDK writing through the project's
//!   fault-injecting proxy, which throttles every PutRecords, to kinesalite
//!   (`FLYHIGH_KINESALITE_URL`), for S seconds (default 60) from 4 unpaced sending
//!   tasks, with a record time-to-live of T seconds (default S + 60: nothing
//!   expires, so the buffer stays full and `send` waits). Reports the process's peak
//!   RSS (VmHWM) against the buffer budget, how long `send` was held, how often
//!   `try_send` found the buffer full, and what the dead-letter file holds (lines by
//!   reason). Every record is dead-lettered, by expiry during the run (T < S) or at
//!   the close 200 ms after it; each accepted record (a send that returned `Ok`) must
//!   be in the file, found by the booking id of the line's record (read back with
//!   `DeadLetter::from_json_line`). Exits 1 when the peak, during the run or after the close (which
//!   dead-letters a full budget at once), exceeds budget + 64 MiB, an accepted record
//!   is neither written nor in the file, `send` was never held back, or, with T < S,
//!   no record expired.
//! - `partial`: the real producer and SDK through the proxy, offered a fixed N
//!   events/s (default 4,000) for S seconds (default 30) per phase, after a
//!   B-second throttle-free baseline (default 10) at the same offered rate, then in
//!   two throttled phases (both by default, `--mode` runs one): `random`, the proxy
//!   answering each record of each PutRecords `ProvisionedThroughputExceededException`
//!   with probability R (default 0.3: partial throttling that does not depend on how
//!   fast the producer sends), and `allowance`, the proxy throttling each shard as
//!   Kinesis does, by a per-shard allowance of A (default 0.7) times the baseline's
//!   bytes/s per shard (what an adaptive producer can get close to). Reads every
//!   stream back and checks that every accepted event was written or dead-lettered.
//!   Exits 1 when an event is lost, the requests/s exceed the retry-storm bound, or
//!   the bytes written under the allowance fall below half of it (see `partial`).
//!
//! Each prints one JSON object on stdout.

mod common;
mod partial;
mod soak;

use std::time::{Duration, Instant};

use flyhigh_benches::aggregation::{aggregated_path, even_map, plain_path, sample_records};
use flyhigh_benches::arg;
use flyhigh_producer::ProducerConfig;

use common::*;
use partial::{Partial, partial};
use soak::soak;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ok = match args.first().map(String::as_str) {
        Some("units") => units(arg(&args, "--events", 1_000_000), arg(&args, "--shards", 4)),
        Some("soak") => {
            let seconds = arg(&args, "--seconds", 60);
            runtime().block_on(soak(
                seconds,
                arg(&args, "--budget-mib", 32),
                arg(&args, "--ttl-secs", seconds + 60),
            ))
        }
        Some("partial") => match partial_modes(&args) {
            Ok((random, allowance)) => runtime().block_on(partial(Partial {
                seconds: arg(&args, "--seconds", 30),
                rate: arg(&args, "--rate", 0.3),
                events_per_sec: arg(&args, "--events-per-sec", 4_000),
                budget_mib: arg(&args, "--budget-mib", 32),
                baseline_seconds: arg(&args, "--baseline-seconds", 10),
                random,
                allowance,
                allowed_share: arg(&args, "--allowed-share", 0.7),
                drain: Duration::from_secs(arg(&args, "--drain-seconds", 60)),
            })),
            Err(error) => {
                eprintln!("partial: {error}\n{USAGE}");
                false
            }
        },
        _ => {
            eprintln!("{USAGE}");
            false
        }
    };
    std::process::exit(if ok { 0 } else { 1 });
}

/// `partial --mode`: whether to run the `random` phase and the `allowance` phase
/// (both without the flag).
fn partial_modes(args: &[String]) -> Result<(bool, bool), String> {
    let Some(i) = args.iter().position(|a| a == "--mode") else {
        return Ok((true, true));
    };
    match args.get(i + 1).map(String::as_str) {
        Some("random") => Ok((true, false)),
        Some("allowance") => Ok((false, true)),
        other => Err(format!(
            "--mode takes random or allowance, got {}",
            other.unwrap_or("nothing")
        )),
    }
}

/// Two worker threads, as on the 2-core machine the numbers are measured on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn units(events: usize, shards: usize) -> bool {
    eprintln!("generating {events} simulated events...");
    let records = sample_records(events, 42);
    let map = even_map(shards);
    let config = ProducerConfig::default();
    let best = |f: &dyn Fn() -> Duration| (0..5).map(|_| f()).min().unwrap_or_default();
    let plain_time = best(&|| {
        let input = records.clone();
        let t = Instant::now();
        std::hint::black_box(plain_path(input));
        t.elapsed()
    });
    let aggregated_time = best(&|| {
        let input = records.clone();
        let t = Instant::now();
        std::hint::black_box(aggregated_path(input, &map, &config));
        t.elapsed()
    });
    let aggregated = aggregated_path(records.clone(), &map, &config);
    let plain = plain_path(records);
    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    let ratio = aggregated.unit_ratio();
    println!(
        "{}",
        serde_json::json!({
            "events": events,
            "shards": shards,
            "mean_event_bytes": aggregated.user_bytes as f64 / events as f64,
            "aggregate_max_bytes": config.aggregate_max_bytes,
            "payload_units": aggregated.payload_units,
            "ideal_payload_units": aggregated.ideal_units(),
            "payload_unit_ratio": ratio,
            "unaggregated_payload_units": plain.payload_units,
            "kinesis_records": aggregated.kinesis_records,
            "user_records_per_kinesis_record": events as f64 / aggregated.kinesis_records as f64,
            "requests": aggregated.requests,
            "unaggregated_requests": plain.requests,
            "aggregate_and_collect_events_per_sec": rate(aggregated_time),
            "unaggregated_collect_events_per_sec": rate(plain_time),
            "throughput_ratio_to_unaggregated": plain_time.as_secs_f64() / aggregated_time.as_secs_f64(),
        })
    );
    ratio <= 1.05
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn partial_runs_both_modes_unless_one_is_named() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(partial_modes(&args(&["partial"])), Ok((true, true)));
        assert_eq!(
            partial_modes(&args(&["partial", "--mode", "random"])),
            Ok((true, false))
        );
        assert_eq!(
            partial_modes(&args(&["partial", "--seconds", "5", "--mode", "allowance"])),
            Ok((false, true))
        );
        assert!(partial_modes(&args(&["partial", "--mode", "both"])).is_err());
        assert!(partial_modes(&args(&["partial", "--mode"])).is_err());
    }
}
