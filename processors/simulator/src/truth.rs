//! Ground truth: the seats a correct inventory holds after a set of events, computed
//! without the production fold.
//!
//! The rule is the simplest one that keeps the design's promises, and it does not
//! depend on the order of the events: every booking id counts once, with its first
//! booking event's flight, cabin and seats, unless that booking id was ever cancelled.
//! "First" is the earliest by `(occurred_at, event_id)`, not the first one passed in,
//! so the result is the same for any order (the simulator's retries repeat the
//! booking's contents exactly, so for its events any booking event of an id would do).
//!
//! This deliberately does not call `flyhigh_core::inventory`: it exists to check it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use flyhigh_core::{CabinInventory, CabinKey, Schedule};
use flyhigh_schemas::{Envelope, Payload};
use serde::Serialize;
use uuid::Uuid;

/// Seats sold per flight and cabin after `events`, in any order.
///
/// Every flight and cabin that any booking names is present, with 0 when all of its
/// bookings were cancelled.
pub fn expected_inventory<'a>(
    events: impl IntoIterator<Item = &'a Envelope>,
) -> BTreeMap<CabinKey, i64> {
    let mut truth = ExpectedInventory::new();
    truth.extend(events);
    truth.finish()
}

/// [`expected_inventory`] fed one event at a time, so a caller can check a stream
/// without keeping its events. Memory grows with the distinct bookings, not events.
#[derive(Debug, Clone, Default)]
pub struct ExpectedInventory {
    bookings: HashMap<String, FirstBooking>,
    cancelled: HashSet<String>,
}

#[derive(Debug, Clone)]
struct FirstBooking {
    at: (DateTime<Utc>, Uuid),
    key: CabinKey,
    seats: u8,
}

impl ExpectedInventory {
    /// Nothing seen yet.
    pub fn new() -> ExpectedInventory {
        ExpectedInventory::default()
    }

    /// Takes one event into account; searches change nothing.
    pub fn add(&mut self, event: &Envelope) {
        match &event.payload {
            Payload::Search(_) => {}
            Payload::Booking(b) => {
                let at = (event.occurred_at, event.event_id);
                match self.bookings.get_mut(&b.booking_id) {
                    Some(first) if first.at <= at => {}
                    Some(first) => {
                        *first = FirstBooking {
                            at,
                            key: CabinKey::new(&b.flight_id, b.cabin),
                            seats: b.seats,
                        };
                    }
                    None => {
                        let first = FirstBooking {
                            at,
                            key: CabinKey::new(&b.flight_id, b.cabin),
                            seats: b.seats,
                        };
                        self.bookings.insert(b.booking_id.clone(), first);
                    }
                }
            }
            Payload::Cancellation(c) => {
                if !self.cancelled.contains(&c.booking_id) {
                    self.cancelled.insert(c.booking_id.clone());
                }
            }
        }
    }

    /// Distinct booking ids seen in booking events.
    pub fn bookings(&self) -> usize {
        self.bookings.len()
    }

    /// Distinct booking ids seen in cancellation events (booked or not).
    pub fn cancellations(&self) -> usize {
        self.cancelled.len()
    }

    /// Seats sold per flight and cabin.
    pub fn finish(self) -> BTreeMap<CabinKey, i64> {
        let mut sold = BTreeMap::new();
        for (id, first) in self.bookings {
            let seats = if self.cancelled.contains(&id) {
                0
            } else {
                i64::from(first.seats)
            };
            *sold.entry(first.key).or_insert(0) += seats;
        }
        sold
    }
}

impl<'a> Extend<&'a Envelope> for ExpectedInventory {
    fn extend<I: IntoIterator<Item = &'a Envelope>>(&mut self, events: I) {
        for event in events {
            self.add(event);
        }
    }
}

/// A flight and cabin where the store disagrees with the ground truth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The flight and cabin.
    pub key: CabinKey,
    /// Seats sold according to [`expected_inventory`].
    pub expected: i64,
    /// Seats sold according to the store (0 when it has no row).
    pub stored: i64,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: expected {} sold, store has {}",
            self.key.flight_id, self.key.cabin, self.expected, self.stored
        )
    }
}

