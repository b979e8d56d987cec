//! Judging a route's demand: surge detection, once per route.
//!
//! The evaluator walks each route's buckets in order of event time, each bucket
//! once ([`RouteState::next_bucket`]), with the demand summed over every shard. For
//! the bucket `b` it judges the *window* of the last [`SurgeConfig::window_buckets`]
//! buckets ending at `b`:
//!
//! - **baseline**: an exponentially weighted mean of the route's demand per bucket
//!   (half-life [`SurgeConfig::baseline_half_life_buckets`]), fed with each bucket as
//!   it leaves the window, and never with a bucket of a surge episode. So the
//!   baseline is the route's own recent normal, robust to the surge it judges: the
//!   surge's buckets are in the window while it is detected, and left out after.
//! - **surge** when the window's demand is at least [`SurgeConfig::floor`], at least
//!   [`SurgeConfig::warning_multiple`] times what the baseline expects of a window,
//!   and improbable as noise: its Poisson tail probability under the baseline is at
//!   most [`SurgeConfig::max_p_value`]. The last test is what keeps quiet routes, whose
//!   counts jump by chance, from alerting on an ordinary day. `critical` from
//!   [`SurgeConfig::critical_multiple`].
//! - **one surge, one alert**: the first surging window opens an *episode* and
//!   raises the alert; the episode goes on (no further alert) until the window has
//!   been below [`SurgeConfig::exit_multiple`] times the baseline frozen at its
//!   start for [`SurgeConfig::quiet_buckets`] buckets in a row (hysteresis), or has
//!   lasted [`SurgeConfig::max_episode_buckets`] (a lasting shift is the new normal);
//!   after it ends, no new episode starts for [`SurgeConfig::cooldown_buckets`]
//!   buckets.
//!
//! Everything here is a pure function of the route's state and its bucket series,
//! so a repeated or concurrent evaluation computes the same alert with the same id;
//! the alert store's conditional write decides who publishes it.

use chrono::{DateTime, Utc};
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, AlertStatus, Severity};
use serde::{Deserialize, Serialize};

use super::split_route;

/// The knobs of the surge rule. Defaults are tuned on the simulator: no alert on
/// ordinary days of several seeds, the surge detected within two buckets (see
/// `docs/hot-routes.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurgeConfig {
    /// Bucket length in seconds (60). Must match the counters'.
    pub bucket_seconds: i64,
    /// Buckets in the judged window (3). Short, so that a surge shows within two
    /// buckets; the Poisson test keeps that short window from alerting on noise.
    pub window_buckets: u32,
    /// Window demand over expected demand from which a surge is a `warning` (3).
    pub warning_multiple: f64,
    /// ...and a `critical` one (6).
    pub critical_multiple: f64,
    /// Least window demand (searches plus bookings) that can be a surge (20).
    pub floor: u64,
    /// Largest Poisson tail probability of the window's demand, under the baseline,
    /// that still counts as a surge (1e-7).
    pub max_p_value: f64,
    /// Half-life of the baseline's weighted mean, in buckets (10): short enough to
    /// follow the daily curve's morning ramp, long enough to average out noise.
    pub baseline_half_life_buckets: f64,
    /// Buckets fed into the baseline before the route is judged at all (30).
    pub warmup_buckets: u32,
    /// Least baseline demand per bucket (0.5): a route with almost no traffic still
    /// needs a real burst.
    pub min_baseline_per_bucket: f64,
    /// A window below this multiple of the episode's baseline is quiet (1.5).
    pub exit_multiple: f64,
    /// Quiet buckets in a row that end an episode (10).
    pub quiet_buckets: u32,
    /// Buckets after an episode ends during which no new one starts (30).
    pub cooldown_buckets: u32,
    /// Longest episode, in buckets (360, six hours): demand that stays up this long
    /// is the route's new normal, so the episode ends and the baseline learns it
    /// (the cooldown follows as after any episode).
    pub max_episode_buckets: u32,
}

