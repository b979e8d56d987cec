//! The [`Source`] port (what the page shows, wherever it is kept) and
//! [`StoreSource`], its implementation over the core's store ports, so the SQLite
//! files of a local deployment and the DynamoDB tables of an AWS one both serve it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::{AlertFilter, AlertStore, DemandStore, InventoryStore, StoreError};
use flyhigh_handlers::demand::top::{self, BASELINE_SPAN, RouteRow, TopQuery, baseline_per_minute};

use crate::model::{FlightView, RouteSeries, Snapshot};

/// A flight the store could not be asked about.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Not a flight id (the page's search box takes anything a person types).
    #[error("{0:?} is not a flight id (like FH0123-20261208)")]
    BadFlightId(String),
    /// This source has no inventory store.
    #[error("no inventory store is open (name one with --inventory-table or --sqlite)")]
    NoInventory,
    /// The store failed; worth trying again.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the page shows, read from wherever it lives.
pub trait Source: Send + Sync + 'static {
    /// Everything the page shows now. Never fails as a whole: what cannot be read
    /// is named in [`Snapshot::errors`] and the rest is shown.
    fn snapshot(&self) -> impl Future<Output = Snapshot> + Send;

    /// One flight's cabins; `Ok(None)` when the store knows nothing of it.
    fn flight(
        &self,
        flight_id: &str,
    ) -> impl Future<Output = Result<Option<FlightView>, SourceError>> + Send;
}

/// The service's own counters, read on each snapshot (`flyhigh serve`'s `/v1/stats`).
pub type StatsFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<serde_json::Value>> + Send>> + Send + Sync>;

/// Which clock ends the hot-route window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowClock {
    /// The wall clock: a running pipeline (a live service, AWS).
    Wall,
    /// The latest time the consumers recorded progress with, as `routes top` reads
    /// a local file: a stopped service's or a demo's simulated day stays on screen
    /// instead of an empty window of now.
    Pipeline,
}

/// How many hot routes, alerts and plotted routes a snapshot holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// The hot-route window and the rows kept.
    pub top: TopQuery,
    /// Alerts kept, the latest.
    pub alerts: usize,
    /// Hottest routes whose per-minute demand is plotted.
    pub series_routes: usize,
    /// Minutes of per-minute demand plotted.
    pub series_minutes: i64,
}

impl Default for Shape {
    fn default() -> Shape {
        Shape {
            top: TopQuery::default(),
            alerts: 30,
            series_routes: 5,
            series_minutes: 60,
        }
    }
}

/// A [`Source`] over the core's store ports: the demand store, optionally the alert
/// store (alerts, the evaluator's baselines and surge state) and the inventory
/// store, and optionally the service's counters.
pub struct StoreSource<D, A, I> {
    label: String,
    demand: D,
    alerts: Option<A>,
    inventory: Option<I>,
    stats: Option<StatsFn>,
    clock: WindowClock,
    shape: Shape,
}

