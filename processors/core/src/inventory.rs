//! The seat-inventory fold.
//!
//! Each booking is a small state machine keyed by `booking_id`, and inventory
//! counters change only on its transitions. That one rule gives every promise of the
//! design:
//!
//! | event \ state  | absent            | booked            | cancel pending | cancelled |
//! |----------------|-------------------|-------------------|----------------|-----------|
//! | booking        | booked, +seats    | no-op (duplicate) | cancelled, ±0  | no-op     |
//! | cancellation   | cancel pending    | cancelled, −seats | no-op          | no-op     |
//!
//! - an event delivered twice is a no-op the second time;
//! - the same booking emitted twice (new `event_id`, same `booking_id`) is a no-op;
//! - a booking is cancelled at most once;
//! - a cancellation that arrives first leaves a *cancel pending* tombstone, and the
//!   booking nets out against it when it arrives;
//! - counters are never clamped: `sold` may exceed capacity, which is reported as
//!   oversold, and a flight missing from the schedule is still counted (unscheduled).
//!
//! A batch becomes a [`Plan`]: per booking, one conditional write from the state the
//! store holds to the folded state, and per flight and cabin one aggregated counter
//! change. [`pack`] groups them into store transactions of at most
//! [`MAX_TRANSACTION_ITEMS`], so a flight with 1,000 bookings in one batch costs
//! `ceil(1000 / 99)` writes on its counter item, not 1,000.
//!
//! A second booking event with a known `booking_id` but another flight, cabin or
//! seat count changes nothing (the first one is the booking) and is reported in
//! [`Plan::changed_duplicates`]: it is a producer bug an operator must see.
//!
//! # How long a booking is remembered
//!
//! Exactly-once rests on the booking records, so they cannot be kept forever nor
//! forgotten while an event about them can still arrive. The rule
//! ([`booking_expiry`], [`within_horizon`]): a booking's record expires
//! [`BOOKING_RETENTION_DAYS`] after the end of its flight's departure date (the date
//! is part of the flight id), and a booking event on a flight whose records may
//! already be forgotten, from [`HORIZON_SAFETY_DAYS`] before that expiry, is never
//! applied: the handler sets it aside, counted and dead-lettered. The second half is
//! what makes the rule hold whatever the source of the event (a Kinesis retry, a
//! replay of the whole retention, a replay from the archive): a record cannot be
//! deleted before its expiry, and no booking can be counted after it. Cancellations
//! need no such check: one that meets a forgotten record leaves a tombstone and moves
//! no seat.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use flyhigh_schemas::{Booking, Cabin, Cancellation};
use serde::{Deserialize, Serialize};

use crate::records::Position;

/// Days a booking's record is kept after the end of its flight's departure date.
///
/// 400: Kinesis retains records for at most 365 days, and bookings are made before
/// departure, so a redelivery from the stream meets a live record; the 35 days on top
/// leave room for cancellations and refunds filed after departure.
pub const BOOKING_RETENTION_DAYS: u64 = 400;

/// Events stop being applied this many days before their flight's records expire, so
/// that clock skew between the handler and the store's expiry can never let an event
/// meet a deleted record.
pub const HORIZON_SAFETY_DAYS: u64 = 2;

/// The departure date a flight id names: `FH0123-20261201` departs on 2026-12-01.
pub fn departure_date(flight_id: &str) -> Option<NaiveDate> {
    let (_, date) = flight_id.rsplit_once('-')?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y%m%d").ok()
}

/// When the store may forget the records of bookings on this flight:
/// [`BOOKING_RETENTION_DAYS`] after the end (UTC) of its departure date. `None` for a
/// flight id without a date (validation rejects those; such records never expire).
pub fn booking_expiry(flight_id: &str) -> Option<DateTime<Utc>> {
    departure_date(flight_id)?
        .checked_add_days(Days::new(BOOKING_RETENTION_DAYS + 1))
        .map(|day| day.and_time(NaiveTime::MIN).and_utc())
}

