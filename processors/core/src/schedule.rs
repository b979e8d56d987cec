//! The flight schedule: which flights exist and how many seats each cabin has.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use flyhigh_schemas::Cabin;
use serde::{Deserialize, Serialize};

/// One scheduled flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFlight {
    /// Flight designator and departure date, e.g. `FH0123-20261201`.
    pub flight_id: String,
    /// IATA origin.
    pub origin: String,
    /// IATA destination.
    pub destination: String,
    /// Scheduled departure, UTC.
    pub departure: DateTime<Utc>,
    /// Seats per cabin. A cabin the aircraft does not have is absent.
    pub capacity: BTreeMap<Cabin, u32>,
}

impl ScheduledFlight {
    /// `ORIGIN-DESTINATION`, the route key used by reports and alerts.
    pub fn route(&self) -> String {
        format!("{}-{}", self.origin, self.destination)
    }
}

/// The schedule file an operator loads (`flyhigh schedule load FILE`): JSON,
/// `{"flights": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Every flight.
    pub flights: Vec<ScheduledFlight>,
}
