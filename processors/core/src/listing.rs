//! What an operator asks of the inventory (`flyhigh inventory list`): filters on
//! route, departure date, oversold and sold-out cabins, and a limit. Pure: the stores
//! narrow their reads with it where they can, and every store finishes with
//! [`InventoryFilter::select`], so all of them answer the same question the same way.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use crate::inventory::CabinInventory;

/// A route `ORIGIN-DESTINATION` of two IATA airport codes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// IATA origin, three capital letters.
    pub origin: String,
    /// IATA destination, three capital letters.
    pub destination: String,
}

/// Why a route does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {input:?}: expected ORIGIN-DESTINATION of two IATA codes, e.g. LHR-JFK")]
pub struct RouteError {
    /// What was given.
    pub input: String,
}

/// Whether `code` is an IATA airport code as the schemas accept it: three capital
/// ASCII letters.
pub fn is_iata(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

impl FromStr for Route {
    type Err = RouteError;

    /// Parses `LHR-JFK`; lower case is accepted and capitalised.
    fn from_str(s: &str) -> Result<Route, RouteError> {
        let err = || RouteError { input: s.into() };
        let (origin, destination) = s.trim().split_once('-').ok_or_else(err)?;
        let (origin, destination) = (
            origin.to_ascii_uppercase(),
            destination.to_ascii_uppercase(),
        );
        if !is_iata(&origin) || !is_iata(&destination) {
            return Err(err());
        }
        Ok(Route {
            origin,
            destination,
        })
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.origin, self.destination)
    }
}

/// Which cabins an operator's listing shows. The default shows every cabin.
///
/// Filters combine with AND: `oversold_only` and `sold_out_only` together are
/// oversold cabins (an oversold cabin is sold out too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryFilter {
    /// Only flights on this route (unscheduled flights have no route: never shown).
    pub route: Option<Route>,
    /// Only flights departing on this date (UTC): the schedule's departure, else the
    /// date in the flight id (`FH0123-20261201`).
    pub date: Option<NaiveDate>,
    /// Only cabins sold beyond capacity.
    pub oversold_only: bool,
    /// Only cabins with no seat left (oversold ones included).
    pub sold_out_only: bool,
    /// At most this many cabins, the first by flight id and cabin.
    pub limit: Option<usize>,
}

impl InventoryFilter {
    /// Whether a cabin passes every filter (the limit aside).
    pub fn matches(&self, cabin: &CabinInventory) -> bool {
        if let Some(route) = &self.route {
            match &cabin.schedule {
                Some(s) if s.origin == route.origin && s.destination == route.destination => {}
                _ => return false,
            }
        }
        if let Some(date) = self.date
            && cabin.departure_date() != Some(date)
        {
            return false;
        }
        if self.oversold_only && cabin.oversold() == 0 {
            return false;
        }
        if self.sold_out_only && !cabin.sold_out() {
            return false;
        }
        true
    }

