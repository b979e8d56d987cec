//! What the page shows, as it travels to it: one [`Snapshot`] a second, and a
//! flight's inventory on request. Serialize-only: the page is the reader.

use chrono::{DateTime, Utc};
use flyhigh_core::{CabinInventory, FlightSchedule, StoredAlert};
use flyhigh_handlers::demand::top::RouteRow;
use flyhigh_schemas::Cabin;
use serde::Serialize;

/// Everything the page shows at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Set by the hub when it publishes: unix milliseconds, strictly increasing,
    /// so an id stays meaningful across a restart (`Last-Event-ID`).
    pub id: u64,
    /// When the snapshot was read (the server's wall clock).
    pub generated_at: DateTime<Utc>,
    /// The latest time a consumer recorded progress with: how fresh the counted
    /// demand is, even when the server itself answers.
    pub consumers_progress_at: Option<DateTime<Utc>>,
    /// What the page reads, as a person names it.
    pub source: String,
    /// Milliseconds between snapshots (the page calls a gap of a few of them stale).
    pub interval_ms: u64,
    /// The `routes top` view now.
    pub hot_routes: Vec<RouteRow>,
    /// Per-minute demand of the hottest routes, for the demand-against-baseline plot.
    pub route_series: Vec<RouteSeries>,
    /// The latest alerts, latest first.
    pub alerts: Vec<StoredAlert>,
    /// The service's own counters (`/v1/stats` of `flyhigh serve`), passed through
    /// as they are; `None` where metrics live elsewhere (CloudWatch on AWS).
    pub stats: Option<serde_json::Value>,
    /// What could not be read this time (the rest of the snapshot still is).
    pub errors: Vec<String>,
}

impl Snapshot {
    /// An empty snapshot from `source`, read now.
    pub fn empty(source: impl Into<String>) -> Snapshot {
        Snapshot {
            id: 0,
            generated_at: Utc::now(),
            consumers_progress_at: None,
            source: source.into(),
            interval_ms: 0,
            hot_routes: Vec::new(),
            route_series: Vec::new(),
            alerts: Vec::new(),
            stats: None,
            errors: Vec::new(),
        }
    }
}

/// One route's demand per minute and what its baseline expects of a minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteSeries {
    pub route: String,
    pub baseline_per_minute: f64,
    /// `(bucket start in unix seconds, demand)`, oldest first, every minute present.
    pub points: Vec<(i64, u64)>,
}

/// A flight's cabins as the inventory search shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlightView {
    pub flight_id: String,
    pub schedule: Option<FlightSchedule>,
    pub cabins: Vec<CabinView>,
}

/// One cabin: capacity, sold, what is left, and by how much it is oversold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CabinView {
    pub cabin: Cabin,
    pub capacity: Option<u32>,
    pub sold: i64,
    /// Seats left (never negative); `None` when the flight is not in the schedule.
    pub available: Option<i64>,
    /// Seats sold beyond capacity (0 when within it).
    pub oversold: i64,
}

impl FlightView {
    /// The view of a flight's cabins as a store returns them; `None` for none.
    pub fn of(flight_id: &str, cabins: Vec<CabinInventory>) -> Option<FlightView> {
        if cabins.is_empty() {
            return None;
        }
        Some(FlightView {
            flight_id: flight_id.to_string(),
            schedule: cabins.iter().find_map(|c| c.schedule.clone()),
            cabins: cabins
                .into_iter()
                .map(|c| {
                    let capacity = c.capacity.map(i64::from);
                    CabinView {
                        cabin: c.cabin,
                        capacity: c.capacity,
                        sold: c.sold,
                        available: capacity.map(|cap| (cap - c.sold).max(0)),
                        oversold: capacity.map_or(0, |cap| (c.sold - cap).max(0)),
                    }
                })
                .collect(),
        })
    }
}
