//! [`SurgeEvaluator`]: judges every route once per bucket, from the counters summed
//! over shards, and records the surges it finds.
//!
//! One run, for each route the counters have noted:
//! 1. read the route's state (or start one at the route's first counted bucket, at
//!    most [`SurgeEvaluator::with_catch_up`] before the horizon);
//! 2. read the route's counters from the bucket that leaves the first window to the
//!    last bucket that closed before the horizon, and judge each bucket in turn
//!    ([`flyhigh_core::demand::surge::judge`]);
//! 3. save the state, conditional on the version read, and record the alerts it
//!    raised in the same atomic step. A second evaluator running at the same time
//!    loses the save and records nothing; a crash before the save leaves nothing,
//!    and the next run judges the same buckets again. So an alert exists exactly when
//!    the judgement that raised it is stored: buckets whose counters moved since
//!    (a lagging shard) can never be judged a second time and fire again at another
//!    window, under another id.
//!
//! The *horizon* is the caller's: in AWS, [`SurgeEvaluator::settled_horizon`], the
//! wall clock minus the allowance, held back while a shard's consumer lags; in the
//! demo, the slowest shard's watermark minus the demo's allowance, then the end of
//! the stream.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::demand::counting::sum_by_bucket;
use flyhigh_core::demand::surge::{self, RouteState, SurgeConfig, SurgeConfigError};
use flyhigh_core::{AlertPublisher, AlertStore, DemandStore, StoreError};
use flyhigh_schemas::Alert;

use super::outbox::{Outbox, PublishReport};

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct EvaluationReport {
    /// Routes looked at.
    pub routes: usize,
    /// Buckets judged, over all routes.
    pub buckets_judged: u64,
    /// Alerts this run recorded first (others may have recorded more).
    pub raised: Vec<Alert>,
    /// Routes whose state another evaluator saved first.
    pub lost_races: usize,
    /// Routes that failed (store errors); the next run retries them.
    pub failed_routes: Vec<(String, String)>,
    /// What the outbox did afterwards.
    pub published: PublishReport,
}

/// The surge evaluator over a counter store, an alert store and a publisher.
pub struct SurgeEvaluator<S, A, P> {
    demand: S,
    outbox: Outbox<A, P>,
    config: SurgeConfig,
    catch_up: Duration,
}

impl<S: DemandStore, A: AlertStore, P: AlertPublisher> SurgeEvaluator<S, A, P> {
    /// An evaluator with [`SurgeConfig::default`] and two days of catch-up.
    pub fn new(demand: S, alerts: A, publisher: P) -> Self {
        SurgeEvaluator {
            demand,
            outbox: Outbox::new(alerts, publisher),
            config: SurgeConfig::default(),
            catch_up: Duration::days(2),
        }
    }

    /// Judges with `config`.
    ///
    /// # Errors
    ///
    /// A setting out of range ([`SurgeConfig::validate`]).
    pub fn with_config(mut self, config: SurgeConfig) -> Result<Self, SurgeConfigError> {
        config.validate()?;
        self.config = config;
        Ok(self)
    }

    /// How far back before the horizon a route is judged from: a route seen for the
    /// first time, or one whose state is older (an outage; its baseline starts over).
    pub fn with_catch_up(mut self, catch_up: Duration) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// Uses this outbox (to tune its claims and retries).
    pub fn with_outbox(mut self, outbox: Outbox<A, P>) -> Self {
        self.outbox = outbox;
        self
    }

    /// The horizon for a scheduled run at wall time `now`
    /// ([`surge::settled_horizon`] over the shards' progress, which is arrival time,
    /// never event time): `now - allowance`, or earlier while a shard's consumer lags,
    /// however its events are dated; shards whose progress has not moved for ten
    /// minutes are idle or closed and hold nothing back. `allowance` must be the one
    /// the demand handler flags late events with
    /// ([`flyhigh_core::demand::counting::DEFAULT_ALLOWANCE`] by default).
    pub async fn settled_horizon(
        &self,
        now: DateTime<Utc>,
        allowance: Duration,
    ) -> Result<DateTime<Utc>, StoreError> {
        let watermarks = self.demand.watermarks().await?;
        Ok(surge::settled_horizon(
            now,
            &watermarks,
            allowance,
            Duration::minutes(10),
        ))
    }

