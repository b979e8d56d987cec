//! The simulator's promises, checked on its output.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use chrono::{DateTime, Timelike, Utc};
use flyhigh_core::inventory::{InventoryEvent, plan};
use flyhigh_core::{BookingRecord, CabinInventory, CabinKey, Schedule, ScheduledFlight};
use flyhigh_schemas::{Booking, Envelope, EventType, Payload};
use flyhigh_simulator::{
    ConfigError, ExpectedInventory, SimConfig, SimStats, Simulator, SurgeConfig, compare,
    expected_inventory, oversold,
};

/// The default run (seed 42, 200,000 events), generated once per test binary.
struct Run {
    events: Vec<Envelope>,
    schedule: Schedule,
    stats: SimStats,
}

fn default_run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let mut sim = Simulator::new(SimConfig::default()).unwrap();
        let schedule = sim.schedule();
        let events: Vec<Envelope> = sim.by_ref().collect();
        Run {
            events,
            schedule,
            stats: sim.stats().clone(),
        }
    })
}

fn run(config: SimConfig) -> (Vec<Envelope>, Schedule, SimStats) {
    let mut sim = Simulator::new(config).unwrap();
    let schedule = sim.schedule();
    let events = sim.by_ref().collect();
    (events, schedule, sim.stats().clone())
}

fn flights(schedule: &Schedule) -> HashMap<&str, &ScheduledFlight> {
    schedule
        .flights
        .iter()
        .map(|f| (f.flight_id.as_str(), f))
        .collect()
}

fn bookings(events: &[Envelope]) -> impl Iterator<Item = (&Envelope, &Booking)> {
    events.iter().filter_map(|e| match &e.payload {
        Payload::Booking(b) => Some((e, b)),
        _ => None,
    })
}

#[test]
fn the_same_seed_gives_the_same_events_and_schedule() {
    let (a, schedule_a, stats_a) = run(SimConfig::new(7, 20_000));
    let (b, schedule_b, stats_b) = run(SimConfig::new(7, 20_000));
    assert_eq!(a, b);
    assert_eq!(schedule_a, schedule_b);
    assert_eq!(stats_a, stats_b);
}

#[test]
fn a_different_seed_gives_different_events() {
    let (a, _, _) = run(SimConfig::new(7, 2_000));
    let (b, _, _) = run(SimConfig::new(8, 2_000));
    assert_eq!(a.len(), b.len());
    let ids_a: HashSet<_> = a.iter().map(|e| e.event_id).collect();
    assert!(b.iter().all(|e| !ids_a.contains(&e.event_id)));
    let payloads_differ = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.payload != y.payload)
        .count();
    assert!(payloads_differ > 1_900, "{payloads_differ}");
}

#[test]
fn the_count_is_exact() {
    for n in [0, 1, 2, 3, 10, 999, 12_345] {
        let mut sim = Simulator::new(SimConfig::new(n as u64, n)).unwrap();
        assert_eq!(sim.len(), n);
        let mut seen = 0;
        while let Some(_) = sim.next() {
            seen += 1;
            assert_eq!(sim.len(), n - seen);
        }
        assert_eq!(seen, n);
        assert!(sim.next().is_none(), "fused");
        assert_eq!(sim.stats().events, n as u64);
    }
    assert_eq!(default_run().events.len(), 200_000);
}

#[test]
fn events_come_in_time_order() {
    let events = &default_run().events;
    assert!(
        events
            .windows(2)
            .all(|w| w[0].occurred_at <= w[1].occurred_at)
    );
    let start: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    assert!(events[0].occurred_at >= start);
    assert!(events[events.len() - 1].occurred_at < start + chrono::Duration::days(1));
}

#[test]
fn every_event_is_valid() {
    for e in &default_run().events {
        if let Err(errors) = e.validate() {
            panic!("invalid event {e:?}: {errors}");
        }
    }
}

#[test]
fn event_ids_are_unique_v7_and_carry_the_event_time() {
    let events = &default_run().events;
    let ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), events.len());
    for e in events.iter().step_by(97) {
        assert_eq!(e.event_id.get_version_num(), 7);
        let (secs, nanos) = e.event_id.get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs as i64 * 1000 + i64::from(nanos / 1_000_000),
            e.occurred_at.timestamp_millis()
        );
    }
}

