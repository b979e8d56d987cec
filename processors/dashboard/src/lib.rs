//! `flyhigh-dashboard`: the live dashboard of `flyhigh serve` and `flyhigh dashboard`,
//! for the revenue team (hot routes, surges, a flight's seats) and the operator on
//! call (throughput, lag, dead letters, latency, the producer's buffer), in one page
//! that updates itself.
//!
//! Layout:
//! - [`model`]: what the page shows ([`Snapshot`], [`FlightView`]), serde types.
//! - [`source`]: the [`Source`] port, and [`StoreSource`] over the core's store
//!   ports (`DemandStore`, `AlertStore`, `InventoryStore`), so SQLite and DynamoDB
//!   both serve it; the hot routes are `routes top`'s own computation
//!   (`flyhigh_handlers::demand::top`).
//! - [`hub`]: the sampler, the bounded ring of recent snapshots and the bounded
//!   broadcast the live streams read.
//! - [`http`]: the axum [`Router`](axum::Router) (`/`, `/assets/...`, `/v1/live`,
//!   `/v1/dashboard`, `/v1/flights/{flight_id}`) a service merges into its own.
//! - `assets/`: the page (`index.html`, `app.js`, `app.css`) and the vendored uPlot,
//!   embedded with `include_str!`: no build step, no CDN, works offline.
//!
//! One browser keeps one event stream however many tabs show the page: `app.js`
//! runs itself as a `SharedWorker` that holds the `EventSource` and hands each frame
//! to every tab (a browser without shared workers falls back to one stream per
//! tab). So the seventh tab does not wait behind HTTP/1.1's six connections per
//! host.
//!
//! ```no_run
//! # async fn f() {
//! use std::sync::Arc;
//! use flyhigh_core::memory::{MemoryAlertStore, MemoryDemandStore, MemoryStore};
//! use flyhigh_dashboard::{Hub, HubConfig, StoreSource};
//! let source = Arc::new(StoreSource::new(
//!     "in memory",
//!     MemoryDemandStore::new(),
//!     Some(MemoryAlertStore::new()),
//!     Some(MemoryStore::new()),
//! ));
//! let hub = Hub::new(HubConfig::default());
//! hub.spawn_sampler(source.clone());
//! let app = flyhigh_dashboard::router(hub, source);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

pub mod http;
pub mod hub;
pub mod model;
pub mod source;

pub use http::router;
pub use hub::{Frame, Hub, HubConfig};
pub use model::{CabinView, FlightView, RouteSeries, Snapshot};
pub use source::{Shape, Source, SourceError, StatsFn, StoreSource, WindowClock};
