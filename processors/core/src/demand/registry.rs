//! The route registry's rules: which routes the surge evaluator judges, when a quiet
//! one leaves, and in which order a run takes them. Pure.
//!
//! Any search names a route, so the registry is open to whatever a client sends. It
//! stays bounded by two rules, both applied by the evaluator to what it lists:
//!
//! - **Known airports.** A route is judged only if both its airports are in a
//!   [`RouteCheck`]: the schedule's airports (locally) or the documented list of the
//!   alerts Lambda (`KNOWN_AIRPORTS`). Others leave the registry at once. So the
//!   registry holds at most `airports × (airports - 1)` routes however many invented
//!   pairs a client sends.
//! - **Quiet routes expire.** Consumers note a route once per container and
//!   [`NOTE_REFRESH`]; a route not noted for [`QUIET_EXPIRY`] has had no event in
//!   that time and leaves the registry (conditionally: one noted again meanwhile
//!   stays). Its state is kept; if it comes back it is noted again and judged again
//!   (after the evaluator's catch-up, as after an outage).
//!
//! A run takes the routes in name order starting after the cursor, the last route
//! the previous run judged ([`after_cursor`]), and stops at its deadline; the next
//! run resumes there, so every route is judged within `ceil(routes / routes per run)`
//! runs.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use crate::listing::is_iata;
use crate::ports::NotedRoute;

/// How often a consumer notes again a route it noted already (each container keeps
/// what it noted; a route forgotten by the evaluator is back within this).
pub const NOTE_REFRESH: Duration = Duration::hours(1);

/// How long a route stays in the registry without being noted: a week, far above
/// [`NOTE_REFRESH`], so a route with any event in that time is never forgotten.
pub const QUIET_EXPIRY: Duration = Duration::days(7);

/// Which routes are judged: those between two known airports, or any well-formed
/// `AAA-BBB` when no list is given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteCheck {
    airports: Option<BTreeSet<String>>,
}

/// Why a registered route leaves the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Judge it.
    Judge,
    /// Not two IATA codes, or an airport not in the list.
    Unknown,
    /// Not noted for longer than the quiet expiry.
    Quiet,
}

impl RouteCheck {
    /// Every well-formed route passes (the registry is then bounded by expiry only).
    pub fn any() -> RouteCheck {
        RouteCheck { airports: None }
    }

    /// Routes between these airports pass.
    pub fn airports<I, S>(airports: I) -> RouteCheck
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RouteCheck {
            airports: Some(airports.into_iter().map(Into::into).collect()),
        }
    }

    /// The airports of a schedule's flights.
    pub fn of_schedule(schedule: &crate::Schedule) -> RouteCheck {
        RouteCheck::airports(
            schedule
                .flights
                .iter()
                .flat_map(|f| [f.origin.clone(), f.destination.clone()]),
        )
    }

    /// Parses `LHR,JFK, CDG` (the alerts Lambda's `KNOWN_AIRPORTS`); blank: any.
    ///
    /// # Errors
    ///
    /// A code that is not three capital letters, named.
    pub fn parse_list(list: &str) -> Result<RouteCheck, String> {
        let codes: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if codes.is_empty() {
            return Ok(RouteCheck::any());
        }
        if let Some(bad) = codes.iter().find(|c| !is_iata(c)) {
            return Err(format!(
                "airport {bad:?} is not an IATA code (three capitals)"
            ));
        }
        Ok(RouteCheck::airports(codes))
    }

    /// How many airports the list holds (`None`: any).
    pub fn airport_count(&self) -> Option<usize> {
        self.airports.as_ref().map(BTreeSet::len)
    }

    /// Whether `route` is `AAA-BBB` of two different known airports.
    pub fn accepts(&self, route: &str) -> bool {
        let Some((origin, destination)) = route.split_once('-') else {
            return false;
        };
        is_iata(origin)
            && is_iata(destination)
            && origin != destination
            && self
                .airports
                .as_ref()
                .is_none_or(|a| a.contains(origin) && a.contains(destination))
    }

    /// What to do with a registered route at wall time `now`.
    pub fn verdict(&self, route: &NotedRoute, now: DateTime<Utc>, quiet: Duration) -> Verdict {
        if !self.accepts(&route.route) {
            Verdict::Unknown
        } else if route.last_seen < now - quiet {
            Verdict::Quiet
        } else {
            Verdict::Judge
        }
    }
}

/// `routes` (sorted) in the order a run takes them: those after `cursor`, then from
/// the start up to and including it.
pub fn after_cursor(mut routes: Vec<String>, cursor: Option<&str>) -> Vec<String> {
    if let Some(cursor) = cursor {
        let split = routes.partition_point(|r| r.as_str() <= cursor);
        routes.rotate_left(split);
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noted(route: &str, last_seen: DateTime<Utc>) -> NotedRoute {
        NotedRoute {
            route: route.into(),
            last_seen,
        }
    }

    #[test]
    fn only_routes_between_known_airports_pass() {
        let check = RouteCheck::parse_list("LHR, JFK,CDG").unwrap();
        assert_eq!(check.airport_count(), Some(3));
        assert!(check.accepts("LHR-JFK"));
        assert!(check.accepts("CDG-LHR"));
        assert!(!check.accepts("LHR-XQZ"));
        assert!(!check.accepts("LHR-LHR"));
        assert!(!check.accepts("lhr-jfk"));
        assert!(!check.accepts("LHRJFK"));
        assert!(RouteCheck::any().accepts("XQZ-QQQ"));
        assert!(!RouteCheck::any().accepts("XQ-QQQ"));
        assert_eq!(RouteCheck::parse_list(" "), Ok(RouteCheck::any()));
        assert!(
            RouteCheck::parse_list("LHR,jfk")
                .unwrap_err()
                .contains("jfk")
        );
    }

    #[test]
    fn a_route_not_noted_for_the_quiet_expiry_leaves() {
        let now: DateTime<Utc> = "2026-12-08T00:00:00Z".parse().unwrap();
        let check = RouteCheck::any();
        let fresh = noted("LHR-JFK", now - Duration::days(6));
        let quiet = noted("LHR-JFK", now - Duration::days(8));
        assert_eq!(check.verdict(&fresh, now, QUIET_EXPIRY), Verdict::Judge);
        assert_eq!(check.verdict(&quiet, now, QUIET_EXPIRY), Verdict::Quiet);
        let invented = noted("ABC-XYZ", now);
        assert_eq!(
            RouteCheck::airports(["LHR", "JFK"]).verdict(&invented, now, QUIET_EXPIRY),
            Verdict::Unknown
        );
        assert!(QUIET_EXPIRY > NOTE_REFRESH * 24);
    }

    #[test]
    fn a_run_starts_after_the_cursor_and_wraps() {
        let routes: Vec<String> = ["A-B", "C-D", "E-F", "G-H"].map(String::from).to_vec();
        assert_eq!(after_cursor(routes.clone(), None), routes);
        assert_eq!(
            after_cursor(routes.clone(), Some("C-D")),
            ["E-F", "G-H", "A-B", "C-D"]
        );
        // A cursor route that left the registry: the next one after it.
        assert_eq!(
            after_cursor(routes.clone(), Some("D-D")),
            ["E-F", "G-H", "A-B", "C-D"]
        );
        assert_eq!(after_cursor(routes.clone(), Some("Z-Z")), routes);
    }
}