#[test]
fn the_mix_is_mostly_searches_then_bookings_then_cancellations() {
    let Run { events, stats, .. } = default_run();
    let n = events.len() as f64;
    let count = |t| events.iter().filter(|e| e.event_type() == t).count() as f64 / n;
    let (search, booking, cancellation) = (
        count(EventType::Search),
        count(EventType::Booking),
        count(EventType::Cancellation),
    );
    assert!((search - 0.85).abs() < 0.015, "searches {search}");
    assert!((booking - 0.11).abs() < 0.01, "bookings {booking}");
    assert!(
        (cancellation - 0.04).abs() < 0.005,
        "cancellations {cancellation}"
    );
    assert_eq!(
        (
            stats.searches as f64 / n,
            stats.bookings as f64 / n,
            stats.cancellations as f64 / n
        ),
        (search, booking, cancellation)
    );
}

#[test]
fn traffic_follows_the_daily_curve() {
    let mut per_hour = [0usize; 24];
    for e in &default_run().events {
        per_hour[e.occurred_at.hour() as usize] += 1;
    }
    assert!(per_hour[10] > 4 * per_hour[3], "{per_hour:?}");
    assert!(per_hour[19] > 4 * per_hour[3], "{per_hour:?}");
    assert!(
        per_hour[19] > per_hour[14] && per_hour[10] > per_hour[14],
        "{per_hour:?}"
    );
}

#[test]
fn the_surge_route_has_markedly_higher_demand_in_the_window() {
    let Run { events, stats, .. } = default_run();
    let route = stats.surge_route.clone().unwrap();
    let (from, to) = stats.surge_window.unwrap();
    assert_eq!(from.to_rfc3339(), "2026-12-01T09:36:00+00:00");
    assert_eq!(to - from, chrono::Duration::hours(3));
    let on_route = |e: &Envelope| match &e.payload {
        Payload::Search(s) => format!("{}-{}", s.origin, s.destination) == route,
        Payload::Booking(b) => format!("{}-{}", b.origin, b.destination) == route,
        Payload::Cancellation(_) => false,
    };
    let inside = |e: &Envelope| e.occurred_at >= from && e.occurred_at < to;
    let (mut route_in, mut route_out, mut all_in, mut all_out) = (0f64, 0f64, 0f64, 0f64);
    for e in events
        .iter()
        .filter(|e| e.event_type() != EventType::Cancellation)
    {
        match (inside(e), on_route(e)) {
            (true, true) => route_in += 1.0,
            (true, false) => all_in += 1.0,
            (false, true) => route_out += 1.0,
            (false, false) => all_out += 1.0,
        }
    }
    assert_eq!(route_in as u64, stats.surge_events);
    // The route's share of demand, inside against outside the window: about the
    // multiplier (8), whatever the time of day.
    let ratio = (route_in / all_in) / (route_out / all_out);
    assert!((6.0..10.0).contains(&ratio), "share ratio {ratio}");
    // And per hour: far above its usual rate.
    let per_hour_in = route_in / 3.0;
    let per_hour_out = route_out / 21.0;
    assert!(
        per_hour_in > 6.0 * per_hour_out,
        "{per_hour_in} vs {per_hour_out}"
    );
}

#[test]
fn the_default_run_oversells_the_surge_route() {
    let Run {
        events,
        schedule,
        stats,
    } = default_run();
    let sold = expected_inventory(events);
    let over = oversold(&sold, schedule);
    let flights = flights(schedule);
    let route = stats.surge_route.as_deref().unwrap();
    let on_surge_route: Vec<_> = over
        .iter()
        .filter(|o| flights[o.key.flight_id.as_str()].route() == route)
        .collect();
    assert!(
        !on_surge_route.is_empty(),
        "no oversold flight on {route}: {over:?}"
    );
    // Oversold, not a rounding error.
    assert!(
        on_surge_route
            .iter()
            .any(|o| o.sold > i64::from(o.capacity) * 5 / 4),
        "{on_surge_route:?}"
    );
}

