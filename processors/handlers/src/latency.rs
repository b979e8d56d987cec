//! [`Latency`]: how long events take to reach a stage, in an HDR histogram.
//!
//! A handler given one (`with_latency`) records, for every event of a batch that it
//! committed (every event before the reported failure, poison aside), the time from
//! the event's `occurred_at` to the commit, on the clock it is given: the wall clock
//! in `flyhigh serve`, the simulated day's in `flyhigh demo`. Recording takes one
//! lock per batch and no allocation; the histogram keeps microseconds from 1 µs to a
//! day at three significant digits (about 0.1% error), so a summary's percentiles are
//! those of the recorded values within that precision, whatever the number of events.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::batch::Decoded;

/// The largest latency kept exactly: a day, in microseconds (longer ones count as a
/// day).
const HIGHEST_MICROS: u64 = 86_400_000_000;

/// The clock a stage is measured on.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One stage's latencies.
pub struct Latency {
    histogram: Mutex<Histogram<u64>>,
    clock: Clock,
}

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latency")
            .field("summary", &self.summary())
            .finish()
    }
}

/// Percentiles of one stage, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// A stage measured on the wall clock.
    pub fn new() -> Latency {
        Latency::with_clock(Arc::new(Utc::now))
    }

    /// A stage measured on `clock`.
    ///
    /// # Panics
    ///
    /// Never: the histogram's bounds are constants that hdrhistogram accepts.
    pub fn with_clock(clock: Clock) -> Latency {
        Latency {
            histogram: Mutex::new(
                Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)
                    .expect("constant histogram bounds are valid"),
            ),
            clock,
        }
    }

    /// The clock it measures on.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Records, for each event `(record index, occurred_at)` before the record
    /// `first_failed`, the time from its `occurred_at` to now.
    pub fn record_committed(
        &self,
        events: impl IntoIterator<Item = (usize, DateTime<Utc>)>,
        first_failed: Option<usize>,
    ) {
        let now = self.now();
        let mut h = self.lock();
        for (index, occurred_at) in events {
            if first_failed.is_some_and(|f| index >= f) {
                continue;
            }
            record(&mut h, now - occurred_at);
        }
    }

    /// [`record_committed`](Self::record_committed) for decoded events.
    pub fn record_decoded(&self, events: &[Decoded], first_failed: Option<usize>) {
        self.record_committed(
            events.iter().map(|d| (d.index, d.event.occurred_at)),
            first_failed,
        );
    }

    /// Records one value: from `since` to now.
    pub fn record_since(&self, since: DateTime<Utc>) {
        let now = self.now();
        record(&mut self.lock(), now - since);
    }

    /// Records one duration (negative ones, from a clock ahead of ours, as zero).
    pub fn record(&self, value: chrono::Duration) {
        record(&mut self.lock(), value);
    }

    /// The percentiles so far.
    pub fn summary(&self) -> LatencySummary {
        summarize(&self.lock())
    }

    /// A copy of the histogram (to merge or to report in other units).
    pub fn histogram(&self) -> Histogram<u64> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        self.histogram
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::new()
    }
}

fn record(h: &mut Histogram<u64>, value: chrono::Duration) {
    let micros = value.num_microseconds().unwrap_or(i64::MAX).max(0) as u64;
    h.saturating_record(micros.clamp(1, HIGHEST_MICROS));
}

/// The percentiles of a histogram of microseconds, in milliseconds.
pub fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    LatencySummary {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary agrees with the values it summarizes: each percentile is within
    /// the histogram's precision of the exact percentile of the recorded values.
    #[test]
    fn percentiles_agree_with_the_values_recorded() {
        let latency = Latency::new();
        // 1..=10_000 ms, in a scrambled order.
        let mut values: Vec<i64> = (1..=10_000).map(|i| (i * 7919) % 10_000 + 1).collect();
        for v in &values {
            latency.record(chrono::Duration::milliseconds(*v));
        }
        values.sort_unstable();
        let exact = |q: f64| values[((q * values.len() as f64).ceil() as usize).max(1) - 1] as f64;
        let s = latency.summary();
        assert_eq!(s.count, 10_000);
        for (got, q) in [(s.p50, 0.5), (s.p90, 0.9), (s.p99, 0.99), (s.p999, 0.999)] {
            let want = exact(q);
            assert!(
                (got - want).abs() <= want * 0.001 + 0.001,
                "p{q}: {got} ms, exactly {want} ms"
            );
        }
        assert!((s.max - 10_000.0).abs() <= 10.0, "max {}", s.max);
    }

    #[test]
    fn a_clock_behind_the_event_counts_as_zero_and_an_empty_stage_as_nothing() {
        let latency = Latency::new();
        assert_eq!(latency.summary(), LatencySummary::default());
        latency.record(chrono::Duration::seconds(-5));
        let s = latency.summary();
        assert_eq!(s.count, 1);
        assert!(s.max <= 0.001);
    }
}