/// Every flight and cabin whose stored `sold` differs from the expected one, in key
/// order; empty when the store is right.
///
/// A key missing from the store counts as 0 sold, so a key expected at 0 may be
/// missing; a stored row missing from `expected` must be 0. Rows stored twice for one
/// key are added up (and so show up as a difference).
pub fn compare(expected: &BTreeMap<CabinKey, i64>, stored: &[CabinInventory]) -> Vec<Difference> {
    let mut store: BTreeMap<CabinKey, i64> = BTreeMap::new();
    for row in stored {
        *store
            .entry(CabinKey::new(&row.flight_id, row.cabin))
            .or_insert(0) += row.sold;
    }
    let mut differences = Vec::new();
    for (key, &want) in expected {
        let have = store.get(key).copied().unwrap_or(0);
        if want != have {
            differences.push(Difference {
                key: key.clone(),
                expected: want,
                stored: have,
            });
        }
    }
    for (key, &have) in &store {
        if have != 0 && !expected.contains_key(key) {
            differences.push(Difference {
                key: key.clone(),
                expected: 0,
                stored: have,
            });
        }
    }
    differences.sort_by(|a, b| a.key.cmp(&b.key));
    differences
}

/// A flight and cabin sold beyond its capacity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Oversold {
    /// The flight and cabin.
    pub key: CabinKey,
    /// Seats sold.
    pub sold: i64,
    /// Seats in the cabin.
    pub capacity: u32,
}

/// Every scheduled flight and cabin in `sold` with more seats sold than it has (a
/// cabin the aircraft lacks has capacity 0), in key order.
pub fn oversold(sold: &BTreeMap<CabinKey, i64>, schedule: &Schedule) -> Vec<Oversold> {
    let flights: HashMap<&str, _> = schedule
        .flights
        .iter()
        .map(|f| (f.flight_id.as_str(), &f.capacity))
        .collect();
    sold.iter()
        .filter_map(|(key, &n)| {
            let capacity = flights
                .get(key.flight_id.as_str())?
                .get(&key.cabin)
                .copied()
                .unwrap_or(0);
            (n > i64::from(capacity)).then(|| Oversold {
                key: key.clone(),
                sold: n,
                capacity,
            })
        })
        .collect()
}

