//! The live dashboard of `flyhigh serve` ([`flyhigh_dashboard`]): the page over the
//! data directory's stores, opened read-only beside the processors that write them,
//! with the service's own counters (`/v1/stats`) in every snapshot.

use std::sync::Arc;

use anyhow::Context;
use flyhigh_dashboard::{Hub, HubConfig, StatsFn, StoreSource, WindowClock};
use flyhigh_embedded::{SqliteDemandStore, SqliteInventoryStore};

use crate::files::Files;

/// The dashboard's routes, and the hub to close when the service stops (its event
/// streams would otherwise keep the graceful shutdown waiting).
pub(crate) struct Live {
    pub(crate) router: axum::Router,
    pub(crate) hub: Arc<Hub>,
}

impl Live {
    /// Opens the stores read-only and starts the sampler.
    ///
    /// # Errors
    ///
    /// A store cannot be opened (the deployment creates them first).
    pub(crate) fn start(files: &Files, label: String, stats: StatsFn) -> anyhow::Result<Live> {
        let demand =
            SqliteDemandStore::open_read_only(&files.demand_sqlite).with_context(|| {
                format!(
                    "opening {} for the dashboard",
                    files.demand_sqlite.display()
                )
            })?;
        let alerts =
            SqliteDemandStore::open_read_only(&files.demand_sqlite).with_context(|| {
                format!(
                    "opening {} for the dashboard",
                    files.demand_sqlite.display()
                )
            })?;
        let inventory = SqliteInventoryStore::open_read_only(&files.inventory_sqlite)
            .with_context(|| {
                format!(
                    "opening {} for the dashboard",
                    files.inventory_sqlite.display()
                )
            })?;
        let source = Arc::new(
            StoreSource::new(label, demand, Some(alerts), Some(inventory))
                .with_stats(stats)
                .with_clock(WindowClock::Wall),
        );
        let hub = Hub::new(HubConfig::default());
        hub.spawn_sampler(source.clone());
        Ok(Live {
            router: flyhigh_dashboard::router(hub.clone(), source),
            hub,
        })
    }
}