    /// The matching cabins, ordered by flight id and cabin, at most `limit` of them.
    pub fn select(&self, cabins: impl IntoIterator<Item = CabinInventory>) -> Vec<CabinInventory> {
        let mut out: Vec<CabinInventory> = cabins.into_iter().filter(|c| self.matches(c)).collect();
        out.sort_by(|a, b| (&a.flight_id, a.cabin).cmp(&(&b.flight_id, b.cabin)));
        if let Some(limit) = self.limit {
            out.truncate(limit);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use flyhigh_schemas::Cabin;

    use super::*;
    use crate::inventory::FlightSchedule;

    fn cabin(flight: &str, cabin: Cabin, capacity: Option<u32>, sold: i64) -> CabinInventory {
        CabinInventory {
            flight_id: flight.into(),
            cabin,
            capacity,
            sold,
            schedule: capacity.map(|_| FlightSchedule {
                origin: "LHR".into(),
                destination: if flight.starts_with("FH2") {
                    "CDG"
                } else {
                    "JFK"
                }
                .into(),
                // Departs the day before the date in its id: the schedule wins.
                departure: Utc.with_ymd_and_hms(2026, 11, 30, 23, 30, 0).unwrap(),
            }),
        }
    }

    fn all() -> Vec<CabinInventory> {
        vec![
            cabin("FH1-20261201", Cabin::Business, Some(20), 25), // oversold
            cabin("FH1-20261201", Cabin::Economy, Some(150), 150), // sold out
            cabin("FH2-20261201", Cabin::Economy, Some(150), 3),
            cabin("FH9-20261201", Cabin::First, None, 4), // unscheduled
        ]
    }

    fn ids(cabins: &[CabinInventory]) -> Vec<String> {
        cabins
            .iter()
            .map(|c| format!("{} {}", c.flight_id, c.cabin))
            .collect()
    }

    #[test]
    fn routes_parse_and_name_what_is_wrong() {
        let r: Route = "lhr-JFK".parse().unwrap();
        assert_eq!((r.origin.as_str(), r.destination.as_str()), ("LHR", "JFK"));
        assert_eq!(r.to_string(), "LHR-JFK");
        for bad in ["LHRJFK", "LH-JFK", "LHR-JF1", "", "LHR-JFK-CDG"] {
            let err = bad.parse::<Route>().unwrap_err();
            assert!(
                err.to_string().contains("ORIGIN-DESTINATION"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn no_filter_lists_everything_in_order() {
        let mut shuffled = all();
        shuffled.reverse();
        let got = InventoryFilter::default().select(shuffled);
        assert_eq!(
            ids(&got),
            [
                "FH1-20261201 economy",
                "FH1-20261201 business",
                "FH2-20261201 economy",
                "FH9-20261201 first"
            ]
        );
    }

    #[test]
    fn oversold_and_sold_out_filters() {
        let oversold = InventoryFilter {
            oversold_only: true,
            ..InventoryFilter::default()
        };
        assert_eq!(ids(&oversold.select(all())), ["FH1-20261201 business"]);
        let sold_out = InventoryFilter {
            sold_out_only: true,
            ..InventoryFilter::default()
        };
        assert_eq!(
            ids(&sold_out.select(all())),
            ["FH1-20261201 economy", "FH1-20261201 business"],
            "oversold counts as sold out; unscheduled never does"
        );
        let both = InventoryFilter {
            sold_out_only: true,
            ..oversold
        };
        assert_eq!(ids(&both.select(all())), ["FH1-20261201 business"]);
    }

    #[test]
    fn route_filter_skips_unscheduled_flights() {
        let f = InventoryFilter {
            route: Some("LHR-CDG".parse().unwrap()),
            ..InventoryFilter::default()
        };
        assert_eq!(ids(&f.select(all())), ["FH2-20261201 economy"]);
        let f = InventoryFilter {
            route: Some("LHR-JFK".parse().unwrap()),
            ..InventoryFilter::default()
        };
        assert_eq!(f.select(all()).len(), 2);
    }

    #[test]
    fn date_filter_uses_the_schedule_then_the_flight_id() {
        let day = |d| InventoryFilter {
            date: NaiveDate::from_ymd_opt(2026, 12, d),
            ..InventoryFilter::default()
        };
        // Scheduled flights depart on 2026-11-30 whatever their id says.
        assert_eq!(ids(&day(1).select(all())), ["FH9-20261201 first"]);
        let nov30 = InventoryFilter {
            date: NaiveDate::from_ymd_opt(2026, 11, 30),
            ..InventoryFilter::default()
        };
        assert_eq!(nov30.select(all()).len(), 3);
        assert!(day(2).select(all()).is_empty());
    }

    #[test]
    fn limit_keeps_the_first_cabins() {
        let f = InventoryFilter {
            limit: Some(2),
            ..InventoryFilter::default()
        };
        assert_eq!(
            ids(&f.select(all())),
            ["FH1-20261201 economy", "FH1-20261201 business"]
        );
        let none = InventoryFilter {
            limit: Some(0),
            ..InventoryFilter::default()
        };
        assert!(none.select(all()).is_empty());
    }

    #[test]
    fn flight_ids_carry_their_date() {
        use crate::inventory::departure_date;
        assert_eq!(
            departure_date("FH0123-20261201"),
            NaiveDate::from_ymd_opt(2026, 12, 1)
        );
        for bad in [
            "FH0123",
            "FH0123-2026120",
            "FH0123-20261301",
            "FH0123-2026120x",
        ] {
            assert_eq!(departure_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn load_factor_and_sold_out() {
        let c = cabin("FH1-20261201", Cabin::Business, Some(20), 25);
        assert_eq!(c.load_factor(), Some(1.25));
        assert!(c.sold_out());
        let u = cabin("FH9-20261201", Cabin::First, None, 4);
        assert_eq!(
            (u.load_factor(), u.sold_out(), u.route()),
            (None, false, None)
        );
        assert_eq!(c.route().as_deref(), Some("LHR-JFK"));
        let empty = cabin("FH1-20261201", Cabin::First, Some(0), 0);
        assert_eq!((empty.load_factor(), empty.sold_out()), (None, true));
    }
}