/// Whether an event on this flight may still be applied at `now`: false from
/// [`HORIZON_SAFETY_DAYS`] before [`booking_expiry`], when applying it could meet a
/// forgotten booking and count it twice.
pub fn within_horizon(flight_id: &str, now: DateTime<Utc>) -> bool {
    match booking_expiry(flight_id) {
        None => true,
        Some(expiry) => now
            .checked_add_days(Days::new(HORIZON_SAFETY_DAYS))
            .is_some_and(|limit| limit < expiry),
    }
}

/// Most items one store transaction may touch (the DynamoDB `TransactWriteItems` limit).
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// A flight and cabin: the unit of inventory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CabinKey {
    /// The flight.
    pub flight_id: String,
    /// The cabin.
    pub cabin: Cabin,
}

impl CabinKey {
    /// A key.
    pub fn new(flight_id: impl Into<String>, cabin: Cabin) -> CabinKey {
        CabinKey {
            flight_id: flight_id.into(),
            cabin,
        }
    }
}

/// Where a booking is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    /// Booked; its seats are counted as sold.
    Booked,
    /// Booked and then cancelled; its seats are released.
    Cancelled,
    /// A cancellation arrived before its booking; the booking will net out.
    CancelPending,
}

impl BookingStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Booked => "booked",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::CancelPending => "cancel_pending",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<BookingStatus> {
        [
            BookingStatus::Booked,
            BookingStatus::Cancelled,
            BookingStatus::CancelPending,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
}

/// What the store keeps per booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingRecord {
    /// The booking reference.
    pub booking_id: String,
    /// Its state.
    pub status: BookingStatus,
    /// The booked flight.
    pub flight_id: String,
    /// Cabin and seats are known once the booking itself has been seen; a
    /// cancellation that came first leaves them empty.
    pub cabin: Option<Cabin>,
    /// Seats booked (0 while only the cancellation is known).
    pub seats: u8,
    /// Position in the stream of the event that added this booking's seats to its
    /// cabin (`None` when they were never added, or by a store written before
    /// positions were kept). With `released_at` it tells, for any later delivery of the
    /// same events, which event moved seats: what the flight alerts judge event by
    /// event ([`seat_effect`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub booked_at: Option<Position>,
    /// Position of the event that released them (a cancellation of a booked booking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Position>,
}

/// The seats the event at `position` moved, as `record` (the booking's stored state
/// after it) tells: `+seats` for the event that booked them, `-seats` for the one that
/// released them, `None` for any other event (a duplicate, a replay's no-op, a booking
/// that netted out against an earlier cancellation). The same for every delivery of
/// the event, however the batches were cut.
pub fn seat_effect(record: &BookingRecord, position: &Position) -> Option<(CabinKey, i64)> {
    let cabin = record.cabin?;
    let seats = i64::from(record.seats);
    let key = || CabinKey::new(&record.flight_id, cabin);
    if record.booked_at.as_ref() == Some(position) {
        Some((key(), seats))
    } else if record.released_at.as_ref() == Some(position) {
        Some((key(), -seats))
    } else {
        None
    }
}

/// An event that affects inventory.
#[derive(Debug, Clone, Copy)]
pub enum InventoryEvent<'a> {
    /// A booking.
    Booking(&'a Booking),
    /// A cancellation.
    Cancellation(&'a Cancellation),
}

impl InventoryEvent<'_> {
    /// The booking the event is about.
    pub fn booking_id(&self) -> &str {
        match self {
            InventoryEvent::Booking(b) => &b.booking_id,
            InventoryEvent::Cancellation(c) => &c.booking_id,
        }
    }

    /// The flight the event names.
    pub fn flight_id(&self) -> &str {
        match self {
            InventoryEvent::Booking(b) => &b.flight_id,
            InventoryEvent::Cancellation(c) => &c.flight_id,
        }
    }
}

/// The result of applying one event: the new record and the seats it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The booking's new state.
    pub record: BookingRecord,
    /// Seats sold on a flight and cabin: positive when booked, negative when released.
    pub delta: Option<(CabinKey, i64)>,
}