impl Default for SurgeConfig {
    fn default() -> SurgeConfig {
        SurgeConfig {
            bucket_seconds: 60,
            window_buckets: 3,
            warning_multiple: 3.0,
            critical_multiple: 6.0,
            floor: 20,
            max_p_value: 1e-7,
            baseline_half_life_buckets: 10.0,
            warmup_buckets: 30,
            min_baseline_per_bucket: 0.5,
            exit_multiple: 1.5,
            quiet_buckets: 10,
            cooldown_buckets: 30,
            max_episode_buckets: 360,
        }
    }
}

/// A knob out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("surge setting {knob} must be {expected}, got {value}")]
pub struct SurgeConfigError {
    /// The knob.
    pub knob: &'static str,
    /// What it was.
    pub value: String,
    /// What it must be.
    pub expected: &'static str,
}

impl SurgeConfig {
    /// Checks every knob.
    pub fn validate(&self) -> Result<(), SurgeConfigError> {
        let err = |knob, value: String, expected| {
            Err(SurgeConfigError {
                knob,
                value,
                expected,
            })
        };
        if self.bucket_seconds < 1 {
            return err(
                "bucket_seconds",
                self.bucket_seconds.to_string(),
                "at least 1",
            );
        }
        if self.window_buckets < 1 {
            return err(
                "window_buckets",
                self.window_buckets.to_string(),
                "at least 1",
            );
        }
        for (knob, v) in [
            ("warning_multiple", self.warning_multiple),
            ("critical_multiple", self.critical_multiple),
            ("exit_multiple", self.exit_multiple),
            (
                "baseline_half_life_buckets",
                self.baseline_half_life_buckets,
            ),
            ("min_baseline_per_bucket", self.min_baseline_per_bucket),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return err(knob, v.to_string(), "a finite number above 0");
            }
        }
        if self.critical_multiple < self.warning_multiple {
            return err(
                "critical_multiple",
                self.critical_multiple.to_string(),
                "at least warning_multiple",
            );
        }
        if self.exit_multiple > self.warning_multiple {
            return err(
                "exit_multiple",
                self.exit_multiple.to_string(),
                "at most warning_multiple (the hysteresis band)",
            );
        }
        if !(self.max_p_value > 0.0 && self.max_p_value <= 1.0) {
            return err("max_p_value", self.max_p_value.to_string(), "in (0, 1]");
        }
        if self.quiet_buckets < 1 {
            return err(
                "quiet_buckets",
                self.quiet_buckets.to_string(),
                "at least 1",
            );
        }
        if self.max_episode_buckets <= self.quiet_buckets {
            return err(
                "max_episode_buckets",
                self.max_episode_buckets.to_string(),
                "more than quiet_buckets",
            );
        }
        Ok(())
    }

    /// The bucket containing `t`.
    pub fn bucket_of(&self, t: DateTime<Utc>) -> i64 {
        super::counting::bucket_of(t, self.bucket_seconds)
    }

    /// The last bucket that ends at or before `horizon`.
    pub fn last_closed_bucket(&self, horizon: DateTime<Utc>) -> i64 {
        self.bucket_of(horizon) - self.bucket_seconds
    }

    fn alpha(&self, history: u32) -> f64 {
        let ewma = 1.0 - 0.5f64.powf(1.0 / self.baseline_half_life_buckets);
        // Early on, a plain mean of what there is (the usual bias correction).
        ewma.max(1.0 / f64::from(history.max(1)))
    }
}

/// What the evaluator remembers about one route between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteState {
    /// Bumped by every save; a save is conditional on the version read.
    pub version: u64,
    /// The first bucket the route was judged from (the baseline's first bucket).
    pub start: i64,
    /// The next bucket to judge as the end of a window.
    pub next_bucket: i64,
    /// Expected demand per bucket; `None` before the first bucket is fed.
    pub baseline: Option<f64>,
    /// Buckets fed into the baseline (for the warm-up).
    pub history: u32,
    /// The surge episode in progress.
    pub episode: Option<Episode>,
    /// The last episode's buckets `[from, to]`, kept out of the baseline.
    pub excluded: Option<(i64, i64)>,
    /// No new episode before this bucket.
    pub cooldown_until: Option<i64>,
}

