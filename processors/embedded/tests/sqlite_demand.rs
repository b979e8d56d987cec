//! `SqliteDemandStore` against the hot-route ports: the same results as the
//! in-memory reference stores, exactly once under redelivery and under two handles
//! racing on one file, read-only handles that never write; and `AlertLog`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::demand::counting::{self, DemandEvent, DemandKind};
use flyhigh_core::demand::flights::RuleState;
use flyhigh_core::demand::surge::Episode;
use flyhigh_core::demand::{
    CabinAlertState, CounterKey, CounterUpdate, Counts, Position, RouteState, SurgeConfig,
};
use flyhigh_core::memory::{MemoryAlertStore, MemoryDemandStore};
use flyhigh_core::{
    Added, AlertFilter, AlertPublisher, AlertStore, CabinKey, DemandStore, NotedRoute, StoreError,
};
use flyhigh_embedded::{ALERTS_FILE, AlertLog, DEMAND_FILE, SqliteDemandStore};
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, Cabin, Severity};
use proptest::prelude::*;

const ROUTE: &str = "LHR-JFK";
const OTHER_ROUTE: &str = "ORD-SFO";
const FLIGHT: &str = "FH0123-20261201";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("a test time")
}

/// 2026-12-01T09:00:00Z, a bucket start.
fn bucket0() -> i64 {
    at("2026-12-01T09:00:00Z").timestamp()
}

fn key(route: &str, bucket: i64, shard_id: &str) -> CounterKey {
    CounterKey {
        route: route.into(),
        bucket,
        shard_id: shard_id.into(),
    }
}

fn searches(n: u64) -> Counts {
    Counts {
        searches: n,
        passengers: 2 * n,
        ..Counts::default()
    }
}

fn update(key: &CounterKey, counts: Counts, first: Position, last: Position) -> CounterUpdate {
    CounterUpdate {
        key: key.clone(),
        counts,
        first,
        last,
        arrived: DateTime::from_timestamp(key.bucket + 30, 0).unwrap_or_default(),
    }
}

fn pos(sequence: &str, sub: u32) -> Position {
    Position::new(sequence, Some(sub))
}

fn flight_alert(rule: AlertRule, crossing: u32, raised_at: &str) -> Alert {
    Alert {
        alert_id: Alert::flight_id_for(rule, FLIGHT, Cabin::Economy, crossing),
        alert_version: ALERT_VERSION,
        status: Default::default(),
        clears: None,
        rule,
        severity: Severity::Warning,
        route: ROUTE.into(),
        origin: "LHR".into(),
        destination: "JFK".into(),
        flight_id: Some(FLIGHT.into()),
        cabin: Some(Cabin::Economy),
        window_start: None,
        window_end: None,
        observed: None,
        baseline: None,
        capacity: Some(150),
        sold: Some(150),
        detected_at: at("2026-11-30T18:00:00.125Z"),
        raised_at: at(raised_at),
        summary: format!("{FLIGHT} economy: {rule}, 150 of 150 seats sold"),
    }
}

fn surge_alert(raised_at: &str) -> Alert {
    let window_start = at("2026-12-01T09:00:00Z");
    Alert {
        alert_id: Alert::surge_id(ROUTE, window_start),
        alert_version: ALERT_VERSION,
        status: Default::default(),
        clears: None,
        rule: AlertRule::RouteSurge,
        severity: Severity::Critical,
        route: ROUTE.into(),
        origin: "LHR".into(),
        destination: "JFK".into(),
        flight_id: None,
        cabin: None,
        window_start: Some(window_start),
        window_end: Some(at("2026-12-01T09:03:00Z")),
        observed: Some(412),
        baseline: Some(31.456_789_012_345_6),
        capacity: None,
        sold: None,
        detected_at: at("2026-12-01T09:03:00Z"),
        raised_at: at(raised_at),
        summary: "LHR-JFK demand 412 in 3 minutes, 13.1x its baseline".into(),
    }
}

fn route_state(version: u64) -> RouteState {
    RouteState {
        version,
        baseline: Some(10.0 / 3.0),
        history: 41,
        episode: Some(Episode {
            alert_id: Alert::surge_id(ROUTE, at("2026-12-01T09:00:00Z")),
            start: bucket0(),
            baseline: 0.1 + 0.2,
            quiet: 2,
        }),
        excluded: Some((bucket0() - 600, bucket0() - 60)),
        cooldown_until: Some(bucket0() + 1800),
        ..RouteState::new(&SurgeConfig::default(), bucket0() - 3600)
    }
}

fn cabin_state(version: u64) -> CabinAlertState {
    CabinAlertState {
        version,
        near_sold_out: RuleState {
            crossings: 2,
            fired: true,
        },
        sold_out: RuleState {
            crossings: 1,
            fired: false,
        },
        ..CabinAlertState::default()
    }
}

/// Records each step's result, so that two stores' runs can be compared whole.
#[derive(Default)]
struct Transcript(Vec<String>);

impl Transcript {
    fn note<T: Debug>(&mut self, step: &str, value: T) -> T {
        self.0.push(format!("{step}: {value:?}"));
        value
    }
}

