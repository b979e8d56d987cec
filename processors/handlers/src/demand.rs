//! The hot-route processor's handlers: demand counting on the stream, the surge
//! evaluator on a schedule, flight alerts after inventory batches, and the outbox
//! that publishes every alert.
//!
//! | piece | runs in | reads | writes |
//! |---|---|---|---|
//! | [`DemandHandler`] | the demand Lambda / the runner, per Kinesis batch | events; a cancellation's route from the inventory | one conditional counter change per route, bucket and shard ([`flyhigh_core::demand::counting`]) |
//! | [`SurgeEvaluator`] | the alerts Lambda, every minute / the demo | counters summed over shards, each route's state | `route_surge` alerts, the route's state (conditional on its version) |
//! | [`FlightAlerts`] | the inventory Lambda, after each batch | the committed cabins of the flights it changed | `near_sold_out`, `sold_out`, `oversold` alerts, the cabin's latches |
//! | [`Outbox`] | wherever alerts are raised, and the alerts Lambda | pending alerts | SNS / `alerts.jsonl`, then the published mark |
//!
//! Alerts are recorded in an [`AlertStore`](flyhigh_core::AlertStore) by a
//! conditional write on their id before anything is published, so two invocations
//! that compute the same alert record it once; the outbox claims, publishes and
//! marks, so a publish failure is retried and a crash between publish and mark
//! repeats an alert at most once, with the same `alert_id`.

pub mod counting;
pub mod evaluator;
pub mod flights;
pub mod outbox;
pub mod top;

pub use counting::{DemandHandler, DemandStats};
pub use evaluator::{EvaluationReport, SurgeEvaluator};
pub use flights::{FlightAlerts, FlightWatch, NoFlightWatch, TouchedFlight};
pub use outbox::{Outbox, PublishReport};

/// The processor's name in dead letters and logs.
pub const PROCESSOR: &str = "demand";