/// A surge in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The alert it raised.
    pub alert_id: String,
    /// First bucket of the window that opened it.
    pub start: i64,
    /// Baseline per bucket when it opened; the exit rule compares with it.
    pub baseline: f64,
    /// Quiet buckets in a row so far.
    pub quiet: u32,
}

impl RouteState {
    /// A route judged from bucket `start` on: its first window ends
    /// `window_buckets - 1` buckets later.
    pub fn new(config: &SurgeConfig, start: i64) -> RouteState {
        RouteState {
            version: 0,
            start,
            next_bucket: start + i64::from(config.window_buckets - 1) * config.bucket_seconds,
            baseline: None,
            history: 0,
            episode: None,
            excluded: None,
            cooldown_until: None,
        }
    }

    /// The first bucket whose demand [`judge`] needs for `next_bucket`: the one that
    /// leaves the window.
    pub fn first_bucket_needed(&self, config: &SurgeConfig) -> i64 {
        self.next_bucket - i64::from(config.window_buckets) * config.bucket_seconds
    }

    fn excluded(&self, bucket: i64) -> bool {
        self.episode.as_ref().is_some_and(|e| bucket >= e.start)
            || self
                .excluded
                .is_some_and(|(from, to)| (from..=to).contains(&bucket))
    }
}

/// What the rule saw in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// First bucket of the window.
    pub window_start: i64,
    /// End of the window (exclusive), seconds since the epoch.
    pub window_end: i64,
    /// Demand in the window.
    pub observed: u64,
    /// Demand the baseline expects of the window; `None` during the warm-up.
    pub expected: Option<f64>,
    /// Poisson tail probability of `observed` under `expected`.
    pub p_value: f64,
    /// The surge level the window shows on its own.
    pub level: Option<Severity>,
}

/// A surge that opened an episode: what the alert says.
#[derive(Debug, Clone, PartialEq)]
pub struct SurgeFiring {
    /// First bucket of the window, seconds since the epoch.
    pub window_start: i64,
    /// End of the window, exclusive.
    pub window_end: i64,
    /// Demand in it.
    pub observed: u64,
    /// Demand the baseline expected of it.
    pub expected: f64,
    /// How bad.
    pub severity: Severity,
    /// The alert's id.
    pub alert_id: String,
}

