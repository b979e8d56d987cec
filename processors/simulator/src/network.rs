//! The simulated FlyHigh network: airports, aircraft, routes and the schedule built
//! from them.
//!
//! The network is fixed (it does not depend on the seed), so the schedule for a given
//! date range is always the same and a demo reads like a real airline. Every route
//! flies the same daily slots with the same flight numbers; a flight id is the flight
//! number and the UTC departure date, e.g. `FH0310-20261201`.
//!
//! Scheduled flight numbers are `FH0100` to `FH0499` (route `i` owns
//! `100 + 10 * i ..`); numbers from `FH9000` up are never scheduled, which is how the
//! simulator makes bookings on flights missing from the schedule.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use flyhigh_core::{Schedule, ScheduledFlight};
use flyhigh_schemas::Cabin;

/// How many days ahead of the booking date the simulated customers book.
///
/// The schedule covers every departure date a booking can name: from the first
/// simulated day to the last one plus this horizon plus one day.
pub const BOOKING_HORIZON_DAYS: u32 = 14;

/// First flight number that is never scheduled.
pub(crate) const UNSCHEDULED_FLIGHT_NUMBER_BASE: u16 = 9000;

/// An airport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Airport {
    /// IATA code.
    pub code: &'static str,
    /// City served.
    pub city: &'static str,
    /// ISO 4217 currency that fares from this airport are sold in.
    pub currency: &'static str,
}

/// An aircraft type and its cabin layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aircraft {
    /// ICAO type designator.
    pub code: &'static str,
    /// Marketing name.
    pub name: &'static str,
    /// Seats in economy, premium economy, business and first (the order of
    /// [`Cabin::ALL`]); zero means the aircraft has no such cabin.
    pub seats: [u32; 4],
    /// A wide-body flies long-haul routes, with long-haul fares.
    pub wide_body: bool,
}

impl Aircraft {
    /// Seats per cabin; cabins the aircraft does not have are absent.
    pub fn capacity(&self) -> BTreeMap<Cabin, u32> {
        Cabin::ALL
            .into_iter()
            .zip(self.seats)
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Seats in one cabin (zero when absent).
    pub fn seats_in(&self, cabin: Cabin) -> u32 {
        self.seats[cabin_index(cabin)]
    }
}

pub(crate) fn cabin_index(cabin: Cabin) -> usize {
    match cabin {
        Cabin::Economy => 0,
        Cabin::PremiumEconomy => 1,
        Cabin::Business => 2,
        Cabin::First => 3,
    }
}

/// A directed route flown every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// IATA origin.
    pub origin: &'static str,
    /// IATA destination.
    pub destination: &'static str,
    /// Flights per day, each with its own flight number.
    pub daily: u8,
    /// Aircraft flying every slot.
    pub aircraft: &'static Aircraft,
    /// Relative demand (searches and bookings) compared with other routes.
    pub popularity: u8,
    /// Flight number of the first daily slot; slot `s` is `number + s`.
    pub number: u16,
}

impl Route {
    /// `ORIGIN-DESTINATION`, the route key of [`ScheduledFlight::route`].
    pub fn key(&self) -> String {
        format!("{}-{}", self.origin, self.destination)
    }

    /// Flight number of a daily slot.
    pub fn flight_number(&self, slot: u8) -> u16 {
        self.number + u16::from(slot)
    }

    /// Departure of a daily slot, in minutes after midnight UTC.
    ///
    /// Slots spread evenly over 06:30–21:30, shifted by a few minutes per route so
    /// that not every route leaves on the same minute.
    pub fn departure_minute(&self, slot: u8) -> u32 {
        let n = u32::from(self.daily.max(1));
        let s = u32::from(slot);
        let shift = (u32::from(self.number) / 10 * 7) % 30;
        390 + 900 * (2 * s + 1) / (2 * n) + shift
    }

    /// The scheduled flight of a slot on a departure date.
    pub fn flight(&self, slot: u8, date: NaiveDate) -> ScheduledFlight {
        ScheduledFlight {
            flight_id: flight_id(self.flight_number(slot), date),
            origin: self.origin.to_string(),
            destination: self.destination.to_string(),
            departure: departure(date, self.departure_minute(slot)),
            capacity: self.aircraft.capacity(),
        }
    }
}

/// `FH0123-20261201`.
pub fn flight_id(number: u16, date: NaiveDate) -> String {
    use chrono::Datelike;
    format!(
        "FH{number:04}-{:04}{:02}{:02}",
        date.year(),
        date.month(),
        date.day()
    )
}

fn departure(date: NaiveDate, minute: u32) -> DateTime<Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN).and_utc();
    midnight + chrono::Duration::minutes(i64::from(minute))
}

