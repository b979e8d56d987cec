//! The event generator.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::iter::FusedIterator;

use chrono::{DateTime, NaiveDate, Utc};
use flyhigh_core::Schedule;
use flyhigh_schemas::{
    Booking, Cabin, Cancellation, CancellationReason, Envelope, Money, Payload, SCHEMA_VERSION,
    Search,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::config::{ConfigError, SimConfig};
use crate::ids;
use crate::network::{self, BOOKING_HORIZON_DAYS, ROUTES, Route, UNSCHEDULED_FLIGHT_NUMBER_BASE};
use crate::timeline::Timeline;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;
/// `NaiveDate::from_num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// Bookings kept as candidates for later cancellations. Bounded, so memory does not
/// grow with the run; when full a random candidate makes room for the new booking.
pub const CANCELLATION_POOL: usize = 4096;
/// Most events waiting to be re-emitted (retries, late bookings) at once.
const MAX_PENDING: usize = 1024;

/// Demand per seat in each cabin (economy, premium economy, business, first): a
/// booking picks a cabin with weight seats × this, so demand follows the layout and
/// the front cabins fill a little more slowly than economy.
const BOOKING_CABIN_DEMAND: [f64; 4] = [1.0, 0.9, 0.8, 0.6];
/// Cabins searched for (any cabin can be searched for).
const SEARCH_CABIN_WEIGHTS: [f64; 4] = [0.82, 0.07, 0.09, 0.02];
/// Seats per booking, 1 to 9: mostly 1 to 4.
const SEAT_WEIGHTS: [f64; 9] = [52.0, 30.0, 8.0, 7.0, 1.4, 1.0, 0.3, 0.2, 0.1];
/// Passengers per search, 1 to 9.
const PASSENGER_WEIGHTS: [f64; 9] = [48.0, 30.0, 9.0, 8.0, 2.0, 1.5, 0.7, 0.5, 0.3];
/// Cancellation reasons: customer request, schedule change, payment failed, other.
const REASON_WEIGHTS: [f64; 4] = [0.70, 0.10, 0.12, 0.08];
/// Fare multiplier per cabin over economy (business is dearer on long-haul).
const CABIN_FARE: [f64; 4] = [1.0, 1.7, 2.6, 7.0];
const LONG_HAUL_BUSINESS_FARE: f64 = 4.2;

/// Approximate units of each fare currency per euro.
fn per_euro(currency: &str) -> f64 {
    match currency {
        "GBP" => 0.86,
        "USD" => 1.08,
        "CHF" => 0.95,
        "DKK" => 7.46,
        "CAD" => 1.47,
        "AED" => 3.97,
        "SGD" => 1.45,
        _ => 1.0,
    }
}

/// What the simulator has emitted so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SimStats {
    /// Events emitted.
    pub events: u64,
    /// Search events.
    pub searches: u64,
    /// Booking events, retries included.
    pub bookings: u64,
    /// Cancellation events, repeats included.
    pub cancellations: u64,
    /// Booking events that re-emit an earlier booking (new `event_id`, same contents).
    pub duplicate_bookings: u64,
    /// Cancellation events that repeat an earlier cancellation.
    pub repeated_cancellations: u64,
    /// Cancellations emitted before their booking (the booking follows shortly).
    pub early_cancellations: u64,
    /// Distinct bookings on flights missing from the schedule.
    pub unscheduled_bookings: u64,
    /// The surge route as `ORIGIN-DESTINATION`, when there is a surge.
    pub surge_route: Option<String>,
    /// The surge window `[from, to)`, when there is a surge.
    pub surge_window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Searches and bookings on the surge route inside the window.
    pub surge_events: u64,
}

/// A deterministic stream of valid events, in non-decreasing `occurred_at` order.
///
/// See the crate docs for the model. Memory is bounded whatever the event count: a
/// per-minute traffic table, a pool of [`CANCELLATION_POOL`] cancellable bookings and
/// a short queue of retries.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: SimConfig,
    rng: ChaCha8Rng,
    start_ms: i64,
    timeline: Timeline,
    first_date: NaiveDate,
    last_date: NaiveDate,
    index: usize,
    pending: BinaryHeap<Reverse<Pending>>,
    pending_seq: u64,
    pool: Vec<Candidate>,
    bookings_made: u64,
    customers: u64,
    tables: Tables,
    surge: Option<Surge>,
    stats: SimStats,
    clock: SimClock,
}

