//! [`SurgeEvaluator`]: judges every route once per bucket, from the counters summed
//! over shards, and records the surges it finds.
//!
//! One run:
//! 1. **publishes what the outbox holds first** (surge alerts of earlier runs, flight
//!    alerts the inventory path could not publish): publishing never waits behind
//!    judging, however many routes there are;
//! 2. lists the route registry and takes out the routes it must not judge
//!    ([`flyhigh_core::demand::registry`]: airports not known, or not noted for the
//!    quiet expiry);
//! 3. judges the routes in name order **starting after the cursor** (the last route
//!    the previous run judged), 16 at a time, until the run's deadline, saving the
//!    cursor as it goes,
//!    so a run cut short resumes where it stopped and every route is judged within
//!    `ceil(routes / routes per run)` runs;
//! 4. publishes what it raised.
//!
//! Judging one route:
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

use futures::StreamExt;

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::demand::counting::sum_by_bucket;
use flyhigh_core::demand::registry::{QUIET_EXPIRY, RouteCheck, Verdict, after_cursor};
use flyhigh_core::demand::surge::{self, RouteState, SurgeConfig, SurgeConfigError};
use flyhigh_core::{AlertPublisher, AlertStore, DemandStore, StoreError};
use flyhigh_schemas::Alert;

use super::outbox::{Outbox, PublishReport};

/// The cursor is saved every this many routes judged (and at the end of a run): a
/// run that dies without saving it judges at most this many routes again.
const CURSOR_EVERY: usize = 100;

/// Routes judged at once: each costs two or three store round trips, so a run judges
/// about this many times more routes before its deadline than one at a time.
const CONCURRENCY: usize = 16;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct EvaluationReport {
    /// Routes in the registry that are judged (known airports, noted lately).
    pub routes: usize,
    /// Routes this run judged (or found nothing new to judge in).
    pub routes_judged: usize,
    /// Routes left for the next runs: the deadline came first.
    pub routes_left: usize,
    /// Routes taken out of the registry: airports not known.
    pub routes_unknown: usize,
    /// Routes taken out of the registry: not noted for the quiet expiry.
    pub routes_expired: usize,
    /// Buckets judged, over all routes.
    pub buckets_judged: u64,
    /// Alerts this run recorded first (others may have recorded more).
    pub raised: Vec<Alert>,
    /// Routes whose state another evaluator saved first.
    pub lost_races: usize,
    /// Routes that failed (store errors); the next run retries them.
    pub failed_routes: Vec<(String, String)>,
    /// What the outbox did (before judging, and after for what the run raised).
    pub published: PublishReport,
}

/// The surge evaluator over a counter store, an alert store and a publisher.
pub struct SurgeEvaluator<S, A, P> {
    demand: S,
    outbox: Outbox<A, P>,
    config: SurgeConfig,
    catch_up: Duration,
    check: RouteCheck,
    quiet: Duration,
    routes_per_run: Option<usize>,
}

impl<S: DemandStore, A: AlertStore, P: AlertPublisher> SurgeEvaluator<S, A, P> {
    /// An evaluator with [`SurgeConfig::default`] and two days of catch-up.
    pub fn new(demand: S, alerts: A, publisher: P) -> Self {
        SurgeEvaluator {
            demand,
            outbox: Outbox::new(alerts, publisher),
            config: SurgeConfig::default(),
            catch_up: Duration::days(2),
            check: RouteCheck::any(),
            quiet: QUIET_EXPIRY,
            routes_per_run: None,
        }
    }

    /// Judges only the routes `check` accepts; the others leave the registry.
    pub fn with_route_check(mut self, check: RouteCheck) -> Self {
        self.check = check;
        self
    }

    /// Routes not noted for `quiet` leave the registry (default
    /// [`QUIET_EXPIRY`]; at least a day, far above how often consumers note again).
    pub fn with_quiet_expiry(mut self, quiet: Duration) -> Self {
        self.quiet = quiet.max(Duration::days(1));
        self
    }

