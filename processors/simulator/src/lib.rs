//! A deterministic traffic simulator for the FlyHigh pipeline: what the booking apps
//! would send, for `flyhigh demo`, end-to-end tests and benches.
//!
//! A [`Simulator`] is an iterator of exactly [`SimConfig::events`] valid
//! [`Envelope`](flyhigh_schemas::Envelope)s in non-decreasing `occurred_at` order.
//! Everything, event ids included, derives from the seed: the same configuration
//! gives the same events and the same [`Simulator::schedule`]. It streams: memory
//! does not grow with the event count, and 200,000 events take a few tens of
//! milliseconds in a release build.
//!
//! Layout:
//! - [`config`]: the knobs ([`SimConfig`], [`EventMix`], [`SurgeConfig`]).
//! - [`network`]: 20 airports, 7 aircraft types, 40 routes and the schedule.
//! - [`timeline`]: the daily traffic curve and the sorted event times.
//! - [`sim`]: the generator ([`Simulator`], [`SimStats`]).
//! - [`hostile`]: a hostile sample (skewed clocks, far dates, a backlog, invented
//!   routes, invalid lines) for `flyhigh demo --events-file`.
//! - [`truth`]: an independent ground truth of seat inventory
//!   ([`expected_inventory`], [`ExpectedInventory`], [`compare`], [`oversold`]) to
//!   check the processors against.
//!
//! # The model
//!
//! **Network.** Twenty real airports (London, Manchester, Dublin, Paris, Amsterdam,
//! Frankfurt, Munich, Madrid, Rome, Zurich, Copenhagen, New York, Boston, Chicago,
//! Miami, Los Angeles, San Francisco, Toronto, Dubai, Singapore) and forty directed
//! routes: short-haul Europe, US domestic, and long-haul from London. Each route
//! flies 1–4 daily slots with fixed flight numbers (`FH0100`–`FH0499`) on one
//! aircraft type; flight ids are `FH0123-20261201` (number and UTC departure date).
//! Aircraft give the capacity per cabin: economy 133–268, premium economy 0–40,
//! business 0–48, first 0–8; a cabin an aircraft lacks is absent from the capacity
//! map and never booked. The schedule covers every departure from the first
//! simulated day to [`BOOKING_HORIZON_DAYS`] + 1 days after the last.
//!
//! **When.** The events spread over [`SimConfig::days`] days from
//! [`SimConfig::start`] following a daily curve in UTC ([`timeline::HOURLY_TRAFFIC`]):
//! quiet at night (03:00 is about an eighth of the peak), a late-morning peak around
//! 10:00 and an evening peak around 19:00. Times are drawn by stratified sampling, so
//! they come out sorted and the count is exact.
//!
//! **What.** Each fresh event is a search, a booking or a cancellation with the
//! weights of [`SimConfig::mix`] (default 85% / 11% / 4%). Searches and bookings
//! pick a route by its popularity. Searches carry a fresh pseudonymous session id,
//! 1–9 passengers (mostly 1–2), a departure date about three weeks out on average and
//! a return date 60% of the time. Bookings carry a unique reference (`BK` and eight
//! base-36 characters), a pseudonymous customer (`cu-…`, customers book repeatedly),
//! a flight departing at least an hour later and within [`BOOKING_HORIZON_DAYS`]
//! (sooner is likelier), a cabin the aircraft has (in proportion to its seats, the
//! front cabins a little less), 1–9 seats (mostly 1–2, rarely over 4) and a fare for all seats with two decimal places in the
//! origin's currency (GBP, EUR, CHF, DKK, USD, CAD, AED, SGD). Cancellations cancel a
//! random earlier booking that has not departed, from a bounded pool of
//! [`sim::CANCELLATION_POOL`] recent bookings, with its booking id, flight and
//! customer, a reason and a refund (full, 80% or nothing). A cancellation drawn before
//! anything was booked becomes a search.
//!
//! **Surge.** During a window ([`SurgeConfig`]: by default three hours from 40% into
//! the span, on a route the seed picks), the surge route's searches and bookings
//! arrive [`SurgeConfig::multiplier`] times as fast (default 8×), on top of the usual
//! traffic. The extra bookings go to the route's next departures at least two hours
//! away (each next flight 60% as likely), at surge prices. The booking apps do not
//! check inventory, so those flights sell out and, with enough events (the default
//! 200,000 do), get oversold: the pipeline must record and alert that, never clamp it.
//!
//! **Mess**, each at a small configurable rate:
//! - [`SimConfig::duplicate_rate`] (default 1%): a booking re-emitted by an app retry
//!   1–20 events later (new `event_id`, same booking id and contents), and likewise a
//!   cancellation repeated;
//! - [`SimConfig::early_cancellation_rate`] (default 2% of cancellations): a
//!   cancellation of a new booking emitted 1–10 events *before* the booking itself
//!   (out-of-order apps);
//! - [`SimConfig::unscheduled_rate`] (default 0.2% of bookings): a booking on a
//!   flight missing from the schedule (a valid id with a number from `FH9000` up).
//!
//! Retries and late bookings take the next free slots in time order, so the output
//! stays sorted, and the simulator never defers more than the slots left: every
//! booking announced by an early cancellation is emitted within the run.
//! [`Simulator::stats`] counts all of it as it goes.
//!
//! **Sources.** The `source` of each event is one of [`SimConfig::sources`] (default
//! `web-app`, `ios-app`, `android-app`, `partner-api`), the `i`-th with weight
//! `1 / (i + 1)`; a retry keeps its original's source.
//!
//! # Example
//!
//! ```
//! use flyhigh_simulator::{expected_inventory, oversold, SimConfig, Simulator};
//!
//! let mut config = SimConfig::new(7, 20_000);
//! config.surge.route = Some("LHR-JFK".into());
//! let mut sim = Simulator::new(config).expect("a valid configuration");
//! let schedule = sim.schedule();
//! let events: Vec<_> = sim.by_ref().collect();
//!
//! assert_eq!(events.len(), 20_000);
//! assert!(events.iter().all(|e| e.validate().is_ok()));
//! assert!(events.windows(2).all(|w| w[0].occurred_at <= w[1].occurred_at));
//! assert_eq!(sim.stats().surge_route.as_deref(), Some("LHR-JFK"));
//!
//! // What a correct inventory must hold, computed without the production fold.
//! let sold = expected_inventory(&events);
//! for o in oversold(&sold, &schedule) {
//!     println!("{} {}: {} sold of {}", o.key.flight_id, o.key.cabin, o.sold, o.capacity);
//! }
//! ```

pub mod config;
pub mod hostile;
mod ids;
pub mod network;
pub mod sim;
pub mod timeline;
pub mod truth;

pub use config::{ConfigError, DEFAULT_EVENTS, DEFAULT_SEED, EventMix, SimConfig, SurgeConfig};
pub use network::BOOKING_HORIZON_DAYS;
pub use sim::{SimClock, SimStats, Simulator};
pub use truth::{
    Difference, ExpectedInventory, Oversold, compare, expected_inventory, oversold, unscheduled,
};