#[test]
fn the_mess_is_present_and_counted() {
    let Run {
        events,
        schedule,
        stats,
    } = default_run();
    assert!(stats.duplicate_bookings > 50, "{stats:?}");
    assert!(stats.repeated_cancellations > 20, "{stats:?}");
    assert!(stats.early_cancellations > 50, "{stats:?}");
    assert!(stats.unscheduled_bookings > 10, "{stats:?}");

    let flights = flights(schedule);
    let mut booked: HashMap<&str, &Booking> = HashMap::new();
    let mut cancelled: HashSet<&str> = HashSet::new();
    let mut cancelled_first: HashSet<&str> = HashSet::new();
    let (mut duplicates, mut repeats, mut early, mut unscheduled) = (0, 0, 0, 0);
    for e in events {
        match &e.payload {
            Payload::Booking(b) => match booked.get(b.booking_id.as_str()) {
                Some(first) => {
                    assert_eq!(*first, b, "a retry repeats its booking exactly");
                    duplicates += 1;
                }
                None => {
                    booked.insert(&b.booking_id, b);
                    if !flights.contains_key(b.flight_id.as_str()) {
                        unscheduled += 1;
                    }
                }
            },
            Payload::Cancellation(c) => {
                if !cancelled.insert(&c.booking_id) {
                    repeats += 1;
                } else if !booked.contains_key(c.booking_id.as_str()) {
                    early += 1;
                    cancelled_first.insert(&c.booking_id);
                }
            }
            Payload::Search(_) => {}
        }
    }
    assert_eq!(duplicates, stats.duplicate_bookings);
    assert_eq!(repeats, stats.repeated_cancellations);
    assert_eq!(early, stats.early_cancellations);
    assert_eq!(unscheduled, stats.unscheduled_bookings);
    // Every early cancellation's booking does arrive.
    assert!(cancelled_first.iter().all(|id| booked.contains_key(id)));
}

#[test]
fn cancellations_refer_to_bookings() {
    let events = &default_run().events;
    let by_id: HashMap<&str, &Booking> = bookings(events)
        .map(|(_, b)| (b.booking_id.as_str(), b))
        .collect();
    for e in events {
        if let Payload::Cancellation(c) = &e.payload {
            let b = by_id
                .get(c.booking_id.as_str())
                .unwrap_or_else(|| panic!("cancellation of an unknown booking: {c:?}"));
            assert_eq!(
                (&c.flight_id, &c.customer_id),
                (&b.flight_id, &b.customer_id)
            );
            assert_eq!(c.refund.currency, b.fare.currency);
            assert!(c.refund.amount <= b.fare.amount);
        }
    }
}

#[test]
fn bookings_fit_the_schedule() {
    let Run {
        events, schedule, ..
    } = default_run();
    let flights = flights(schedule);
    let mut currencies = HashSet::new();
    let mut small = 0;
    let mut total = 0;
    for (e, b) in bookings(events) {
        total += 1;
        if b.seats <= 4 {
            small += 1;
        }
        assert_eq!(b.fare.amount.scale(), 2, "{b:?}");
        currencies.insert(b.fare.currency.as_str());
        match flights.get(b.flight_id.as_str()) {
            Some(f) => {
                assert_eq!(
                    (f.origin.as_str(), f.destination.as_str()),
                    (b.origin.as_str(), b.destination.as_str())
                );
                assert!(f.capacity.contains_key(&b.cabin), "{b:?} on {f:?}");
                assert!(
                    f.departure > e.occurred_at + chrono::Duration::minutes(59),
                    "{b:?} at {}",
                    e.occurred_at
                );
            }
            None => assert!(b.flight_id.starts_with("FH9"), "{b:?}"),
        }
    }
    assert!(
        small as f64 / total as f64 > 0.95,
        "{small} of {total} bookings have 1-4 seats"
    );
    assert!(currencies.len() >= 6, "{currencies:?}");
}

#[test]
fn booking_ids_are_unique_per_booking_and_customers_recur() {
    let events = &default_run().events;
    let mut seen: HashMap<&str, &Booking> = HashMap::new();
    let mut customers: HashMap<&str, usize> = HashMap::new();
    for (_, b) in bookings(events) {
        let first = *seen.entry(&b.booking_id).or_insert(b);
        assert_eq!(first, b);
        *customers.entry(&b.customer_id).or_default() += 1;
    }
    assert!(customers.values().any(|&n| n > 1));
    assert!(customers.keys().all(|c| c.starts_with("cu-")));
}

#[test]
fn the_incremental_ground_truth_equals_the_batch_one() {
    let events = &default_run().events;
    let mut truth = ExpectedInventory::new();
    for e in events {
        truth.add(e);
    }
    assert_eq!(truth.finish(), expected_inventory(events));
}

