//! The surge evaluator under load (issue 15, finding 3): many registered routes,
//! invented routes, quiet routes, runs cut short by their deadline, saves of many
//! alerts. On the in-memory ports; the same against DynamoDB (moto) is in
//! `processors/aws/tests/moto_evaluator.rs`.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::demand::registry::RouteCheck;
use flyhigh_core::demand::surge::{RouteState, SurgeConfig};
use flyhigh_core::demand::{CounterKey, CounterUpdate, Counts, Position};
use flyhigh_core::memory::{MemoryAlertStore, MemoryDemandStore, MemoryPublisher};
use flyhigh_core::{
    Added, AlertFilter, AlertPublisher, AlertStore, DemandStore, NotedRoute, ShardWatermark,
    StoreError,
};
use flyhigh_handlers::SurgeEvaluator;
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, Cabin, Severity};

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The wall time of every run here.
fn now() -> DateTime<Utc> {
    at("2026-12-01T12:00:00Z")
}

/// An oversold alert of flight `n`: what the inventory path leaves in the outbox.
fn oversold(n: usize) -> Alert {
    let flight_id = format!("FH{n:04}-20261201");
    Alert {
        alert_id: Alert::flight_id_for(AlertRule::Oversold, &flight_id, Cabin::Business, 1),
        alert_version: ALERT_VERSION,
        status: Default::default(),
        clears: None,
        rule: AlertRule::Oversold,
        severity: Severity::Critical,
        route: "LHR-JFK".into(),
        origin: "LHR".into(),
        destination: "JFK".into(),
        flight_id: Some(flight_id),
        cabin: Some(Cabin::Business),
        window_start: None,
        window_end: None,
        observed: None,
        baseline: None,
        capacity: Some(8),
        sold: Some(9),
        detected_at: at("2026-12-01T11:00:00Z"),
        raised_at: at("2026-12-01T11:00:00Z"),
        summary: format!("flight {n} oversold"),
    }
}

/// `AAA-QQQ` style routes of valid codes, `n` of them, sorted.
fn invented_routes(n: usize) -> Vec<String> {
    let code = |i: usize| -> String {
        let l = |k: usize| char::from(b'A' + u8::try_from(k % 26).unwrap());
        [l(i / 676), l(i / 26), l(i)].iter().collect()
    };
    let mut routes: Vec<String> = (0..n).map(|i| format!("{}-QQQ", code(i))).collect();
    routes.sort();
    routes
}

/// One search counted on `route` in the bucket of `t`.
async fn count_one(demand: &MemoryDemandStore, route: &str, t: DateTime<Utc>) {
    let bucket = SurgeConfig::default().bucket_of(t);
    let update = CounterUpdate {
        key: CounterKey {
            route: route.into(),
            bucket,
            shard_id: "shardId-000000000000".into(),
        },
        counts: Counts {
            searches: 1,
            passengers: 1,
            ..Counts::default()
        },
        first: Position::new("1", None),
        last: Position::new("1", None),
        arrived: t,
    };
    assert_eq!(demand.add(&update).await.unwrap(), Added::Applied);
}

/// A demand store whose counters cannot be read until something is published: a run
/// that judges before it publishes waits for ever.
struct HeldUntilPublished<'a> {
    inner: &'a MemoryDemandStore,
    published: &'a Gate,
}

#[derive(Default)]
struct Gate {
    open: AtomicBool,
}