/// One scenario over every method of both ports, asserting what the port's docs
/// promise; returns what each step returned.
async fn scenario(demand: &impl DemandStore, alerts: &impl AlertStore) -> Vec<String> {
    let mut t = Transcript::default();
    let b0 = bucket0();
    let a1 = key(ROUTE, b0, "shardId-000000000001");
    let a2 = key(ROUTE, b0, "shardId-000000000002");
    let a1_next = key(ROUTE, b0 + 60, "shardId-000000000001");
    let other = key(OTHER_ROUTE, b0, "shardId-000000000001");

    // --- Counters: applied, stale with the stored mark.
    let first = update(&a1, searches(3), pos("9", 0), pos("9", 4));
    assert_eq!(
        t.note("add first", demand.add(&first).await.unwrap()),
        Added::Applied
    );
    assert_eq!(
        t.note("add first again", demand.add(&first).await.unwrap()),
        Added::Stale { mark: pos("9", 4) }
    );
    // A change starting at the mark overlaps what is counted.
    let at_mark = update(&a1, searches(1), pos("9", 4), pos("9", 6));
    assert_eq!(
        t.note("add from the mark", demand.add(&at_mark).await.unwrap()),
        Added::Stale { mark: pos("9", 4) }
    );
    // Just above the mark inside the same aggregate applies.
    let next_sub = update(&a1, searches(1), pos("9", 5), pos("9", 5));
    assert_eq!(
        t.note("add next sub", demand.add(&next_sub).await.unwrap()),
        Added::Applied
    );
    // "10" is above "9" as a number, though not as text: the key pads it.
    let ten = update(&a1, searches(2), pos("10", 0), pos("12", 0));
    assert_eq!(
        t.note("add ten", demand.add(&ten).await.unwrap()),
        Added::Applied
    );
    // A batch's counters at once: each applied or stale on its own mark, in order.
    let x = key("ZRH-GVA", b0 + 600, "shardId-000000000003");
    let y = key("ZRH-GVA", b0 + 600, "shardId-000000000004");
    let batch = [
        update(&x, searches(2), pos("50", 0), pos("50", 1)),
        ten.clone(),
        update(&y, searches(4), pos("51", 0), pos("51", 3)),
    ];
    assert_eq!(
        t.note("add a batch", demand.add_all(&batch).await),
        vec![
            Ok(Added::Applied),
            Ok(Added::Stale { mark: pos("12", 0) }),
            Ok(Added::Applied)
        ]
    );
    assert_eq!(
        t.note("add the batch again", demand.add_all(&batch).await),
        vec![
            Ok(Added::Stale { mark: pos("50", 1) }),
            Ok(Added::Stale { mark: pos("12", 0) }),
            Ok(Added::Stale { mark: pos("51", 3) })
        ]
    );
    let overlapping = update(&a1, searches(5), pos("11", 0), pos("40", 0));
    assert_eq!(
        t.note("add overlapping", demand.add(&overlapping).await.unwrap()),
        Added::Stale { mark: pos("12", 0) }
    );
    let long = "49590338271490256608559692538361571095921575989136588898";
    for (step, u) in [
        (
            "add shard 2",
            update(&a2, searches(7), pos(long, 0), pos(long, 2)),
        ),
        (
            "add next bucket",
            update(&a1_next, searches(4), pos("13", 0), pos("14", 0)),
        ),
        (
            "add other route",
            update(&other, searches(9), pos("1", 0), pos("1", 0)),
        ),
    ] {
        assert_eq!(t.note(step, demand.add(&u).await.unwrap()), Added::Applied);
    }
    let mut a1_counts = searches(3);
    a1_counts.add(&searches(1));
    a1_counts.add(&searches(2));
    assert_eq!(
        t.note(
            "counters of two buckets",
            demand.counters(ROUTE, b0, b0 + 120).await.unwrap()
        ),
        vec![
            (a1.clone(), a1_counts),
            (a2.clone(), searches(7)),
            (a1_next.clone(), searches(4)),
        ]
    );
    assert_eq!(
        t.note(
            "counters of one bucket",
            demand.counters(ROUTE, b0, b0 + 60).await.unwrap()
        ),
        vec![(a1.clone(), a1_counts), (a2.clone(), searches(7))]
    );
    assert_eq!(
        t.note(
            "counters of no bucket",
            demand.counters(ROUTE, b0 + 60, b0 + 60).await.unwrap()
        ),
        vec![]
    );
    assert_eq!(
        t.note(
            "counters of another route",
            demand.counters(OTHER_ROUTE, 0, i64::MAX).await.unwrap()
        ),
        vec![(other.clone(), searches(9))]
    );

    // --- Routes: idempotent, sorted.
    demand
        .note_routes(
            &[OTHER_ROUTE.into(), ROUTE.into()],
            at("2026-12-01T09:00:00Z"),
        )
        .await
        .unwrap();
    demand
        .note_routes(&[ROUTE.into()], at("2026-12-01T09:00:00Z"))
        .await
        .unwrap();
    demand
        .note_routes(&[], at("2026-12-01T09:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        t.note("routes", demand.routes().await.unwrap()),
        vec![ROUTE.to_string(), OTHER_ROUTE.to_string()]
    );

    // --- Watermarks: never back, stamped when they move.
    let (s0, s1) = ("shardId-000000000000", "shardId-000000000001");
    assert_eq!(
        t.note("no watermark", demand.watermark(s1).await.unwrap()),
        None
    );
    let (e1, e2, e3) = (
        at("2026-12-01T09:00:10.123456789Z"),
        at("2026-12-01T09:05:00Z"),
        at("2026-12-01T09:05:00.000000001Z"),
    );
    let (w1, w2, w3, w4) = (
        at("2026-12-01T09:06:00Z"),
        at("2026-12-01T09:07:00Z"),
        at("2026-12-01T09:08:00Z"),
        at("2026-12-01T09:09:00Z"),
    );
    demand.advance_watermark(s1, e2, w1).await.unwrap();
    demand.advance_watermark(s1, e1, w2).await.unwrap();
    assert_eq!(
        t.note("watermark held", demand.watermark(s1).await.unwrap()),
        Some(e2)
    );
    demand.advance_watermark(s1, e2, w3).await.unwrap();
    let held = t.note("watermark held again", demand.watermarks().await.unwrap());
    assert_eq!(
        held.iter()
            .map(|w| (w.progress, w.updated_at))
            .collect::<Vec<_>>(),
        vec![(e2, w1)],
        "neither an earlier nor an equal time moves it or its stamp"
    );
    demand.advance_watermark(s1, e3, w4).await.unwrap();
    demand.advance_watermark(s0, e1, w2).await.unwrap();
    let marks = t.note("watermarks", demand.watermarks().await.unwrap());
    let marks: Vec<_> = marks
        .into_iter()
        .map(|w| (w.shard_id, w.progress, w.updated_at))
        .collect();
    assert_eq!(marks, vec![(s0.into(), e1, w2), (s1.into(), e3, w4)]);

    // --- Alerts: recorded once, pending oldest first (ties by id).
    let sold_out = flight_alert(AlertRule::SoldOut, 1, "2026-12-01T09:00:00.000Z");
    let near = flight_alert(AlertRule::NearSoldOut, 1, "2026-12-01T09:00:00.000Z");
    let early = flight_alert(AlertRule::NearSoldOut, 2, "2026-12-01T08:59:59.999Z");
    let surge = surge_alert("2026-12-01T09:05:00.250Z");
    for a in [&sold_out, &near, &early, &surge] {
        assert!(t.note("record", alerts.record(a).await.unwrap()));
    }
    assert!(!t.note("record again", alerts.record(&sold_out).await.unwrap()));
    let mut changed = sold_out.clone();
    changed.summary = "a second invocation's wording".into();
    assert!(!t.note("record same id", alerts.record(&changed).await.unwrap()));
    let ids = |v: &[Alert]| v.iter().map(|a| a.alert_id.clone()).collect::<Vec<_>>();
    let order = ids(&[early.clone(), near.clone(), sold_out.clone(), surge.clone()]);
    assert_eq!(
        ids(&t.note("pending", alerts.pending(10).await.unwrap())),
        order
    );
    assert_eq!(
        t.note("pending 2", alerts.pending(2).await.unwrap()),
        vec![early.clone(), near.clone()]
    );
    assert_eq!(
        t.note("pending 0", alerts.pending(0).await.unwrap()),
        vec![]
    );

    // --- Claims: held until expired, then claimable again.
    let now = at("2026-12-01T09:10:00Z");
    let id = sold_out.alert_id.as_str();
    let claim = |now: DateTime<Utc>| (now, now + Duration::seconds(30));
    let (n, u) = claim(now);
    assert!(t.note("claim", alerts.claim(id, n, u).await.unwrap()));
    let (n, u) = claim(now + Duration::seconds(10));
    assert!(!t.note("claim held", alerts.claim(id, n, u).await.unwrap()));
    let (n, u) = claim(now + Duration::seconds(30));
    assert!(!t.note("claim at expiry", alerts.claim(id, n, u).await.unwrap()));
    let (n, u) = claim(now + Duration::seconds(31));
    assert!(t.note("claim expired", alerts.claim(id, n, u).await.unwrap()));
    let (n, u) = claim(now + Duration::seconds(40));
    assert!(!t.note("claim re-claimed", alerts.claim(id, n, u).await.unwrap()));
    assert!(!t.note("claim unknown", alerts.claim("nope", n, u).await.unwrap()));
    assert_eq!(
        ids(&t.note("pending while claimed", alerts.pending(10).await.unwrap())),
        order,
        "a claimed alert is still pending"
    );

    // --- Marks: out of the outbox, stamped once.
    let (p1, p2) = (at("2026-12-01T09:11:00.5Z"), at("2026-12-01T09:12:00Z"));
    alerts.mark_published(id, p1).await.unwrap();
    alerts.mark_published(id, p2).await.unwrap();
    alerts.mark_published("nope", p2).await.unwrap();
    assert_eq!(
        ids(&t.note("pending after mark", alerts.pending(10).await.unwrap())),
        ids(&[early.clone(), near.clone(), surge.clone()])
    );
    let (n, u) = claim(now + Duration::hours(1));
    assert!(!t.note("claim published", alerts.claim(id, n, u).await.unwrap()));

    // --- Listing.
    let all = t.note(
        "alerts",
        alerts.alerts(&AlertFilter::default()).await.unwrap(),
    );
    assert_eq!(
        all.iter()
            .map(|a| (a.alert.alert_id.clone(), a.published_at))
            .collect::<Vec<_>>(),
        vec![
            (early.alert_id.clone(), None),
            (near.alert_id.clone(), None),
            (sold_out.alert_id.clone(), Some(p1)),
            (surge.alert_id.clone(), None),
        ]
    );
    assert_eq!(all[2].alert, sold_out, "the first recording is kept");
    assert_eq!(all[3].alert, surge);
    let listed = |f: AlertFilter| async move {
        alerts
            .alerts(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.alert.alert_id)
            .collect::<Vec<_>>()
    };
    let since = AlertFilter {
        since: Some(at("2026-12-01T09:00:00Z")),
        ..AlertFilter::default()
    };
    assert_eq!(
        t.note("alerts since", listed(since.clone()).await),
        ids(&[near.clone(), sold_out.clone(), surge.clone()])
    );
    let rule = AlertFilter {
        rule: Some(AlertRule::NearSoldOut),
        ..AlertFilter::default()
    };
    assert_eq!(
        t.note("alerts of a rule", listed(rule.clone()).await),
        ids(&[early.clone(), near.clone()])
    );
    let latest = AlertFilter {
        limit: Some(2),
        ..AlertFilter::default()
    };
    assert_eq!(
        t.note("latest alerts", listed(latest).await),
        ids(&[sold_out.clone(), surge.clone()])
    );
    let combined = AlertFilter {
        since: since.since,
        rule: rule.rule,
        limit: Some(1),
    };
    assert_eq!(
        t.note("alerts combined", listed(combined).await),
        ids(std::slice::from_ref(&near))
    );
    let none = AlertFilter {
        limit: Some(0),
        ..AlertFilter::default()
    };
    assert!(t.note("alerts none", listed(none).await).is_empty());

    // --- Route states: each save exactly one version later.
    assert_eq!(
        t.note("no route state", alerts.route_state(ROUTE).await.unwrap()),
        None
    );
    assert!(
        !t.note(
            "save v2 first",
            alerts
                .save_route_state(ROUTE, &route_state(2), &[])
                .await
                .unwrap()
        )
    );
    assert!(
        !t.note(
            "save v0",
            alerts
                .save_route_state(ROUTE, &route_state(0), &[])
                .await
                .unwrap()
        )
    );
    assert!(
        t.note(
            "save v1",
            alerts
                .save_route_state(ROUTE, &route_state(1), &[])
                .await
                .unwrap()
        )
    );
    assert!(
        !t.note(
            "save v1 again",
            alerts
                .save_route_state(ROUTE, &route_state(1), &[])
                .await
                .unwrap()
        )
    );
    assert!(
        !t.note(
            "save v3",
            alerts
                .save_route_state(ROUTE, &route_state(3), &[])
                .await
                .unwrap()
        )
    );
    assert!(
        t.note(
            "save v2",
            alerts
                .save_route_state(ROUTE, &route_state(2), &[])
                .await
                .unwrap()
        )
    );
    assert_eq!(
        t.note("route state", alerts.route_state(ROUTE).await.unwrap()),
        Some(route_state(2))
    );
    assert_eq!(
        t.note(
            "other route state",
            alerts.route_state(OTHER_ROUTE).await.unwrap()
        ),
        None
    );

    // --- Cabin states: the same condition, per cabin.
    let economy = CabinKey::new(FLIGHT, Cabin::Economy);
    let business = CabinKey::new(FLIGHT, Cabin::Business);
    assert!(
        t.note(
            "save cabin v1",
            alerts
                .save_cabin_state(&economy, &cabin_state(1), &[])
                .await
                .unwrap()
        )
    );
    assert!(
        !t.note(
            "save cabin v1 again",
            alerts
                .save_cabin_state(&economy, &cabin_state(1), &[])
                .await
                .unwrap()
        )
    );
    assert!(
        t.note(
            "save cabin v2",
            alerts
                .save_cabin_state(&economy, &cabin_state(2), &[])
                .await
                .unwrap()
        )
    );
    assert!(
        !t.note(
            "save other cabin v2",
            alerts
                .save_cabin_state(&business, &cabin_state(2), &[])
                .await
                .unwrap()
        )
    );
    let states: BTreeMap<_, _> = alerts
        .cabin_states(&[economy.clone(), business.clone(), economy.clone()])
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        t.note("cabin states", states),
        BTreeMap::from([(economy, cabin_state(2))])
    );
    assert!(
        t.note("no cabin states", alerts.cabin_states(&[]).await.unwrap())
            .is_empty()
    );

    t.0
}

