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
//!   be in the file, found by the booking id in the line's `data_utf8` (or
//!   `data_base64`). Exits 1 when the peak, during the run or after the close (which
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

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flyhigh_benches::aggregation::{aggregated_path, even_map, plain_path, sample_records};
use flyhigh_benches::arg;
use flyhigh_producer::{
    FileDeadLetters, FlushReport, KinesisTransport, Producer, ProducerConfig, ProducerMetrics,
    SendError, ShardLimits,
};
use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};
use flyhigh_schemas::{Booking, Cabin, Envelope, Money, Payload};
use flyhigh_testkit::{
    FaultConfig, FaultProxy, FaultStats, ShardAllowance, create_stream, kinesalite_url,
    kinesis_client, read_all, unique_name,
};
use serde_json::{Value, json};

const USAGE: &str = "usage: producer-load units [--events N] [--shards S] \
    | soak [--seconds S] [--budget-mib M] [--ttl-secs T] \
    | partial [--seconds S] [--rate R] [--events-per-sec N] [--budget-mib M] [--baseline-seconds B] \
      [--mode random|allowance] [--allowed-share A] [--drain-seconds D]";

/// Shards of the `soak` and `partial` streams.
const SHARDS: i32 = 4;
/// Sending tasks of `soak` and `partial`, as a web backend's request handlers.
const SENDERS: u64 = 4;
/// A `send` that took longer than this was held by the spent budget: an unheld send
/// of a ~330-byte event costs tens of microseconds, even in a debug build.
const HELD_AFTER: Duration = Duration::from_millis(1);
/// Issue 10's retry-storm floor: requests/s within 3× those of a throttle-free run
/// at the same offered rate.
const STORM_FLOOR: f64 = 3.0;
/// `partial --mode allowance` fails when the bytes written in the sending window
/// fall below this share of the allowance. Loose on purpose: on the 2-core CI
/// machine the debug-built producer, the proxy and kinesalite share the cores with
/// the rest of the test run, and where one short window lands moves with that
/// load; a floor near what a quiet machine reaches would fail CI on scheduling
/// noise. Half still catches what it is for: a producer that backs off to far below
/// its allowance (stuck at its floor share, or stalled after throttling) instead of
/// settling near it. (A producer that never backs off still writes the whole
/// allowance, the proxy sees to that; the retry-storm bound is what catches it.)
const ALLOWANCE_FLOOR: f64 = 0.5;
/// The windows at the start and at the end of `partial --mode allowance` over which
/// the throttled share is compared: it should fall as the producer adapts.
const ADAPTATION_WINDOW_SECS: u64 = 5;
const MIB: usize = 1024 * 1024;

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

/// Peak and current resident set size of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn booking(n: u64) -> Envelope {
    Envelope::new(
        "soak-app",
        "2026-11-22T10:15:00.250Z".parse().expect("timestamp"),
        Payload::Booking(Booking {
            booking_id: format!("BK{n:09}"),
            customer_id: format!("c-{:06x}", n % 100_000),
            flight_id: format!("FH{:04}-20261201", n % 500),
            origin: "LHR".into(),
            destination: "JFK".into(),
            cabin: Cabin::Economy,
            seats: 1,
            fare: Money::new("412.80".parse().expect("decimal"), "GBP"),
        }),
    )
}

/// The booking number `n` of [`booking`]`(n)` carried in a record's data, if the data
/// is such a booking.
fn booking_number(data: &[u8]) -> Option<u64> {
    match flyhigh_schemas::decode(data).ok()?.payload {
        Payload::Booking(b) => b.booking_id.strip_prefix("BK")?.parse().ok(),
        _ => None,
    }
}

/// A temporary directory of its own for one run's dead-letter file.
fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_name(prefix));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `a / b`, or `None` (JSON `null`) when there is nothing to divide by.
fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Sends that waited for the budget ([`HELD_AFTER`]), and how long they waited.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    sends: u64,
    seconds: f64,
}

impl Held {
    fn record(&mut self, took: Duration) {
        if took > HELD_AFTER {
            self.sends += 1;
            self.seconds += took.as_secs_f64();
        }
    }

    fn merge(&mut self, other: Held) {
        self.sends += other.sends;
        self.seconds += other.seconds;
    }
}

/// A set of small numbers, one bit each: the soak tracks every accepted record
/// without adding to the RSS it measures.
#[derive(Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn insert(&mut self, i: u64) {
        let word = (i / 64) as usize;
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (i % 64);
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w as u64 * 64 + b)
        })
    }
}

/// What the dead-letter file holds.
#[derive(Debug, Default)]
struct DeadLetterFile {
    lines: u64,
    by_reason: BTreeMap<String, u64>,
    /// Booking numbers, one per line that carried a booking.
    bookings: Vec<u64>,
    /// Lines that are not JSON or whose data is not one of our bookings.
    unreadable: u64,
}

/// Reads a [`FileDeadLetters`] file (absent: nothing was dead-lettered). Each line's
/// record is taken from `data_utf8`, or from `data_base64` when the bytes were not
/// UTF-8.
fn read_dead_letters(path: &Path) -> DeadLetterFile {
    let mut out = DeadLetterFile::default();
    let Ok(file) = std::fs::File::open(path) else {
        return out;
    };
    for line in std::io::BufReader::new(file).lines() {
        let line = line.expect("read the dead-letter file");
        out.lines += 1;
        let Ok(letter) = serde_json::from_str::<Value>(&line) else {
            out.unreadable += 1;
            continue;
        };
        let reason = letter["reason"].as_str().unwrap_or("(none)").to_owned();
        *out.by_reason.entry(reason).or_default() += 1;
        let data = match letter["data_utf8"].as_str() {
            Some(text) => Some(text.as_bytes().to_vec()),
            None => letter["data_base64"].as_str().and_then(base64_decode),
        };
        match data.as_deref().and_then(booking_number) {
            Some(n) => out.bookings.push(n),
            None => out.unreadable += 1,
        }
    }
    out
}

