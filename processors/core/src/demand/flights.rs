//! Flight alerts: `near_sold_out`, `sold_out` and `oversold`, once per crossing.
//!
//! They are judged from the inventory's *committed* state of a cabin
//! ([`CabinInventory`]), after the inventory processor has stored a batch; the
//! inventory itself is never clamped or held back to produce them.
//!
//! Each rule is a latch per flight and cabin ([`RuleState`]): it fires when the cabin
//! crosses its level (load factor ≥ [`FlightAlertConfig::near_sold_out`]; every seat
//! sold; more seats sold than the cabin has) and re-arms only once the load factor
//! has fallen [`FlightAlertConfig::rearm_margin`] below the level (hysteresis), so a
//! cabin that hovers at its level raises one alert, not one per booking. The n-th
//! crossing has the id `RULE:FLIGHT:CABIN:n`, so judging the same state twice (a
//! redelivered batch, two consumers) computes the same alert.
//!
//! A cabin jumping from half full to oversold in one batch crosses all three
//! levels: it raises all three alerts, so that a subscriber of any one rule hears of
//! it.

use chrono::{DateTime, SecondsFormat, Utc};
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, Severity};
use serde::{Deserialize, Serialize};

use crate::inventory::CabinInventory;

/// The flight rules, in order of severity.
pub const FLIGHT_RULES: [AlertRule; 3] = [
    AlertRule::NearSoldOut,
    AlertRule::SoldOut,
    AlertRule::Oversold,
];

/// The knobs of the flight rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FlightAlertConfig {
    /// Load factor from which a cabin is nearly sold out (0.9).
    pub near_sold_out: f64,
    /// How far below a level the load factor must fall to re-arm its rule (0.05).
    pub rearm_margin: f64,
}

impl Default for FlightAlertConfig {
    fn default() -> FlightAlertConfig {
        FlightAlertConfig {
            near_sold_out: 0.9,
            rearm_margin: 0.05,
        }
    }
}

impl FlightAlertConfig {
    /// Checks the knobs: `0 < near_sold_out ≤ 1`, `0 ≤ rearm_margin < near_sold_out`.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.near_sold_out > 0.0 && self.near_sold_out <= 1.0) {
            return Err(format!(
                "near_sold_out must be a load factor in (0, 1], got {}",
                self.near_sold_out
            ));
        }
        if !(self.rearm_margin >= 0.0 && self.rearm_margin < self.near_sold_out) {
            return Err(format!(
                "rearm_margin must be at least 0 and below near_sold_out, got {}",
                self.rearm_margin
            ));
        }
        Ok(())
    }
}

/// One rule's latch for one cabin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    /// Times the rule has fired for the cabin (the last alert's number).
    pub crossings: u32,
    /// Fired and not re-armed yet.
    pub fired: bool,
}

/// The latches of one flight and cabin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CabinAlertState {
    /// Bumped by every save; a save is conditional on the version read.
    pub version: u64,
    /// `near_sold_out`.
    pub near_sold_out: RuleState,
    /// `sold_out`.
    pub sold_out: RuleState,
    /// `oversold`.
    pub oversold: RuleState,
}

impl CabinAlertState {
    /// The latch of `rule` (flight rules only; a surge has none here).
    pub fn rule(&mut self, rule: AlertRule) -> Option<&mut RuleState> {
        match rule {
            AlertRule::NearSoldOut => Some(&mut self.near_sold_out),
            AlertRule::SoldOut => Some(&mut self.sold_out),
            AlertRule::Oversold => Some(&mut self.oversold),
            AlertRule::RouteSurge => None,
        }
    }
}

/// A rule that fired: its number for this cabin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// The rule.
    pub rule: AlertRule,
    /// The crossing's number, from 1.
    pub crossing: u32,
}

/// Moves the latches of `cabin` to its committed state; returns the new state (the
/// same when nothing changed) and the rules that fired. A cabin without a capacity
/// (unscheduled) or with no seats raises nothing.
pub fn observe(
    config: &FlightAlertConfig,
    state: &CabinAlertState,
    cabin: &CabinInventory,
) -> (CabinAlertState, Vec<Crossing>) {
    let mut next = *state;
    let mut crossings = Vec::new();
    let (Some(capacity), Some(load)) = (cabin.capacity, cabin.load_factor()) else {
        return (next, crossings);
    };
    let capacity = i64::from(capacity);
    for rule in FLIGHT_RULES {
        let (above, level) = match rule {
            AlertRule::NearSoldOut => (load >= config.near_sold_out, config.near_sold_out),
            AlertRule::SoldOut => (cabin.sold >= capacity, 1.0),
            _ => (cabin.sold > capacity, 1.0),
        };
        let Some(latch) = next.rule(rule) else {
            continue;
        };
        if !latch.fired && above {
            latch.fired = true;
            latch.crossings += 1;
            crossings.push(Crossing {
                rule,
                crossing: latch.crossings,
            });
        } else if latch.fired && !above && load < level - config.rearm_margin {
            latch.fired = false;
        }
    }
    (next, crossings)
}

/// The severity of a flight rule: `oversold` is critical, the others warnings.
pub fn severity(rule: AlertRule) -> Severity {
    match rule {
        AlertRule::Oversold => Severity::Critical,
        _ => Severity::Warning,
    }
}

