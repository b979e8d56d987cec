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
//! A cabin jumping from half full to oversold in one event crosses all three levels:
//! it raises all three alerts, so that a subscriber of any one rule hears of it.
//!
//! # Event by event, whatever the batching
//!
//! A cabin is judged at every event that moved its seats, in stream order
//! ([`judge_cabin`]), not once per batch: a cabin oversold by one booking and brought
//! back by the next cancellation raises `oversold` (and its clearance) whether the two
//! events came in one batch of 500 or in two of 37. Which event moved seats is read
//! from the booking records ([`crate::inventory::seat_effect`]), so a retried or
//! redelivered batch, whose events are no-ops for the inventory, still knows their
//! steps; the latches remember the position of the last event judged
//! ([`CabinAlertState::mark`]), so no event is judged twice. The seats sold before
//! the first step are the committed count minus the steps not judged yet. So the
//! alert ids depend only on the events, for any cut, bisect, retry or redelivery.
//!
//! # Cleared
//!
//! When a cabin falls back below a level it has an alert for, the alert is *cleared*:
//! a notice with status `cleared` and id `<alert id>:cleared`
//! ([`flyhigh_schemas::AlertStatus`]), at the point where the rule re-arms. For
//! `near_sold_out` and `sold_out` that is [`FlightAlertConfig::rearm_margin`] below the
//! level (a cabin that hovers raises one alert and one clearance, not one per booking);
//! `oversold` clears as soon as no passenger is over capacity (sold ≤ capacity): an
//! oversold cabin is a fact about passengers without a seat, and a new one later is a
//! new alert.

use chrono::{DateTime, SecondsFormat, Utc};
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, AlertStatus, Severity};
use serde::{Deserialize, Serialize};

use crate::inventory::CabinInventory;
use crate::records::Position;

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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CabinAlertState {
    /// Bumped by every save; a save is conditional on the version read.
    pub version: u64,
    /// `near_sold_out`.
    pub near_sold_out: RuleState,
    /// `sold_out`.
    pub sold_out: RuleState,
    /// `oversold`.
    pub oversold: RuleState,
    /// Position of the last event judged: events at or below it are never judged
    /// again. `None` before the first (and in latches saved before marks were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Position>,
    /// Seats sold right after the event at `mark`: where the next batch's walk starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sold: Option<i64>,
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

/// A rule that fired, or whose condition ended: its number for this cabin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// The rule.
    pub rule: AlertRule,
    /// The crossing's number, from 1.
    pub crossing: u32,
    /// `Raised` when the cabin crossed the level, `Cleared` when it fell back below.
    pub status: AlertStatus,
}

/// Moves the latches of `cabin` to its committed state; returns the new state (the
/// same when nothing changed) and the rules that fired. A cabin without a capacity
/// (unscheduled) or with no seats raises nothing.
pub fn observe(
    config: &FlightAlertConfig,
    state: &CabinAlertState,
    cabin: &CabinInventory,
) -> (CabinAlertState, Vec<Crossing>) {
    let mut next = state.clone();
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
        // Where the rule re-arms, and its alert is cleared (see the module docs).
        let rearmed = match rule {
            AlertRule::Oversold => !above,
            _ => !above && load < level - config.rearm_margin,
        };
        if !latch.fired && above {
            latch.fired = true;
            latch.crossings += 1;
            crossings.push(Crossing {
                rule,
                crossing: latch.crossings,
                status: AlertStatus::Raised,
            });
        } else if latch.fired && rearmed {
            latch.fired = false;
            crossings.push(Crossing {
                rule,
                crossing: latch.crossings,
                status: AlertStatus::Cleared,
            });
        }
    }
    // One step moves the cabin one way, so it only raises or only clears. Raised in
    // order of severity; cleared from the highest level down (`oversold` ends before
    // `sold_out`).
    if crossings
        .first()
        .is_some_and(|c| c.status == AlertStatus::Cleared)
    {
        crossings.reverse();
    }
    (next, crossings)
}