impl Gate {
    async fn wait(&self) {
        while !self.open.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl DemandStore for HeldUntilPublished<'_> {
    async fn add(&self, update: &CounterUpdate) -> Result<Added, StoreError> {
        self.inner.add(update).await
    }
    async fn add_all(&self, updates: &[CounterUpdate]) -> Vec<Result<Added, StoreError>> {
        self.inner.add_all(updates).await
    }
    async fn counters(
        &self,
        route: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(CounterKey, Counts)>, StoreError> {
        self.published.wait().await;
        self.inner.counters(route, from, to).await
    }
    async fn note_routes(
        &self,
        routes: &[String],
        seen_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.note_routes(routes, seen_at).await
    }
    async fn routes(&self) -> Result<Vec<String>, StoreError> {
        self.inner.routes().await
    }
    async fn noted_routes(&self) -> Result<Vec<NotedRoute>, StoreError> {
        self.inner.noted_routes().await
    }
    async fn forget_route(&self, route: &NotedRoute) -> Result<bool, StoreError> {
        self.inner.forget_route(route).await
    }
    async fn watermark(&self, shard_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.inner.watermark(shard_id).await
    }
    async fn advance_watermark(
        &self,
        shard_id: &str,
        event_time: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner
            .advance_watermark(shard_id, event_time, updated_at)
            .await
    }
    async fn watermarks(&self) -> Result<Vec<ShardWatermark>, StoreError> {
        self.inner.watermarks().await
    }
}

/// A publisher that opens the gate on its first publish.
struct Opening<'a> {
    inner: &'a MemoryPublisher,
    gate: &'a Gate,
}

impl AlertPublisher for Opening<'_> {
    async fn publish(&self, alert: &Alert) -> Result<(), StoreError> {
        self.inner.publish(alert).await?;
        self.gate.open();
        Ok(())
    }
}

#[tokio::test]
async fn regression_judging_every_route_holds_the_outbox_back() {
    // The evaluator judged every route, then published: thousands of invented routes
    // made every run time out before the outbox, and oversold alerts stayed
    // unpublished. Here judging cannot progress until something is published, so a
    // run that judges first never ends; the guard below turns that into a failure.
    let demand = MemoryDemandStore::new();
    let routes = invented_routes(2_000);
    demand.note_routes(&routes, now()).await.unwrap();
    for route in routes.iter().take(3) {
        count_one(&demand, route, now() - Duration::minutes(30)).await;
    }
    let alerts = MemoryAlertStore::new();
    let pending = oversold(1);
    assert!(alerts.record(&pending).await.unwrap());
    let gate = Gate::default();
    let publisher = MemoryPublisher::new();
    let evaluator = SurgeEvaluator::new(
        HeldUntilPublished {
            inner: &demand,
            published: &gate,
        },
        &alerts,
        Opening {
            inner: &publisher,
            gate: &gate,
        },
    );
    // A deadlock guard, not a timing: the run takes milliseconds when it publishes
    // first, and never ends otherwise.
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        evaluator.run(now() - Duration::minutes(2), now),
    )
    .await
    .expect("the run waited for judging before publishing")
    .unwrap();
    assert_eq!(publisher.published(), vec![pending]);
    assert_eq!(report.published.published, 1);
    assert_eq!(report.routes, 2_000);
    assert_eq!(report.routes_judged, 2_000);
}

#[tokio::test]
async fn regression_invented_routes_join_the_registry_for_ever() {
    // Any `AAA-BBB` of any search joined the registry for good, and every run judged
    // it. With the schedule's airports known, the others leave at the next run.
    let demand = MemoryDemandStore::new();
    let mut noted = invented_routes(500);
    noted.extend(["LHR-JFK".to_string(), "JFK-LHR".to_string()]);
    demand.note_routes(&noted, now()).await.unwrap();
    let (alerts, publisher) = (MemoryAlertStore::new(), MemoryPublisher::new());
    let evaluator = SurgeEvaluator::new(&demand, &alerts, &publisher)
        .with_route_check(RouteCheck::airports(["LHR", "JFK", "CDG"]));
    let report = evaluator.run(now(), now).await.unwrap();
    assert_eq!(report.routes_unknown, 500);
    assert_eq!(report.routes, 2);
    assert_eq!(demand.routes().await.unwrap(), ["JFK-LHR", "LHR-JFK"]);
    let again = evaluator.run(now(), now).await.unwrap();
    assert_eq!((again.routes, again.routes_unknown), (2, 0));
}