/// The alert of a crossing of `cabin`, detected at event time `detected_at`.
/// `None` for a cabin outside the schedule (it has no route or capacity).
pub fn flight_alert(
    crossing: Crossing,
    cabin: &CabinInventory,
    detected_at: DateTime<Utc>,
    raised_at: DateTime<Utc>,
) -> Option<Alert> {
    let schedule = cabin.schedule.as_ref()?;
    let capacity = cabin.capacity?;
    let (detected_at, raised_at) = (super::to_millis(detected_at), super::to_millis(raised_at));
    let what = match crossing.rule {
        AlertRule::NearSoldOut => format!(
            "at or past the near-sold-out load factor, {:.0}% full",
            cabin.load_factor().unwrap_or(0.0) * 100.0
        ),
        AlertRule::SoldOut => "sold out".to_string(),
        _ => format!("oversold by {}", cabin.oversold()),
    };
    Some(Alert {
        alert_id: Alert::flight_id_for(
            crossing.rule,
            &cabin.flight_id,
            cabin.cabin,
            crossing.crossing,
        ),
        alert_version: ALERT_VERSION,
        rule: crossing.rule,
        severity: severity(crossing.rule),
        route: schedule.route(),
        origin: schedule.origin.clone(),
        destination: schedule.destination.clone(),
        flight_id: Some(cabin.flight_id.clone()),
        cabin: Some(cabin.cabin),
        window_start: None,
        window_end: None,
        observed: None,
        baseline: None,
        capacity: Some(capacity),
        sold: Some(cabin.sold),
        detected_at,
        raised_at,
        summary: format!(
            "{} {} ({}, departs {}) {what}: {} of {capacity} seats sold",
            cabin.flight_id,
            cabin.cabin.as_str(),
            schedule.route(),
            schedule
                .departure
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            cabin.sold
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::FlightSchedule;
    use flyhigh_schemas::Cabin;

    fn cabin(sold: i64) -> CabinInventory {
        CabinInventory {
            flight_id: "FH0310-20261202".into(),
            cabin: Cabin::Economy,
            capacity: Some(100),
            sold,
            schedule: Some(FlightSchedule {
                origin: "ORD".into(),
                destination: "SFO".into(),
                departure: "2026-12-02T07:00:00Z".parse().unwrap(),
            }),
        }
    }

    /// Walks `sold` through `path`, returning the alerts' ids in order.
    fn walk(path: &[i64]) -> Vec<String> {
        let config = FlightAlertConfig::default();
        let mut state = CabinAlertState::default();
        let mut ids = Vec::new();
        for &sold in path {
            let c = cabin(sold);
            let (next, crossings) = observe(&config, &state, &c);
            state = next;
            for x in crossings {
                ids.push(
                    flight_alert(x, &c, Utc::now(), Utc::now())
                        .unwrap()
                        .alert_id,
                );
            }
        }
        ids
    }

    #[test]
    fn each_level_fires_once_per_crossing() {
        assert_eq!(
            walk(&[10, 89, 90, 91, 95, 99, 100, 100, 101, 103]),
            [
                "near_sold_out:FH0310-20261202:economy:1",
                "sold_out:FH0310-20261202:economy:1",
                "oversold:FH0310-20261202:economy:1",
            ]
        );
    }

    #[test]
    fn a_cabin_hovering_at_a_level_fires_once_and_re_arms_only_below_the_margin() {
        // Around 90%: dips to 86-89 do not re-arm; 84 does.
        let ids = walk(&[90, 89, 90, 86, 91, 84, 90]);
        assert_eq!(
            ids,
            [
                "near_sold_out:FH0310-20261202:economy:1",
                "near_sold_out:FH0310-20261202:economy:2",
            ]
        );
        // Oversold, back to sold out, oversold again: one alert; below 95% re-arms.
        let ids = walk(&[101, 100, 101, 94, 101]);
        let oversold: Vec<_> = ids.iter().filter(|i| i.starts_with("oversold")).collect();
        assert_eq!(oversold.len(), 2, "{ids:?}");
    }

    #[test]
    fn a_jump_past_every_level_raises_every_alert_at_once() {
        let ids = walk(&[50, 120]);
        assert_eq!(ids.len(), 3, "{ids:?}");
    }

    #[test]
    fn unscheduled_cabins_raise_nothing() {
        let config = FlightAlertConfig::default();
        let mut c = cabin(500);
        c.capacity = None;
        c.schedule = None;
        let (state, crossings) = observe(&config, &CabinAlertState::default(), &c);
        assert!(crossings.is_empty());
        assert_eq!(state, CabinAlertState::default());
    }

    #[test]
    fn alerts_say_what_crossed() {
        let c = cabin(103);
        let a = flight_alert(
            Crossing {
                rule: AlertRule::Oversold,
                crossing: 1,
            },
            &c,
            Utc::now(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!((a.capacity, a.sold), (Some(100), Some(103)));
        assert_eq!(a.route, "ORD-SFO");
        assert!(a.summary.contains("oversold by 3"), "{}", a.summary);
        assert!(
            FlightAlertConfig {
                near_sold_out: 1.5,
                rearm_margin: 0.0
            }
            .validate()
            .is_err()
        );
    }
}