/// Standard base64 (padding optional) to bytes; `None` on any other character.
/// (The benches take no base64 dependency for the one field that needs it.)
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text.trim_end_matches('=').as_bytes() {
        acc = (acc << 6) | u32::from(sextet(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Where the accepted records ended up.
#[derive(Debug, Default, PartialEq)]
struct Accounting {
    /// Accepted, and neither read from the stream nor in the dead-letter file.
    lost: u64,
    /// Reads of a booking beyond its first (a retry of a request that was written).
    duplicates_read: u64,
    /// Dead letters of a booking beyond its first.
    duplicates_dead_lettered: u64,
    /// Read from the stream and in the dead-letter file too.
    written_and_dead_lettered: u64,
    /// Read or dead-lettered, but never accepted.
    foreign: u64,
}

/// Matches the accepted booking numbers against those read from the stream and
/// those in the dead-letter file.
fn account(accepted: &[u64], read: &[u64], dead: &[u64]) -> Accounting {
    let accepted: HashSet<u64> = accepted.iter().copied().collect();
    let read_set: HashSet<u64> = read.iter().copied().collect();
    let dead_set: HashSet<u64> = dead.iter().copied().collect();
    let lost = accepted
        .iter()
        .filter(|n| !read_set.contains(n) && !dead_set.contains(n))
        .count();
    let both = read_set.intersection(&dead_set).count();
    let foreign = read_set
        .union(&dead_set)
        .filter(|n| !accepted.contains(n))
        .count();
    Accounting {
        lost: lost as u64,
        duplicates_read: (read.len() - read_set.len()) as u64,
        duplicates_dead_lettered: (dead.len() - dead_set.len()) as u64,
        written_and_dead_lettered: both as u64,
        foreign: foreign as u64,
    }
}

/// The soak: memory under 100% throttling, with or without records expiring (see
/// the module docs).
async fn soak(seconds: u64, budget_mib: usize, ttl_secs: u64) -> bool {
    if seconds == 0 || ttl_secs == 0 {
        eprintln!("soak: --seconds and --ttl-secs must be above 0\n{USAGE}");
        return false;
    }
    let url = kinesalite_url();
    let direct = kinesis_client(&url);
    let stream = unique_name("soak");
    create_stream(&direct, &stream, SHARDS)
        .await
        .expect("stream");
    let proxy = FaultProxy::start(&url, FaultConfig::throttle_all()).expect("proxy");
    let dir = scratch_dir("flyhigh-soak");
    let dead_path = dir.join("dead.jsonl");
    let budget = budget_mib * MIB;
    let expiry_expected = ttl_secs < seconds;
    let (baseline_peak, baseline_rss) = rss();
    let producer = Producer::new(
        // kinesis_client has the SDK's retries off: only the producer retries.
        KinesisTransport::new(kinesis_client(&proxy.url()), &stream),
        ProducerConfig {
            buffer_budget_bytes: budget,
            dead_letters: Arc::new(FileDeadLetters::new(&dead_path)),
            shard_limits: Some(ShardLimits::KINESIS),
            // By default longer than the soak: nothing may leave the buffer by
            // expiring, so the budget alone must hold memory down.
            record_ttl: Duration::from_secs(ttl_secs),
            metrics_interval: None,
            ..ProducerConfig::default()
        },
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let last_accept_ms = Arc::new(AtomicU64::new(0));
    let full = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for task in 0..SENDERS {
        let (producer, last, full) = (producer.clone(), last_accept_ms.clone(), full.clone());
        senders.push(tokio::spawn(async move {
            // Event k of this task is booking(task + SENDERS·k); `accepted` holds k.
            let (mut accepted, mut held) = (Bits::default(), Held::default());
            let mut k = 0;
            while Instant::now() < deadline {
                let event = booking(task + SENDERS * k);
                k += 1;
                // One event in 8 tries without waiting, to count refusals.
                if k % 8 == 0 {
                    match producer.try_send(&event) {
                        Ok(_) => {}
                        Err(SendError::BufferFull { .. }) => {
                            full.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        Err(e) => panic!("{e}"),
                    }
                } else {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let t = Instant::now();
                    let sent = tokio::time::timeout(remaining, producer.send(&event)).await;
                    held.record(t.elapsed());
                    match sent {
                        Ok(r) => {
                            r.expect("valid event");
                        }
                        Err(_) => break,
                    }
                }
                accepted.insert(k - 1);
                last.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            (task, accepted, held)
        }));
    }
    let mut max_rss = 0;
    let mut max_buffered = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        max_rss = max_rss.max(rss().1);
        max_buffered = max_buffered.max(producer.buffered_bytes());
    }
    let mut sent = Vec::new();
    for s in senders {
        sent.push(s.await.expect("sender"));
    }
    let metrics = producer.metrics();
    let (peak, _) = rss();
    let blocked_for =
        started.elapsed().as_secs_f64() - last_accept_ms.load(Ordering::Relaxed) as f64 / 1e3;
    let report = producer.close_within(Duration::from_millis(200)).await;
    let closed = producer.metrics();
    let (peak_after_close, _) = rss();
    let faults = proxy.stats();
    proxy.shutdown().await;
    // Listed only now, so that the list is not in the peak measured above.
    let mut accepted = Vec::new();
    let mut held = Held::default();
    for (task, bits, task_held) in sent {
        accepted.extend(bits.iter().map(|k| task + SENDERS * k));
        held.merge(task_held);
    }
    // Nothing is written under 100% throttling (checked below), so every accepted
    // record must be in the file.
    let letters = read_dead_letters(&dead_path);
    let accounting = account(&accepted, &[], &letters.bookings);
    let expired = letters.by_reason.get("expired").copied().unwrap_or(0);
    let limit = budget as u64 + 64 * MIB as u64;
    // Without expiry the budget stays spent, so `send` is still blocked at the end;
    // with it, space comes back as records expire and `send` waits in between.
    let held_back = if expiry_expected {
        held.seconds > 1.0
    } else {
        blocked_for > 1.0
    };
    // Also after close: dead-lettering a full budget at once used to copy each
    // record two or three times and went past the limit.
    let ok = peak <= limit
        && peak_after_close <= limit
        && held_back
        && closed.user_records_written == 0
        && accounting.lost == 0
        && letters.unreadable == 0
        && (!expiry_expected || expired > 0);
    println!(
        "{}",
        json!({
            "seconds": seconds,
            "ttl_secs": ttl_secs,
            "budget_bytes": budget,
            "limit_bytes": limit,
            "peak_rss_bytes": peak,
            "peak_rss_over_budget_bytes": peak as i64 - budget as i64,
            "peak_rss_after_close_bytes": peak_after_close,
            "max_sampled_rss_bytes": max_rss,
            "rss_before_producer_bytes": baseline_rss,
            "peak_rss_before_producer_bytes": baseline_peak,
            "max_buffered_bytes": max_buffered,
            "events_accepted": accepted.len(),
            "try_send_buffer_full": full.load(Ordering::Relaxed),
            "send_blocked_at_end_seconds": blocked_for,
            "send_held_seconds": held.seconds,
            "sends_held": held.sends,
            "throttles": metrics.throttles,
            "requests": metrics.requests,
            "user_records_written": closed.user_records_written,
            "dead_lettered_during_run": metrics.user_records_dead_lettered,
            // The report counts from the start (there was no flush before).
            "dead_lettered_at_close": report.dead_lettered - metrics.user_records_dead_lettered,
            "dead_letter_lines": letters.lines,
            "dead_letter_lines_by_reason": letters.by_reason,
            "dead_letter_unreadable_lines": letters.unreadable,
            "dead_letter_sink_failures": closed.dead_letter_failures,
            "accepted_not_dead_lettered": accounting.lost,
            "dead_lettered_not_accepted": accounting.foreign,
            "dead_letter_duplicate_lines": accounting.duplicates_dead_lettered,
            "proxy_put_records_throttled": faults.throughput_exceeded,
            "ok": ok,
        })
    );
    let _ = std::fs::remove_dir_all(&dir);
    ok
}

/// The `partial` command's settings.
#[derive(Debug, Clone, Copy)]
struct Partial {
    seconds: u64,
    /// The proxy's `record_failure_rate`.
    rate: f64,
    events_per_sec: u64,
    budget_mib: usize,
    baseline_seconds: u64,
    /// Run the `random` phase (`record_failure_rate` R).
    random: bool,
    /// Run the `allowance` phase (`shard_allowance` at A of the baseline).
    allowance: bool,
    /// A: the per-shard allowance as a share of the baseline's bytes/s per shard.
    allowed_share: f64,
    /// How long `close` may drain each phase before the rest is dead-lettered
    /// (reason `closed`: in the file, not lost).
    drain: Duration,
}

/// Partial throttling: a throttle-free baseline, then the same offered load with a
/// share R of the records throttled at random (`random`), and again with each shard
/// allowed A of the bytes/s it took in the baseline (`allowance`), each phase on a
/// stream and a proxy of its own. The JSON has one key per phase (`baseline`,
/// `random`, `allowance`) and `ok`.
///
/// In each phase 4 tasks send a fixed total of N events/s with `send` (open loop:
/// event k of a task is due at k / (N/4) s; a task held by the budget falls behind
/// and catches up when released; events not sent by the deadline are not offered
/// again). After S seconds the producer is closed with D seconds to drain (`--drain-seconds`, default 60), the stream is
/// read back and deaggregated, and the dead-letter file is read; every accepted
/// event (a `send` that returned `Ok`) must be in one of them, by booking id.
///
/// Reported for the baseline and `random` phases:
/// - rates per second of the S-second sending window: `accepted_events_per_sec`,
///   `written_events_per_sec` (user records written by the deadline),
///   `requests_per_sec` (the producer's `requests`), `proxy_put_records_per_sec`
///   (PutRecords the proxy received);
/// - `kinesis_record_success_ratio` = written / attempted Kinesis records over the
///   whole run (drain included), counted by the proxy: attempted = every Kinesis
///   record in a PutRecords body it received (`forwarded_records +
///   failed_records`, each attempt of a retried record counted again), written =
///   those kinesalite stored (`written_records`). About 1 − R when the retries are
///   independent draws. `producer_success_ratio` is the producer's view,
///   `kinesis_records_written / (kinesis_records_written + retries)`, equal to it
///   when no Kinesis record was dead-lettered after a failed attempt;
/// - `retries_per_written_kinesis_record` (R / (1 − R) expected), `throttles`;
/// - the allowed rate, 4 shards × 1,000 records/s and 1 MiB/s, and the achieved
///   Kinesis records/s and bytes/s (data plus partition key, read back) over the
///   writing period (window plus drain) as ratios of it;
/// - `rate_share_at_deadline` per shard and `allowed_bytes_per_sec_at_deadline`
///   (their sum): where the adaptation stood when sending stopped;
/// - dead letters by reason, `lost`, `send_held_seconds` (sum of the sends that
///   took over [`HELD_AFTER`]), Kinesis records read per shard, and a per-second
///   `timeline` of requests, Kinesis records written, throttles and buffered bytes.
///
/// Retry-storm bound: with records failing independently with probability R, a
/// Kinesis record needs 1 / (1 − R) attempts on average, R / (1 − R) of them
/// retries. Even if every retry travelled in a request of its own, the requests
/// would be the baseline's plus one per retry: a ratio to the baseline of at most
/// 1 + k·R / (1 − R), where k is the baseline's Kinesis records per request (about
/// 2.7 for k = 4 and R = 0.3). The bound is that, and never below issue 10's 3×.
/// More requests than that are retries without backoff: a storm. Each throttled
/// phase has its own `ok`: nothing lost, nothing unreadable, no storm (and, for
/// `allowance`, the floor below).
///
/// The `allowance` phase: the proxy gets `shard_allowance` with the stream's 4
/// shards, Kinesis's 1,000 records/s (not binding: aggregation keeps the producer
/// far below it) and A × the baseline's bytes/s per shard (its bytes read back, data
/// plus partition key, over its window, divided by the shards). The offered load is
/// then 1/A of what the shards allow (1.43× for A = 0.7): a producer that did not
/// slow down would see 1 − A of its records throttled. Reported under `allowance`:
/// - `offered_bytes_per_sec` (the baseline's), `allowed_bytes_per_sec` (the sum over
///   the shards), and, over the S-second window by the records' arrival times in
///   the stream, `written_bytes_per_sec` and `written_events_per_sec`;
/// - `written_to_allowed_ratio`, the number that matters: bytes written in the
///   window / `allowed_bytes_in_window`, the allowance over S seconds plus the full
///   buckets (one second's worth) the phase starts with. That is the most the proxy
///   lets through, so the ratio never exceeds 1 (the plain ratio of the rates would
///   reach 1 + 1/S). An adaptive producer gets close to 1, one that backs off too
///   far falls short. Below [`ALLOWANCE_FLOOR`] the phase fails;
/// - `throttled_share_first_5s` and `throttled_share_last_5s`: Kinesis records
///   throttled / attempted at the proxy over the first and the last
///   [`ADAPTATION_WINDOW_SECS`] (overlapping when S < 10): adaptation makes it fall;
/// - `requests_per_sec`, `requests_ratio_to_baseline` and the retry-storm bound
///   above with R = 1 − A (the share throttled if the producer did not adapt);
///   `kinesis_record_success_ratio` (written / attempted at the proxy), `retries`
///   and `retries_per_written_kinesis_record`, dead letters, `lost`, `drain_seconds`
///   (the backlog of the window drains at the allowance too);
/// - per shard, the baseline's bytes/s, the allowance and what was written, with
///   the producer's own allowed bytes/s at the deadline; and a per-second
///   `timeline` of bytes written, attempts, the throttled share, requests and the
///   producer's allowed bytes/s (its shards summed).
async fn partial(p: Partial) -> bool {
    if !(0.0..1.0).contains(&p.rate)
        || p.allowed_share.is_nan()
        || p.allowed_share <= 0.0
        || p.allowed_share > 1.0
        || p.seconds == 0
        || p.baseline_seconds == 0
        || p.events_per_sec == 0
    {
        eprintln!(
            "partial: --rate must be in [0, 1), --allowed-share in (0, 1], --seconds, \
             --baseline-seconds and --events-per-sec above 0\n{USAGE}"
        );
        return false;
    }
    let url = kinesalite_url();
    let budget = p.budget_mib * MIB;
    let eps = p.events_per_sec as f64;
    let faults = |record_failure_rate, shard_allowance| FaultConfig {
        seed: 10,
        record_failure_rate,
        shard_allowance,
        ..FaultConfig::default()
    };
    eprintln!("baseline: {} s, no faults", p.baseline_seconds);
    let baseline = partial_phase(
        &url,
        faults(0.0, None),
        p.baseline_seconds,
        eps,
        budget,
        p.drain,
    )
    .await;
    let mut out = json!({ "baseline": baseline.json() });
    let mut ok = baseline.accounting.lost == 0 && baseline.unreadable() == 0;
    if p.random {
        eprintln!(
            "partial throttling: {} s, record_failure_rate {}",
            p.seconds, p.rate
        );
        let run = partial_phase(&url, faults(p.rate, None), p.seconds, eps, budget, p.drain).await;
        let storm = RetryStorm::check(&run, &baseline, p.rate);
        let random_ok = run.accounting.lost == 0 && run.unreadable() == 0 && !storm.storm;
        let mut report = run.json();
        storm.report(&mut report);
        report["ok"] = json!(random_ok);
        out["random"] = report;
        ok &= random_ok;
    }
    if p.allowance {
        let allowance = ShardAllowance {
            bytes_per_sec: p.allowed_share * baseline.offered_bytes_per_sec() / SHARDS as f64,
            ..ShardAllowance::kinesis(SHARDS as u32)
        };
        eprintln!(
            "shard allowance: {} s, {:.0} bytes/s per shard ({} of the baseline's)",
            p.seconds, allowance.bytes_per_sec, p.allowed_share
        );
        let run = partial_phase(
            &url,
            faults(0.0, Some(allowance)),
            p.seconds,
            eps,
            budget,
            p.drain,
        )
        .await;
        let (report, allowance_ok) = allowance_report(&run, &baseline, allowance, p.allowed_share);
        out["allowance"] = report;
        ok &= allowance_ok;
    }
    out["ok"] = json!(ok);
    println!("{out}");
    ok
}

/// The retry-storm check of a throttled phase against the baseline (see [`partial`]).
struct RetryStorm {
    requests_ratio: f64,
    bound: f64,
    storm: bool,
}

impl RetryStorm {
    /// `rate`: the share of records throttled had the producer not adapted.
    fn check(run: &Phase, baseline: &Phase, rate: f64) -> RetryStorm {
        let requests_ratio = run.requests_per_sec() / baseline.requests_per_sec();
        let per_request = baseline.last.kinesis_records_per_request();
        let bound = STORM_FLOOR.max(1.0 + per_request * rate / (1.0 - rate));
        RetryStorm {
            requests_ratio,
            bound,
            // NaN (a baseline without requests) counts as a storm: nothing to
            // compare with.
            storm: requests_ratio.is_nan() || requests_ratio > bound,
        }
    }

    fn report(&self, out: &mut Value) {
        out["requests_ratio_to_baseline"] = json!(self.requests_ratio);
        out["retry_storm_bound_ratio"] = json!(self.bound);
        out["retry_storm"] = json!(self.storm);
    }
}

/// One `partial` phase's measurements.
struct Phase {
    seconds: u64,
    record_failure_rate: f64,
    events_per_sec: f64,
    accepted: u64,
    held: Held,
    /// At the end of the sending window.
    at_deadline: ProducerMetrics,
    proxy_at_deadline: FaultStats,
    /// After close.
    last: ProducerMetrics,
    proxy: FaultStats,
    close: FlushReport,
    drain: Duration,
    read: ReadBack,
    dead: DeadLetterFile,
    accounting: Accounting,
    timeline: Vec<Value>,
    /// The window's start, in seconds since the Unix epoch (the clock of the
    /// records' arrival times).
    started_epoch_secs: f64,
    /// The producer's and the proxy's counters at the start and after each second
    /// of the window (`seconds + 1` samples).
    samples: Vec<(ProducerMetrics, FaultStats)>,
}

async fn partial_phase(
    url: &str,
    faults: FaultConfig,
    seconds: u64,
    events_per_sec: f64,
    budget: usize,
    drain_within: Duration,
) -> Phase {
    let direct = kinesis_client(url);
    let stream = unique_name("partial");
    create_stream(&direct, &stream, SHARDS)
        .await
        .expect("stream");
    let record_failure_rate = faults.record_failure_rate;
    let proxy = FaultProxy::start(url, faults).expect("proxy");
    let dir = scratch_dir("flyhigh-partial");
    let dead_path = dir.join("dead.jsonl");
    let producer = Producer::new(
        // kinesis_client has the SDK's retries off: only the producer retries.
        KinesisTransport::new(kinesis_client(&proxy.url()), &stream),
        ProducerConfig {
            buffer_budget_bytes: budget,
            dead_letters: Arc::new(FileDeadLetters::new(&dead_path)),
            shard_limits: Some(ShardLimits::KINESIS),
            metrics_interval: None,
            ..ProducerConfig::default()
        },
    );
    let start = tokio::time::Instant::now();
    let started_epoch_secs = epoch_secs(SystemTime::now());
    let deadline = start + Duration::from_secs(seconds);
    let per_task = events_per_sec / SENDERS as f64;
    let senders: Vec<_> = (0..SENDERS)
        .map(|task| {
            tokio::spawn(paced_sender(
                producer.clone(),
                task,
                per_task,
                start,
                deadline,
            ))
        })
        .collect();
    let mut timeline = Vec::new();
    let mut previous = producer.metrics();
    let mut samples = vec![(previous.clone(), proxy.stats())];
    for second in 1..=seconds {
        tokio::time::sleep_until(start + Duration::from_secs(second)).await;
        let now = producer.metrics();
        timeline.push(json!({
            "t": second,
            "requests": now.requests - previous.requests,
            "kinesis_records_written": now.kinesis_records_written - previous.kinesis_records_written,
            "throttles": now.throttles - previous.throttles,
            "buffered_bytes": now.buffered_bytes,
        }));
        samples.push((now.clone(), proxy.stats()));
        previous = now;
    }
    let at_deadline = producer.metrics();
    let proxy_at_deadline = proxy.stats();
    let mut accepted = Vec::new();
    let mut held = Held::default();
    for s in senders {
        let (numbers, task_held) = s.await.expect("sender");
        accepted.extend(numbers);
        held.merge(task_held);
    }
    let closing = Instant::now();
    let close = producer.close_within(drain_within).await;
    let drain = closing.elapsed();
    let last = producer.metrics();
    let proxy_stats = proxy.stats();
    proxy.shutdown().await;
    let mut read = ReadBack::default();
    for (shard_id, record) in &read_all(&direct, &stream)
        .await
        .expect("read the stream back")
    {
        read.add(
            shard_id,
            record.partition_key().unwrap_or_default(),
            record.data().as_ref(),
            record
                .approximate_arrival_timestamp()
                .map(|t| t.as_secs_f64()),
        );
    }
    let dead = read_dead_letters(&dead_path);
    let _ = std::fs::remove_dir_all(&dir);
    let accounting = account(&accepted, &read.bookings, &dead.bookings);
    Phase {
        seconds,
        record_failure_rate,
        events_per_sec,
        accepted: accepted.len() as u64,
        held,
        at_deadline,
        proxy_at_deadline,
        last,
        proxy: proxy_stats,
        close,
        drain,
        read,
        dead,
        accounting,
        timeline,
        started_epoch_secs,
        samples,
    }
}

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// One of `partial`'s sending tasks: event k (booking `task + SENDERS·k`) is due at
/// `start + k / per_sec`; returns the booking numbers accepted and the time held.
async fn paced_sender(
    producer: Producer,
    task: u64,
    per_sec: f64,
    start: tokio::time::Instant,
    deadline: tokio::time::Instant,
) -> (Vec<u64>, Held) {
    let (mut accepted, mut held) = (Vec::new(), Held::default());
    for k in 0u64.. {
        let due = start + Duration::from_secs_f64(k as f64 / per_sec);
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due).await;
        let n = task + SENDERS * k;
        let event = booking(n);
        let t = Instant::now();
        let sent = tokio::time::timeout_at(deadline, producer.send(&event)).await;
        held.record(t.elapsed());
        match sent {
            Ok(r) => {
                r.expect("valid event");
                accepted.push(n);
            }
            // Held past the deadline: never accepted.
            Err(_) => break,
        }
    }
    (accepted, held)
}

/// A stream read back.
#[derive(Debug, Default)]
struct ReadBack {
    kinesis_records: u64,
    /// Data plus partition key, as Kinesis counts them against 1 MiB/s.
    bytes: u64,
    per_shard: BTreeMap<String, u64>,
    /// `bytes` per shard.
    bytes_per_shard: BTreeMap<String, u64>,
    /// Booking numbers of the user records, in read order (duplicates kept).
    bookings: Vec<u64>,
    /// Kinesis or user records that are not our bookings.
    unreadable: u64,
    /// Every Kinesis record with its arrival time in the stream.
    arrivals: Vec<Arrival>,
}

/// A Kinesis record as the stream stored it.
#[derive(Debug)]
struct Arrival {
    /// `ApproximateArrivalTimestamp` in seconds since the Unix epoch (kinesalite
    /// stamps milliseconds).
    epoch_secs: f64,
    shard_id: String,
    /// Data plus partition key.
    bytes: u64,
    /// User records in it (1 unless aggregated).
    user_records: u64,
}

impl ReadBack {
    fn add(&mut self, shard_id: &str, partition_key: &str, data: &[u8], arrival: Option<f64>) {
        let bytes = (partition_key.len() + data.len()) as u64;
        self.kinesis_records += 1;
        self.bytes += bytes;
        *self.per_shard.entry(shard_id.to_owned()).or_default() += 1;
        *self.bytes_per_shard.entry(shard_id.to_owned()).or_default() += bytes;
        let user_records = match deaggregate(data) {
            Ok(Deaggregated::Single(user)) => {
                self.user(user);
                1
            }
            Ok(Deaggregated::Aggregated(users)) => {
                let count = users.len() as u64;
                for u in users {
                    self.user(u.data);
                }
                count
            }
            Err(_) => {
                self.unreadable += 1;
                0
            }
        };
        if let Some(epoch_secs) = arrival {
            self.arrivals.push(Arrival {
                epoch_secs,
                shard_id: shard_id.to_owned(),
                bytes,
                user_records,
            });
        }
    }

    fn user(&mut self, data: &[u8]) {
        match booking_number(data) {
            Some(n) => self.bookings.push(n),
            None => self.unreadable += 1,
        }
    }
}

impl Phase {
    fn requests_per_sec(&self) -> f64 {
        self.at_deadline.requests as f64 / self.seconds as f64
    }

    fn unreadable(&self) -> u64 {
        self.read.unreadable + self.dead.unreadable
    }

    /// What the phase was offered in bytes/s as the stream counts them: everything
    /// read back over the window. Meant for the baseline, which writes all it is
    /// offered (its drain is the last linger).
    fn offered_bytes_per_sec(&self) -> f64 {
        self.read.bytes as f64 / self.seconds as f64
    }

    /// The records that arrived in the stream in `[from, to)` seconds of the
    /// window.
    fn arrived(&self, from: f64, to: f64) -> impl Iterator<Item = &Arrival> {
        self.read.arrivals.iter().filter(move |a| {
            let t = a.epoch_secs - self.started_epoch_secs;
            (from..to).contains(&t)
        })
    }

    /// Kinesis records throttled / attempted at the proxy from second `from` to
    /// second `to` of the window (`None` without attempts).
    fn throttled_share(&self, from: u64, to: u64) -> Option<f64> {
        let (a, b) = (&self.samples[from as usize].1, &self.samples[to as usize].1);
        let throttled = |s: &FaultStats| s.failed_records + s.allowance_throttled_records;
        let attempted = |s: &FaultStats| s.forwarded_records + throttled(s);
        ratio(throttled(b) - throttled(a), attempted(b) - attempted(a))
    }

    fn json(&self) -> Value {
        let s = self.seconds as f64;
        let (m, last, proxy) = (&self.at_deadline, &self.last, &self.proxy);
        let allowed_records = SHARDS as f64 * ShardLimits::KINESIS.records_per_sec;
        let allowed_bytes = SHARDS as f64 * ShardLimits::KINESIS.bytes_per_sec;
        let writing = s + self.drain.as_secs_f64();
        let records_per_sec = self.read.kinesis_records as f64 / writing;
        let bytes_per_sec = self.read.bytes as f64 / writing;
        let attempted = proxy.forwarded_records + proxy.failed_records;
        // In three parts: one json! of them all is past the macro's recursion limit.
        let mut out = json!({
            "seconds": self.seconds,
            "record_failure_rate": self.record_failure_rate,
            "offered_events_per_sec": self.events_per_sec,
            "accepted_events_per_sec": self.accepted as f64 / s,
            "written_events_per_sec": m.user_records_written as f64 / s,
            "requests_per_sec": self.requests_per_sec(),
            "proxy_put_records_per_sec": self.proxy_at_deadline.put_records_requests as f64 / s,
            "kinesis_records_per_request": last.kinesis_records_per_request(),
            "user_records_per_kinesis_record": last.user_records_per_kinesis_record(),
            "kinesis_record_attempts": attempted,
            "kinesis_records_written": proxy.written_records,
            "kinesis_record_success_ratio": ratio(proxy.written_records, attempted),
            "producer_success_ratio": ratio(
                last.kinesis_records_written,
                last.kinesis_records_written + last.retries,
            ),
            "retries": last.retries,
            "retries_per_written_kinesis_record": ratio(last.retries, last.kinesis_records_written),
            "throttles": last.throttles,
            "proxy_failed_records": proxy.failed_records,
        });
        let limits = json!({
            "allowed_kinesis_records_per_sec": allowed_records,
            "allowed_bytes_per_sec": allowed_bytes,
            "achieved_kinesis_records_per_sec": records_per_sec,
            "achieved_bytes_per_sec": bytes_per_sec,
            "achieved_records_ratio": records_per_sec / allowed_records,
            "achieved_bytes_ratio": bytes_per_sec / allowed_bytes,
            // Per shard, at the sending deadline (before the drain).
            "rate_share_at_deadline": m.shards.iter().map(|s| (s.shard_id.clone(), s.rate_share)).collect::<std::collections::BTreeMap<_, _>>(),
            "allowed_bytes_per_sec_at_deadline": m.shards.iter().map(|s| s.allowed_bytes_per_sec).sum::<f64>(),
        });
        let outcome = json!({
            "events_accepted": self.accepted,
            "events_written": last.user_records_written,
            "events_read": self.read.bookings.len(),
            "dead_lettered": self.dead.bookings.len(),
            "dead_lettered_by_reason": self.dead.by_reason,
            "dead_lettered_at_close": self.close.dead_lettered,
            "lost": self.accounting.lost,
            "duplicates_read": self.accounting.duplicates_read,
            "duplicates_dead_lettered": self.accounting.duplicates_dead_lettered,
            "written_and_dead_lettered": self.accounting.written_and_dead_lettered,
            "read_or_dead_lettered_not_accepted": self.accounting.foreign,
            "unreadable_records": self.read.unreadable + self.dead.unreadable,
            "send_held_seconds": self.held.seconds,
            "sends_held": self.held.sends,
            "drain_seconds": self.drain.as_secs_f64(),
            "put_latency_p50_ms": last.put_latency_p50.as_secs_f64() * 1e3,
            "put_latency_p99_ms": last.put_latency_p99.as_secs_f64() * 1e3,
            "kinesis_records_read_per_shard": self.read.per_shard,
            "timeline": self.timeline,
        });
        for part in [limits, outcome] {
            if let (Value::Object(out), Value::Object(part)) = (&mut out, part) {
                out.extend(part);
            }
        }
        out
    }
}

/// The `allowance` phase's report, and whether it passed (see [`partial`]).
fn allowance_report(
    run: &Phase,
    baseline: &Phase,
    allowance: ShardAllowance,
    allowed_share: f64,
) -> (Value, bool) {
    let s = run.seconds as f64;
    let allowed_bytes = f64::from(allowance.shards) * allowance.bytes_per_sec;
    let (written_bytes, written_events) = run
        .arrived(0.0, s)
        .fold((0, 0), |(b, e), a| (b + a.bytes, e + a.user_records));
    // The most the proxy lets through: the full buckets the phase starts with (one
    // second's worth) and the allowance over the window.
    let allowed_in_window = |per_sec: f64| per_sec * (s + 1.0);
    let written_to_allowed = written_bytes as f64 / allowed_in_window(allowed_bytes);
    // Had the producer not adapted, 1 − A of its records would be throttled.
    let storm = RetryStorm::check(run, baseline, 1.0 - allowed_share);
    let window = ADAPTATION_WINDOW_SECS.min(run.seconds);
    let (last, proxy) = (&run.last, &run.proxy);
    let attempted =
        |p: &FaultStats| p.forwarded_records + p.failed_records + p.allowance_throttled_records;
    // NaN (nothing written) fails the floor too.
    let ok = run.accounting.lost == 0
        && run.unreadable() == 0
        && !storm.storm
        && written_to_allowed >= ALLOWANCE_FLOOR;

    let mut written_per_shard: BTreeMap<&str, u64> = BTreeMap::new();
    for a in run.arrived(0.0, s) {
        *written_per_shard.entry(&a.shard_id).or_default() += a.bytes;
    }
    let producer_allowed: BTreeMap<&str, f64> = run
        .at_deadline
        .shards
        .iter()
        .map(|shard| (shard.shard_id.as_str(), shard.allowed_bytes_per_sec))
        .collect();
    let shard_ids: std::collections::BTreeSet<&str> = baseline
        .read
        .bytes_per_shard
        .keys()
        .map(String::as_str)
        .chain(written_per_shard.keys().copied())
        .collect();
    let per_shard: BTreeMap<&str, Value> = shard_ids
        .into_iter()
        .map(|id| {
            let base = baseline.read.bytes_per_shard.get(id).copied().unwrap_or(0);
            let written = written_per_shard.get(id).copied().unwrap_or(0) as f64;
            let shard = json!({
                "baseline_bytes_per_sec": base as f64 / baseline.seconds as f64,
                "allowed_bytes_per_sec": allowance.bytes_per_sec,
                "written_bytes_per_sec": written / s,
                "written_to_allowed_ratio": written / allowed_in_window(allowance.bytes_per_sec),
                "producer_allowed_bytes_per_sec_at_deadline": producer_allowed.get(id),
            });
            (id, shard)
        })
        .collect();
    let timeline: Vec<Value> = (1..=run.seconds)
        .map(|t| {
            let ((m0, p0), (m, p)) = (&run.samples[t as usize - 1], &run.samples[t as usize]);
            let written: u64 = run.arrived((t - 1) as f64, t as f64).map(|a| a.bytes).sum();
            json!({
                "t": t,
                "written_bytes": written,
                "attempted_kinesis_records": attempted(p) - attempted(p0),
                "throttled_share": run.throttled_share(t - 1, t),
                "requests": m.requests - m0.requests,
                "producer_allowed_bytes_per_sec": m
                    .shards
                    .iter()
                    .map(|shard| shard.allowed_bytes_per_sec)
                    .sum::<f64>(),
                "buffered_bytes": m.buffered_bytes,
            })
        })
        .collect();
    let bytes_per_event = |ph: &Phase| ph.read.bytes as f64 / ph.read.bookings.len().max(1) as f64;

    // In parts: one json! of them all is past the macro's recursion limit.
    let mut out = json!({
        "seconds": run.seconds,
        "allowed_share": allowed_share,
        "offered_events_per_sec": run.events_per_sec,
        "accepted_events_per_sec": run.accepted as f64 / s,
        "offered_bytes_per_sec": baseline.offered_bytes_per_sec(),
        "allowed_bytes_per_sec": allowed_bytes,
        "allowed_bytes_in_window": allowed_in_window(allowed_bytes),
        "allowed_kinesis_records_per_sec": f64::from(allowance.shards) * allowance.records_per_sec,
        "written_bytes_per_sec": written_bytes as f64 / s,
        "written_events_per_sec": written_events as f64 / s,
        "written_to_allowed_ratio": written_to_allowed,
        "written_to_allowed_floor": ALLOWANCE_FLOOR,
        "adaptation_window_seconds": window,
        "throttled_share_first_5s": run.throttled_share(0, window),
        "throttled_share_last_5s": run.throttled_share(run.seconds - window, run.seconds),
    });
    storm.report(&mut out);
    let requests = json!({
        "requests_per_sec": run.requests_per_sec(),
        "baseline_requests_per_sec": baseline.requests_per_sec(),
        "kinesis_records_per_request": last.kinesis_records_per_request(),
        "user_records_per_kinesis_record": last.user_records_per_kinesis_record(),
        "bytes_per_event": bytes_per_event(run),
        "baseline_bytes_per_event": bytes_per_event(baseline),
        "kinesis_record_attempts": attempted(proxy),
        "kinesis_records_written": proxy.written_records,
        "kinesis_record_success_ratio": ratio(proxy.written_records, attempted(proxy)),
        "proxy_allowance_throttled_records": proxy.allowance_throttled_records,
        "retries": last.retries,
        "retries_per_written_kinesis_record": ratio(last.retries, last.kinesis_records_written),
        "throttles": last.throttles,
    });
    let outcome = json!({
        "events_accepted": run.accepted,
        "events_written": last.user_records_written,
        "events_read": run.read.bookings.len(),
        "dead_lettered": run.dead.bookings.len(),
        "dead_lettered_by_reason": run.dead.by_reason,
        "lost": run.accounting.lost,
        "duplicates_read": run.accounting.duplicates_read,
        "unreadable_records": run.unreadable(),
        "send_held_seconds": run.held.seconds,
        "drain_seconds": run.drain.as_secs_f64(),
        "bytes_written_after_window": run.read.bytes - written_bytes,
        "per_shard": per_shard,
        "timeline": timeline,
        "ok": ok,
    });
    for part in [requests, outcome] {
        if let (Value::Object(out), Value::Object(part)) = (&mut out, part) {
            out.extend(part);
        }
    }
    (out, ok)
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

    #[test]
    fn base64_decodes_what_the_dead_letter_file_writes() {
        assert_eq!(
            base64_decode("eyJhIjoxfQ==").as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("ab$c"), None);
    }

    #[test]
    fn bits_list_what_was_inserted_in_order() {
        let mut bits = Bits::default();
        for i in [130, 0, 63, 64, 130] {
            bits.insert(i);
        }
        assert_eq!(bits.iter().collect::<Vec<_>>(), [0, 63, 64, 130]);
    }

    #[test]
    fn an_accepted_record_in_neither_place_is_lost() {
        let got = account(&[1, 2, 3, 4], &[1, 1, 5], &[2, 4, 4]);
        assert_eq!(
            got,
            Accounting {
                lost: 1,
                duplicates_read: 1,
                duplicates_dead_lettered: 1,
                written_and_dead_lettered: 0,
                foreign: 1,
            }
        );
    }

    #[test]
    fn a_booking_number_comes_back_from_its_json() {
        assert_eq!(booking_number(&booking(42).to_json()), Some(42));
        assert_eq!(booking_number(b"{}"), None);
    }
}
