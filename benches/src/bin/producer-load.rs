//! Load commands for the producer (measurements, not tests):
//!
//! ```text
//! cargo run --release -p flyhigh-benches --bin producer-load -- units [--events N] [--shards S]
//! cargo run --release -p flyhigh-benches --bin producer-load -- soak [--seconds S] [--budget-mib M]
//! ```
//!
//! - `units`: PUT payload units used for N simulated events (default 1,000,000)
//!   against the ideal (total bytes / 25 KiB), and single-core throughput of the
//!   aggregate-and-collect path against the unaggregated path, both timed in the same
//!   run (best of 5). Exits 1 when the units exceed 1.05 × ideal.
//! - `soak`: the real producer and AWS SDK writing through the project's
//!   fault-injecting proxy, which throttles every PutRecords, to kinesalite
//!   (`FLYHIGH_KINESALITE_URL`), for S seconds (default 60) from 4 sending tasks.
//!   Reports the process's peak RSS (VmHWM) against the buffer budget, how long
//!   `send` has been blocked, and how often `try_send` found the buffer full. Exits 1
//!   when the peak exceeds budget + 64 MiB or `send` was never held back.
//!
//! Both print one JSON object on stdout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flyhigh_benches::aggregation::{aggregated_path, even_map, plain_path, sample_records};
use flyhigh_benches::arg;
use flyhigh_producer::{
    FileDeadLetters, KinesisTransport, Producer, ProducerConfig, SendError, ShardLimits,
};
use flyhigh_schemas::{Booking, Cabin, Envelope, Money, Payload};
use flyhigh_testkit::{
    FaultConfig, FaultProxy, create_stream, kinesalite_url, kinesis_client, unique_name,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ok = match args.first().map(String::as_str) {
        Some("units") => units(arg(&args, "--events", 1_000_000), arg(&args, "--shards", 4)),
        Some("soak") => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(soak(
                arg(&args, "--seconds", 60),
                arg(&args, "--budget-mib", 32),
            )),
        _ => {
            eprintln!(
                "usage: producer-load units [--events N] [--shards S] | soak [--seconds S] [--budget-mib M]"
            );
            false
        }
    };
    std::process::exit(if ok { 0 } else { 1 });
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

async fn soak(seconds: u64, budget_mib: usize) -> bool {
    let url = kinesalite_url();
    let direct = kinesis_client(&url);
    let stream = unique_name("soak");
    create_stream(&direct, &stream, 4).await.expect("stream");
    let proxy = FaultProxy::start(&url, FaultConfig::throttle_all()).expect("proxy");
    let dir = std::env::temp_dir().join(unique_name("flyhigh-soak"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let budget = budget_mib * 1024 * 1024;
    let (baseline_peak, baseline_rss) = rss();
    let producer = Producer::new(
        KinesisTransport::new(kinesis_client(&proxy.url()), &stream),
        ProducerConfig {
            buffer_budget_bytes: budget,
            dead_letters: Arc::new(FileDeadLetters::new(dir.join("dead.jsonl"))),
            shard_limits: Some(ShardLimits::KINESIS),
            // Longer than the soak: nothing may leave the buffer by expiring.
            record_ttl: Duration::from_secs(seconds + 60),
            metrics_interval: None,
            ..ProducerConfig::default()
        },
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let last_accept_ms = Arc::new(AtomicU64::new(0));
    let full = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for task in 0..4u64 {
        let (producer, counter, last, full) = (
            producer.clone(),
            counter.clone(),
            last_accept_ms.clone(),
            full.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut n = task;
            while Instant::now() < deadline {
                let event = booking(n);
                n += 4;
                // Every 8th event tries without waiting, to count refusals.
                if n % 32 < 4 {
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
                    match tokio::time::timeout(remaining, producer.send(&event)).await {
                        Ok(r) => {
                            r.expect("valid event");
                        }
                        Err(_) => break,
                    }
                }
                counter.fetch_add(1, Ordering::Relaxed);
                last.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        }));
    }
    let mut max_rss = 0;
    let mut max_buffered = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        max_rss = max_rss.max(rss().1);
        max_buffered = max_buffered.max(producer.buffered_bytes());
    }
    for s in senders {
        s.await.expect("sender");
    }
    let metrics = producer.metrics();
    let (peak, _) = rss();
    let blocked_for =
        started.elapsed().as_secs_f64() - last_accept_ms.load(Ordering::Relaxed) as f64 / 1e3;
    let report = producer.close_within(Duration::from_millis(200)).await;
    let faults = proxy.stats();
    proxy.shutdown().await;
    let limit = budget as u64 + 64 * 1024 * 1024;
    let ok = peak <= limit && blocked_for > 1.0 && metrics.user_records_written == 0;
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "budget_bytes": budget,
            "limit_bytes": limit,
            "peak_rss_bytes": peak,
            "peak_rss_over_budget_bytes": peak as i64 - budget as i64,
            "max_sampled_rss_bytes": max_rss,
            "rss_before_producer_bytes": baseline_rss,
            "peak_rss_before_producer_bytes": baseline_peak,
            "max_buffered_bytes": max_buffered,
            "events_accepted": counter.load(Ordering::Relaxed),
            "try_send_buffer_full": full.load(Ordering::Relaxed),
            "send_blocked_at_end_seconds": blocked_for,
            "throttles": metrics.throttles,
            "requests": metrics.requests,
            "user_records_written": metrics.user_records_written,
            "dead_lettered_at_close": report.dead_lettered,
            "proxy_put_records_throttled": faults.throughput_exceeded,
            "ok": ok,
        })
    );
    let _ = std::fs::remove_dir_all(&dir);
    ok
}
