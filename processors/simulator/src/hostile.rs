//! A hostile sample: what real booking apps send in their first week, as NDJSON lines
//! for `flyhigh demo --events-file` (and `flyhigh events hostile`).
//!
//! The events are valid (the contract accepts them) but their times and routes are the
//! clients' claims:
//!
//! - **skewed clocks**: apps whose clock is off by minutes to hours, ahead or behind,
//!   for every event they send;
//! - **far dates**: a few events dated in 2000 and in 2099 (the contract's limits);
//! - **a backlog**: events dated over thousands of hours before the day (a replayed
//!   month of dead letters, a client flushing its queue);
//! - **invented routes**: thousands of searches on made-up `AAA-BBB` pairs;
//! - **invalid lines**: a few lines that are not valid events (bad JSON, a missing
//!   field, an invalid airport code), which a replay must reject by line and field.
//!
//! The events come from a second [`Simulator`] over the same span as the day they join
//! (so bookings and cancellations are on the day's scheduled flights), re-dated and
//! re-routed; everything derives from the seed.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use flyhigh_schemas::{Envelope, Payload};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{ConfigError, SimConfig, Simulator, SurgeConfig};

/// How hostile a sample is.
#[derive(Debug, Clone, PartialEq)]
pub struct HostileConfig {
    /// Seed of the sample (its own events, ids and distortions).
    pub seed: u64,
    /// Events sent by apps with a skewed clock.
    pub skewed: usize,
    /// Largest clock error, ahead or behind.
    pub max_skew: Duration,
    /// Events dated in 2000, and as many in 2099.
    pub far_dated: usize,
    /// Events of the backlog.
    pub backlog: usize,
    /// Hours before the day that the backlog spans.
    pub backlog_hours: u32,
    /// Distinct invented routes.
    pub invented_routes: usize,
    /// Searches over them.
    pub invented_searches: usize,
    /// Lines that are not valid events.
    pub invalid_lines: usize,
}

impl Default for HostileConfig {
    /// 2,000 skewed events (up to 6 hours off), 5 in 2000 and 5 in 2099, a backlog of
    /// 3,000 events over 4,000 hours, 4,000 searches on 2,000 invented routes, 4
    /// invalid lines.
    fn default() -> HostileConfig {
        HostileConfig {
            seed: 666,
            skewed: 2_000,
            max_skew: Duration::hours(6),
            far_dated: 5,
            backlog: 3_000,
            backlog_hours: 4_000,
            invented_routes: 2_000,
            invented_searches: 4_000,
            invalid_lines: 4,
        }
    }
}

/// What a sample holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostileSample {
    /// The lines, in the order a client sent them.
    pub lines: Vec<String>,
    /// Valid events among them.
    pub valid: usize,
    /// Invalid lines among them.
    pub invalid: usize,
}

