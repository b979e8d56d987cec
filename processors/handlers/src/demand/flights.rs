//! [`FlightAlerts`]: near-sold-out, sold-out and oversold alerts from the
//! inventory's committed state.
//!
//! The inventory handler calls its [`FlightWatch`] after a batch with the flights
//! the batch changed, and also the flights of its no-op events: a retried batch
//! finds its own earlier commits as no-ops, so a check that failed after the commit
//! is made again by the retry. For each flight the watch reads the committed cabins
//! (never the handler's own arithmetic), moves each cabin's latches
//! ([`flyhigh_core::demand::flights::observe`]), and saves the latches with the alerts
//! of the rules that fired in one step, conditional on their version (a racing
//! consumer's save makes it re-read and judge again). The
//! inventory is never clamped or held back: the watch only reads it.

use std::future::Future;

use chrono::{DateTime, Utc};
use flyhigh_core::demand::flights::{self, FlightAlertConfig};
use flyhigh_core::{AlertPublisher, AlertStore, CabinKey, InventoryStore, StoreError};
use flyhigh_schemas::Alert;

use super::outbox::Outbox;

/// Rounds of re-read after a lost latch save.
const MAX_ROUNDS: usize = 4;

/// A flight an inventory batch touched, and the latest event time the batch had for
/// it (the alerts' `detected_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchedFlight {
    /// The flight.
    pub flight_id: String,
    /// Latest `occurred_at` of the batch's events on it.
    pub detected_at: DateTime<Utc>,
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
                let state = states.get(key).copied().unwrap_or_default();
                let (mut next, crossings) = flights::observe(&self.config, &state, cabin);
                if next == state {
                    continue;
                }
                let fired: Vec<Alert> = crossings
                    .into_iter()
                    .filter_map(|c| {
                        flights::flight_alert(c, cabin, flight.detected_at, (self.clock)())
                    })
                    .collect();
                next.version = state.version + 1;
                // Latches and alerts in one step: a crash cannot leave an alert whose
                // crossing is not latched (nor a latch without its alert).
                if alerts.save_cabin_state(key, &next, &fired).await? {
                    for alert in fired {
                        tracing::info!(alert_id = %alert.alert_id, flight_id = %cabin.flight_id,
                            cabin = %cabin.cabin.as_str(), sold = cabin.sold, capacity = ?cabin.capacity,
                            "flight alert raised");
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
        for flight in flights {
            raised.extend(
                self.check_flight(store, flight)
                    .await
                    .map_err(|e| (flight.flight_id.clone(), e))?,
            );
        }
        if !raised.is_empty() {
            // Only what this batch raised, one attempt each: a slow or failing SNS
            // must not hold the inventory back. What is left stays pending for the
            // alerts Lambda's outbox pass, every minute; it never fails the batch.
            let report = self.outbox.publish_now(&raised, &*self.clock).await;
            if report.left_pending > 0 {
                tracing::warn!(
                    left_pending = report.left_pending,
                    "flight alerts left pending"
                );
            }
        }
        Ok(())
    }
}

/// The distinct flights of `flights`, each with its latest time.
pub fn touched(flights: impl IntoIterator<Item = (String, DateTime<Utc>)>) -> Vec<TouchedFlight> {
    let mut latest: std::collections::BTreeMap<String, DateTime<Utc>> = Default::default();
    for (flight, t) in flights {
        let e = latest.entry(flight).or_insert(t);
        if t > *e {
            *e = t;
        }
    }
    latest
        .into_iter()
        .map(|(flight_id, detected_at)| TouchedFlight {
            flight_id,
            detected_at,
        })
        .collect()
}