/// Every airport the network serves.
pub static AIRPORTS: [Airport; 20] = [
    Airport {
        code: "LHR",
        city: "London",
        currency: "GBP",
    },
    Airport {
        code: "MAN",
        city: "Manchester",
        currency: "GBP",
    },
    Airport {
        code: "DUB",
        city: "Dublin",
        currency: "EUR",
    },
    Airport {
        code: "CDG",
        city: "Paris",
        currency: "EUR",
    },
    Airport {
        code: "AMS",
        city: "Amsterdam",
        currency: "EUR",
    },
    Airport {
        code: "FRA",
        city: "Frankfurt",
        currency: "EUR",
    },
    Airport {
        code: "MUC",
        city: "Munich",
        currency: "EUR",
    },
    Airport {
        code: "MAD",
        city: "Madrid",
        currency: "EUR",
    },
    Airport {
        code: "FCO",
        city: "Rome",
        currency: "EUR",
    },
    Airport {
        code: "ZRH",
        city: "Zurich",
        currency: "CHF",
    },
    Airport {
        code: "CPH",
        city: "Copenhagen",
        currency: "DKK",
    },
    Airport {
        code: "JFK",
        city: "New York",
        currency: "USD",
    },
    Airport {
        code: "BOS",
        city: "Boston",
        currency: "USD",
    },
    Airport {
        code: "ORD",
        city: "Chicago",
        currency: "USD",
    },
    Airport {
        code: "MIA",
        city: "Miami",
        currency: "USD",
    },
    Airport {
        code: "LAX",
        city: "Los Angeles",
        currency: "USD",
    },
    Airport {
        code: "SFO",
        city: "San Francisco",
        currency: "USD",
    },
    Airport {
        code: "YYZ",
        city: "Toronto",
        currency: "CAD",
    },
    Airport {
        code: "DXB",
        city: "Dubai",
        currency: "AED",
    },
    Airport {
        code: "SIN",
        city: "Singapore",
        currency: "SGD",
    },
];

/// Airbus A220-300: small narrow-body with a small business cabin.
pub static A220: Aircraft = Aircraft {
    code: "BCS3",
    name: "Airbus A220-300",
    seats: [133, 0, 12, 0],
    wide_body: false,
};
/// Airbus A320neo.
pub static A320: Aircraft = Aircraft {
    code: "A20N",
    name: "Airbus A320neo",
    seats: [156, 0, 12, 0],
    wide_body: false,
};
/// Airbus A321neo.
pub static A321: Aircraft = Aircraft {
    code: "A21N",
    name: "Airbus A321neo",
    seats: [184, 0, 16, 0],
    wide_body: false,
};
/// Boeing 737 MAX 8, all economy.
pub static B737: Aircraft = Aircraft {
    code: "B38M",
    name: "Boeing 737 MAX 8",
    seats: [172, 0, 0, 0],
    wide_body: false,
};
/// Boeing 787-9.
pub static B787: Aircraft = Aircraft {
    code: "B789",
    name: "Boeing 787-9",
    seats: [216, 39, 42, 0],
    wide_body: true,
};
/// Airbus A350-1000.
pub static A350: Aircraft = Aircraft {
    code: "A35K",
    name: "Airbus A350-1000",
    seats: [224, 32, 48, 0],
    wide_body: true,
};
/// Boeing 777-300ER, the only aircraft with first class.
pub static B777: Aircraft = Aircraft {
    code: "B77W",
    name: "Boeing 777-300ER",
    seats: [268, 40, 48, 8],
    wide_body: true,
};

/// Every aircraft type in the fleet.
pub static AIRCRAFT: [&Aircraft; 7] = [&A220, &A320, &A321, &B737, &B787, &A350, &B777];

const fn route(
    origin: &'static str,
    destination: &'static str,
    daily: u8,
    aircraft: &'static Aircraft,
    popularity: u8,
    number: u16,
) -> Route {
    Route {
        origin,
        destination,
        daily,
        aircraft,
        popularity,
        number,
    }
}