/// Applies one event to a booking's state; `None` when it changes nothing.
pub fn apply(state: Option<&BookingRecord>, event: InventoryEvent<'_>) -> Option<Transition> {
    apply_at(state, event, None)
}

/// [`apply`] for the event at `position` in its stream, which the record keeps when
/// the event moves seats ([`BookingRecord::booked_at`], [`BookingRecord::released_at`]).
pub fn apply_at(
    state: Option<&BookingRecord>,
    event: InventoryEvent<'_>,
    position: Option<&Position>,
) -> Option<Transition> {
    use BookingStatus::*;
    match (state.map(|s| s.status), event) {
        (None, InventoryEvent::Booking(b)) => Some(Transition {
            record: BookingRecord {
                booked_at: position.cloned(),
                ..booked_record(b, Booked)
            },
            delta: Some((CabinKey::new(&b.flight_id, b.cabin), i64::from(b.seats))),
        }),
        (Some(CancelPending), InventoryEvent::Booking(b)) => Some(Transition {
            record: booked_record(b, Cancelled),
            delta: None,
        }),
        (None, InventoryEvent::Cancellation(c)) => Some(Transition {
            record: BookingRecord {
                booking_id: c.booking_id.clone(),
                status: CancelPending,
                flight_id: c.flight_id.clone(),
                cabin: None,
                seats: 0,
                booked_at: None,
                released_at: None,
            },
            delta: None,
        }),
        (Some(Booked), InventoryEvent::Cancellation(_)) => {
            let booked = state?;
            let mut record = booked.clone();
            record.status = Cancelled;
            record.released_at = position.cloned();
            // Release what was booked, whatever the cancellation says: the booking
            // record is the authority on its own seats.
            let delta = booked.cabin.map(|cabin| {
                (
                    CabinKey::new(&booked.flight_id, cabin),
                    -i64::from(booked.seats),
                )
            });
            Some(Transition { record, delta })
        }
        (Some(Booked | Cancelled), InventoryEvent::Booking(_))
        | (Some(CancelPending | Cancelled), InventoryEvent::Cancellation(_)) => None,
    }
}

fn booked_record(b: &Booking, status: BookingStatus) -> BookingRecord {
    BookingRecord {
        booking_id: b.booking_id.clone(),
        status,
        flight_id: b.flight_id.clone(),
        cabin: Some(b.cabin),
        seats: b.seats,
        booked_at: None,
        released_at: None,
    }
}

/// One conditional booking write: from `expected` (what the store held when the plan
/// was made; `None` for absent) to `record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingChange {
    /// The status the store must still hold for the write to apply.
    pub expected: Option<BookingStatus>,
    /// The state to write.
    pub record: BookingRecord,
    /// Net seats moved on one flight and cabin by this booking in this batch.
    pub delta: Option<(CabinKey, i64)>,
    /// Index in the batch of the first event folded into this change.
    pub first_index: usize,
}

/// A booking event whose `booking_id` is already booked with another flight, cabin
/// or seat count. It changes nothing: the first booking event is the booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedDuplicate {
    /// Index in the batch of the duplicate.
    pub index: usize,
    /// The booking reference.
    pub booking_id: String,
    /// Flight, cabin and seats as recorded.
    pub recorded: (String, Cabin, u8),
    /// Flight, cabin and seats the duplicate claims.
    pub received: (String, Cabin, u8),
}

/// What one batch does to inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// One change per booking whose state moves, in order of first appearance.
    pub changes: Vec<BookingChange>,
    /// Events that changed nothing (duplicates, replays, repeated cancellations).
    pub no_ops: usize,
    /// No-ops that contradict the recorded booking (counted in `no_ops` too).
    pub changed_duplicates: Vec<ChangedDuplicate>,
}

/// The contradiction, if a booking event disagrees with the recorded booking.
fn changed_duplicate(
    index: usize,
    state: Option<&BookingRecord>,
    event: InventoryEvent<'_>,
) -> Option<ChangedDuplicate> {
    let (InventoryEvent::Booking(b), Some(record)) = (event, state) else {
        return None;
    };
    let cabin = record.cabin?;
    let recorded = (record.flight_id.clone(), cabin, record.seats);
    let received = (b.flight_id.clone(), b.cabin, b.seats);
    (recorded != received).then(|| ChangedDuplicate {
        index,
        booking_id: b.booking_id.clone(),
        recorded,
        received,
    })
}