/// The simulated day's clock: the time of the latest event the simulator has
/// generated (before any client's clock is applied to it). Cheap to clone (shared);
/// a local pipeline stamps arrival times with it, so that "arrival" is simulated
/// time like the events, not the wall clock a simulated day runs through in seconds.
#[derive(Debug, Clone, Default)]
pub struct SimClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl SimClock {
    /// The simulated now.
    pub fn now(&self) -> DateTime<Utc> {
        at(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn set(&self, ms: i64) {
        self.0.fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Precomputed sampling tables.
#[derive(Debug, Clone)]
struct Tables {
    kind: Weighted,
    route: Weighted,
    source: Weighted,
    day_offset: Weighted,
    seats: Weighted,
    passengers: Weighted,
    search_cabin: Weighted,
    reason: Weighted,
    routes: Vec<RouteInfo>,
}

#[derive(Debug, Clone)]
struct RouteInfo {
    route: &'static Route,
    currency: &'static str,
    per_euro: f64,
    cabin: Weighted,
}

#[derive(Debug, Clone, Copy)]
struct Surge {
    route: usize,
    from_ms: i64,
    to_ms: i64,
    /// Chance that an event inside the window is one of the surge's extra events.
    p_extra: f64,
    /// Chance that an extra event is a search rather than a booking.
    p_search: f64,
}

/// A booking that may be cancelled later.
#[derive(Debug, Clone)]
struct Candidate {
    booking_id: String,
    customer_id: String,
    flight_id: String,
    fare_cents: i64,
    currency: &'static str,
    departure_ms: i64,
}

impl Candidate {
    fn of(b: &Booking, currency: &'static str, departure_ms: i64) -> Candidate {
        Candidate {
            booking_id: b.booking_id.clone(),
            customer_id: b.customer_id.clone(),
            flight_id: b.flight_id.clone(),
            fare_cents: cents(b.fare.amount),
            currency,
            departure_ms,
        }
    }
}

/// Why an event is emitted; only for the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Plain,
    Unscheduled,
    Duplicate,
    Repeated,
    Early,
}

/// An event waiting for its slot.
#[derive(Debug, Clone)]
struct Pending {
    due: usize,
    seq: u64,
    source: usize,
    payload: Payload,
    tag: Tag,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl Simulator {
    /// A simulator for a configuration, or the first knob that is out of range.
    pub fn new(config: SimConfig) -> Result<Simulator, ConfigError> {
        config.validate()?;
        let start_ms = config.start.timestamp_millis();
        let minutes = config.days as usize * 1440;
        let span_ms = minutes as i64 * MINUTE_MS;
        let first_date = date_of(start_ms);
        let last_date = date_of(start_ms + span_ms - 1)
            + chrono::Days::new(u64::from(BOOKING_HORIZON_DAYS) + 1);

        let mix = config.mix;
        let mix_total = mix.search + mix.booking + mix.cancellation;
        let popularity_total: f64 = ROUTES.iter().map(|r| f64::from(r.popularity)).sum();

        let mut stats = SimStats::default();
        let mut surge = None;
        let mut bump = None;
        if config.surge.is_enabled() {
            let route = match &config.surge.route {
                Some(key) => network::route_index(key)
                    .ok_or_else(|| ConfigError::UnknownRoute(key.clone()))?,
                None => {
                    // A stream of its own, so the choice does not shift the events.
                    let mut pick = ChaCha8Rng::seed_from_u64(config.seed);
                    pick.set_stream(1);
                    Weighted::new(ROUTES.iter().map(|r| f64::from(r.popularity))).sample(&mut pick)
                }
            };
            let from_min = ((config.surge.start_fraction * minutes as f64) as usize).min(minutes);
            let duration_min =
                (config.surge.duration.num_milliseconds() + MINUTE_MS - 1) / MINUTE_MS;
            let to_min = (from_min + duration_min.max(0) as usize).min(minutes);
            let share = f64::from(ROUTES[route].popularity) / popularity_total;
            let demand = (mix.search + mix.booking) / mix_total;
            // The route's searches and bookings arrive `multiplier` times as fast: the
            // extra rate is (multiplier - 1) times the route's usual share of traffic.
            let extra = (config.surge.multiplier - 1.0) * share * demand;
            let p_search = if mix.search + mix.booking > 0.0 {
                mix.search / (mix.search + mix.booking)
            } else {
                1.0
            };
            let s = Surge {
                route,
                from_ms: from_min as i64 * MINUTE_MS,
                to_ms: to_min as i64 * MINUTE_MS,
                p_extra: extra / (1.0 + extra),
                p_search,
            };
            bump = Some((from_min, to_min, extra));
            stats.surge_route = Some(ROUTES[route].key());
            stats.surge_window = Some((at(start_ms + s.from_ms), at(start_ms + s.to_ms)));
            surge = Some(s);
        }

        let routes = ROUTES
            .iter()
            .map(|route| {
                let currency = network::airport(route.origin).map_or("EUR", |a| a.currency);
                let cabin = Weighted::new(
                    Cabin::ALL
                        .into_iter()
                        .zip(BOOKING_CABIN_DEMAND)
                        .map(|(c, d)| f64::from(route.aircraft.seats_in(c)) * d),
                );
                RouteInfo {
                    route,
                    currency,
                    per_euro: per_euro(currency),
                    cabin,
                }
            })
            .collect();
        let tables = Tables {
            kind: Weighted::new([mix.search, mix.booking, mix.cancellation]),
            route: Weighted::new(ROUTES.iter().map(|r| f64::from(r.popularity))),
            source: Weighted::new((0..config.sources.len()).map(|i| 1.0 / (i as f64 + 1.0))),
            // Most bookings are for the coming days: weight 1 / (days ahead + 4).
            day_offset: Weighted::new(
                (0..=BOOKING_HORIZON_DAYS).map(|k| 1.0 / (f64::from(k) + 4.0)),
            ),
            seats: Weighted::new(SEAT_WEIGHTS),
            passengers: Weighted::new(PASSENGER_WEIGHTS),
            search_cabin: Weighted::new(SEARCH_CABIN_WEIGHTS),
            reason: Weighted::new(REASON_WEIGHTS),
            routes,
        };

        Ok(Simulator {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            start_ms,
            timeline: Timeline::new(config.start, minutes, config.events, bump),
            first_date,
            last_date,
            index: 0,
            pending: BinaryHeap::new(),
            pending_seq: 0,
            pool: Vec::with_capacity(CANCELLATION_POOL.min(config.events / 8 + 1)),
            bookings_made: 0,
            customers: (config.events as u64 / 8).max(1000),
            tables,
            surge,
            stats,
            clock: SimClock(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
                start_ms,
            ))),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The simulated day's clock ([`SimClock`]), shared: it reads the configured start
    /// until the first event, then the time of the latest event generated.
    pub fn clock(&self) -> SimClock {
        self.clock.clone()
    }

    /// What has been emitted so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The surge route, when there is a surge.
    pub fn surge_route(&self) -> Option<&'static Route> {
        self.surge.map(|s| &ROUTES[s.route])
    }

    /// The schedule the events refer to: every flight of the network departing from
    /// the first simulated day to [`BOOKING_HORIZON_DAYS`] + 1 days after the last.
    /// Unscheduled bookings name flights that are not in it.
    pub fn schedule(&self) -> Schedule {
        network::schedule(self.first_date, self.last_date)
    }

    /// Slots left, including the current one.
    fn remaining(&self) -> usize {
        self.config.events - self.index
    }

    fn can_defer(&self) -> bool {
        self.pending.len() < MAX_PENDING && self.pending.len() + 1 < self.remaining()
    }

    fn defer(&mut self, delay: usize, source: usize, payload: Payload, tag: Tag) {
        self.pending_seq += 1;
        self.pending.push(Reverse(Pending {
            due: self.index + delay,
            seq: self.pending_seq,
            source,
            payload,
            tag,
        }));
    }

    /// The next event of a fresh decision at `now` (ms since the epoch).
    fn fresh(&mut self, now: i64, offset: i64) -> (usize, Payload, Tag) {
        if let Some(s) = self.surge
            && (s.from_ms..s.to_ms).contains(&offset)
            && self.rng.gen_bool(s.p_extra)
        {
            return if self.rng.gen_bool(s.p_search) {
                (
                    self.pick_source(),
                    Payload::Search(self.search(now, s.route, true)),
                    Tag::Plain,
                )
            } else {
                self.booking(now, s.route, true)
            };
        }
        match self.tables.kind.sample(&mut self.rng) {
            0 => {
                let route = self.tables.route.sample(&mut self.rng);
                (
                    self.pick_source(),
                    Payload::Search(self.search(now, route, false)),
                    Tag::Plain,
                )
            }
            1 => {
                let route = self.tables.route.sample(&mut self.rng);
                self.booking(now, route, false)
            }
            _ => self.cancellation(now),
        }
    }

    fn pick_source(&mut self) -> usize {
        self.tables.source.sample(&mut self.rng)
    }

    fn search(&mut self, now: i64, route: usize, surge: bool) -> Search {
        let r = self.tables.routes[route].route;
        let ahead = if surge {
            self.rng.gen_range(0..=2)
        } else {
            // Roughly exponential, three weeks on average, within the contract's 400 days.
            let u: f64 = self.rng.r#gen();
            ((-(1.0 - u).ln() * 21.0) as u64).min(330)
        };
        let departure_date = date_of(now) + chrono::Days::new(ahead);
        let return_date = self
            .rng
            .gen_bool(0.6)
            .then(|| departure_date + chrono::Days::new(self.rng.gen_range(1..=21)));
        Search {
            session_id: ids::session_id(&mut self.rng),
            origin: r.origin.to_string(),
            destination: r.destination.to_string(),
            departure_date,
            return_date,
            passengers: self.tables.passengers.sample(&mut self.rng) as u8 + 1,
            cabin: Cabin::ALL[self.tables.search_cabin.sample(&mut self.rng)],
        }
    }

    /// A new booking, and maybe a retry of it queued.
    fn booking(&mut self, now: i64, route: usize, surge: bool) -> (usize, Payload, Tag) {
        let source = self.pick_source();
        let (booking, departure_ms, unscheduled) = self.new_booking(now, route, surge);
        let candidate = Candidate::of(&booking, self.tables.routes[route].currency, departure_ms);
        self.remember(candidate);
        let tag = if unscheduled {
            Tag::Unscheduled
        } else {
            Tag::Plain
        };
        if self.can_defer() && self.rng.gen_bool(self.config.duplicate_rate) {
            let delay = self.rng.gen_range(1..=20);
            self.defer(
                delay,
                source,
                Payload::Booking(booking.clone()),
                Tag::Duplicate,
            );
        }
        (source, Payload::Booking(booking), tag)
    }

    fn new_booking(&mut self, now: i64, route: usize, surge: bool) -> (Booking, i64, bool) {
        let r = self.tables.routes[route].route;
        let unscheduled = !surge && self.rng.gen_bool(self.config.unscheduled_rate);
        let (number, departure_ms) = if surge {
            self.surge_departure(now, r)
        } else {
            let slot = self.rng.gen_range(0..r.daily);
            let ahead = self.tables.day_offset.sample(&mut self.rng) as i64;
            let mut departure = (now.div_euclid(DAY_MS) + ahead) * DAY_MS
                + i64::from(r.departure_minute(slot)) * MINUTE_MS;
            if departure < now + HOUR_MS {
                departure += DAY_MS;
            }
            let number = if unscheduled {
                UNSCHEDULED_FLIGHT_NUMBER_BASE + self.rng.gen_range(0..1000)
            } else {
                r.flight_number(slot)
            };
            (number, departure)
        };
        let cabin = Cabin::ALL[self.tables.routes[route].cabin.sample(&mut self.rng)];
        let seats = self.tables.seats.sample(&mut self.rng) as u8 + 1;
        let fare_cents = self.fare_cents(route, cabin, seats, surge);
        let customer = self.rng.gen_range(0..self.customers);
        let booking = Booking {
            booking_id: ids::booking_id(self.config.seed, self.bookings_made),
            customer_id: ids::customer_id(self.config.seed, customer),
            flight_id: network::flight_id(number, date_of(departure_ms)),
            origin: r.origin.to_string(),
            destination: r.destination.to_string(),
            cabin,
            seats,
            fare: Money::new(
                Decimal::new(fare_cents, 2),
                self.tables.routes[route].currency,
            ),
        };
        self.bookings_made += 1;
        (booking, departure_ms, unscheduled)
    }

    /// One of the next departures on the route at least two hours away; the sooner,
    /// the likelier (each next one 60% as likely, at most the eighth), as when an
    /// event or a disruption elsewhere sends everyone to the same flights.
    fn surge_departure(&mut self, now: i64, r: &Route) -> (u16, i64) {
        let mut skip = 0;
        while skip < 7 && self.rng.gen_bool(0.6) {
            skip += 1;
        }
        let earliest = now + 2 * HOUR_MS;
        let mut day = now.div_euclid(DAY_MS);
        loop {
            for slot in 0..r.daily {
                let departure = day * DAY_MS + i64::from(r.departure_minute(slot)) * MINUTE_MS;
                if departure >= earliest {
                    if skip == 0 {
                        return (r.flight_number(slot), departure);
                    }
                    skip -= 1;
                }
            }
            day += 1;
        }
    }

    fn fare_cents(&mut self, route: usize, cabin: Cabin, seats: u8, surge: bool) -> i64 {
        let info = &self.tables.routes[route];
        let long_haul = info.route.aircraft.wide_body;
        let per_euro = info.per_euro;
        let base = if long_haul {
            self.rng.gen_range(320.0..1150.0)
        } else {
            self.rng.gen_range(45.0..260.0)
        };
        let cabin_factor = match cabin {
            Cabin::Business if long_haul => LONG_HAUL_BUSINESS_FARE,
            c => CABIN_FARE[network::cabin_index(c)],
        };
        // Demand pricing while the route surges.
        let surge_factor = if surge {
            self.rng.gen_range(1.3..2.0)
        } else {
            1.0
        };
        let total = base * cabin_factor * surge_factor * per_euro * f64::from(seats);
        ((total * 100.0).round() as i64).max(1)
    }

    /// Keeps a booking as a candidate for a later cancellation.
    fn remember(&mut self, candidate: Candidate) {
        if self.pool.len() < CANCELLATION_POOL {
            self.pool.push(candidate);
        } else {
            let victim = self.rng.gen_range(0..self.pool.len());
            self.pool[victim] = candidate;
        }
    }

    /// A cancellation: usually of an earlier booking; sometimes of a booking that
    /// reaches the stream only afterwards; sometimes repeated.
    fn cancellation(&mut self, now: i64) -> (usize, Payload, Tag) {
        let source = self.pick_source();
        if self.can_defer() && self.rng.gen_bool(self.config.early_cancellation_rate) {
            let route = self.tables.route.sample(&mut self.rng);
            let (booking, departure_ms, unscheduled) = self.new_booking(now, route, false);
            let candidate =
                Candidate::of(&booking, self.tables.routes[route].currency, departure_ms);
            let delay = self.rng.gen_range(1..=10);
            let tag = if unscheduled {
                Tag::Unscheduled
            } else {
                Tag::Plain
            };
            self.defer(delay, source, Payload::Booking(booking), tag);
            return (
                source,
                Payload::Cancellation(self.cancel(&candidate)),
                Tag::Early,
            );
        }
        let Some(candidate) = self.cancellable(now) else {
            // Nothing booked yet (the first events of a run): a search instead.
            let route = self.tables.route.sample(&mut self.rng);
            return (
                source,
                Payload::Search(self.search(now, route, false)),
                Tag::Plain,
            );
        };
        let cancellation = self.cancel(&candidate);
        if self.can_defer() && self.rng.gen_bool(self.config.duplicate_rate) {
            let delay = self.rng.gen_range(1..=20);
            self.defer(
                delay,
                source,
                Payload::Cancellation(cancellation.clone()),
                Tag::Repeated,
            );
        }
        (source, Payload::Cancellation(cancellation), Tag::Plain)
    }

    /// Takes a random remembered booking that has not departed yet.
    fn cancellable(&mut self, now: i64) -> Option<Candidate> {
        for _ in 0..4 {
            if self.pool.is_empty() {
                return None;
            }
            let i = self.rng.gen_range(0..self.pool.len());
            let candidate = self.pool.swap_remove(i);
            if candidate.departure_ms > now {
                return Some(candidate);
            }
        }
        None
    }

    fn cancel(&mut self, c: &Candidate) -> Cancellation {
        let reason = [
            CancellationReason::CustomerRequest,
            CancellationReason::ScheduleChange,
            CancellationReason::PaymentFailed,
            CancellationReason::Other,
        ][self.tables.reason.sample(&mut self.rng)];
        let refund_cents = match reason {
            // Non-refundable fares refund nothing; the others lose a fee.
            CancellationReason::CustomerRequest if self.rng.gen_bool(0.45) => 0,
            CancellationReason::CustomerRequest => c.fare_cents * 4 / 5,
            CancellationReason::PaymentFailed => 0,
            CancellationReason::ScheduleChange | CancellationReason::Other => c.fare_cents,
        };
        Cancellation {
            booking_id: c.booking_id.clone(),
            customer_id: c.customer_id.clone(),
            flight_id: c.flight_id.clone(),
            reason,
            refund: Money::new(Decimal::new(refund_cents, 2), c.currency),
        }
    }

    fn count(&mut self, offset: i64, payload: &Payload, tag: Tag) {
        let s = &mut self.stats;
        s.events += 1;
        let route = match payload {
            Payload::Search(x) => {
                s.searches += 1;
                Some((x.origin.as_str(), x.destination.as_str()))
            }
            Payload::Booking(b) => {
                s.bookings += 1;
                Some((b.origin.as_str(), b.destination.as_str()))
            }
            Payload::Cancellation(_) => {
                s.cancellations += 1;
                None
            }
        };
        match tag {
            Tag::Plain => {}
            Tag::Unscheduled => s.unscheduled_bookings += 1,
            Tag::Duplicate => s.duplicate_bookings += 1,
            Tag::Repeated => s.repeated_cancellations += 1,
            Tag::Early => s.early_cancellations += 1,
        }
        if let (Some(surge), Some((origin, destination))) = (self.surge, route) {
            let r = &ROUTES[surge.route];
            if (surge.from_ms..surge.to_ms).contains(&offset)
                && r.origin == origin
                && r.destination == destination
            {
                s.surge_events += 1;
            }
        }
    }
}

impl Iterator for Simulator {
    type Item = Envelope;

    fn next(&mut self) -> Option<Envelope> {
        if self.index >= self.config.events {
            return None;
        }
        let u: f64 = self.rng.r#gen();
        let offset = self.timeline.offset_ms(self.index, u);
        let now = self.start_ms + offset;
        self.clock.set(now);
        let remaining = self.remaining();
        let take_pending = self
            .pending
            .peek()
            .is_some_and(|Reverse(p)| p.due <= self.index || self.pending.len() >= remaining);
        let (source, payload, tag) = match take_pending.then(|| self.pending.pop()).flatten() {
            Some(Reverse(p)) => (p.source, p.payload, p.tag),
            None => self.fresh(now, offset),
        };
        self.count(offset, &payload, tag);
        self.index += 1;
        Some(Envelope {
            event_id: ids::event_id(now, &mut self.rng),
            schema_version: SCHEMA_VERSION,
            occurred_at: at(now),
            source: self.config.sources[source].clone(),
            payload,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.config.events - self.index;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Simulator {}
impl FusedIterator for Simulator {}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The UTC date of a time in ms since the epoch.
fn date_of(ms: i64) -> NaiveDate {
    let days = ms.div_euclid(DAY_MS) + UNIX_EPOCH_DAYS_FROM_CE;
    i32::try_from(days)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or_default()
}

fn cents(amount: Decimal) -> i64 {
    // Fares are built from cents with scale 2.
    i64::try_from(amount.mantissa()).unwrap_or(0)
}

/// Sampling from fixed weights by binary search over their running sums.
#[derive(Debug, Clone)]
struct Weighted {
    cumulative: Vec<f64>,
    last_positive: usize,
}

impl Weighted {
    fn new(weights: impl IntoIterator<Item = f64>) -> Weighted {
        let mut total = 0.0;
        let mut last_positive = 0;
        let cumulative = weights
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                if w > 0.0 {
                    last_positive = i;
                }
                total += w.max(0.0);
                total
            })
            .collect();
        Weighted {
            cumulative,
            last_positive,
        }
    }

    fn sample(&self, rng: &mut impl Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.r#gen::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.last_positive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_never_picks_a_zero_weight() {
        let w = Weighted::new([0.0, 1.0, 0.0, 2.0, 0.0]);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = [0usize; 5];
        for _ in 0..10_000 {
            seen[w.sample(&mut rng)] += 1;
        }
        assert_eq!((seen[0], seen[2], seen[4]), (0, 0, 0));
        assert!(seen[3] > seen[1]);
    }

    #[test]
    fn dates_from_millis() {
        let t: DateTime<Utc> = "2026-12-01T23:59:59.999Z".parse().unwrap();
        assert_eq!(
            date_of(t.timestamp_millis()),
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
        );
        assert_eq!(
            date_of(t.timestamp_millis() + 1),
            NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()
        );
    }
}
