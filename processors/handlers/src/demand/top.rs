//! The hot-route view: each route's demand in a recent window against its
//! baseline, highest ratio first. `flyhigh routes top` prints it and the live
//! dashboard shows it, both from this one computation over the same ports.
//!
//! ```no_run
//! # async fn f() -> Result<(), flyhigh_core::StoreError> {
//! use flyhigh_core::memory::{MemoryAlertStore, MemoryDemandStore};
//! use flyhigh_handlers::demand::top::{TopQuery, pipeline_clock, top};
//! let store = MemoryDemandStore::new();
//! let now = pipeline_clock(&store, chrono::Utc::now()).await?;
//! let rows = top(&store, None::<&MemoryAlertStore>, &TopQuery::default(), now).await?;
//! # Ok(()) }
//! ```

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::demand::counting::sum_by_bucket;
use flyhigh_core::demand::{Counts, RouteState};
use flyhigh_core::{AlertStore, DemandStore, StoreError};
use serde::Serialize;

/// Buckets before the window that the view's baseline averages, when the evaluator
/// has no baseline for the route yet.
pub const BASELINE_SPAN: Duration = Duration::hours(2);
/// Least expected demand per minute, so that a route with no history has a ratio.
pub const MIN_BASELINE_PER_MINUTE: f64 = 0.5;
/// The bucket the counters are kept in.
const MINUTE: i64 = 60;

/// Which window, and how many routes.
#[derive(Debug, Clone, PartialEq)]
pub struct TopQuery {
    /// Length of the window; shorter than a minute counts as a minute (a bucket).
    pub window: Duration,
    /// End of the window; `None`: now (then the evaluator's surge state applies).
    pub at: Option<DateTime<Utc>>,
    /// Routes to keep.
    pub limit: usize,
}

impl Default for TopQuery {
    fn default() -> TopQuery {
        TopQuery {
            window: Duration::minutes(15),
            at: None,
            limit: 10,
        }
    }
}

/// One route in the view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteRow {
    pub route: String,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub counts: Counts,
    pub demand: u64,
    /// Demand the baseline expects of the whole window.
    pub baseline: f64,
    pub ratio: f64,
    /// Whether the evaluator has the route in a surge episode now; `None` for a
    /// window in the past (`at`), where its state does not apply.
    pub surging: Option<bool>,
}

/// The local pipeline's clock as its store last saw it: the latest time a consumer
/// stamped its progress with (the demo's consumers run on the simulated day's
/// clock), no later than `wall`; `wall` when nothing was counted yet.
///
/// # Errors
///
/// The store cannot be read.
pub async fn pipeline_clock<D: DemandStore>(
    demand: &D,
    wall: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    Ok(demand
        .watermarks()
        .await?
        .iter()
        .map(|w| w.updated_at)
        .max()
        .map_or(wall, |t| t.min(wall)))
}

/// The routes with the highest demand against their baseline in the window ending
/// at `query.at`, or at `now` (a clock, never an event time: a client's clock can
/// date an event anywhere).
///
/// # Errors
///
/// A store cannot be read.
pub async fn top<D: DemandStore, A: AlertStore>(
    demand: &D,
    alerts: Option<&A>,
    query: &TopQuery,
    now: DateTime<Utc>,
) -> Result<Vec<RouteRow>, StoreError> {
    let window = query.window.max(Duration::minutes(1));
    let at = query.at.unwrap_or(now);
    let end = (at.timestamp().div_euclid(MINUTE) + 1) * MINUTE;
    let start = end - window.num_seconds();
    let span_start = start - BASELINE_SPAN.num_seconds();
    let window_minutes = window.num_seconds() as f64 / 60.0;
    let mut rows = Vec::new();
    for route in demand.routes().await? {
        let counters = demand.counters(&route, span_start, end).await?;
        let by_bucket = sum_by_bucket(counters.iter().map(|(k, c)| (k.bucket, c)));
        let mut counts = Counts::default();
        let mut before = 0u64;
        for (b, c) in &by_bucket {
            if *b >= start {
                counts.add(c);
            } else {
                before += c.demand();
            }
        }
        // The evaluator's state describes the present only.
        let state: Option<RouteState> = match (alerts, query.at) {
            (Some(a), None) => a.route_state(&route).await?,
            _ => None,
        };
        let baseline = baseline_per_minute(state.as_ref(), before) * window_minutes;
        let demand = counts.demand();
        rows.push(RouteRow {
            route,
            window_start: at_seconds(start),
            window_end: at_seconds(end),
            counts,
            demand,
            baseline,
            ratio: demand as f64 / baseline,
            surging: query
                .at
                .is_none()
                .then(|| state.is_some_and(|s| s.episode.is_some())),
        });
    }
    rows.sort_by(|a, b| b.ratio.total_cmp(&a.ratio).then(b.demand.cmp(&a.demand)));
    rows.truncate(query.limit);
    Ok(rows)
}

/// Expected demand per minute: the evaluator's own baseline when it has one (the
/// one frozen at an episode's start while it lasts), else the mean of the span
/// before the window (`before` is that span's demand), never below
/// [`MIN_BASELINE_PER_MINUTE`].
pub fn baseline_per_minute(state: Option<&RouteState>, before: u64) -> f64 {
    state
        .and_then(|s| s.episode.as_ref().map(|e| e.baseline).or(s.baseline))
        .unwrap_or(before as f64 / (BASELINE_SPAN.num_seconds() as f64 / 60.0))
        .max(MIN_BASELINE_PER_MINUTE)
}

/// Demand (searches + bookings, over every shard) of `route` per minute bucket in
/// `from <= bucket < to` (unix seconds), every minute present (zero when nothing was
/// counted), oldest first.
///
/// # Errors
///
/// The store cannot be read.
pub async fn demand_per_minute<D: DemandStore>(
    demand: &D,
    route: &str,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, u64)>, StoreError> {
    let from = from.div_euclid(MINUTE) * MINUTE;
    let counters = demand.counters(route, from, to).await?;
    let by_bucket = sum_by_bucket(counters.iter().map(|(k, c)| (k.bucket, c)));
    Ok((from..to)
        .step_by(MINUTE as usize)
        .map(|b| (b, by_bucket.get(&b).map_or(0, Counts::demand)))
        .collect())
}

fn at_seconds(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or_default()
}