#[tokio::test]
async fn the_sqlite_store_gives_the_memory_stores_results() {
    let memory = scenario(&MemoryDemandStore::new(), &MemoryAlertStore::new()).await;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteDemandStore::open(&dir.path().join(DEMAND_FILE)).unwrap();
    let sqlite = scenario(&store, &store).await;
    assert_eq!(sqlite, memory);

    let in_memory = SqliteDemandStore::open_in_memory().unwrap();
    assert_eq!(scenario(&in_memory, &in_memory).await, memory);
}

/// Everything a reader sees, after [`scenario`].
#[derive(Debug, PartialEq)]
struct Snapshot {
    counters: Vec<(CounterKey, Counts)>,
    routes: Vec<String>,
    watermarks: Vec<flyhigh_core::ShardWatermark>,
    alerts: Vec<flyhigh_core::StoredAlert>,
    pending: Vec<Alert>,
    route_state: Option<RouteState>,
    cabin_states: usize,
}

async fn snapshot(store: &SqliteDemandStore) -> Snapshot {
    Snapshot {
        counters: all_counters(store).await,
        routes: store.routes().await.unwrap(),
        watermarks: store.watermarks().await.unwrap(),
        alerts: store.alerts(&AlertFilter::default()).await.unwrap(),
        pending: store.pending(10).await.unwrap(),
        route_state: store.route_state(ROUTE).await.unwrap(),
        cabin_states: store
            .cabin_states(&[CabinKey::new(FLIGHT, Cabin::Economy)])
            .await
            .unwrap()
            .len(),
    }
}