/// A hostile sample for the day of `day` (its start and span; not its events).
///
/// # Errors
///
/// The day's configuration is invalid.
pub fn hostile_sample(
    day: &SimConfig,
    hostile: &HostileConfig,
) -> Result<HostileSample, ConfigError> {
    let ordinary = hostile.skewed + 2 * hostile.far_dated + hostile.backlog;
    let mut config = SimConfig::new(hostile.seed, ordinary.max(1));
    config.start = day.start;
    config.days = day.days;
    config.surge = SurgeConfig::disabled();
    // Unscheduled bookings are part of the ordinary day already.
    config.unscheduled_rate = 0.0;
    config.sources = ["ios-app", "android-app"].map(String::from).to_vec();
    let events: Vec<Envelope> = Simulator::new(config)?.collect();
    let mut rng = ChaCha8Rng::seed_from_u64(hostile.seed);
    let mut lines = Vec::new();
    let mut valid = 0;
    let push = |lines: &mut Vec<String>, e: &Envelope| {
        lines.push(String::from_utf8_lossy(&e.to_json()).into_owned());
    };

    // Apps with a wrong clock: each of a few sources is off by its own amount.
    let skews: Vec<Duration> = (0..8)
        .map(|_| {
            let minutes = rng.gen_range(1..=hostile.max_skew.num_minutes().max(1));
            Duration::minutes(if rng.gen_bool(0.5) { minutes } else { -minutes })
        })
        .collect();
    let mut events = events.into_iter();
    for (i, mut e) in events.by_ref().take(hostile.skewed).enumerate() {
        let app = i % skews.len();
        e.source = format!("ios-app-{app}");
        let at = e.occurred_at + skews[app];
        redate(&mut e, at);
        push(&mut lines, &e);
        valid += 1;
    }
    // Far dates: the first millisecond of 2000 and the last day of 2099.
    let far = [
        Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single(),
        Utc.with_ymd_and_hms(2099, 12, 31, 12, 0, 0).single(),
    ];
    for (i, mut e) in events.by_ref().take(2 * hostile.far_dated).enumerate() {
        if let Some(t) = far[i % 2] {
            redate(&mut e, t + Duration::seconds(i as i64));
        }
        push(&mut lines, &e);
        valid += 1;
    }
    // The backlog: dated uniformly over the hours before the day, sent now.
    let span = i64::from(hostile.backlog_hours.max(1)) * 3_600_000;
    for mut e in events.by_ref().take(hostile.backlog) {
        let back = Duration::milliseconds(rng.gen_range(1..=span));
        redate(&mut e, day.start - back);
        push(&mut lines, &e);
        valid += 1;
    }
    // Invented routes: pairs of three letters that no airport of the network has
    // (every code starts with Q, which none of the twenty does).
    let routes: Vec<(String, String)> = (0..hostile.invented_routes.max(1))
        .map(|_| {
            let origin = invented_code(&mut rng);
            let mut destination = invented_code(&mut rng);
            while destination == origin {
                destination = invented_code(&mut rng);
            }
            (origin, destination)
        })
        .collect();
    let template = lines
        .iter()
        .filter_map(|l| flyhigh_schemas::decode(l.as_bytes()).ok())
        .find(|e| matches!(e.payload, Payload::Search(_)));
    if let Some(template) = template {
        let span_ms = i64::from(day.days) * 86_400_000;
        for i in 0..hostile.invented_searches {
            let mut e = template.clone();
            let at = day.start + Duration::milliseconds(rng.gen_range(0..span_ms));
            e.event_id = crate::ids::event_id(at.timestamp_millis(), &mut rng);
            redate(&mut e, at);
            if let Payload::Search(s) = &mut e.payload {
                let (o, d) = &routes[i % routes.len()];
                s.origin = o.clone();
                s.destination = d.clone();
                s.session_id = format!("se-hostile{i:08}");
            }
            push(&mut lines, &e);
            valid += 1;
        }
    }
    // Lines that are not valid events, spread through the file.
    let invalid_kinds = [
        "{\"event_type\": \"search\", \"payload\": {".to_string(),
        "{\"event_type\": \"booking\"}".to_string(),
        lines
            .first()
            .map(|l| l.replacen("\"origin\":\"", "\"origin\":\"x", 1))
            .unwrap_or_default(),
        "not json at all".to_string(),
    ];
    let mut invalid = 0;
    for i in 0..hostile.invalid_lines {
        let at = if lines.is_empty() {
            0
        } else {
            (i + 1) * lines.len() / (hostile.invalid_lines + 1)
        };
        lines.insert(at, invalid_kinds[i % invalid_kinds.len()].clone());
        invalid += 1;
    }
    Ok(HostileSample {
        lines,
        valid,
        invalid,
    })
}

/// Moves an event to `at` (to the millisecond); a search's dates move with it, so that
/// it stays valid (its departure is counted from its own day).
fn redate(e: &mut Envelope, at: DateTime<Utc>) {
    let at = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
    let days = at.date_naive().num_days_from_ce() - e.occurred_at.date_naive().num_days_from_ce();
    e.occurred_at = at;
    if let Payload::Search(s) = &mut e.payload {
        let shift = Duration::days(i64::from(days));
        s.departure_date += shift;
        s.return_date = s.return_date.map(|d| d + shift);
    }
}

/// A three-letter code starting with Q (no airport of the network).
fn invented_code(rng: &mut ChaCha8Rng) -> String {
    let mut code = String::from("Q");
    for _ in 0..2 {
        code.push(char::from(b'A' + rng.gen_range(0..26u8)));
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_valid_where_it_says_and_hostile_where_it_should_be() {
        let day = SimConfig::new(42, 1000);
        let small = HostileConfig {
            skewed: 50,
            far_dated: 2,
            backlog: 30,
            invented_routes: 20,
            invented_searches: 40,
            ..HostileConfig::default()
        };
        let sample = hostile_sample(&day, &small).unwrap();
        assert_eq!(sample.lines.len(), sample.valid + sample.invalid);
        assert_eq!(sample.invalid, 4);
        let mut years = std::collections::BTreeSet::new();
        let mut invented = 0;
        let mut valid = 0;
        for line in &sample.lines {
            let Ok(e) = flyhigh_schemas::decode(line.as_bytes()) else {
                continue;
            };
            valid += 1;
            years.insert(e.occurred_at.year());
            if let Payload::Search(s) = &e.payload
                && s.origin.starts_with('Q')
            {
                invented += 1;
            }
        }
        assert_eq!(
            valid, sample.valid,
            "every event line decodes and validates"
        );
        assert!(years.contains(&2000) && years.contains(&2099), "{years:?}");
        assert_eq!(invented, 40);
        // The same seed, the same sample.
        assert_eq!(hostile_sample(&day, &small).unwrap(), sample);
    }
}