impl<D, A, I> StoreSource<D, A, I>
where
    D: DemandStore + 'static,
    A: AlertStore + 'static,
    I: InventoryStore + 'static,
{
    /// A source named `label` (shown on the page) over these stores.
    pub fn new(
        label: impl Into<String>,
        demand: D,
        alerts: Option<A>,
        inventory: Option<I>,
    ) -> Self {
        StoreSource {
            label: label.into(),
            demand,
            alerts,
            inventory,
            stats: None,
            clock: WindowClock::Wall,
            shape: Shape::default(),
        }
    }

    /// Adds the service's counters to every snapshot.
    pub fn with_stats(mut self, stats: StatsFn) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Ends the hot-route window at this clock.
    pub fn with_clock(mut self, clock: WindowClock) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps this many rows of each part.
    pub fn with_shape(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    async fn hot_routes(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Vec<RouteRow>, Vec<RouteSeries>), StoreError> {
        let rows = top::top(&self.demand, self.alerts.as_ref(), &self.shape.top, now).await?;
        let mut series = Vec::new();
        for row in rows.iter().take(self.shape.series_routes) {
            let to = row.window_end.timestamp();
            let from = to - self.shape.series_minutes * 60;
            let points = top::demand_per_minute(&self.demand, &row.route, from, to).await?;
            let window_minutes = (row.window_end - row.window_start).num_seconds() as f64 / 60.0;
            series.push(RouteSeries {
                route: row.route.clone(),
                baseline_per_minute: if window_minutes > 0.0 {
                    row.baseline / window_minutes
                } else {
                    baseline_per_minute(None, 0)
                },
                points,
            });
        }
        Ok((rows, series))
    }
}

impl<D, A, I> Source for StoreSource<D, A, I>
where
    D: DemandStore + 'static,
    A: AlertStore + 'static,
    I: InventoryStore + 'static,
{
    async fn snapshot(&self) -> Snapshot {
        let wall = Utc::now();
        let mut snapshot = Snapshot::empty(self.label.clone());
        snapshot.generated_at = wall;
        match self.demand.watermarks().await {
            Ok(marks) => {
                snapshot.consumers_progress_at = marks.iter().map(|w| w.updated_at).max();
            }
            Err(e) => snapshot.errors.push(format!("consumer progress: {e}")),
        }
        let now = match self.clock {
            WindowClock::Wall => wall,
            WindowClock::Pipeline => snapshot.consumers_progress_at.map_or(wall, |t| t.min(wall)),
        };
        match self.hot_routes(now).await {
            Ok((rows, series)) => {
                snapshot.hot_routes = rows;
                snapshot.route_series = series;
            }
            Err(e) => snapshot.errors.push(format!("hot routes: {e}")),
        }
        if let Some(alerts) = &self.alerts {
            // A day back is plenty for a live view, and keeps a DynamoDB read small.
            let filter = AlertFilter {
                since: Some(now - Duration::hours(24).max(BASELINE_SPAN)),
                rule: None,
                limit: Some(self.shape.alerts),
            };
            match alerts.alerts(&filter).await {
                Ok(mut listed) => {
                    listed.reverse();
                    snapshot.alerts = listed;
                }
                Err(e) => snapshot.errors.push(format!("alerts: {e}")),
            }
        }
        if let Some(stats) = &self.stats {
            snapshot.stats = stats().await;
        }
        snapshot
    }

    async fn flight(&self, flight_id: &str) -> Result<Option<FlightView>, SourceError> {
        let flight_id = flight_id.trim().to_ascii_uppercase();
        if !valid_flight_id(&flight_id) {
            return Err(SourceError::BadFlightId(flight_id));
        }
        let inventory = self.inventory.as_ref().ok_or(SourceError::NoInventory)?;
        Ok(FlightView::of(
            &flight_id,
            inventory.flight(&flight_id).await?,
        ))
    }
}

/// Letters, digits and dashes, as flight ids are written; anything else never
/// reaches a store.
fn valid_flight_id(id: &str) -> bool {
    (3..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyhigh_core::memory::{MemoryAlertStore, MemoryDemandStore};
    use flyhigh_core::{CabinInventory, Schedule};

    /// An inventory store that knows one flight.
    struct OneFlight;

    impl InventoryStore for OneFlight {
        async fn bookings(
            &self,
            _ids: &[String],
        ) -> Result<std::collections::HashMap<String, flyhigh_core::BookingRecord>, StoreError>
        {
            Ok(Default::default())
        }
        async fn commit(
            &self,
            _tx: &flyhigh_core::inventory::Transaction,
        ) -> Result<(), flyhigh_core::CommitError> {
            Ok(())
        }
        async fn load_schedule(&self, _schedule: &Schedule) -> Result<(), StoreError> {
            Ok(())
        }
        async fn inventory(&self) -> Result<Vec<CabinInventory>, StoreError> {
            Ok(vec![
                CabinInventory {
                    flight_id: "FH0001-20261208".into(),
                    cabin: flyhigh_schemas::Cabin::Economy,
                    capacity: Some(100),
                    sold: 103,
                    schedule: None,
                },
                CabinInventory {
                    flight_id: "FH0001-20261208".into(),
                    cabin: flyhigh_schemas::Cabin::Business,
                    capacity: Some(20),
                    sold: 5,
                    schedule: None,
                },
            ])
        }
    }

    fn source() -> StoreSource<MemoryDemandStore, MemoryAlertStore, OneFlight> {
        StoreSource::new(
            "memory",
            MemoryDemandStore::new(),
            Some(MemoryAlertStore::new()),
            Some(OneFlight),
        )
    }

    #[tokio::test]
    async fn a_flight_shows_available_and_oversold_seats() {
        let view = source().flight(" fh0001-20261208 ").await.unwrap().unwrap();
        let economy = &view
            .cabins
            .iter()
            .find(|c| c.cabin == flyhigh_schemas::Cabin::Economy)
            .unwrap();
        assert_eq!((economy.available, economy.oversold), (Some(0), 3));
        let business = &view
            .cabins
            .iter()
            .find(|c| c.cabin == flyhigh_schemas::Cabin::Business)
            .unwrap();
        assert_eq!((business.available, business.oversold), (Some(15), 0));
        assert_eq!(source().flight("FH9999-20261208").await.unwrap(), None);
        assert!(matches!(
            source().flight("x'; drop").await,
            Err(SourceError::BadFlightId(_))
        ));
    }

    #[tokio::test]
    async fn an_empty_store_gives_an_empty_snapshot_without_errors() {
        let s = source().snapshot().await;
        assert!(s.hot_routes.is_empty() && s.alerts.is_empty() && s.errors.is_empty());
        assert!(
            s.stats.is_none(),
            "no stats unless the service provides them"
        );
    }
}