/// Judges the window ending at `state.next_bucket` and moves the state one bucket on.
/// `demand(b)` is the route's demand in bucket `b`, summed over shards (0 for a bucket
/// with no counter). Returns the judgement and, when it opens an episode, the firing.
pub fn judge(
    config: &SurgeConfig,
    route: &str,
    state: &mut RouteState,
    demand: impl Fn(i64) -> u64,
) -> (Judgement, Option<SurgeFiring>) {
    let b = state.next_bucket;
    let step = config.bucket_seconds;
    let window = i64::from(config.window_buckets);
    let window_start = b - (window - 1) * step;

    // Feed the bucket that leaves the window into the baseline, unless it belongs to
    // a surge.
    let leaving = window_start - step;
    if leaving >= state.start && !state.excluded(leaving) {
        state.history = state.history.saturating_add(1);
        let x = demand(leaving) as f64;
        let alpha = config.alpha(state.history);
        state.baseline = Some(match state.baseline {
            None => x,
            Some(m) => m + alpha * (x - m),
        });
    }

    let observed: u64 = (0..window).map(|i| demand(window_start + i * step)).sum();
    let per_bucket = state
        .baseline
        .filter(|_| state.history >= config.warmup_buckets)
        .map(|m| m.max(config.min_baseline_per_bucket));
    let expected = per_bucket.map(|m| m * window as f64);
    let p_value = expected.map_or(1.0, |e| poisson_tail(observed, e));
    let level = expected.and_then(|e| {
        let o = observed as f64;
        let surging = observed >= config.floor
            && o >= config.warning_multiple * e
            && p_value <= config.max_p_value;
        match (surging, o >= config.critical_multiple * e) {
            (false, _) => None,
            (true, true) => Some(Severity::Critical),
            (true, false) => Some(Severity::Warning),
        }
    });
    let judgement = Judgement {
        window_start,
        window_end: b + step,
        observed,
        expected,
        p_value,
        level,
    };

    let mut firing = None;
    if let Some(episode) = &mut state.episode {
        let hot = observed as f64 >= config.exit_multiple * episode.baseline * window as f64;
        episode.quiet = if hot { 0 } else { episode.quiet + 1 };
        let length = (b - episode.start) / step + 1;
        if episode.quiet >= config.quiet_buckets || length >= i64::from(config.max_episode_buckets)
        {
            state.excluded = Some((episode.start, b));
            state.cooldown_until = Some(b + step * (1 + i64::from(config.cooldown_buckets)));
            state.episode = None;
        }
    } else if let (Some(severity), Some(expected), Some(per_bucket)) = (level, expected, per_bucket)
        && state.cooldown_until.is_none_or(|c| b >= c)
    {
        let alert_id = Alert::surge_id(route, at(window_start));
        state.episode = Some(Episode {
            alert_id: alert_id.clone(),
            start: window_start,
            baseline: per_bucket,
            quiet: 0,
        });
        firing = Some(SurgeFiring {
            window_start,
            window_end: b + step,
            observed,
            expected,
            severity,
            alert_id,
        });
    }
    state.next_bucket = b + step;
    (judgement, firing)
}

/// How far a scheduled evaluator may judge at wall time `now`: `now - allowance`,
/// held back to the slowest *active* shard's progress minus `allowance` when the
/// consumer lags (a bucket judged before its events are counted would be judged on
/// part of its demand, for good). Progress is an arrival time, not an event time (see
/// [`super::counting`]), and is taken no later than `now`: however a shard's events
/// are dated, a lagging shard holds the horizon back and none pushes it forward. A
/// shard is active when its progress moved within `idle` of `now`: a closed parent
/// shard, or one with no traffic, holds nothing back.
///
/// `allowance` is the same setting the counting side flags late events with
/// ([`super::counting::DEFAULT_ALLOWANCE`]): an event that arrived within it of its
/// event time is counted before its bucket is judged.
pub fn settled_horizon(
    now: DateTime<Utc>,
    watermarks: &[crate::ports::ShardWatermark],
    allowance: chrono::Duration,
    idle: chrono::Duration,
) -> DateTime<Utc> {
    let slowest = watermarks
        .iter()
        .filter(|w| w.updated_at >= now - idle)
        .map(|w| w.progress.min(now))
        .min();
    slowest.unwrap_or(now) - allowance
}