/// Folds a batch of events over the states the store holds.
///
/// `events` are `(index in batch, event)` in shard order; `current` holds the stored
/// record of every booking the events mention (absent ones are missing).
pub fn plan<'a>(
    current: &HashMap<String, BookingRecord>,
    events: impl IntoIterator<Item = (usize, InventoryEvent<'a>)>,
) -> Plan {
    plan_at(
        current,
        events
            .into_iter()
            .map(|(index, event)| (index, None, event)),
    )
}

/// [`plan`] with each event's position in its stream, which the records keep for the
/// events that move seats (see [`seat_effect`]).
pub fn plan_at<'a, 'p>(
    current: &HashMap<String, BookingRecord>,
    events: impl IntoIterator<Item = (usize, Option<&'p Position>, InventoryEvent<'a>)>,
) -> Plan {
    struct Acc {
        expected: Option<BookingStatus>,
        record: Option<BookingRecord>,
        delta: Option<(CabinKey, i64)>,
        first_index: usize,
        changed: bool,
    }
    let mut order: Vec<String> = Vec::new();
    let mut accs: HashMap<String, Acc> = HashMap::new();
    let mut no_ops = 0;
    let mut changed_duplicates = Vec::new();
    for (index, position, event) in events {
        let id = event.booking_id();
        let acc = match accs.get_mut(id) {
            Some(acc) => acc,
            None => {
                order.push(id.to_string());
                let stored = current.get(id).cloned();
                accs.entry(id.to_string()).or_insert(Acc {
                    expected: stored.as_ref().map(|r| r.status),
                    record: stored,
                    delta: None,
                    first_index: index,
                    changed: false,
                })
            }
        };
        match apply_at(acc.record.as_ref(), event, position) {
            None => {
                no_ops += 1;
                changed_duplicates.extend(changed_duplicate(index, acc.record.as_ref(), event));
            }
            Some(t) => {
                if !acc.changed {
                    acc.first_index = index;
                    acc.changed = true;
                }
                acc.delta = merge_delta(acc.delta.take(), t.delta);
                acc.record = Some(t.record);
            }
        }
    }
    let changes = order
        .into_iter()
        .filter_map(|id| {
            let acc = accs.remove(&id)?;
            let record = acc.record.filter(|_| acc.changed)?;
            Some(BookingChange {
                expected: acc.expected,
                record,
                delta: acc.delta,
                first_index: acc.first_index,
            })
        })
        .collect();
    Plan {
        changes,
        no_ops,
        changed_duplicates,
    }
}

/// Sums two deltas of one booking (always on the same flight and cabin); zero is none.
fn merge_delta(a: Option<(CabinKey, i64)>, b: Option<(CabinKey, i64)>) -> Option<(CabinKey, i64)> {
    match (a, b) {
        (None, d) | (d, None) => d,
        (Some((key, x)), Some((_, y))) => Some((key, x + y)).filter(|(_, n)| *n != 0),
    }
}

/// A group of booking changes and the counter changes they add up to, applied by the
/// store atomically: all of it or none of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// Conditional booking writes.
    pub changes: Vec<BookingChange>,
    /// Net seats sold per flight and cabin, one entry per key.
    pub counters: Vec<(CabinKey, i64)>,
}

impl Transaction {
    /// Items the store touches: one per booking and one per counter.
    pub fn items(&self) -> usize {
        self.changes.len() + self.counters.len()
    }

    /// Index in the batch of the earliest event this transaction carries.
    pub fn first_index(&self) -> Option<usize> {
        self.changes.iter().map(|c| c.first_index).min()
    }
}