#[tokio::test]
async fn what_was_written_is_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEMAND_FILE);
    let before = {
        let store = SqliteDemandStore::open(&path).unwrap();
        scenario(&store, &store).await;
        snapshot(&store).await
    };
    let after = snapshot(&SqliteDemandStore::open(&path).unwrap()).await;
    assert_eq!(after, before);
    assert_eq!(
        (
            after.counters.len(),
            after.pending.len(),
            after.cabin_states
        ),
        (4, 3, 1)
    );
}

async fn all_counters(store: &SqliteDemandStore) -> Vec<(CounterKey, Counts)> {
    let mut out = store.counters(ROUTE, 0, i64::MAX).await.unwrap();
    out.extend(store.counters(OTHER_ROUTE, 0, i64::MAX).await.unwrap());
    out
}

fn search_event(route: &str, t: &str, sequence: u64, sub: u32) -> DemandEvent {
    DemandEvent {
        route: route.into(),
        occurred_at: at(t),
        arrived_at: at(t),
        position: Position::new(&sequence.to_string(), Some(sub)),
        kind: DemandKind::Search { passengers: 2 },
        timing: Default::default(),
    }
}

/// What the counting handler does with one shard's batch: tally it, add each
/// counter's change, and on a stale mark add what is above it.
async fn count_batch(
    store: &impl DemandStore,
    shard_id: &str,
    events: &[DemandEvent],
) -> (u32, u32) {
    let (mut applied, mut stale) = (0, 0);
    for tally in counting::tally(shard_id, events, 60) {
        let mut next = tally.update_above(events, None);
        while let Some(update) = next.take() {
            match store.add(&update).await.unwrap() {
                Added::Applied => applied += 1,
                Added::Stale { mark } => {
                    stale += 1;
                    next = tally.update_above(events, Some(&mark));
                }
            }
        }
    }
    (applied, stale)
}