/// One event that moved a cabin's seats, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatStep {
    /// Where the event sits in its shard.
    pub position: Position,
    /// Seats it added (negative: released).
    pub delta: i64,
    /// Its event time: the `detected_at` of the alerts it raises.
    pub occurred_at: DateTime<Utc>,
    /// Stored by this delivery (not found stored already, as a redelivery finds it).
    /// A fresh step at or below the mark was applied out of stream order (a dead
    /// letter replayed under its original position): it is not judged, but counted
    /// into the seats sold.
    pub fresh: bool,
}

/// What [`judge_cabin`] found at one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// The rule that fired or cleared.
    pub crossing: Crossing,
    /// The cabin as it was right after the step.
    pub cabin: CabinInventory,
    /// The step's event time.
    pub detected_at: DateTime<Utc>,
}

/// Judges the steps of one cabin, event by event, from its latches `state`.
///
/// `steps` are every step of the batch on the cabin whose effect is stored, in stream
/// order; only those above `state.mark` and below `judge_before` (the first event of
/// the batch whose effect may not be stored) are judged. The walk starts from the
/// seats sold at the mark ([`CabinAlertState::sold`]), so it depends on the events
/// alone: not on the committed count, which a retry with a shorter batch finds
/// holding the effects of events past the batch's end. A cabin judged for the first
/// time starts from `committed` (the cabin as stored now) minus its steps above the
/// mark. Returns the new latches (the mark and the seats sold moved to the last step
/// judged) and what crossed, in order.
pub fn judge_cabin(
    config: &FlightAlertConfig,
    state: &CabinAlertState,
    committed: &CabinInventory,
    steps: &[SeatStep],
    judge_before: Option<&Position>,
) -> (CabinAlertState, Vec<Judged>) {
    let above_mark: Vec<&SeatStep> = steps
        .iter()
        .filter(|s| state.mark.as_ref().is_none_or(|m| s.position > *m))
        .collect();
    let mut sold = match (&state.mark, state.sold) {
        (Some(mark), Some(sold)) => {
            let replayed: i64 = steps
                .iter()
                .filter(|s| s.fresh && s.position <= *mark)
                .map(|s| s.delta)
                .sum();
            sold + replayed
        }
        _ => committed.sold - above_mark.iter().map(|s| s.delta).sum::<i64>(),
    };
    let mut next = state.clone();
    if state.mark.is_some() {
        next.sold = Some(sold);
    }
    let mut found = Vec::new();
    for step in above_mark {
        if judge_before.is_some_and(|b| step.position >= *b) {
            break;
        }
        sold += step.delta;
        let cabin = CabinInventory {
            sold,
            ..committed.clone()
        };
        let (moved, crossings) = observe(config, &next, &cabin);
        next = moved;
        next.mark = Some(step.position.clone());
        next.sold = Some(sold);
        found.extend(crossings.into_iter().map(|crossing| Judged {
            crossing,
            cabin: cabin.clone(),
            detected_at: step.occurred_at,
        }));
    }
    (next, found)
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
    let percent = cabin.load_factor().unwrap_or(0.0) * 100.0;
    let what = match (crossing.status, crossing.rule) {
        (AlertStatus::Raised, AlertRule::NearSoldOut) => {
            format!("at or past the near-sold-out load factor, {percent:.0}% full")
        }
        (AlertStatus::Raised, AlertRule::SoldOut) => "sold out".to_string(),
        (AlertStatus::Raised, _) => format!("oversold by {}", cabin.oversold()),
        (AlertStatus::Cleared, AlertRule::NearSoldOut) => {
            format!("no longer nearly sold out, {percent:.0}% full")
        }
        (AlertStatus::Cleared, AlertRule::SoldOut) => {
            format!("no longer sold out, {percent:.0}% full")
        }
        (AlertStatus::Cleared, _) => "no longer oversold".to_string(),
    };
    let raised_id = Alert::flight_id_for(
        crossing.rule,
        &cabin.flight_id,
        cabin.cabin,
        crossing.crossing,
    );
    let (alert_id, clears) = match crossing.status {
        AlertStatus::Raised => (raised_id, None),
        AlertStatus::Cleared => (Alert::cleared_id(&raised_id), Some(raised_id)),
    };
    Some(Alert {
        alert_id,
        alert_version: ALERT_VERSION,
        status: crossing.status,
        clears,
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
    fn a_cabin_hovering_at_a_level_fires_once_and_re_arms_and_clears_only_below_the_margin() {
        // Around 90%: dips to 86-89 neither re-arm nor clear; 84 does both.
        let ids = walk(&[90, 89, 90, 86, 91, 84, 90]);
        assert_eq!(
            ids,
            [
                "near_sold_out:FH0310-20261202:economy:1",
                "near_sold_out:FH0310-20261202:economy:1:cleared",
                "near_sold_out:FH0310-20261202:economy:2",
            ]
        );
    }

    #[test]
    fn oversold_clears_as_soon_as_no_passenger_is_over_capacity() {
        // Oversold, back to capacity (cleared: still sold out), oversold again (a new
        // alert: new passengers without a seat), then below the sold-out margin.
        let ids = walk(&[101, 100, 101, 94]);
        assert_eq!(
            ids,
            [
                "near_sold_out:FH0310-20261202:economy:1",
                "sold_out:FH0310-20261202:economy:1",
                "oversold:FH0310-20261202:economy:1",
                "oversold:FH0310-20261202:economy:1:cleared",
                "oversold:FH0310-20261202:economy:2",
                "oversold:FH0310-20261202:economy:2:cleared",
                "sold_out:FH0310-20261202:economy:1:cleared",
            ]
        );
    }

    #[test]
    fn a_cleared_notice_names_the_alert_it_clears_and_keeps_its_filters() {
        let c = cabin(99);
        let a = flight_alert(
            Crossing {
                rule: AlertRule::Oversold,
                crossing: 3,
                status: AlertStatus::Cleared,
            },
            &c,
            Utc::now(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(a.alert_id, "oversold:FH0310-20261202:economy:3:cleared");
        assert_eq!(
            a.clears.as_deref(),
            Some("oversold:FH0310-20261202:economy:3")
        );
        assert_eq!(
            (a.status, a.severity),
            (AlertStatus::Cleared, Severity::Critical)
        );
        assert!(a.summary.contains("no longer oversold"), "{}", a.summary);
        assert!(
            a.message_attributes()
                .contains(&("status", "cleared".into()))
        );
    }

    fn step(seq: u64, delta: i64) -> SeatStep {
        SeatStep {
            position: Position::new(&seq.to_string(), None),
            delta,
            occurred_at: Utc::now(),
            fresh: true,
        }
    }

    /// The ids `judge_cabin` raises for `steps` delivered in batches of `sizes`
    /// (cycled), each batch judged from the latches the previous one saved, the
    /// committed count being the sum of every step up to the batch's end.
    fn judged_in_batches(start: i64, steps: &[SeatStep], sizes: &[usize]) -> Vec<String> {
        let config = FlightAlertConfig::default();
        let mut state = CabinAlertState::default();
        let mut ids = Vec::new();
        let mut done = 0;
        for &size in sizes.iter().cycle() {
            if done >= steps.len() {
                break;
            }
            let end = (done + size.max(1)).min(steps.len());
            let committed = cabin(start + steps[..end].iter().map(|s| s.delta).sum::<i64>());
            let (next, found) = judge_cabin(&config, &state, &committed, &steps[done..end], None);
            state = next;
            ids.extend(found.into_iter().map(|j| {
                flight_alert(j.crossing, &j.cabin, j.detected_at, Utc::now())
                    .unwrap()
                    .alert_id
            }));
            done = end;
        }
        ids
    }

    #[test]
    fn regression_an_oversold_cabin_brought_back_inside_one_batch_is_seen_at_any_batch_size() {
        // 98 sold; a booking oversells by one, a cancellation brings it back, within
        // what one batch of 500 holds: judged once per batch, the peak was never seen.
        let steps = [step(10, 1), step(11, 2), step(12, -2), step(13, -1)];
        let one_by_one = judged_in_batches(98, &steps, &[1]);
        assert!(
            one_by_one.contains(&"oversold:FH0310-20261202:economy:1".to_string()),
            "{one_by_one:?}"
        );
        for sizes in [&[500][..], &[2], &[3, 1], &[1, 3]] {
            assert_eq!(
                judged_in_batches(98, &steps, sizes),
                one_by_one,
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn steps_at_or_below_the_mark_are_not_judged_again_and_count_in_the_base() {
        let config = FlightAlertConfig::default();
        let steps = [step(1, 95), step(2, 10)];
        let committed = cabin(105);
        let (state, found) = judge_cabin(
            &config,
            &CabinAlertState::default(),
            &committed,
            &steps,
            None,
        );
        assert_eq!(found.len(), 3);
        assert_eq!(state.mark, Some(Position::new("2", None)));
        // The same batch again (a redelivery, which finds the steps stored): nothing.
        let stored: Vec<SeatStep> = steps
            .iter()
            .map(|s| SeatStep {
                fresh: false,
                ..s.clone()
            })
            .collect();
        let (again, found) = judge_cabin(&config, &state, &committed, &stored, None);
        assert!(found.is_empty());
        assert_eq!(again, state);
        // A retry cut before the second step judges only the first.
        let (cut, found) = judge_cabin(
            &config,
            &CabinAlertState::default(),
            &committed,
            &steps,
            Some(&Position::new("2", None)),
        );
        assert_eq!(cut.mark, Some(Position::new("1", None)));
        assert_eq!(found.len(), 1, "95 of 100: near sold out only");
    }

    #[test]
    fn a_step_replayed_below_the_mark_is_counted_not_judged_and_a_redelivery_is_neither() {
        let config = FlightAlertConfig::default();
        let judged = CabinAlertState {
            mark: Some(step(50, 0).position),
            sold: Some(80),
            ..CabinAlertState::default()
        };
        // A dead letter applied now under its original position 7: 85 sold from now on.
        let replayed = step(7, 5);
        let (next, found) = judge_cabin(
            &config,
            &judged,
            &cabin(85),
            std::slice::from_ref(&replayed),
            None,
        );
        assert!(found.is_empty());
        assert_eq!(
            (next.mark.clone(), next.sold),
            (judged.mark.clone(), Some(85))
        );
        // The same step found stored already (a redelivery) changes nothing.
        let again = SeatStep {
            fresh: false,
            ..replayed
        };
        let (same, _) = judge_cabin(&config, &next, &cabin(85), &[again], None);
        assert_eq!(same, next);
        // The next step walks from 85: 91 of 100 is nearly sold out.
        let (_, found) = judge_cabin(&config, &next, &cabin(91), &[step(51, 6)], None);
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn regression_a_retry_shorter_than_the_batch_that_committed_starts_from_the_mark() {
        // A cabin judged up to step 9 at 80 sold. A batch of four steps commits
        // 81 → 101 → 81 → 80 and its latch save fails after the first step; the retry
        // holds only the second step, while the committed count (80) already holds
        // all four. Started from the committed count minus the batch's steps, the walk
        // began at 60 and never saw the cabin oversold.
        let config = FlightAlertConfig::default();
        let judged = CabinAlertState {
            mark: Some(step(9, 0).position),
            sold: Some(80),
            ..CabinAlertState::default()
        };
        let steps = [step(10, 1), step(11, 20), step(12, -20), step(13, -1)];
        let committed = cabin(80);
        let (after_first, found) = judge_cabin(&config, &judged, &committed, &steps[..1], None);
        assert!(found.is_empty());
        assert_eq!(
            (after_first.mark.clone(), after_first.sold),
            (Some(step(10, 0).position), Some(81))
        );
        let (_, found) = judge_cabin(&config, &after_first, &committed, &steps[1..2], None);
        let ids: Vec<_> = found
            .iter()
            .map(|j| (j.crossing.rule, j.crossing.status))
            .collect();
        assert_eq!(
            ids,
            [
                (AlertRule::NearSoldOut, AlertStatus::Raised),
                (AlertRule::SoldOut, AlertStatus::Raised),
                (AlertRule::Oversold, AlertStatus::Raised)
            ],
            "101 of 100 after the second step"
        );
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
                status: AlertStatus::Raised,
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