/// Packs changes into transactions of at most `max_items` items (at least 2).
///
/// Changes on one flight and cabin are kept together so that each transaction carries
/// as few counter items as possible. The transactions come in order of the earliest
/// event each carries, so that a caller committing them in turn and stopping at the
/// first failure leaves as little as possible applied behind it.
pub fn pack(mut changes: Vec<BookingChange>, max_items: usize) -> Vec<Transaction> {
    let max_items = max_items.max(2);
    changes.sort_by(|a, b| {
        a.delta
            .as_ref()
            .map(|d| &d.0)
            .cmp(&b.delta.as_ref().map(|d| &d.0))
    });
    let mut out = Vec::new();
    let mut tx = Transaction::default();
    let mut counters: BTreeMap<CabinKey, i64> = BTreeMap::new();
    for change in changes {
        let new_counter = change
            .delta
            .as_ref()
            .is_some_and(|(k, _)| !counters.contains_key(k));
        let cost = 1 + usize::from(new_counter);
        if tx.changes.len() + counters.len() + cost > max_items {
            tx.counters = std::mem::take(&mut counters)
                .into_iter()
                .filter(|(_, n)| *n != 0)
                .collect();
            out.push(std::mem::take(&mut tx));
        }
        if let Some((key, n)) = &change.delta {
            *counters.entry(key.clone()).or_insert(0) += n;
        }
        tx.changes.push(change);
    }
    if !tx.changes.is_empty() {
        tx.counters = counters.into_iter().filter(|(_, n)| *n != 0).collect();
        out.push(tx);
    }
    out.sort_by_key(Transaction::first_index);
    out
}

/// Inventory of one flight and cabin as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CabinInventory {
    /// The flight.
    pub flight_id: String,
    /// The cabin.
    pub cabin: Cabin,
    /// Seats in the cabin; `None` when the flight is not in the schedule.
    pub capacity: Option<u32>,
    /// Seats sold (bookings minus cancellations). Never clamped.
    pub sold: i64,
    /// Route and departure from the schedule; `None` for a flight that is not in it
    /// (its departure date is still in its id, see [`CabinInventory::departure_date`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<FlightSchedule>,
}

/// What the schedule says about a flight, stored with each of its cabins.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FlightSchedule {
    /// IATA origin.
    pub origin: String,
    /// IATA destination.
    pub destination: String,
    /// Scheduled departure, UTC.
    pub departure: DateTime<Utc>,
}

impl FlightSchedule {
    /// `ORIGIN-DESTINATION`, as [`crate::ScheduledFlight::route`] spells it.
    pub fn route(&self) -> String {
        format!("{}-{}", self.origin, self.destination)
    }
}

impl CabinInventory {
    /// Seats still for sale (zero when oversold or unscheduled).
    pub fn available(&self) -> i64 {
        self.capacity
            .map_or(0, |c| (i64::from(c) - self.sold).max(0))
    }

    /// Seats sold beyond capacity.
    pub fn oversold(&self) -> i64 {
        self.capacity
            .map_or(0, |c| (self.sold - i64::from(c)).max(0))
    }

    /// Whether the flight is in the schedule. Bookings for unscheduled flights are
    /// counted and flagged, never dropped.
    pub fn scheduled(&self) -> bool {
        self.capacity.is_some()
    }

    /// Every seat sold (oversold included); never true of an unscheduled flight.
    pub fn sold_out(&self) -> bool {
        self.scheduled() && self.available() == 0
    }

    /// Seats sold over capacity (above 1.0 when oversold); `None` when unscheduled or
    /// the cabin has no seats.
    pub fn load_factor(&self) -> Option<f64> {
        self.capacity
            .filter(|&c| c > 0)
            .map(|c| self.sold as f64 / f64::from(c))
    }

    /// `ORIGIN-DESTINATION` from the schedule; `None` when unscheduled.
    pub fn route(&self) -> Option<String> {
        self.schedule.as_ref().map(FlightSchedule::route)
    }

    /// The departure date (UTC): the schedule's, else the one in the flight id.
    pub fn departure_date(&self) -> Option<NaiveDate> {
        match &self.schedule {
            Some(s) => Some(s.departure.date_naive()),
            None => departure_date(&self.flight_id),
        }
    }
}

#[cfg(test)]
mod tests;