#[tokio::test]
async fn a_redelivered_batch_adds_nothing_the_second_time() {
    // Given a batch of one shard: two routes, two buckets
    let store = SqliteDemandStore::open_in_memory().unwrap();
    let shard = "shardId-000000000003";
    let mut events = Vec::new();
    for i in 0..40u32 {
        let route = if i % 3 == 0 { OTHER_ROUTE } else { ROUTE };
        let second = 30 + i; // 09:00:30 .. 09:01:09, across a bucket boundary
        let t = format!("2026-12-01T09:{:02}:{:02}Z", second / 60, second % 60);
        events.push(search_event(route, &t, 1000 + u64::from(i / 4), i % 4));
    }

    // When it is counted, then delivered again whole
    assert_eq!(count_batch(&store, shard, &events).await, (4, 0));
    let once = all_counters(&store).await;
    assert_eq!(count_batch(&store, shard, &events).await, (0, 4));

    // Then the second delivery changed nothing
    assert_eq!(all_counters(&store).await, once);
    let total: u64 = once.iter().map(|(_, c)| c.searches).sum();
    assert_eq!(total, 40);
    assert_eq!(once.iter().map(|(_, c)| c.passengers).sum::<u64>(), 80);

    // And a retry from the middle of the batch counts only what is not counted yet
    let fresh = SqliteDemandStore::open_in_memory().unwrap();
    assert_eq!(count_batch(&fresh, shard, &events[..17]).await.1, 0);
    let (_, stale) = count_batch(&fresh, shard, &events).await;
    assert!(stale > 0, "the overlap is refused before the rest is added");
    assert_eq!(all_counters(&fresh).await, once);
}

/// A current-thread runtime for a test thread of its own.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

/// 200 changes of 4 counters, each counter's in shard order.
fn racing_updates() -> Vec<CounterUpdate> {
    (0..200u64)
        .map(|i| {
            let shard = format!("shardId-{:012}", i % 4);
            let counts = Counts {
                searches: 1 + i % 3,
                passengers: 2 + i % 5,
                bookings: i % 2,
                seats: 3 * (i % 2),
                cancellations: u64::from(i % 7 == 0),
                late: u64::from(i % 11 == 0),
            };
            update(
                &key(ROUTE, bucket0(), &shard),
                counts,
                Position::new(&(i * 10 + 1).to_string(), None),
                Position::new(&(i * 10 + 5).to_string(), Some(3)),
            )
        })
        .collect()
}

/// Runs `work` on two handles of the file at `path`, each opened in its own thread
/// and started together.
fn race<T: Send>(path: &Path, work: impl Fn(&SqliteDemandStore) -> T + Sync) -> [T; 2] {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let run = || {
            s.spawn(|| {
                let store = SqliteDemandStore::open(path);
                // Wait even on a failed open, so that the other thread is not left
                // waiting for ever.
                barrier.wait();
                work(&store.expect("open"))
            })
        };
        let (a, b) = (run(), run());
        [a.join().expect("thread a"), b.join().expect("thread b")]
    })
}

/// Regression: `PRAGMA journal_mode=WAL` on a fresh file returns `SQLITE_BUSY` to the
/// second of two connections switching it at once, without waiting for the busy
/// timeout, so one of two processes starting together failed to open.
#[test]
fn two_handles_opening_a_fresh_file_at_once_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    for attempt in 0..50 {
        let path = dir.path().join(format!("{attempt}-{DEMAND_FILE}"));
        let barrier = Barrier::new(2);
        let [a, b] = std::thread::scope(|s| {
            let run = || {
                s.spawn(|| {
                    barrier.wait();
                    SqliteDemandStore::open(&path).map(|store| store.schema_version())
                })
            };
            let (a, b) = (run(), run());
            [a.join().expect("thread a"), b.join().expect("thread b")]
        });
        let v = flyhigh_embedded::demand::SCHEMA_VERSION;
        assert_eq!((&a, &b), (&Ok(Ok(v)), &Ok(Ok(v))), "attempt {attempt}");
    }
}

