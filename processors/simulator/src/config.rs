//! The simulator's knobs.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};

use crate::network;

/// Seed of the default configuration ([`SimConfig::default`]).
pub const DEFAULT_SEED: u64 = 42;
/// Event count of the default configuration ([`SimConfig::default`]).
pub const DEFAULT_EVENTS: usize = 200_000;
/// Longest simulated span, in days (the traffic curve is tabulated per minute).
pub const MAX_DAYS: u32 = 366;

/// Everything that shapes the simulated traffic. Same configuration, same events.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice, event ids included.
    pub seed: u64,
    /// Events to generate, exactly.
    pub events: usize,
    /// Start of the simulated span (UTC; truncated to the millisecond).
    pub start: DateTime<Utc>,
    /// Simulated days the traffic spans; the events spread over them following the
    /// daily curve.
    pub days: u32,
    /// Share of fresh events of each kind.
    pub mix: EventMix,
    /// A burst of demand on one route.
    pub surge: SurgeConfig,
    /// Share of bookings re-emitted by an app retry (new `event_id`, same booking),
    /// and share of cancellations emitted twice.
    pub duplicate_rate: f64,
    /// Share of cancellations that reach the stream before their booking.
    pub early_cancellation_rate: f64,
    /// Share of bookings made on a flight missing from the schedule.
    pub unscheduled_rate: f64,
    /// Names of the emitting apps (the envelope's `source`). Earlier names are more
    /// common: the `i`-th is picked with weight `1 / (i + 1)`.
    pub sources: Vec<String>,
}

/// Relative weights of the three event kinds among fresh events.
///
/// Retries, repeated cancellations and the bookings of early cancellations come on
/// top, and the surge adds searches and bookings, so the kinds in the output differ
/// from these weights by a percent or so.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventMix {
    /// Searches (default 0.85).
    pub search: f64,
    /// Bookings (default 0.11).
    pub booking: f64,
    /// Cancellations (default 0.04).
    pub cancellation: f64,
}

impl Default for EventMix {
    fn default() -> EventMix {
        EventMix {
            search: 0.85,
            booking: 0.11,
            cancellation: 0.04,
        }
    }
}

/// A surge of demand on one route: for a window of simulated time, its searches and
/// bookings arrive `multiplier` times as fast as usual, and its extra bookings go to
/// the next departures, which sell out and get oversold.
#[derive(Debug, Clone, PartialEq)]
pub struct SurgeConfig {
    /// The route as `ORIGIN-DESTINATION` (one of [`network::ROUTES`]); `None` lets
    /// the seed pick one, more popular routes being likelier.
    pub route: Option<String>,
    /// Where the window starts, as a fraction of the simulated span (default 0.4:
    /// 09:36 UTC on a one-day run, near the late-morning peak).
    pub start_fraction: f64,
    /// Length of the window in simulated time (default 3 hours), cut at the end of the
    /// span.
    pub duration: Duration,
    /// Demand on the route during the window relative to usual (default 8); 1
    /// disables the surge.
    pub multiplier: f64,
}

impl Default for SurgeConfig {
    fn default() -> SurgeConfig {
        SurgeConfig {
            route: None,
            start_fraction: 0.4,
            duration: Duration::hours(3),
            multiplier: 8.0,
        }
    }
}

impl SurgeConfig {
    /// No surge.
    pub fn disabled() -> SurgeConfig {
        SurgeConfig {
            multiplier: 1.0,
            ..SurgeConfig::default()
        }
    }

    /// Whether the configuration asks for a surge at all.
    pub fn is_enabled(&self) -> bool {
        self.multiplier > 1.0
    }
}

