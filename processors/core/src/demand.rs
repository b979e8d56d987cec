//! The hot-route processor's pure core: demand per route, surges, flight alerts.
//!
//! The processor is split in two, so that one surge is one alert whatever the number
//! of shards and invocations:
//!
//! - [`counting`], in the stream consumer: per shard, each batch becomes one
//!   conditional counter change per route and bucket of event time, exact under
//!   redelivery (a high-water mark of record positions per counter), with late
//!   events flagged, never dropped.
//! - [`surge`], in one evaluator on a schedule: each route judged as a whole (its
//!   counters summed over shards) against its own baseline, with floors, severities,
//!   hysteresis and a cooldown.
//! - [`registry`]: which noted routes the evaluator judges (known airports, quiet
//!   expiry) and in which order a run takes them.
//! - [`flights`]: `near_sold_out`, `sold_out`, `oversold`, judged from the
//!   inventory's committed state after each inventory batch, once per crossing.
//!
//! Alerts are [`flyhigh_schemas::Alert`]s with ids derived from what they are about;
//! the stores ([`crate::ports::AlertStore`]) record each once, conditionally, and an
//! outbox publishes it (see `flyhigh_handlers::demand`). The design and its numbers
//! are in `docs/hot-routes.md`.

pub mod counting;
pub mod flights;
pub mod registry;
pub mod surge;

pub use counting::{CounterKey, CounterUpdate, Counts, DemandEvent, DemandKind, Position};
pub use flights::{CabinAlertState, FlightAlertConfig};
pub use surge::{RouteState, SurgeConfig};

/// `("ORD", "SFO")` from `"ORD-SFO"`; a malformed route gives itself and `""`.
pub fn split_route(route: &str) -> (String, String) {
    match route.split_once('-') {
        Some((o, d)) => (o.to_string(), d.to_string()),
        None => (route.to_string(), String::new()),
    }
}

/// `t` truncated to the millisecond: the precision of the alert contract, so that an
/// alert is equal to itself read back from any store.
pub fn to_millis(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