#[test]
fn two_handles_racing_the_same_updates_apply_each_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEMAND_FILE);
    let updates = racing_updates();

    let [a, b] = race(&path, |store| {
        let rt = runtime();
        updates
            .iter()
            .map(|u| rt.block_on(store.add(u)).expect("add"))
            .collect::<Vec<_>>()
    });

    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        let applied = [a, b].iter().filter(|r| ***r == Added::Applied).count();
        assert_eq!(applied, 1, "update {i}: {a:?} and {b:?}");
    }
    let single = MemoryDemandStore::new();
    let rt = runtime();
    for u in &updates {
        assert_eq!(rt.block_on(single.add(u)).unwrap(), Added::Applied);
    }
    let store = SqliteDemandStore::open(&path).unwrap();
    let raced = rt.block_on(store.counters(ROUTE, 0, i64::MAX)).unwrap();
    assert_eq!(
        raced,
        rt.block_on(single.counters(ROUTE, 0, i64::MAX)).unwrap()
    );
    assert_eq!(raced.len(), 4);
    assert_eq!(
        raced[0].1.searches,
        (0..200u64).step_by(4).map(|i| 1 + i % 3).sum::<u64>()
    );
    // Each counter's mark is its last change's.
    let last = updates.last().unwrap();
    assert_eq!(
        rt.block_on(store.add(last)).unwrap(),
        Added::Stale {
            mark: last.last.clone()
        }
    );
}

#[test]
fn two_handles_recording_the_same_alerts_record_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEMAND_FILE);
    let alerts: Vec<Alert> = (1..=100)
        .map(|n| flight_alert(AlertRule::NearSoldOut, n, "2026-12-01T09:00:00Z"))
        .collect();

    let [a, b] = race(&path, |store| {
        let rt = runtime();
        alerts
            .iter()
            .map(|alert| rt.block_on(store.record(alert)).expect("record"))
            .collect::<Vec<_>>()
    });

    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(a ^ b, "alert {i}: {a} and {b}");
    }
    let store = SqliteDemandStore::open(&path).unwrap();
    let rt = runtime();
    let pending = rt.block_on(store.pending(1000)).unwrap();
    assert_eq!(pending.len(), 100);
    assert_eq!(
        rt.block_on(store.alerts(&AlertFilter::default()))
            .unwrap()
            .len(),
        100
    );
}

#[test]
fn two_handles_racing_route_state_saves_let_one_win_each_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEMAND_FILE);
    let [a, b] = race(&path, |store| {
        let rt = runtime();
        (1..=100)
            .map(|v| {
                rt.block_on(store.save_route_state(ROUTE, &route_state(v), &[]))
                    .expect("save")
            })
            .collect::<Vec<_>>()
    });
    for (v, (a, b)) in a.iter().zip(&b).enumerate() {
        assert!(a ^ b, "version {}: {a} and {b}", v + 1);
    }
    let store = SqliteDemandStore::open(&path).unwrap();
    assert_eq!(
        runtime().block_on(store.route_state(ROUTE)).unwrap(),
        Some(route_state(100))
    );
}

#[test]
fn a_read_only_open_of_a_missing_file_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEMAND_FILE);
    let err = SqliteDemandStore::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::Permanent(_)), "{err}");
    assert!(!path.exists());
}

fn is_permanent<T: Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Permanent(_)))
}

/// A read-only handle on `path` sees `expected` and refuses every write.
async fn check_read_only(path: &Path, expected: &Snapshot) {
    let reader = SqliteDemandStore::open_read_only(path).unwrap();
    let r = &reader;
    assert_eq!(&snapshot(r).await, expected);

    let u = update(
        &key(ROUTE, bucket0(), "shardId-000000000009"),
        searches(1),
        pos("1", 0),
        pos("1", 0),
    );
    let now = at("2026-12-02T00:00:00Z");
    let pending_id = expected.pending[0].alert_id.clone();
    assert!(is_permanent(r.add(&u).await));
    let refused = r.add_all(std::slice::from_ref(&u)).await;
    assert!(refused.len() == 1 && refused.into_iter().all(|r| is_permanent(r)));
    assert!(is_permanent(
        r.note_routes(&["AMS-CDG".into()], at("2026-12-01T09:00:00Z"))
            .await
    ));
    assert!(is_permanent(
        r.advance_watermark("shardId-000000000009", now, now).await
    ));
    assert!(is_permanent(
        r.record(&surge_alert("2026-12-02T00:00:00Z")).await
    ));
    assert!(is_permanent(
        r.claim(&pending_id, now, now + Duration::seconds(30)).await
    ));
    assert!(is_permanent(r.mark_published(&pending_id, now).await));
    assert!(is_permanent(
        r.save_route_state(ROUTE, &route_state(3), &[]).await
    ));
    assert!(is_permanent(
        r.save_cabin_state(&CabinKey::new(FLIGHT, Cabin::First), &cabin_state(1), &[])
            .await
    ));
    assert!(is_permanent(reader.purge_before(i64::MAX)));

    assert_eq!(&snapshot(r).await, expected, "nothing changed");
}

