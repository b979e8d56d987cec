//! The surge evaluator and the alert store under load, against moto through the real
//! SDK (issue 15, finding 3): the outbox is published while 10,000 routes are
//! registered, runs resume where the last stopped, the registry is bounded, and a
//! state save holds any number of alerts.
//!
//! Needs `FLYHIGH_MOTO_URL` (see `common::moto_url`). Each test has its own tables.

#![cfg(feature = "dynamodb")]

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use flyhigh_aws::demand::{
    DynamoAlertStore, DynamoDemandStore, create_alerts_table, create_demand_table,
};
use flyhigh_core::demand::registry::RouteCheck;
use flyhigh_core::demand::{CabinAlertState, RouteState, SurgeConfig};
use flyhigh_core::memory::MemoryPublisher;
use flyhigh_core::{AlertFilter, AlertStore, CabinKey, DemandStore, NotedRoute};
use flyhigh_handlers::SurgeEvaluator;
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, Cabin, Severity};

async fn client() -> Client {
    Client::new(&common::sdk_config().await)
}

async fn demand_store(client: &Client) -> DynamoDemandStore {
    let table = common::unique_name("demand");
    create_demand_table(client, &table)
        .await
        .expect("create demand table");
    DynamoDemandStore::new(client.clone(), table)
}

async fn alert_store(client: &Client) -> DynamoAlertStore {
    let table = common::unique_name("alerts");
    create_alerts_table(client, &table)
        .await
        .expect("create alerts table");
    DynamoAlertStore::new(client.clone(), table)
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    at("2026-12-01T12:00:00Z")
}

/// An oversold alert of flight `n`.
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

