//! Per-shard rate limiting and retry backoff: pure arithmetic over instants the caller
//! passes in, so it is tested without a clock.
//!
//! Each shard gets two token buckets, Kinesis records per second and bytes per second,
//! that start at the shard's limits. A throttling answer halves the shard's rate
//! (down to a floor), and every successful put wins back a tenth of the limit: the
//! additive-increase, multiplicative-decrease rule that lets many producers share a
//! shard without a retry storm.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

/// Throughput one shard accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardLimits {
    /// Kinesis records (an aggregate counts once) per second.
    pub records_per_sec: f64,
    /// Bytes (data plus partition key) per second.
    pub bytes_per_sec: f64,
}

impl ShardLimits {
    /// Kinesis's published per-shard write limits: 1,000 records/s and 1 MiB/s.
    pub const KINESIS: ShardLimits = ShardLimits {
        records_per_sec: 1_000.0,
        bytes_per_sec: 1_048_576.0,
    };

    /// No limit (the in-process stream).
    pub const UNLIMITED: ShardLimits = ShardLimits {
        records_per_sec: f64::INFINITY,
        bytes_per_sec: f64::INFINITY,
    };
}

/// The lowest share of the limit a throttled shard slows down to.
const MIN_RATE_SHARE: f64 = 0.05;
/// Share of the limit regained per successful put.
const RECOVERY_SHARE: f64 = 0.1;

/// Two token buckets with an adaptive rate.
#[derive(Debug, Clone)]
pub struct ShardRate {
    limits: ShardLimits,
    /// Current share of the limits, in `[MIN_RATE_SHARE, 1]`.
    share: f64,
    records: f64,
    bytes: f64,
    refilled_at: Instant,
}