#[tokio::test]
async fn a_read_only_handle_reads_and_refuses_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DEMAND_FILE);
    let writer = SqliteDemandStore::open(&path).unwrap();
    scenario(&writer, &writer).await;
    let expected = snapshot(&writer).await;
    assert_eq!(expected.pending.len(), 3);

    // While the writer is open (its WAL in use) ...
    check_read_only(&path, &expected).await;
    // ... and after it closed (the WAL checkpointed into the file and removed).
    drop(writer);
    check_read_only(&path, &expected).await;
    // The writer, reopened, still writes.
    let writer = SqliteDemandStore::open(&path).unwrap();
    // The scenario's six counters.
    assert_eq!(writer.purge_before(i64::MAX).unwrap(), 6);
}

#[tokio::test]
async fn purging_deletes_only_the_counters_before_the_bucket() {
    let store = SqliteDemandStore::open_in_memory().unwrap();
    let b0 = bucket0();
    for (i, bucket) in [b0 - 120, b0 - 60, b0, b0 + 60].into_iter().enumerate() {
        let n = i.to_string();
        let u = update(
            &key(ROUTE, bucket, "s"),
            searches(1),
            pos(&n, 0),
            pos(&n, 0),
        );
        store.add(&u).await.unwrap();
    }
    store
        .note_routes(&[ROUTE.into()], at("2026-12-01T09:00:00Z"))
        .await
        .unwrap();

    assert_eq!(store.purge_before(b0).unwrap(), 2);
    let left: Vec<i64> = store
        .counters(ROUTE, i64::MIN, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k.bucket)
        .collect();
    assert_eq!(left, vec![b0, b0 + 60]);
    assert_eq!(store.purge_before(b0).unwrap(), 0);
    assert_eq!(store.routes().await.unwrap(), vec![ROUTE.to_string()]);
}

#[tokio::test]
async fn the_alert_log_writes_one_line_per_alert_and_tells_the_console() {
    // Given a log in a directory that does not exist yet, with a console
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out").join(ALERTS_FILE);
    let console = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = console.clone();
    let log = AlertLog::new(&path)
        .unwrap()
        .with_console(move |line| seen.lock().unwrap().push(line.to_string()));
    let surge = surge_alert("2026-12-01T09:03:00.250Z");
    let sold_out = flight_alert(AlertRule::SoldOut, 1, "2026-12-01T09:04:00Z");

    // When two alerts are published, one of them twice (a retried outbox entry)
    for alert in [&surge, &sold_out, &surge] {
        log.publish(alert).await.unwrap();
    }

    // Then each publish is one line, exactly the alert's JSON, parsing back equal
    let text = std::fs::read_to_string(&path).unwrap();
    let expected = format!(
        "{}\n{}\n{}\n",
        surge.to_json(),
        sold_out.to_json(),
        surge.to_json()
    );
    assert_eq!(text, expected);
    let back: Vec<Alert> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back, vec![surge.clone(), sold_out.clone(), surge.clone()]);
    // And the console heard each one
    assert_eq!(
        *console.lock().unwrap(),
        vec![
            surge.console_line(),
            sold_out.console_line(),
            surge.console_line()
        ]
    );

    // And a log without a console appends after what is there
    let quiet = AlertLog::new(&path).unwrap();
    quiet.publish(&sold_out).await.unwrap();
    let back: Vec<Alert> = flyhigh_embedded::read_all(&path).unwrap();
    assert_eq!(back.len(), 4);
    assert_eq!(back[3], sold_out);
    assert_eq!(console.lock().unwrap().len(), 3);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_failed_alert_write_is_transient_and_tells_no_one() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let heard = Arc::new(Mutex::new(0));
    let count = heard.clone();
    let log = AlertLog::new(full)
        .unwrap()
        .with_console(move |_| *count.lock().unwrap() += 1);

    let err = log
        .publish(&surge_alert("2026-12-01T09:03:00Z"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Transient(_)), "{err}");
    assert_eq!(
        *heard.lock().unwrap(),
        0,
        "the console hears only of alerts in the file"
    );
}

/// One step of a random run against both stores.
#[derive(Debug, Clone)]
enum Op {
    Add {
        counter: usize,
        first: u64,
        len: u64,
        searches: u64,
    },
    Counters {
        from: i64,
        to: i64,
    },
    Watermark {
        shard: usize,
        seconds: i64,
    },
    SaveRoute {
        version: u64,
    },
    SaveCabin {
        cabin: usize,
        version: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, 0..60u64, 0..4u64, 0..5u64)
            .prop_map(|(counter, first, len, searches)| Op::Add { counter, first, len, searches }),
        1 => (-2..4i64, -2..4i64).prop_map(|(from, to)| Op::Counters { from, to }),
        2 => (0..2usize, 0..100i64).prop_map(|(shard, seconds)| Op::Watermark { shard, seconds }),
        1 => (0..5u64).prop_map(|version| Op::SaveRoute { version }),
        1 => (0..2usize, 0..5u64).prop_map(|(cabin, version)| Op::SaveCabin { cabin, version }),
    ]
}