/// `n` routes of valid, invented codes (`AAA-QQQ`, ...), sorted.
fn invented_routes(n: usize) -> Vec<String> {
    let code = |i: usize| -> String {
        let l = |k: usize| char::from(b'A' + u8::try_from(k % 26).unwrap());
        [l(i / 676), l(i / 26), l(i)].iter().collect()
    };
    let mut routes: Vec<String> = (0..n).map(|i| format!("{}-QQQ", code(i))).collect();
    routes.sort();
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_invented_routes_starve_the_outbox_with_10000_routes_registered() {
    // Every run judged every route before publishing: with thousands of invented
    // routes it timed out before the outbox. Now it publishes first, judges a slice
    // (here a fixed 100 routes, well within the deadline, so the counts below do not
    // depend on moto's speed) and the next run resumes.
    let client = client().await;
    let (demand, alerts) = (demand_store(&client).await, alert_store(&client).await);
    let routes = invented_routes(10_000);
    demand.note_routes(&routes, now()).await.unwrap();
    assert_eq!(demand.routes().await.unwrap().len(), 10_000);
    let pending = oversold(1);
    assert!(alerts.record(&pending).await.unwrap());
    let publisher = MemoryPublisher::new();
    let evaluator = SurgeEvaluator::new(&demand, &alerts, &publisher).with_routes_per_run(100);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    let horizon = now() - Duration::minutes(2);
    let report = evaluator
        .run_until(horizon, now, Some(deadline))
        .await
        .unwrap();
    assert_eq!(publisher.published(), vec![pending]);
    assert_eq!(report.published.published, 1);
    assert_eq!(report.routes, 10_000);
    assert_eq!((report.routes_judged, report.routes_left), (100, 9_900));
    assert!(
        report.failed_routes.is_empty(),
        "{:?}",
        report.failed_routes
    );
    assert_eq!(
        alerts.evaluator_cursor().await.unwrap().as_deref(),
        Some(routes[99].as_str())
    );
    // The next run resumes after it.
    let next = evaluator
        .run_until(horizon, now, Some(deadline))
        .await
        .unwrap();
    assert_eq!(next.routes_judged, 100);
    assert_eq!(
        alerts.evaluator_cursor().await.unwrap().as_deref(),
        Some(routes[199].as_str())
    );
    assert!(alerts.pending(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn regression_invented_and_quiet_routes_stay_in_the_registry_for_ever() {
    let client = client().await;
    let (demand, alerts) = (demand_store(&client).await, alert_store(&client).await);
    demand
        .note_routes(
            &["LHR-JFK".into(), "XQZ-QQQ".into(), "CDG-JFK".into()],
            now() - Duration::days(8),
        )
        .await
        .unwrap();
    demand
        .note_routes(&["LHR-JFK".into()], now() - Duration::hours(2))
        .await
        .unwrap();
    let listed = demand.noted_routes().await.unwrap();
    assert_eq!(
        listed,
        [
            NotedRoute {
                route: "CDG-JFK".into(),
                last_seen: now() - Duration::days(8)
            },
            NotedRoute {
                route: "LHR-JFK".into(),
                last_seen: now() - Duration::hours(2)
            },
            NotedRoute {
                route: "XQZ-QQQ".into(),
                last_seen: now() - Duration::days(8)
            },
        ]
    );
    // Forgetting is conditional on what was listed: a route noted since stays.
    let stale = NotedRoute {
        route: "LHR-JFK".into(),
        last_seen: now() - Duration::days(8),
    };
    assert!(!demand.forget_route(&stale).await.unwrap());

    let publisher = MemoryPublisher::new();
    let evaluator = SurgeEvaluator::new(&demand, &alerts, &publisher)
        .with_route_check(RouteCheck::airports(["LHR", "JFK", "CDG"]));
    let report = evaluator.run(now(), now).await.unwrap();
    assert_eq!(
        (report.routes, report.routes_unknown, report.routes_expired),
        (1, 1, 1)
    );
    assert_eq!(demand.routes().await.unwrap(), ["LHR-JFK"]);
}

async fn staged_items(client: &Client, table: &str) -> usize {
    client
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|i| matches!(i.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("STAGE#")))
        .count()
}

#[tokio::test]
async fn regression_a_save_of_more_than_49_alerts_is_refused_for_good() {
    // One save was one transaction (100 items: the state and two per alert) and more
    // than 49 alerts was a permanent error: the route or cabin could never be saved.
    let client = client().await;
    let alerts = alert_store(&client).await;
    let raised: Vec<Alert> = (0..120).map(oversold).collect();
    let mut state = RouteState::new(&SurgeConfig::default(), 1_796_115_600);
    state.version = 1;
    assert!(
        alerts
            .save_route_state("LHR-JFK", &state, &raised)
            .await
            .unwrap()
    );
    assert_eq!(
        alerts.route_state("LHR-JFK").await.unwrap(),
        Some(state.clone())
    );
    let mut pending = alerts.pending(500).await.unwrap();
    pending.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    let mut expected = raised.clone();
    expected.sort_by(|a, b| a.alert_id.cmp(&b.alert_id));
    assert_eq!(pending, expected);
    assert_eq!(
        staged_items(&client, alerts.table()).await,
        0,
        "staged copies deleted"
    );
    // The same version again loses the race and records nothing more.
    let other: Vec<Alert> = (200..320).map(oversold).collect();
    assert!(
        !alerts
            .save_route_state("LHR-JFK", &state, &other)
            .await
            .unwrap()
    );
    assert_eq!(alerts.pending(500).await.unwrap().len(), 120);
    assert_eq!(
        staged_items(&client, alerts.table()).await,
        0,
        "the loser's copies deleted"
    );
    // A cabin's save too, with some alerts recorded already (left as they are).
    let key = CabinKey::new("FH0001-20261201", Cabin::Business);
    let cabin = CabinAlertState {
        version: 1,
        ..CabinAlertState::default()
    };
    let mut mixed = other.clone();
    mixed.extend(raised.iter().take(10).cloned());
    assert!(alerts.save_cabin_state(&key, &cabin, &mixed).await.unwrap());
    assert_eq!(alerts.pending(500).await.unwrap().len(), 240);
    assert_eq!(
        alerts.alerts(&AlertFilter::default()).await.unwrap().len(),
        240
    );
}

#[tokio::test]
async fn a_save_cut_short_after_its_state_is_finished_by_the_next_read() {
    // A crash after the state's save and before its staged alerts are recorded: the
    // state is marked, and the next read records them before answering.
    let client = client().await;
    let alerts = alert_store(&client).await;
    let table = alerts.table().to_string();
    let raised: Vec<Alert> = (0..60).map(oversold).collect();
    let mut state = RouteState::new(&SurgeConfig::default(), 1_796_115_600);
    state.version = 1;
    let s = |v: &str| AttributeValue::S(v.into());
    for (i, alert) in raised.iter().enumerate() {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(HashMap::from([
                ("pk".into(), s("STAGE#cut-short")),
                ("sk".into(), s(&format!("{i:010}"))),
                ("alert".into(), s(&alert.to_json())),
            ])))
            .send()
            .await
            .unwrap();
    }
    client
        .put_item()
        .table_name(&table)
        .set_item(Some(HashMap::from([
            ("pk".into(), s("ROUTE#LHR-JFK")),
            ("sk".into(), s("STATE")),
            ("route".into(), s("LHR-JFK")),
            ("state".into(), s(&serde_json::to_string(&state).unwrap())),
            ("version".into(), AttributeValue::N("1".into())),
            ("staged".into(), s("cut-short")),
        ])))
        .send()
        .await
        .unwrap();
    assert!(alerts.pending(500).await.unwrap().is_empty());
    assert_eq!(
        alerts.route_state("LHR-JFK").await.unwrap(),
        Some(state.clone())
    );
    assert_eq!(alerts.pending(500).await.unwrap().len(), 60);
    assert_eq!(staged_items(&client, &table).await, 0);
    // Read again: nothing more to finish, nothing recorded twice.
    assert_eq!(alerts.route_state("LHR-JFK").await.unwrap(), Some(state));
    assert_eq!(alerts.pending(500).await.unwrap().len(), 60);
}
