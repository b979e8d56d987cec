//! When events happen: a daily traffic curve, the surge bump on top of it, and the
//! sorted sequence of event times drawn from them.
//!
//! The span is tabulated per minute as a cumulative distribution. The `i`-th of `n`
//! events takes the quantile `(i + u) / n` with `u` uniform in `[0, 1)`: one draw in
//! each of `n` equal slices of probability (stratified sampling). The quantiles
//! increase with `i`, so the times come out sorted without sorting anything, and a
//! cursor walks the table once: O(1) per event and O(minutes) memory.

use chrono::{DateTime, Timelike, Utc};

/// Milliseconds per minute.
const MINUTE_MS: i64 = 60_000;

/// Relative traffic per UTC hour (the value applies at the middle of the hour, and
/// the curve is linear between). Quiet at night, a late-morning peak as Europe books
/// and an evening peak as Europe's evening overlaps the American day.
pub const HOURLY_TRAFFIC: [f64; 24] = [
    0.35, 0.25, 0.18, 0.15, 0.18, 0.30, // 00–05
    0.55, 0.80, 1.00, 1.15, 1.25, 1.20, // 06–11
    1.05, 0.95, 0.95, 1.00, 1.05, 1.15, // 12–17
    1.25, 1.30, 1.20, 0.95, 0.70, 0.50, // 18–23
];

/// Relative traffic at a minute of the day (0..1440), interpolated between hours.
pub fn diurnal(minute_of_day: u32) -> f64 {
    let h = f64::from(minute_of_day % 1440) / 60.0 - 0.5;
    let h = if h < 0.0 { h + 24.0 } else { h };
    let i = h.floor() as usize % 24;
    let frac = h - h.floor();
    HOURLY_TRAFFIC[i] * (1.0 - frac) + HOURLY_TRAFFIC[(i + 1) % 24] * frac
}

/// The sorted event times of one run.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    /// Cumulative weight at each minute boundary; `cdf[0] == 0`.
    cdf: Vec<f64>,
    span_ms: i64,
    events: usize,
    cursor: usize,
    last_ms: i64,
}

impl Timeline {
    /// A timeline of `events` events over `minutes` minutes from `start`; minutes in
    /// `[bump_start, bump_end)` (minute indexes) weigh `1 + bump` times as much.
    pub(crate) fn new(
        start: DateTime<Utc>,
        minutes: usize,
        events: usize,
        bump: Option<(usize, usize, f64)>,
    ) -> Timeline {
        let first_minute = start.hour() * 60 + start.minute();
        let mut cdf = Vec::with_capacity(minutes + 1);
        cdf.push(0.0);
        let mut total = 0.0;
        for m in 0..minutes {
            let mut w = diurnal(first_minute + (m % 1440) as u32);
            if let Some((from, to, extra)) = bump
                && (from..to).contains(&m)
            {
                w *= 1.0 + extra;
            }
            total += w;
            cdf.push(total);
        }
        Timeline {
            cdf,
            span_ms: minutes as i64 * MINUTE_MS,
            events,
            cursor: 0,
            last_ms: 0,
        }
    }

    /// Milliseconds after the start of event `i` (called with `i = 0, 1, 2, ...`),
    /// given a uniform draw `u` in `[0, 1)`. Never decreases.
    pub(crate) fn offset_ms(&mut self, i: usize, u: f64) -> i64 {
        let total = self.cdf[self.cdf.len() - 1];
        let x = (i as f64 + u) / self.events.max(1) as f64 * total;
        let bins = self.cdf.len() - 1;
        while self.cursor + 1 < bins && self.cdf[self.cursor + 1] <= x {
            self.cursor += 1;
        }
        let (lo, hi) = (self.cdf[self.cursor], self.cdf[self.cursor + 1]);
        let frac = if hi > lo {
            ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let ms = (self.cursor as i64 * MINUTE_MS + (frac * MINUTE_MS as f64) as i64)
            .min(self.span_ms - 1);
        // Rounding can never move time backwards.
        self.last_ms = ms.max(self.last_ms);
        self.last_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_is_quiet_at_night_and_peaks_late_morning_and_evening() {
        let at = |h: u32| diurnal(h * 60 + 30);
        assert!(at(3) < 0.2);
        assert!(at(10) > 3.0 * at(3));
        assert!(at(19) > at(14) && at(10) > at(14));
        // Continuous across midnight.
        assert!((diurnal(1439) - diurnal(0)).abs() < 0.01);
    }

    #[test]
    fn times_are_sorted_and_follow_the_curve() {
        let start = "2026-12-01T00:00:00Z".parse().unwrap();
        let n = 100_000;
        let mut t = Timeline::new(start, 1440, n, None);
        let mut per_hour = [0usize; 24];
        let mut last = 0;
        for i in 0..n {
            let ms = t.offset_ms(i, 0.5);
            assert!(ms >= last && ms < 86_400_000);
            last = ms;
            per_hour[(ms / 3_600_000) as usize] += 1;
        }
        assert!(per_hour[10] > 4 * per_hour[3], "{per_hour:?}");
        assert!(per_hour[19] > per_hour[14], "{per_hour:?}");
    }

    #[test]
    fn a_bump_adds_traffic_to_its_window() {
        let start = "2026-12-01T00:00:00Z".parse().unwrap();
        let n = 100_000;
        let count = |bump| {
            let mut t = Timeline::new(start, 1440, n, bump);
            (0..n)
                .filter(|&i| (600..660).contains(&(t.offset_ms(i, 0.5) / MINUTE_MS)))
                .count()
        };
        let (plain, bumped) = (count(None), count(Some((600, 660, 1.0))));
        assert!(bumped as f64 > 1.8 * plain as f64, "{plain} vs {bumped}");
    }
}