/// The production fold, run over the stream in batches against an in-memory store,
/// agrees with the independent ground truth.
#[test]
fn the_core_fold_agrees_with_the_ground_truth() {
    let Run {
        events, schedule, ..
    } = default_run();
    let mut store: HashMap<String, BookingRecord> = HashMap::new();
    let mut counters: BTreeMap<CabinKey, i64> = BTreeMap::new();
    for batch in events.chunks(500) {
        let inventory_events = batch
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.payload {
                Payload::Booking(b) => Some((i, InventoryEvent::Booking(b))),
                Payload::Cancellation(c) => Some((i, InventoryEvent::Cancellation(c))),
                Payload::Search(_) => None,
            });
        let plan = plan(&store, inventory_events);
        for change in plan.changes {
            assert_eq!(
                store.get(&change.record.booking_id).map(|r| r.status),
                change.expected
            );
            if let Some((key, n)) = change.delta {
                *counters.entry(key).or_insert(0) += n;
            }
            store.insert(change.record.booking_id.clone(), change.record);
        }
    }
    let capacities = flights(schedule);
    let stored: Vec<CabinInventory> = counters
        .into_iter()
        .map(|(key, sold)| CabinInventory {
            capacity: capacities
                .get(key.flight_id.as_str())
                .and_then(|f| f.capacity.get(&key.cabin).copied()),
            flight_id: key.flight_id,
            cabin: key.cabin,
            sold,
            schedule: None,
        })
        .collect();
    let differences = compare(&expected_inventory(events), &stored);
    assert!(differences.is_empty(), "{differences:?}");
}

#[test]
fn a_chosen_surge_route_is_used_and_a_disabled_surge_is_absent() {
    let mut config = SimConfig::new(3, 5_000);
    config.surge.route = Some("LHR-JFK".into());
    let (_, _, stats) = run(config);
    assert_eq!(stats.surge_route.as_deref(), Some("LHR-JFK"));
    assert!(stats.surge_events > 0);

    let mut config = SimConfig::new(3, 5_000);
    config.surge = SurgeConfig::disabled();
    let (events, _, stats) = run(config);
    assert_eq!(
        (stats.surge_route, stats.surge_window, stats.surge_events),
        (None, None, 0)
    );
    assert_eq!(events.len(), 5_000);
}

#[test]
fn a_multi_day_run_spreads_over_its_days_and_stays_on_schedule() {
    let mut config = SimConfig::new(11, 30_000);
    config.days = 3;
    config.start = "2026-12-30T00:00:00Z".parse().unwrap();
    let (events, schedule, stats) = run(config);
    let days: BTreeMap<_, usize> = events.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.occurred_at.date_naive()).or_default() += 1;
        m
    });
    assert_eq!(days.len(), 3, "{days:?}");
    assert!(days.values().all(|&n| n > 8_000), "{days:?}");
    let flights = flights(&schedule);
    let missing = bookings(&events)
        .filter(|(_, b)| !flights.contains_key(b.flight_id.as_str()))
        .map(|(_, b)| &b.booking_id);
    assert_eq!(
        missing.collect::<HashSet<_>>().len() as u64,
        stats.unscheduled_bookings
    );
    assert!(events.iter().all(|e| e.validate().is_ok()));
    assert_eq!(
        stats.surge_window.unwrap().0.to_rfc3339(),
        "2026-12-31T04:48:00+00:00"
    );
}

#[test]
fn bad_knobs_are_refused() {
    let refused = |f: fn(&mut SimConfig)| {
        let mut config = SimConfig::new(1, 10);
        f(&mut config);
        Simulator::new(config).err()
    };
    assert_eq!(refused(|c| c.days = 0), Some(ConfigError::Days(0)));
    assert!(matches!(
        refused(|c| c.duplicate_rate = 1.5),
        Some(ConfigError::Knob {
            knob: "duplicate_rate",
            ..
        })
    ));
    assert!(matches!(
        refused(|c| c.unscheduled_rate = f64::NAN),
        Some(ConfigError::Knob { .. })
    ));
    assert!(matches!(
        refused(|c| c.surge.multiplier = 0.5),
        Some(ConfigError::Knob {
            knob: "surge.multiplier",
            ..
        })
    ));
    assert!(matches!(
        refused(|c| c.mix.search = -1.0),
        Some(ConfigError::Knob { .. })
    ));
    assert_eq!(
        refused(|c| c.surge.route = Some("LHR-XXX".into())),
        Some(ConfigError::UnknownRoute("LHR-XXX".into()))
    );
    assert_eq!(refused(|c| c.sources.clear()), Some(ConfigError::NoSources));
    assert_eq!(
        refused(|c| c.sources = vec!["Web App".into()]),
        Some(ConfigError::Source("Web App".into()))
    );
    assert!(matches!(
        refused(|c| {
            c.start = "2099-12-31T00:00:00Z".parse().unwrap();
            c.days = 2;
        }),
        Some(ConfigError::Start(_))
    ));
    assert!(matches!(
        refused(|c| c.start = "1999-12-31T23:00:00Z".parse().unwrap()),
        Some(ConfigError::Start(_))
    ));
    assert_eq!(refused(|_| {}), None);
}