/// The alert of a firing on `route` (`ORIG-DEST`), raised at `raised_at`.
pub fn surge_alert(route: &str, firing: &SurgeFiring, raised_at: DateTime<Utc>) -> Alert {
    let raised_at = super::to_millis(raised_at);
    let (origin, destination) = split_route(route);
    let ratio = firing.observed as f64 / firing.expected.max(f64::MIN_POSITIVE);
    let minutes = (firing.window_end - firing.window_start) / 60;
    Alert {
        alert_id: firing.alert_id.clone(),
        alert_version: ALERT_VERSION,
        status: AlertStatus::Raised,
        clears: None,
        rule: AlertRule::RouteSurge,
        severity: firing.severity,
        route: route.to_string(),
        origin,
        destination,
        flight_id: None,
        cabin: None,
        window_start: Some(at(firing.window_start)),
        window_end: Some(at(firing.window_end)),
        observed: Some(firing.observed),
        baseline: Some(round2(firing.expected)),
        capacity: None,
        sold: None,
        detected_at: at(firing.window_end),
        raised_at,
        summary: format!(
            "Demand on {route} surges: {} searches and bookings in {minutes} min, {ratio:.1}x the {:.1} its baseline expects",
            firing.observed, firing.expected
        ),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Seconds since the epoch as a time (the epoch itself when out of range).
pub fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// P(X ≥ k) for X ~ Poisson(λ): how improbable `k` events are when `λ` are expected.
pub fn poisson_tail(k: u64, lambda: f64) -> f64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return if k == 0 { 1.0 } else { 0.0 };
    }
    if (k as f64) <= lambda {
        // Not above expectation: never a surge, and the exact value does not matter.
        return 1.0;
    }
    // Sum the mass from k upwards; past λ each term shrinks by λ/(j+1) < 1.
    let kf = k as f64;
    let mut term = (-lambda + kf * lambda.ln() - ln_factorial(k)).exp();
    let mut sum = 0.0;
    let mut j = kf;
    for _ in 0..100_000 {
        sum += term;
        j += 1.0;
        term *= lambda / j;
        if term <= sum * 1e-17 {
            break;
        }
    }
    sum.min(1.0)
}