async fn run(ops: &[Op], demand: &impl DemandStore, alerts: &impl AlertStore) -> Vec<String> {
    let b0 = bucket0();
    let counters = [
        key(ROUTE, b0, "s1"),
        key(ROUTE, b0, "s2"),
        key(ROUTE, b0 + 60, "s1"),
        key(OTHER_ROUTE, b0, "s1"),
    ];
    let cabins = [
        CabinKey::new(FLIGHT, Cabin::Economy),
        CabinKey::new(FLIGHT, Cabin::First),
    ];
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let result = match op {
            Op::Add {
                counter,
                first,
                len,
                searches: n,
            } => {
                let u = update(
                    &counters[*counter],
                    searches(*n),
                    Position::new(&first.to_string(), Some(1)),
                    Position::new(&(first + len).to_string(), Some(0)),
                );
                format!("{:?}", demand.add(&u).await)
            }
            Op::Counters { from, to } => {
                format!(
                    "{:?}",
                    demand.counters(ROUTE, b0 + from * 60, b0 + to * 60).await
                )
            }
            Op::Watermark { shard, seconds } => {
                let shard = ["s1", "s2"][*shard];
                let event_time = at("2026-12-01T09:00:00Z") + Duration::seconds(*seconds);
                let stamp = at("2026-12-01T10:00:00Z") + Duration::seconds(i as i64);
                demand
                    .advance_watermark(shard, event_time, stamp)
                    .await
                    .unwrap();
                format!("{:?}", demand.watermarks().await)
            }
            Op::SaveRoute { version } => {
                let saved = alerts
                    .save_route_state(ROUTE, &route_state(*version), &[])
                    .await;
                format!("{saved:?} {:?}", alerts.route_state(ROUTE).await)
            }
            Op::SaveCabin { cabin, version } => {
                let key = &cabins[*cabin];
                let saved = alerts
                    .save_cabin_state(key, &cabin_state(*version), &[])
                    .await;
                format!(
                    "{saved:?} {:?}",
                    alerts.cabin_states(std::slice::from_ref(key)).await
                )
            }
        };
        out.push(result);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_runs_give_the_memory_stores_results(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = runtime();
        let expected = rt.block_on(run(&ops, &MemoryDemandStore::new(), &MemoryAlertStore::new()));
        let store = SqliteDemandStore::open_in_memory().unwrap();
        let got = rt.block_on(run(&ops, &store, &store));
        prop_assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn an_alert_reads_back_as_published_and_orders_by_its_full_time() {
    // Given two alerts raised within one millisecond, the later one with the smaller id
    let store = SqliteDemandStore::open_in_memory().unwrap();
    let later = flight_alert(AlertRule::NearSoldOut, 1, "2026-12-01T09:00:00.000900Z");
    let earlier = flight_alert(AlertRule::SoldOut, 1, "2026-12-01T09:00:00.000100Z");
    assert!(later.alert_id < earlier.alert_id);
    store.record(&later).await.unwrap();
    store.record(&earlier).await.unwrap();

    // Then they come back as their JSON says (milliseconds), in the order raised
    let published = |a: &Alert| serde_json::from_str::<Alert>(&a.to_json()).unwrap();
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending, vec![published(&earlier), published(&later)]);
    assert_eq!(pending[0].raised_at, at("2026-12-01T09:00:00Z"));
    let since = AlertFilter {
        since: Some(at("2026-12-01T09:00:00.0005Z")),
        ..AlertFilter::default()
    };
    let listed = store.alerts(&since).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].alert, published(&later));
}

#[tokio::test]
async fn a_save_of_120_alerts_records_them_all_and_the_registry_forgets_conditionally() {
    // DynamoDB refused more than 49 alerts a save (issue 15); SQLite must take any
    // number, in one transaction, as the memory store does.
    let store = SqliteDemandStore::open_in_memory().unwrap();
    let raised: Vec<Alert> = (1..=120)
        .map(|n| flight_alert(AlertRule::Oversold, n, "2026-12-01T09:37:00Z"))
        .collect();
    let mut state = RouteState::new(&SurgeConfig::default(), bucket0());
    state.version = 1;
    assert!(
        store
            .save_route_state(ROUTE, &state, &raised)
            .await
            .unwrap()
    );
    assert_eq!(store.pending(500).await.unwrap().len(), 120);
    assert!(
        !store
            .save_route_state(ROUTE, &state, &raised)
            .await
            .unwrap()
    );
    let cabin = CabinAlertState {
        version: 1,
        ..CabinAlertState::default()
    };
    let more: Vec<Alert> = (121..=240)
        .map(|n| flight_alert(AlertRule::Oversold, n, "2026-12-01T09:38:00Z"))
        .collect();
    let key = CabinKey::new(FLIGHT, Cabin::Economy);
    assert!(store.save_cabin_state(&key, &cabin, &more).await.unwrap());
    assert_eq!(
        store.alerts(&AlertFilter::default()).await.unwrap().len(),
        240
    );

    // The registry: last_seen moves forward only; forgetting needs what was listed.
    let (t1, t2) = (at("2026-12-01T09:00:00Z"), at("2026-12-01T10:00:00Z"));
    store.note_routes(&[ROUTE.into()], t2).await.unwrap();
    store.note_routes(&[ROUTE.into()], t1).await.unwrap();
    let listed = store.noted_routes().await.unwrap();
    assert_eq!((listed[0].route.as_str(), listed[0].last_seen), (ROUTE, t2));
    let stale = NotedRoute {
        route: ROUTE.into(),
        last_seen: t1,
    };
    assert!(!store.forget_route(&stale).await.unwrap());
    assert!(store.forget_route(&listed[0]).await.unwrap());
    assert!(store.routes().await.unwrap().is_empty());
    // The cursor.
    assert_eq!(store.evaluator_cursor().await.unwrap(), None);
    store.save_evaluator_cursor(ROUTE).await.unwrap();
    assert_eq!(
        store.evaluator_cursor().await.unwrap().as_deref(),
        Some(ROUTE)
    );
}