/// Every route, both directions listed separately.
pub static ROUTES: [Route; 40] = [
    // Short-haul Europe from the London and Manchester bases.
    route("LHR", "CDG", 4, &A320, 5, 100),
    route("CDG", "LHR", 4, &A320, 5, 110),
    route("LHR", "AMS", 3, &A320, 4, 120),
    route("AMS", "LHR", 3, &A320, 4, 130),
    route("LHR", "FRA", 3, &A321, 4, 140),
    route("FRA", "LHR", 3, &A321, 4, 150),
    route("LHR", "MAD", 2, &A321, 3, 160),
    route("MAD", "LHR", 2, &A321, 3, 170),
    route("LHR", "FCO", 2, &A320, 3, 180),
    route("FCO", "LHR", 2, &A320, 3, 190),
    route("LHR", "DUB", 3, &A220, 3, 200),
    route("DUB", "LHR", 3, &A220, 3, 210),
    route("LHR", "ZRH", 2, &A220, 2, 220),
    route("ZRH", "LHR", 2, &A220, 2, 230),
    route("LHR", "CPH", 2, &B737, 2, 240),
    route("CPH", "LHR", 2, &B737, 2, 250),
    route("LHR", "MUC", 2, &A320, 2, 260),
    route("MUC", "LHR", 2, &A320, 2, 270),
    route("MAN", "CDG", 2, &B737, 2, 280),
    route("CDG", "MAN", 2, &B737, 2, 290),
    route("MAN", "AMS", 2, &A220, 1, 300),
    route("AMS", "MAN", 2, &A220, 1, 310),
    // US domestic.
    route("JFK", "LAX", 3, &A321, 4, 320),
    route("LAX", "JFK", 3, &A321, 4, 330),
    route("JFK", "MIA", 2, &B737, 3, 340),
    route("MIA", "JFK", 2, &B737, 3, 350),
    route("BOS", "ORD", 2, &A220, 2, 360),
    route("ORD", "BOS", 2, &A220, 2, 370),
    route("ORD", "SFO", 2, &B737, 2, 380),
    route("SFO", "ORD", 2, &B737, 2, 390),
    // Long-haul.
    route("LHR", "JFK", 3, &B777, 5, 400),
    route("JFK", "LHR", 3, &B777, 5, 410),
    route("LHR", "BOS", 1, &B787, 2, 420),
    route("BOS", "LHR", 1, &B787, 2, 430),
    route("LHR", "YYZ", 1, &B787, 2, 440),
    route("YYZ", "LHR", 1, &B787, 2, 450),
    route("LHR", "DXB", 2, &A350, 3, 460),
    route("DXB", "LHR", 2, &A350, 3, 470),
    route("LHR", "SIN", 1, &A350, 2, 480),
    route("SIN", "LHR", 1, &A350, 2, 490),
];

/// The airport with an IATA code.
pub fn airport(code: &str) -> Option<&'static Airport> {
    AIRPORTS.iter().find(|a| a.code == code)
}

/// Index in [`ROUTES`] of the route with key `ORIGIN-DESTINATION`.
pub fn route_index(key: &str) -> Option<usize> {
    let (origin, destination) = key.split_once('-')?;
    ROUTES
        .iter()
        .position(|r| r.origin == origin && r.destination == destination)
}

/// Every flight of every route departing from `first` to `last` (inclusive), ordered
/// by date, then route, then slot.
pub fn schedule(first: NaiveDate, last: NaiveDate) -> Schedule {
    let mut flights = Vec::new();
    let mut date = first;
    while date <= last {
        for route in &ROUTES {
            for slot in 0..route.daily {
                flights.push(route.flight(slot, date));
            }
        }
        let Some(next) = date.checked_add_days(Days::new(1)) else {
            break;
        };
        date = next;
    }
    Schedule { flights }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn network_is_consistent() {
        let codes: HashSet<_> = AIRPORTS.iter().map(|a| a.code).collect();
        assert_eq!(codes.len(), AIRPORTS.len());
        let mut numbers = HashSet::new();
        let mut keys = HashSet::new();
        for r in &ROUTES {
            assert!(
                codes.contains(r.origin) && codes.contains(r.destination),
                "{}",
                r.key()
            );
            assert_ne!(r.origin, r.destination);
            assert!(keys.insert(r.key()), "route listed twice: {}", r.key());
            assert!((1..=9).contains(&r.daily));
            for s in 0..r.daily {
                assert!(numbers.insert(r.flight_number(s)));
                assert!(r.flight_number(s) < UNSCHEDULED_FLIGHT_NUMBER_BASE);
                assert!(r.departure_minute(s) < 24 * 60);
            }
        }
        // Every airport is served.
        let served: HashSet<_> = ROUTES
            .iter()
            .flat_map(|r| [r.origin, r.destination])
            .collect();
        assert_eq!(served, codes);
    }

    #[test]
    fn aircraft_cabins_are_in_range() {
        for a in AIRCRAFT {
            let [economy, premium, business, first] = a.seats;
            assert!((120..=300).contains(&economy), "{}", a.code);
            assert!(premium <= 40 && business <= 48 && first <= 8, "{}", a.code);
            let capacity = a.capacity();
            for cabin in Cabin::ALL {
                assert_eq!(capacity.contains_key(&cabin), a.seats_in(cabin) > 0);
            }
        }
    }

    #[test]
    fn flight_ids_follow_the_contract() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert_eq!(flight_id(123, date), "FH0123-20261201");
        let schedule = schedule(date, date);
        assert_eq!(
            schedule.flights.len(),
            ROUTES.iter().map(|r| usize::from(r.daily)).sum::<usize>()
        );
        for f in &schedule.flights {
            assert!(
                flyhigh_schemas::validate::is_flight_id(&f.flight_id),
                "{}",
                f.flight_id
            );
            assert_eq!(f.departure.date_naive(), date);
        }
    }
}
