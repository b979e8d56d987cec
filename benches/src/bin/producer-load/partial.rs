//! `producer-load partial`: partial throttling, at random and by a per-shard
//! allowance, against a throttle-free baseline (see the command's docs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flyhigh_producer::{
    FileDeadLetters, FlushReport, KinesisTransport, Producer, ProducerConfig, ProducerMetrics,
    ShardLimits,
};
use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};
use flyhigh_testkit::{
    FaultConfig, FaultProxy, FaultStats, ShardAllowance, create_stream, kinesalite_url,
    kinesis_client, read_all, unique_name,
};
use serde_json::{Value, json};

use crate::common::*;

/// Issue 10's retry-storm floor: requests/s within 3× those of a throttle-free run
/// at the same offered rate.
pub(crate) const STORM_FLOOR: f64 = 3.0;
/// `partial --mode allowance` fails when the bytes written in the sending window
/// fall below this share of the allowance. Loose on purpose: on the 2-core CI
/// machine the debug-built producer, the proxy and kinesalite share the cores with
/// the rest of the test run, and where one short window lands moves with that
/// load; a floor near what a quiet machine reaches would fail CI on scheduling
/// noise. Half still catches what it is for: a producer that backs off to far below
/// its allowance (stuck at its floor share, or stalled after throttling) instead of
/// settling near it. (A producer that never backs off still writes the whole
/// allowance, the proxy sees to that; the retry-storm bound is what catches it.)
pub(crate) const ALLOWANCE_FLOOR: f64 = 0.5;
/// The windows at the start and at the end of `partial --mode allowance` over which
/// the throttled share is compared: it should fall as the producer adapts.
pub(crate) const ADAPTATION_WINDOW_SECS: u64 = 5;