impl ShardRate {
    /// Full buckets (one second's worth) at the shard's limits.
    pub fn new(limits: ShardLimits, now: Instant) -> ShardRate {
        ShardRate {
            limits,
            share: 1.0,
            records: limits.records_per_sec,
            bytes: limits.bytes_per_sec,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.refilled_at = now;
        let cap_records = self.limits.records_per_sec * self.share;
        let cap_bytes = self.limits.bytes_per_sec * self.share;
        self.records = (self.records + elapsed * cap_records).min(cap_records);
        self.bytes = (self.bytes + elapsed * cap_bytes).min(cap_bytes);
    }

    /// When a record of `bytes` may be sent: `None` now (and the tokens are taken),
    /// or the instant the buckets will hold enough.
    ///
    /// A record larger than a full bucket is let through once the bucket is full, so
    /// a shard slowed to its floor still passes a 1 MiB record.
    pub fn try_take(&mut self, bytes: usize, now: Instant) -> Option<Instant> {
        if self.limits.records_per_sec.is_infinite() && self.limits.bytes_per_sec.is_infinite() {
            return None;
        }
        self.refill(now);
        let cap_records = self.limits.records_per_sec * self.share;
        let cap_bytes = self.limits.bytes_per_sec * self.share;
        let need_records = 1.0f64.min(cap_records);
        let need_bytes = (bytes as f64).min(cap_bytes);
        if self.records >= need_records && self.bytes >= need_bytes {
            self.records -= 1.0;
            self.bytes -= bytes as f64;
            return None;
        }
        let wait_records = (need_records - self.records).max(0.0) / cap_records;
        let wait_bytes = (need_bytes - self.bytes).max(0.0) / cap_bytes;
        Some(now + Duration::from_secs_f64(wait_records.max(wait_bytes).max(0.001)))
    }

    /// The shard throttled us: halve the rate (not below the floor) and empty the
    /// buckets, so the next attempt waits for fresh tokens.
    pub fn throttled(&mut self, now: Instant) {
        self.refill(now);
        self.share = (self.share * 0.5).max(MIN_RATE_SHARE);
        self.records = self.records.min(0.0);
        self.bytes = self.bytes.min(0.0);
    }

    /// A put to the shard succeeded: win back part of the rate.
    pub fn succeeded(&mut self) {
        self.share = (self.share + RECOVERY_SHARE).min(1.0);
    }

    /// The current share of the shard's limits, in `(0, 1]`.
    pub fn share(&self) -> f64 {
        self.share
    }
}

/// Full-jitter exponential backoff after `failures` consecutive failures: uniform in
/// `[0, min(max, base · 2^(failures-1))]`, so producers throttled together do not
/// retry together.
pub fn backoff(base: Duration, max: Duration, failures: u32, rng: &mut impl Rng) -> Duration {
    let cap = base
        .saturating_mul(1 << failures.saturating_sub(1).min(20))
        .min(max);
    let micros = cap.as_micros().max(1) as u64;
    Duration::from_micros(rng.gen_range(0..=micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const LIMITS: ShardLimits = ShardLimits {
        records_per_sec: 10.0,
        bytes_per_sec: 1_000.0,
    };

    #[test]
    fn a_bucket_passes_a_seconds_worth_then_makes_callers_wait() {
        let t0 = Instant::now();
        let mut rate = ShardRate::new(LIMITS, t0);
        for _ in 0..10 {
            assert_eq!(rate.try_take(10, t0), None);
        }
        let next = rate.try_take(10, t0).expect("records bucket is empty");
        assert!(next > t0 && next <= t0 + Duration::from_millis(101));
        // One tenth of a second later there is one record's worth again.
        assert_eq!(rate.try_take(10, t0 + Duration::from_millis(100)), None);
    }

    #[test]
    fn bytes_are_limited_independently_of_records() {
        let t0 = Instant::now();
        let mut rate = ShardRate::new(LIMITS, t0);
        assert_eq!(rate.try_take(900, t0), None);
        let next = rate.try_take(200, t0).expect("bytes bucket is short");
        // 100 bytes are missing at 1,000 bytes/s.
        assert!(next >= t0 + Duration::from_millis(99));
        assert!(next <= t0 + Duration::from_millis(101));
    }

    #[test]
    fn throttling_halves_the_rate_to_a_floor_and_success_recovers_it() {
        let t0 = Instant::now();
        let mut rate = ShardRate::new(LIMITS, t0);
        rate.throttled(t0);
        assert_eq!(rate.share(), 0.5);
        for _ in 0..20 {
            rate.throttled(t0);
        }
        assert_eq!(rate.share(), MIN_RATE_SHARE);
        // A throttled shard waits for fresh tokens before the next attempt.
        assert!(rate.try_take(1, t0).is_some());
        for _ in 0..20 {
            rate.succeeded();
        }
        assert_eq!(rate.share(), 1.0);
    }

    #[test]
    fn a_record_bigger_than_the_bucket_passes_when_the_bucket_is_full() {
        let t0 = Instant::now();
        let mut rate = ShardRate::new(LIMITS, t0);
        rate.throttled(t0); // bucket now holds at most 500 bytes
        let later = t0 + Duration::from_secs(5);
        assert_eq!(rate.try_take(5_000, later), None);
    }

    #[test]
    fn unlimited_shards_never_wait() {
        let t0 = Instant::now();
        let mut rate = ShardRate::new(ShardLimits::UNLIMITED, t0);
        for _ in 0..100_000 {
            assert_eq!(rate.try_take(1 << 20, t0), None);
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_is_capped() {
        let mut rng = StdRng::seed_from_u64(7);
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        for failures in 1..30 {
            let cap = (base * 2u32.pow((failures - 1).min(20))).min(max);
            for _ in 0..50 {
                assert!(backoff(base, max, failures, &mut rng) <= cap);
            }
        }
        // Jitter: not every draw is the same.
        let draws: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(base, max, 5, &mut rng)).collect();
        assert!(draws.len() > 10);
    }
}