#[tokio::test]
async fn regression_quiet_routes_stay_in_the_registry_for_ever() {
    // A route noted once stayed for good. One not noted for the quiet expiry leaves;
    // one noted since (the consumers note again every hour) stays.
    let demand = MemoryDemandStore::new();
    demand
        .note_routes(&["LHR-JFK".into()], now() - Duration::days(8))
        .await
        .unwrap();
    demand
        .note_routes(&["CDG-JFK".into()], now() - Duration::days(8))
        .await
        .unwrap();
    demand
        .note_routes(&["CDG-JFK".into()], now() - Duration::hours(1))
        .await
        .unwrap();
    let (alerts, publisher) = (MemoryAlertStore::new(), MemoryPublisher::new());
    let evaluator = SurgeEvaluator::new(&demand, &alerts, &publisher);
    let report = evaluator.run(now(), now).await.unwrap();
    assert_eq!((report.routes, report.routes_expired), (1, 1));
    assert_eq!(demand.routes().await.unwrap(), ["CDG-JFK"]);
    // Seen again: back in the registry, judged again.
    demand
        .note_routes(&["LHR-JFK".into()], now())
        .await
        .unwrap();
    let back = evaluator.run(now(), now).await.unwrap();
    assert_eq!((back.routes, back.routes_expired), (2, 0));
}

#[tokio::test]
async fn regression_a_run_cut_short_starts_again_from_the_first_route() {
    // A run that timed out started the next from the first route again: the routes
    // at the end of the list were never judged. Runs of 3 routes over 10 judge every
    // route within ceil(10 / 3) = 4 runs, and the next round starts over.
    let demand = MemoryDemandStore::new();
    let routes = invented_routes(10);
    demand.note_routes(&routes, now()).await.unwrap();
    for route in &routes {
        count_one(&demand, route, now() - Duration::minutes(30)).await;
    }
    let (alerts, publisher) = (MemoryAlertStore::new(), MemoryPublisher::new());
    let evaluator = SurgeEvaluator::new(&demand, &alerts, &publisher).with_routes_per_run(3);
    let horizon = now() - Duration::minutes(2);
    let mut judged_per_run = Vec::new();
    for _ in 0..4 {
        let report = evaluator.run(horizon, now).await.unwrap();
        judged_per_run.push((report.routes_judged, report.routes_left));
    }
    assert_eq!(judged_per_run, [(3, 7), (3, 7), (3, 7), (3, 7)]);
    for route in &routes {
        let state: Option<RouteState> = alerts.route_state(route).await.unwrap();
        assert!(state.is_some(), "{route} not judged in 4 runs");
    }
    // The fourth run wrapped round: it judged the last route and the first two.
    assert_eq!(
        alerts.evaluator_cursor().await.unwrap().as_deref(),
        Some(routes[1].as_str())
    );
    // A deadline already past (the alerts Lambda under `cargo lambda watch` gave one
    // and judged nothing, run after run) still judges one route, and publishes.
    assert!(alerts.record(&oversold(7)).await.unwrap());
    let late = evaluator
        .run_until(horizon, now, Some(tokio::time::Instant::now()))
        .await
        .unwrap();
    assert_eq!((late.routes_judged, late.routes_left), (1, 9));
    assert_eq!(late.published.published, 1);
    assert_eq!(
        alerts.evaluator_cursor().await.unwrap().as_deref(),
        Some(routes[2].as_str())
    );
}

#[tokio::test]
async fn a_save_of_120_alerts_records_them_all() {
    let alerts = MemoryAlertStore::new();
    let raised: Vec<Alert> = (0..120).map(oversold).collect();
    let mut state = RouteState::new(&SurgeConfig::default(), 1_796_115_600);
    state.version = 1;
    assert!(
        alerts
            .save_route_state("LHR-JFK", &state, &raised)
            .await
            .unwrap()
    );
    assert_eq!(alerts.pending(500).await.unwrap().len(), 120);
    assert_eq!(
        alerts.alerts(&AlertFilter::default()).await.unwrap().len(),
        120
    );
    // The same save again loses: nothing more.
    assert!(
        !alerts
            .save_route_state("LHR-JFK", &state, &raised)
            .await
            .unwrap()
    );
    assert_eq!(alerts.pending(500).await.unwrap().len(), 120);
}
