//! `producer-load soak`: memory under 100% throttling, with or without records
//! expiring (see the command's docs).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flyhigh_producer::{
    FileDeadLetters, KinesisTransport, Producer, ProducerConfig, SendError, ShardLimits,
};
use flyhigh_testkit::{
    FaultConfig, FaultProxy, create_stream, kinesalite_url, kinesis_client, unique_name,
};
use serde_json::json;

use crate::common::*;

/// The soak: memory under 100% throttling, with or without records expiring (see
/// the module docs).
pub(crate) async fn soak(seconds: u64, budget_mib: usize, ttl_secs: u64) -> bool {
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