fn ln_factorial(k: u64) -> f64 {
    if k < 32 {
        return (2..=k).map(|i| (i as f64).ln()).sum();
    }
    // Stirling's series; at k ≥ 32 its error is far below what the test needs.
    let x = k as f64;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_764_547_200; // 2025-12-01T00:00:00Z, a bucket boundary

    /// Judges `series` (demand per bucket from T0) from the start, returning the
    /// buckets at which episodes opened and the final state.
    fn run(config: &SurgeConfig, series: &[u64]) -> (Vec<(i64, SurgeFiring)>, RouteState) {
        let mut state = RouteState::new(config, T0);
        let demand = |b: i64| -> u64 {
            let i = (b - T0) / config.bucket_seconds;
            usize::try_from(i)
                .ok()
                .and_then(|i| series.get(i))
                .copied()
                .unwrap_or(0)
        };
        let last = T0 + (series.len() as i64 - 1) * config.bucket_seconds;
        let mut fired = Vec::new();
        while state.next_bucket <= last {
            let b = state.next_bucket;
            if let (_, Some(f)) = judge(config, "ORD-SFO", &mut state, demand) {
                fired.push(((b - T0) / 60, f));
            }
        }
        (fired, state)
    }

    /// A steady route with a deterministic wobble around `rate` per bucket.
    fn steady(rate: u64, buckets: usize) -> Vec<u64> {
        (0..buckets)
            .map(|i| rate + [0, 1, 0, 2, 1, 0, 0, 1][i % 8] - 1)
            .collect()
    }

    #[test]
    fn the_poisson_tail_is_right_where_it_matters() {
        // P(X ≥ 3 | λ = 1) = 1 - e^-1 (1 + 1 + 1/2) = 0.0803
        assert!((poisson_tail(3, 1.0) - 0.080_301_4).abs() < 1e-6);
        // P(X ≥ 30 | λ = 10) = 2.50995e-7 (summed exactly in another tool)
        let p = poisson_tail(30, 10.0);
        assert!((p / 2.509_951_2e-7 - 1.0).abs() < 1e-6, "{p}");
        // Past Stirling's threshold: P(X ≥ 60 | λ = 30) = 9.25187e-7
        let p = poisson_tail(60, 30.0);
        assert!((p / 9.251_87e-7 - 1.0).abs() < 1e-4, "{p}");
        assert_eq!(poisson_tail(5, 10.0), 1.0);
        assert!(poisson_tail(5000, 1000.0) < 1e-300 || poisson_tail(5000, 1000.0) == 0.0);
        assert_eq!(poisson_tail(0, 0.0), 1.0);
    }

    #[test]
    fn a_steady_route_never_surges() {
        let config = SurgeConfig::default();
        let (fired, state) = run(&config, &steady(5, 600));
        assert!(fired.is_empty(), "{fired:?}");
        let baseline = state.baseline.unwrap();
        assert!((4.0..6.0).contains(&baseline), "{baseline}");
    }

    #[test]
    fn a_surge_fires_once_within_two_buckets_of_its_start() {
        let config = SurgeConfig::default();
        let mut series = steady(4, 300);
        for x in &mut series[120..300] {
            *x *= 8;
        }
        let (fired, state) = run(&config, &series);
        assert_eq!(fired.len(), 1, "{fired:?}");
        let (minute, firing) = &fired[0];
        assert!((120..=121).contains(minute), "detected at minute {minute}");
        assert_eq!(
            firing.alert_id,
            Alert::surge_id("ORD-SFO", at(firing.window_start))
        );
        // The surge stays out of the baseline while it lasts.
        assert!(state.baseline.unwrap() < 6.0, "{:?}", state.baseline);
        assert!(state.episode.is_some(), "still surging at the end");
    }

    #[test]
    fn one_surge_is_one_alert_even_when_it_wobbles_and_the_next_needs_the_cooldown() {
        let config = SurgeConfig::default();
        let mut series = steady(4, 400);
        // A surge with dips shorter than the quiet period.
        for (i, x) in series.iter_mut().enumerate().take(200).skip(100) {
            *x = if i % 12 < 4 { 5 } else { *x * 8 };
        }
        // It ends at 200; a second burst at 215 falls in the cooldown (ends at
        // 200 + 10 quiet + 30), one at 300 does not.
        for x in &mut series[215..225] {
            *x *= 8;
        }
        for x in &mut series[300..320] {
            *x *= 8;
        }
        let (fired, _) = run(&config, &series);
        let minutes: Vec<i64> = fired.iter().map(|(m, _)| *m).collect();
        assert_eq!(minutes.len(), 2, "{minutes:?}");
        assert!((100..=101).contains(&minutes[0]), "{minutes:?}");
        assert!((300..=301).contains(&minutes[1]), "{minutes:?}");
    }

    #[test]
    fn a_lasting_shift_ends_its_episode_and_becomes_the_baseline() {
        let config = SurgeConfig::default();
        let mut series = steady(4, 1_200);
        for x in &mut series[100..] {
            *x *= 5;
        }
        let (fired, state) = run(&config, &series);
        assert_eq!(fired.len(), 1, "one surge, then the new normal: {fired:?}");
        assert!(state.episode.is_none());
        let baseline = state.baseline.unwrap();
        assert!(
            baseline > 15.0,
            "the baseline learnt the new level: {baseline}"
        );
    }

    #[test]
    fn severities_follow_the_multiples() {
        let config = SurgeConfig::default();
        for (factor, severity) in [(4, Severity::Warning), (20, Severity::Critical)] {
            let mut series = steady(5, 200);
            for x in &mut series[100..200] {
                *x *= factor;
            }
            let (fired, _) = run(&config, &series);
            assert_eq!(fired.len(), 1, "x{factor}: {fired:?}");
            // The severity is the window's when the episode opens.
            assert!(
                fired[0].1.severity == severity || factor == 4,
                "x{factor}: {:?}",
                fired[0].1
            );
            if factor == 20 {
                assert_eq!(fired[0].1.severity, Severity::Critical);
            }
        }
    }

    #[test]
    fn a_quiet_route_needs_a_real_burst_not_a_lucky_bucket() {
        let config = SurgeConfig::default();
        let mut series = vec![1u64; 200];
        // Three times the usual in a window, but far below the floor and likely noise.
        series[100] = 4;
        series[101] = 4;
        let (fired, _) = run(&config, &series);
        assert!(fired.is_empty(), "{fired:?}");
        // A real burst on the same route does fire.
        for x in &mut series[150..160] {
            *x = 12;
        }
        let (fired, _) = run(&config, &series);
        assert_eq!(fired.len(), 1, "{fired:?}");
    }

    #[test]
    fn nothing_is_judged_during_the_warm_up() {
        let config = SurgeConfig::default();
        let mut series = vec![2u64; 40];
        for x in &mut series[5..10] {
            *x = 100;
        }
        let (fired, _) = run(&config, &series);
        assert!(fired.is_empty(), "{fired:?}");
    }

    #[test]
    fn judging_is_deterministic_so_two_evaluators_agree() {
        let config = SurgeConfig::default();
        let mut series = steady(6, 300);
        for x in &mut series[150..200] {
            *x *= 6;
        }
        let a = run(&config, &series);
        let b = run(&config, &series);
        assert_eq!(a.0.len(), 1);
        assert_eq!(a.0[0].1, b.0[0].1);
        assert_eq!(a.1, b.1);
    }

    #[test]
    fn the_horizon_waits_for_a_lagging_shard_but_not_for_an_idle_one() {
        use crate::ports::ShardWatermark;
        let now = at(T0 + 3_600);
        let mark = |shard: &str, behind: i64, updated: i64| ShardWatermark {
            shard_id: shard.into(),
            progress: now - chrono::Duration::seconds(behind),
            updated_at: now - chrono::Duration::seconds(updated),
        };
        let allowance = chrono::Duration::minutes(2);
        let idle = chrono::Duration::minutes(10);
        assert_eq!(settled_horizon(now, &[], allowance, idle), now - allowance);
        // The slowest shard holds the horizon back by what it lags, seconds or more.
        let caught_up = [mark("a", 5, 1), mark("b", 20, 1)];
        assert_eq!(
            settled_horizon(now, &caught_up, allowance, idle),
            now - chrono::Duration::seconds(20) - allowance
        );
        // Progress ahead of the wall clock (a clock gone wrong) holds nothing back
        // and pushes nothing forward.
        let ahead = [mark("a", -300, 1)];
        assert_eq!(
            settled_horizon(now, &ahead, allowance, idle),
            now - allowance
        );
        let lagging = [mark("a", 5, 1), mark("b", 600, 1)];
        assert_eq!(
            settled_horizon(now, &lagging, allowance, idle),
            now - chrono::Duration::seconds(600) - allowance
        );
        let closed = [mark("a", 0, 1), mark("parent", 86_400, 86_400)];
        assert_eq!(
            settled_horizon(now, &closed, allowance, idle),
            now - allowance
        );
    }

    #[test]
    fn the_defaults_are_valid_and_bad_knobs_are_named() {
        SurgeConfig::default().validate().unwrap();
        let bad = SurgeConfig {
            critical_multiple: 2.0,
            ..SurgeConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().knob, "critical_multiple");
        let bad = SurgeConfig {
            max_p_value: 0.0,
            ..SurgeConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().knob, "max_p_value");
    }

    #[test]
    fn the_alert_carries_the_window_and_the_baseline() {
        let firing = SurgeFiring {
            window_start: T0,
            window_end: T0 + 180,
            observed: 61,
            expected: 10.5,
            severity: Severity::Warning,
            alert_id: Alert::surge_id("ORD-SFO", at(T0)),
        };
        let alert = surge_alert("ORD-SFO", &firing, at(T0 + 200));
        assert_eq!(
            (alert.origin.as_str(), alert.destination.as_str()),
            ("ORD", "SFO")
        );
        assert_eq!(alert.detected_at, at(T0 + 180));
        assert_eq!(alert.window_start, Some(at(T0)));
        assert_eq!(alert.baseline, Some(10.5));
        assert_eq!(alert.observed, Some(61));
        assert!(alert.summary.contains("5.8x"), "{}", alert.summary);
    }
}