    /// Judges at most `n` routes per run (besides the deadline): a fixed slice of the
    /// registry per run, for tests and load measurements.
    pub fn with_routes_per_run(mut self, n: usize) -> Self {
        self.routes_per_run = Some(n);
        self
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

    /// A run without a deadline (see [`run_until`](Self::run_until)): every route is
    /// judged, unless [`with_routes_per_run`](Self::with_routes_per_run) caps it.
    pub async fn run(
        &self,
        horizon: DateTime<Utc>,
        now: impl Fn() -> DateTime<Utc>,
    ) -> Result<EvaluationReport, StoreError> {
        self.run_until(horizon, now, None).await
    }

    /// Publishes what is pending, then judges every bucket that closed before
    /// `horizon` and was not judged yet, route by route from where the last run
    /// stopped, until `deadline` (no route but the first is started after it), records the surges
    /// and publishes them. `now` stamps `raised_at` and the outbox's claims, and is
    /// the wall time the quiet expiry counts from.
    ///
    /// # Errors
    ///
    /// Only listing the registry: a route that fails is in the report and judged
    /// again by the next run; what the outbox could not do stays pending.
    pub async fn run_until(
        &self,
        horizon: DateTime<Utc>,
        now: impl Fn() -> DateTime<Utc>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<EvaluationReport, StoreError> {
        let mut report = EvaluationReport {
            published: self.outbox.publish_pending(&now).await,
            ..EvaluationReport::default()
        };
        let routes = self.routes_to_judge(now(), &mut report).await?;
        report.routes = routes.len();
        let alerts = self.outbox.store();
        let cursor = match alerts.evaluator_cursor().await {
            Ok(cursor) => cursor,
            Err(e) => {
                // From the start: the routes at the end wait one more round.
                tracing::warn!(error = %e, "evaluator cursor not read; starting from the first route");
                None
            }
        };
        let order = after_cursor(routes, cursor.as_deref());
        // Routes are judged CONCURRENCY at a time (each one's state is its own
        // conditional save), and finish in order, so the cursor is always a route
        // before which every route was judged. No route starts after the deadline but
        // the first: a run whose deadline is already past (a short timeout, a slow
        // start) still moves the cursor on.
        // Started by hand, not through stream combinators with closures: the run
        // must stay `Send` for callers that spawn it (the demo).
        let mut running = futures::stream::FuturesOrdered::new();
        let mut queue = order.iter().take(self.routes_per_run.unwrap_or(usize::MAX));
        let mut last: Option<&str> = None;
        let mut started = 0usize;
        loop {
            while running.len() < CONCURRENCY
                && (started == 0 || deadline.is_none_or(|d| tokio::time::Instant::now() < d))
            {
                let Some(route) = queue.next() else { break };
                started += 1;
                running.push_back(self.judge_one(route, horizon, &now));
            }
            let Some((route, judged)) = running.next().await else {
                break;
            };
            match judged {
                Ok(one) => {
                    report.buckets_judged += one.buckets_judged;
                    report.raised.extend(one.raised);
                    report.lost_races += one.lost_races;
                }
                Err(e) => {
                    tracing::warn!(route = %route, error = %e, "route not judged; the next run retries it");
                    report
                        .failed_routes
                        .push((route.to_string(), e.to_string()));
                }
            }
            report.routes_judged += 1;
            last = Some(route);
            if report.routes_judged.is_multiple_of(CURSOR_EVERY) {
                self.save_cursor(route).await;
            }
        }
        report.routes_left = order.len() - report.routes_judged;
        if let Some(route) = last {
            self.save_cursor(route).await;
        }
        if report.routes_left > 0 {
            tracing::info!(
                judged = report.routes_judged,
                left = report.routes_left,
                "run out of time; the next run resumes after the last route judged"
            );
        }
        if !report.raised.is_empty() {
            let after = self.outbox.publish_pending(&now).await;
            report.published.add(&after);
        }
        Ok(report)
    }

    /// The registry's routes this run judges, sorted; takes out the others.
    async fn routes_to_judge(
        &self,
        now: DateTime<Utc>,
        report: &mut EvaluationReport,
    ) -> Result<Vec<String>, StoreError> {
        let mut routes = Vec::new();
        for noted in self.demand.noted_routes().await? {
            let verdict = self.check.verdict(&noted, now, self.quiet);
            if verdict == Verdict::Judge {
                routes.push(noted.route);
                continue;
            }
            match verdict {
                Verdict::Unknown => report.routes_unknown += 1,
                _ => report.routes_expired += 1,
            }
            // Not judged either way; a failed delete is tried again next run.
            if let Err(e) = self.demand.forget_route(&noted).await {
                tracing::warn!(route = %noted.route, error = %e, "route not taken out of the registry");
            }
        }
        if report.routes_unknown + report.routes_expired > 0 {
            tracing::info!(
                unknown = report.routes_unknown,
                quiet = report.routes_expired,
                "routes taken out of the registry"
            );
        }
        Ok(routes)
    }

    async fn save_cursor(&self, route: &str) {
        if let Err(e) = self.outbox.store().save_evaluator_cursor(route).await {
            // The next run starts from an earlier route: some are judged again,
            // which finds nothing new.
            tracing::warn!(route, error = %e, "evaluator cursor not saved");
        }
    }

    /// [`judge_route`](Self::judge_route) with the route it judged.
    async fn judge_one<'a>(
        &self,
        route: &'a str,
        horizon: DateTime<Utc>,
        now: &impl Fn() -> DateTime<Utc>,
    ) -> (&'a str, Result<EvaluationReport, StoreError>) {
        (route, self.judge_route(route, horizon, now).await)
    }

    async fn judge_route(
        &self,
        route: &str,
        horizon: DateTime<Utc>,
        now: &impl Fn() -> DateTime<Utc>,
    ) -> Result<EvaluationReport, StoreError> {
        // What judging this route did: buckets, alerts raised, a lost race.
        let mut report = EvaluationReport::default();
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
                    return Ok(report);
                };
                (RouteState::new(config, first), Some(series))
            }
        };
        if state.next_bucket > last {
            return Ok(report);
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
        Ok(report)
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