    /// The rule's settings.
    pub fn config(&self) -> &SurgeConfig {
        &self.config
    }

    /// The counter store.
    pub fn demand(&self) -> &S {
        &self.demand
    }

    /// The outbox.
    pub fn outbox(&self) -> &Outbox<A, P> {
        &self.outbox
    }

    /// Judges every bucket that closed before `horizon` and was not judged yet,
    /// records the surges, then publishes what is pending. `now` stamps `raised_at`
    /// and the outbox's claims.
    pub async fn run(
        &self,
        horizon: DateTime<Utc>,
        now: impl Fn() -> DateTime<Utc>,
    ) -> Result<EvaluationReport, StoreError> {
        let mut report = EvaluationReport::default();
        let routes = self.demand.routes().await?;
        report.routes = routes.len();
        for route in routes {
            if let Err(e) = self.judge_route(&route, horizon, &now, &mut report).await {
                tracing::warn!(route = %route, error = %e, "route not judged; the next run retries it");
                report.failed_routes.push((route, e.to_string()));
            }
        }
        report.published = self.outbox.publish_pending(&now).await;
        Ok(report)
    }

    async fn judge_route(
        &self,
        route: &str,
        horizon: DateTime<Utc>,
        now: &impl Fn() -> DateTime<Utc>,
        report: &mut EvaluationReport,
    ) -> Result<(), StoreError> {
        let config = &self.config;
        let step = config.bucket_seconds;
        let last = config.last_closed_bucket(horizon);
        let alerts = self.outbox.store();
        let (mut state, mut series) = match alerts.route_state(route).await? {
            Some(state) => (state, None),
            None => {
                // A route seen for the first time: start at its first counted bucket.
                let from = config.bucket_of(horizon - self.catch_up);
                let series = self.series(route, from, last + step).await?;
                let Some(&first) = series.keys().next() else {
                    return Ok(());
                };
                (RouteState::new(config, first), Some(series))
            }
        };
        if state.next_bucket > last {
            return Ok(());
        }
        // After an outage longer than the catch-up, the buckets before it are not
        // judged: a surge hours old is no alert. The baseline restarts its warm-up.
        let earliest = config.bucket_of(horizon - self.catch_up);
        if state.next_bucket < earliest {
            tracing::warn!(
                route,
                skipped_buckets = (earliest - state.next_bucket) / step,
                "route judged again after an outage; buckets before the catch-up are skipped"
            );
            let version = state.version;
            state = RouteState::new(config, earliest);
            state.version = version;
            series = None;
        }
        let series = match series.take() {
            Some(s) => s,
            None => {
                self.series(route, state.first_bucket_needed(config), last + step)
                    .await?
            }
        };
        let mut firings = Vec::new();
        while state.next_bucket <= last {
            let (_, firing) = surge::judge(config, route, &mut state, |b| {
                series.get(&b).copied().unwrap_or(0)
            });
            report.buckets_judged += 1;
            firings.extend(firing);
        }
        let raised: Vec<Alert> = firings
            .iter()
            .map(|f| surge::surge_alert(route, f, now()))
            .collect();
        state.version += 1;
        // The state and the alerts it raised in one step (see
        // `AlertStore::save_route_state`).
        if alerts.save_route_state(route, &state, &raised).await? {
            for alert in raised {
                tracing::info!(alert_id = %alert.alert_id, route, severity = %alert.severity,
                    observed = ?alert.observed, baseline = ?alert.baseline, "surge alert raised");
                report.raised.push(alert);
            }
        } else {
            report.lost_races += 1;
        }
        Ok(())
    }

    /// The route's demand per bucket in `[from, to)`, summed over shards.
    async fn series(
        &self,
        route: &str,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<i64, u64>, StoreError> {
        let counters = self.demand.counters(route, from, to).await?;
        Ok(sum_by_bucket(counters.iter().map(|(k, c)| (k.bucket, c)))
            .into_iter()
            .map(|(b, c)| (b, c.demand()))
            .collect())
    }
}
