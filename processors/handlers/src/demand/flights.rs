//! [`FlightAlerts`]: near-sold-out, sold-out and oversold alerts, and their
//! clearances, from the inventory's committed state, event by event.
//!
//! The inventory handler calls its [`FlightWatch`] after a batch with, per flight, the
//! *steps* of the batch: every event whose effect is stored and moved seats, with its
//! stream position ([`flyhigh_core::inventory::seat_effect`] reads them off the
//! booking records, so a retried batch, whose events are no-ops for the inventory,
//! still has them). For each flight the watch reads the committed cabins and their
//! latches, judges each cabin at every step above its latches' mark, in stream order
//! ([`flyhigh_core::demand::flights::judge_cabin`]), and saves the latches with the
//! alerts that fired or cleared in one step, conditional on their version (a racing
//! consumer's save makes it re-read and judge again). So the same events raise the same
//! alert ids however the batches were cut, bisected, retried or redelivered. The
//! inventory is never clamped or held back: the watch only reads it.

use std::future::Future;

use chrono::{DateTime, Utc};
use flyhigh_core::demand::flights::{self, FlightAlertConfig, SeatStep};
use flyhigh_core::{AlertPublisher, AlertStore, CabinKey, InventoryStore, Position, StoreError};
use flyhigh_schemas::Alert;

use super::outbox::Outbox;

/// Rounds of re-read after a lost latch save.
const MAX_ROUNDS: usize = 4;

/// A flight an inventory batch moved seats on: its steps, cabin by cabin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchedFlight {
    /// The flight.
    pub flight_id: String,
    /// Every event of the batch whose stored effect moved seats on one of its cabins,
    /// in stream order.
    pub steps: Vec<(flyhigh_schemas::Cabin, SeatStep)>,
    /// The first event of the batch on this flight whose effect may not be stored (the
    /// batch failed there): steps from it on are left for the retry.
    pub judge_before: Option<Position>,
}

impl TouchedFlight {
    /// A flight with no step yet.
    pub fn new(flight_id: impl Into<String>) -> TouchedFlight {
        TouchedFlight {
            flight_id: flight_id.into(),
            steps: Vec::new(),
            judge_before: None,
        }
    }
}

/// What the inventory handler calls after each batch.
pub trait FlightWatch: Send + Sync {
    /// Checks `flights` against `store`'s committed state. On a store error, the
    /// flight whose check failed (the batch is retried from its first event).
    fn check<S: InventoryStore>(
        &self,
        store: &S,
        flights: &[TouchedFlight],
    ) -> impl Future<Output = Result<(), (String, StoreError)>> + Send;
}

/// No flight alerts (the inventory handler's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFlightWatch;

impl FlightWatch for NoFlightWatch {
    async fn check<S: InventoryStore>(
        &self,
        _: &S,
        _: &[TouchedFlight],
    ) -> Result<(), (String, StoreError)> {
        Ok(())
    }
}

/// The flight rules over an alert store and a publisher.
pub struct FlightAlerts<A, P> {
    outbox: Outbox<A, P>,
    config: FlightAlertConfig,
    clock: Box<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

impl<A: AlertStore, P: AlertPublisher> FlightAlerts<A, P> {
    /// The rules with [`FlightAlertConfig::default`], publishing through an outbox.
    pub fn new(alerts: A, publisher: P) -> Self {
        FlightAlerts {
            outbox: Outbox::new(alerts, publisher),
            config: FlightAlertConfig::default(),
            clock: Box::new(Utc::now),
        }
    }

    /// Other thresholds (validated by the caller with [`FlightAlertConfig::validate`]).
    pub fn with_config(mut self, config: FlightAlertConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses this outbox (to tune its claims and retries).
    pub fn with_outbox(mut self, outbox: Outbox<A, P>) -> Self {
        self.outbox = outbox;
        self
    }

    /// Wall clock for `raised_at` and the outbox's claims.
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// The outbox.
    pub fn outbox(&self) -> &Outbox<A, P> {
        &self.outbox
    }

    /// Checks one flight; returns the alerts it recorded first.
    pub async fn check_flight<S: InventoryStore>(
        &self,
        store: &S,
        flight: &TouchedFlight,
    ) -> Result<Vec<Alert>, StoreError> {
        let alerts = self.outbox.store();
        let mut raised = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let cabins: Vec<_> = store
                .flight(&flight.flight_id)
                .await?
                .into_iter()
                .filter(|c| c.capacity.is_some_and(|c| c > 0))
                .filter(|c| flight.steps.iter().any(|(cabin, _)| *cabin == c.cabin))
                .collect();
            if cabins.is_empty() {
                return Ok(raised);
            }
            let keys: Vec<CabinKey> = cabins
                .iter()
                .map(|c| CabinKey::new(c.flight_id.clone(), c.cabin))
                .collect();
            let states = alerts.cabin_states(&keys).await?;
            let mut lost_race = false;
            for (cabin, key) in cabins.iter().zip(&keys) {
                let state = states.get(key).cloned().unwrap_or_default();
                let steps: Vec<SeatStep> = flight
                    .steps
                    .iter()
                    .filter(|(c, _)| *c == cabin.cabin)
                    .map(|(_, s)| s.clone())
                    .collect();
                let (mut next, found) = flights::judge_cabin(
                    &self.config,
                    &state,
                    cabin,
                    &steps,
                    flight.judge_before.as_ref(),
                );
                // Nothing above the mark: judged already (a redelivery).
                if next == state {
                    continue;
                }
                let fired: Vec<Alert> = found
                    .into_iter()
                    .filter_map(|j| {
                        flights::flight_alert(j.crossing, &j.cabin, j.detected_at, (self.clock)())
                    })
                    .collect();
                next.version = state.version + 1;
                // Latches and alerts in one step: a crash cannot leave an alert whose
                // crossing is not latched (nor a latch without its alert).
                if alerts.save_cabin_state(key, &next, &fired).await? {
                    for alert in fired {
                        tracing::info!(alert_id = %alert.alert_id, status = %alert.status,
                            flight_id = %cabin.flight_id, cabin = %cabin.cabin.as_str(),
                            sold = ?alert.sold, capacity = ?cabin.capacity, "flight alert raised");
                        raised.push(alert);
                    }
                } else {
                    lost_race = true;
                }
            }
            if !lost_race {
                return Ok(raised);
            }
        }
        Err(StoreError::Transient(format!(
            "the alert latches of {} kept changing under {MAX_ROUNDS} attempts",
            flight.flight_id
        )))
    }
}

impl<A: AlertStore, P: AlertPublisher> FlightWatch for FlightAlerts<A, P> {
    async fn check<S: InventoryStore>(
        &self,
        store: &S,
        flights: &[TouchedFlight],
    ) -> Result<(), (String, StoreError)> {
        let mut raised = Vec::new();
        let mut failed = None;
        for flight in flights {
            match self.check_flight(store, flight).await {
                Ok(alerts) => raised.extend(alerts),
                Err(e) => {
                    failed = Some((flight.flight_id.clone(), e));
                    break;
                }
            }
        }
        if !raised.is_empty() {
            // Only what this batch raised (before a failure too: those alerts are
            // recorded), one attempt each: a slow or failing SNS must not hold the
            // inventory back. What is left stays pending for the alerts Lambda's outbox
            // pass, every minute; it never fails the batch.
            let report = self.outbox.publish_now(&raised, &*self.clock).await;
            if report.left_pending > 0 {
                tracing::warn!(
                    left_pending = report.left_pending,
                    "flight alerts left pending"
                );
            }
        }
        failed.map_or(Ok(()), Err)
    }
}