/// Every flight and cabin in `sold` whose flight is missing from the schedule.
pub fn unscheduled<'a>(
    sold: &'a BTreeMap<CabinKey, i64>,
    schedule: &Schedule,
) -> Vec<&'a CabinKey> {
    let flights: HashSet<&str> = schedule
        .flights
        .iter()
        .map(|f| f.flight_id.as_str())
        .collect();
    sold.keys()
        .filter(|k| !flights.contains(k.flight_id.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use flyhigh_schemas::{Booking, Cabin, Cancellation, CancellationReason, Money};
    use proptest::prelude::*;

    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_796_083_200_000 + ms).unwrap()
    }

    fn booking(ms: i64, id: &str, flight: &str, cabin: Cabin, seats: u8) -> Envelope {
        Envelope::new(
            "web-app",
            at(ms),
            Payload::Booking(Booking {
                booking_id: id.into(),
                customer_id: "cu-0001".into(),
                flight_id: flight.into(),
                origin: "LHR".into(),
                destination: "JFK".into(),
                cabin,
                seats,
                fare: Money::new("100.00".parse().unwrap(), "GBP"),
            }),
        )
    }

    fn cancellation(ms: i64, id: &str, flight: &str) -> Envelope {
        Envelope::new(
            "ios-app",
            at(ms),
            Payload::Cancellation(Cancellation {
                booking_id: id.into(),
                customer_id: "cu-0001".into(),
                flight_id: flight.into(),
                reason: CancellationReason::CustomerRequest,
                refund: Money::new("0.00".parse().unwrap(), "GBP"),
            }),
        )
    }

    const F1: &str = "FH0400-20261201";
    const F2: &str = "FH0401-20261201";

    fn key(flight: &str, cabin: Cabin) -> CabinKey {
        CabinKey::new(flight, cabin)
    }

    #[test]
    fn bookings_add_seats_per_flight_and_cabin() {
        let events = [
            booking(0, "BK000001", F1, Cabin::Economy, 2),
            booking(1, "BK000002", F1, Cabin::Economy, 3),
            booking(2, "BK000003", F1, Cabin::Business, 1),
            booking(3, "BK000004", F2, Cabin::Economy, 4),
        ];
        let sold = expected_inventory(&events);
        assert_eq!(
            sold,
            BTreeMap::from([
                (key(F1, Cabin::Economy), 5),
                (key(F1, Cabin::Business), 1),
                (key(F2, Cabin::Economy), 4)
            ])
        );
    }

    #[test]
    fn a_duplicate_booking_counts_once() {
        let first = booking(0, "BK000001", F1, Cabin::Economy, 2);
        let mut retry = booking(5, "BK000001", F1, Cabin::Economy, 2);
        assert_ne!(first.event_id, retry.event_id);
        let sold = expected_inventory([&first, &retry, &first]);
        assert_eq!(sold, BTreeMap::from([(key(F1, Cabin::Economy), 2)]));
        // A conflicting re-emission loses to the earliest booking event.
        retry.payload = booking(5, "BK000001", F2, Cabin::First, 9).payload;
        assert_eq!(
            expected_inventory([&retry, &first]),
            BTreeMap::from([(key(F1, Cabin::Economy), 2)])
        );
    }

    #[test]
    fn a_cancellation_before_its_booking_nets_out() {
        let events = [
            cancellation(0, "BK000001", F1),
            booking(1, "BK000001", F1, Cabin::Economy, 2),
            booking(2, "BK000002", F1, Cabin::Economy, 1),
        ];
        assert_eq!(
            expected_inventory(&events),
            BTreeMap::from([(key(F1, Cabin::Economy), 1)])
        );
    }

    #[test]
    fn a_double_cancellation_releases_once() {
        let events = [
            booking(0, "BK000001", F1, Cabin::Economy, 2),
            booking(1, "BK000002", F1, Cabin::Economy, 3),
            cancellation(2, "BK000001", F1),
            cancellation(3, "BK000001", F1),
        ];
        assert_eq!(
            expected_inventory(&events),
            BTreeMap::from([(key(F1, Cabin::Economy), 3)])
        );
    }

    #[test]
    fn a_fully_cancelled_cabin_is_present_at_zero_and_a_lone_cancellation_is_absent() {
        let events = [
            booking(0, "BK000001", F1, Cabin::Economy, 2),
            cancellation(1, "BK000001", F1),
            cancellation(2, "BK000009", F2),
        ];
        let mut truth = ExpectedInventory::new();
        truth.extend(&events);
        assert_eq!((truth.bookings(), truth.cancellations()), (1, 2));
        assert_eq!(
            truth.finish(),
            BTreeMap::from([(key(F1, Cabin::Economy), 0)])
        );
    }

    #[test]
    fn an_unscheduled_flight_is_counted_and_reported() {
        let unscheduled_flight = "FH9123-20261201";
        let events = [
            booking(0, "BK000001", unscheduled_flight, Cabin::Economy, 2),
            booking(1, "BK000002", F1, Cabin::Economy, 1),
        ];
        let sold = expected_inventory(&events);
        assert_eq!(sold[&key(unscheduled_flight, Cabin::Economy)], 2);
        let schedule = crate::network::schedule(
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        );
        assert_eq!(
            unscheduled(&sold, &schedule),
            vec![&key(unscheduled_flight, Cabin::Economy)]
        );
        assert!(oversold(&sold, &schedule).is_empty());
    }

    #[test]
    fn oversold_compares_with_capacity() {
        let schedule = crate::network::schedule(
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        );
        // FH0400 is a 777 with 8 first-class seats; FH0100 an A320 without first.
        let sold = BTreeMap::from([
            (key(F1, Cabin::First), 9),
            (key(F1, Cabin::Business), 48),
            (key("FH0100-20261201", Cabin::First), 1),
        ]);
        let over = oversold(&sold, &schedule);
        assert_eq!(
            over,
            vec![
                Oversold {
                    key: key("FH0100-20261201", Cabin::First),
                    sold: 1,
                    capacity: 0
                },
                Oversold {
                    key: key(F1, Cabin::First),
                    sold: 9,
                    capacity: 8
                },
            ]
        );
    }

    fn row(flight: &str, cabin: Cabin, sold: i64) -> CabinInventory {
        CabinInventory {
            flight_id: flight.into(),
            cabin,
            capacity: Some(100),
            sold,
            schedule: None,
        }
    }

    #[test]
    fn compare_reports_every_disagreement() {
        let expected = BTreeMap::from([
            (key(F1, Cabin::Economy), 5),
            (key(F1, Cabin::Business), 0),
            (key(F2, Cabin::Economy), 3),
            (key(F2, Cabin::Business), 2),
        ]);
        let stored = [
            row(F1, Cabin::Economy, 5),
            // F1 business missing: fine, expected 0.
            row(F2, Cabin::Economy, 4),
            // F2 business missing: counts as 0.
            row(F2, Cabin::First, 0),
            row(F2, Cabin::PremiumEconomy, 1),
        ];
        let diffs = compare(&expected, &stored);
        assert_eq!(
            diffs,
            vec![
                Difference {
                    key: key(F2, Cabin::Economy),
                    expected: 3,
                    stored: 4
                },
                Difference {
                    key: key(F2, Cabin::PremiumEconomy),
                    expected: 0,
                    stored: 1
                },
                Difference {
                    key: key(F2, Cabin::Business),
                    expected: 2,
                    stored: 0
                },
            ]
        );
        assert_eq!(
            diffs[0].to_string(),
            "FH0401-20261201 economy: expected 3 sold, store has 4"
        );
        assert!(
            compare(
                &expected,
                &[
                    row(F1, Cabin::Economy, 5),
                    row(F2, Cabin::Economy, 3),
                    row(F2, Cabin::Business, 2)
                ]
            )
            .is_empty()
        );
    }

    /// Events over a few bookings with every kind of mess: retries, cancellations
    /// before and after, repeated cancellations, cancellations of unknown bookings.
    fn messy_events() -> impl Strategy<Value = Vec<Envelope>> {
        let one = (0u8..6, any::<bool>(), 0i64..1000);
        prop::collection::vec(one, 0..40).prop_map(|specs| {
            specs
                .into_iter()
                .map(|(id, cancel, ms)| {
                    let booking_id = format!("BK00000{id}");
                    let flight = if id % 2 == 0 { F1 } else { F2 };
                    if cancel {
                        cancellation(ms, &booking_id, flight)
                    } else {
                        // Contents depend only on the booking id, as the simulator's
                        // retries do.
                        booking(
                            ms,
                            &booking_id,
                            flight,
                            Cabin::ALL[usize::from(id % 4)],
                            1 + (id * 3) % 9,
                        )
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn expected_inventory_ignores_order(
            (events, shuffled) in messy_events().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle()))
        ) {
            let a = expected_inventory(&events);
            let b = expected_inventory(&shuffled);
            prop_assert_eq!(&a, &b);
            let mut streamed = ExpectedInventory::new();
            for e in shuffled.iter().rev() {
                streamed.add(e);
            }
            prop_assert_eq!(a, streamed.finish());
        }

        #[test]
        fn expected_inventory_ignores_order_even_for_conflicting_retries(
            specs in prop::collection::vec((0u8..4, 0u8..4, 1u8..=9, any::<bool>(), 0i64..50), 0..30),
            seed in any::<u64>(),
        ) {
            let events: Vec<Envelope> = specs
                .iter()
                .map(|&(id, cabin, seats, cancel, ms)| {
                    let booking_id = format!("BK00000{id}");
                    if cancel { cancellation(ms, &booking_id, F1) } else { booking(ms, &booking_id, F2, Cabin::ALL[usize::from(cabin)], seats) }
                })
                .collect();
            let mut reversed = events.clone();
            reversed.reverse();
            let mut rotated = events.clone();
            if !rotated.is_empty() {
                let n = rotated.len();
                rotated.rotate_left((seed % n as u64) as usize);
            }
            let a = expected_inventory(&events);
            prop_assert_eq!(&a, &expected_inventory(&reversed));
            prop_assert_eq!(&a, &expected_inventory(&rotated));
        }
    }
}