impl SimConfig {
    /// The defaults for a seed and an event count: one day from 2026-12-01T00:00Z,
    /// the default mix and surge, 1% duplicates, 2% early cancellations, 0.2%
    /// unscheduled bookings, sources `web-app`, `ios-app`, `android-app`,
    /// `partner-api`.
    pub fn new(seed: u64, events: usize) -> SimConfig {
        SimConfig {
            seed,
            events,
            start: Utc
                .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            days: 1,
            mix: EventMix::default(),
            surge: SurgeConfig::default(),
            duplicate_rate: 0.01,
            early_cancellation_rate: 0.02,
            unscheduled_rate: 0.002,
            sources: ["web-app", "ios-app", "android-app", "partner-api"]
                .map(String::from)
                .to_vec(),
        }
    }

    /// Checks every knob.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.days == 0 || self.days > MAX_DAYS {
            return Err(ConfigError::Days(self.days));
        }
        let last_event =
            self.start + Duration::days(i64::from(self.days)) - Duration::milliseconds(1);
        if self.start.year() < 2000 || last_event.year() >= 2100 {
            return Err(ConfigError::Start(self.start));
        }
        for (knob, value) in [
            ("duplicate_rate", self.duplicate_rate),
            ("early_cancellation_rate", self.early_cancellation_rate),
            ("unscheduled_rate", self.unscheduled_rate),
            ("surge.start_fraction", self.surge.start_fraction),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::Knob {
                    knob,
                    value,
                    expected: "a share between 0 and 1",
                });
            }
        }
        for (knob, value) in [
            ("mix.search", self.mix.search),
            ("mix.booking", self.mix.booking),
            ("mix.cancellation", self.mix.cancellation),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ConfigError::Knob {
                    knob,
                    value,
                    expected: "a finite weight of at least 0",
                });
            }
        }
        if self.mix.search + self.mix.booking + self.mix.cancellation <= 0.0 {
            return Err(ConfigError::Knob {
                knob: "mix",
                value: 0.0,
                expected: "weights that add up to more than 0",
            });
        }
        if !(self.surge.multiplier.is_finite() && self.surge.multiplier >= 1.0) {
            return Err(ConfigError::Knob {
                knob: "surge.multiplier",
                value: self.surge.multiplier,
                expected: "at least 1",
            });
        }
        if self.surge.is_enabled() && self.surge.duration <= Duration::zero() {
            return Err(ConfigError::SurgeDuration(self.surge.duration));
        }
        if let Some(route) = &self.surge.route
            && network::route_index(route).is_none()
        {
            return Err(ConfigError::UnknownRoute(route.clone()));
        }
        if self.sources.is_empty() {
            return Err(ConfigError::NoSources);
        }
        for s in &self.sources {
            let ok = (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !ok {
                return Err(ConfigError::Source(s.clone()));
            }
        }
        Ok(())
    }
}

impl Default for SimConfig {
    /// [`DEFAULT_SEED`] and [`DEFAULT_EVENTS`] with the defaults of [`SimConfig::new`].
    fn default() -> SimConfig {
        SimConfig::new(DEFAULT_SEED, DEFAULT_EVENTS)
    }
}

/// A knob out of range; fix the configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `days` is 0 or above [`MAX_DAYS`].
    #[error("days must be between 1 and {MAX_DAYS}, got {0}")]
    Days(u32),
    /// The span falls outside the years the contract accepts for `occurred_at`.
    #[error("start must keep the simulated span within the years 2000 to 2099, got {0}")]
    Start(DateTime<Utc>),
    /// A rate, fraction, weight or multiplier out of range.
    #[error("{knob} must be {expected}, got {value}")]
    Knob {
        /// The knob's name.
        knob: &'static str,
        /// What it was set to.
        value: f64,
        /// What it must be.
        expected: &'static str,
    },
    /// The surge window has no length.
    #[error("surge.duration must be positive, got {0}")]
    SurgeDuration(Duration),
    /// The surge route is not one the network flies.
    #[error("surge.route must be a route of the network like LHR-JFK, got {0:?}")]
    UnknownRoute(String),
    /// `sources` is empty.
    #[error("sources must name at least one app")]
    NoSources,
    /// A source name the contract rejects.
    #[error("source names must be 1 to 64 lowercase letters, digits, '.', '_' or '-', got {0:?}")]
    Source(String),
}