/// The `partial` command's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Partial {
    pub(crate) seconds: u64,
    /// The proxy's `record_failure_rate`.
    pub(crate) rate: f64,
    pub(crate) events_per_sec: u64,
    pub(crate) budget_mib: usize,
    pub(crate) baseline_seconds: u64,
    /// Run the `random` phase (`record_failure_rate` R).
    pub(crate) random: bool,
    /// Run the `allowance` phase (`shard_allowance` at A of the baseline).
    pub(crate) allowance: bool,
    /// A: the per-shard allowance as a share of the baseline's bytes/s per shard.
    pub(crate) allowed_share: f64,
    /// How long `close` may drain each phase before the rest is dead-lettered
    /// (reason `closed`: in the file, not lost).
    pub(crate) drain: Duration,
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
pub(crate) async fn partial(p: Partial) -> bool {
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
pub(crate) struct RetryStorm {
    pub(crate) requests_ratio: f64,
    pub(crate) bound: f64,
    pub(crate) storm: bool,
}

impl RetryStorm {
    /// `rate`: the share of records throttled had the producer not adapted.
    pub(crate) fn check(run: &Phase, baseline: &Phase, rate: f64) -> RetryStorm {
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

    pub(crate) fn report(&self, out: &mut Value) {
        out["requests_ratio_to_baseline"] = json!(self.requests_ratio);
        out["retry_storm_bound_ratio"] = json!(self.bound);
        out["retry_storm"] = json!(self.storm);
    }
}

/// One `partial` phase's measurements.
pub(crate) struct Phase {
    pub(crate) seconds: u64,
    pub(crate) record_failure_rate: f64,
    pub(crate) events_per_sec: f64,
    pub(crate) accepted: u64,
    pub(crate) held: Held,
    /// At the end of the sending window.
    pub(crate) at_deadline: ProducerMetrics,
    pub(crate) proxy_at_deadline: FaultStats,
    /// After close.
    pub(crate) last: ProducerMetrics,
    pub(crate) proxy: FaultStats,
    pub(crate) close: FlushReport,
    pub(crate) drain: Duration,
    pub(crate) read: ReadBack,
    pub(crate) dead: DeadLetterFile,
    pub(crate) accounting: Accounting,
    pub(crate) timeline: Vec<Value>,
    /// The window's start, in seconds since the Unix epoch (the clock of the
    /// records' arrival times).
    pub(crate) started_epoch_secs: f64,
    /// The producer's and the proxy's counters at the start and after each second
    /// of the window (`seconds + 1` samples).
    pub(crate) samples: Vec<(ProducerMetrics, FaultStats)>,
}

pub(crate) async fn partial_phase(
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

pub(crate) fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// One of `partial`'s sending tasks: event k (booking `task + SENDERS·k`) is due at
/// `start + k / per_sec`; returns the booking numbers accepted and the time held.
pub(crate) async fn paced_sender(
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
pub(crate) struct ReadBack {
    pub(crate) kinesis_records: u64,
    /// Data plus partition key, as Kinesis counts them against 1 MiB/s.
    pub(crate) bytes: u64,
    pub(crate) per_shard: BTreeMap<String, u64>,
    /// `bytes` per shard.
    pub(crate) bytes_per_shard: BTreeMap<String, u64>,
    /// Booking numbers of the user records, in read order (duplicates kept).
    pub(crate) bookings: Vec<u64>,
    /// Kinesis or user records that are not our bookings.
    pub(crate) unreadable: u64,
    /// Every Kinesis record with its arrival time in the stream.
    pub(crate) arrivals: Vec<Arrival>,
}

/// A Kinesis record as the stream stored it.
#[derive(Debug)]
pub(crate) struct Arrival {
    /// `ApproximateArrivalTimestamp` in seconds since the Unix epoch (kinesalite
    /// stamps milliseconds).
    pub(crate) epoch_secs: f64,
    pub(crate) shard_id: String,
    /// Data plus partition key.
    pub(crate) bytes: u64,
    /// User records in it (1 unless aggregated).
    pub(crate) user_records: u64,
}

impl ReadBack {
    pub(crate) fn add(
        &mut self,
        shard_id: &str,
        partition_key: &str,
        data: &[u8],
        arrival: Option<f64>,
    ) {
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

    pub(crate) fn user(&mut self, data: &[u8]) {
        match booking_number(data) {
            Some(n) => self.bookings.push(n),
            None => self.unreadable += 1,
        }
    }
}

impl Phase {
    pub(crate) fn requests_per_sec(&self) -> f64 {
        self.at_deadline.requests as f64 / self.seconds as f64
    }

    pub(crate) fn unreadable(&self) -> u64 {
        self.read.unreadable + self.dead.unreadable
    }

    /// What the phase was offered in bytes/s as the stream counts them: everything
    /// read back over the window. Meant for the baseline, which writes all it is
    /// offered (its drain is the last linger).
    pub(crate) fn offered_bytes_per_sec(&self) -> f64 {
        self.read.bytes as f64 / self.seconds as f64
    }

    /// The records that arrived in the stream in `[from, to)` seconds of the
    /// window.
    pub(crate) fn arrived(&self, from: f64, to: f64) -> impl Iterator<Item = &Arrival> {
        self.read.arrivals.iter().filter(move |a| {
            let t = a.epoch_secs - self.started_epoch_secs;
            (from..to).contains(&t)
        })
    }

    /// Kinesis records throttled / attempted at the proxy from second `from` to
    /// second `to` of the window (`None` without attempts).
    pub(crate) fn throttled_share(&self, from: u64, to: u64) -> Option<f64> {
        let (a, b) = (&self.samples[from as usize].1, &self.samples[to as usize].1);
        let throttled = |s: &FaultStats| s.failed_records + s.allowance_throttled_records;
        let attempted = |s: &FaultStats| s.forwarded_records + throttled(s);
        ratio(throttled(b) - throttled(a), attempted(b) - attempted(a))
    }

    pub(crate) fn json(&self) -> Value {
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
pub(crate) fn allowance_report(
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
