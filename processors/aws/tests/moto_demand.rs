//! `DynamoDemandStore` and `DynamoAlertStore` against moto, through the real SDK
//! client, held to the in-memory stores: each scenario runs against both and must
//! give the same transcript, and checks what it expects on the way.
//!
//! Needs `FLYHIGH_MOTO_URL` (see `common::moto_url`). Each test has its own tables.

#![cfg(feature = "dynamodb")]

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;

use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};
use flyhigh_aws::demand::{
    DynamoAlertStore, DynamoDemandStore, create_alerts_table, create_demand_table,
};
use flyhigh_core::demand::{
    CabinAlertState, CounterKey, CounterUpdate, Counts, Position, RouteState, SurgeConfig,
};
use flyhigh_core::memory::{MemoryAlertStore, MemoryDemandStore};
use flyhigh_core::{Added, AlertFilter, AlertStore, CabinKey, DemandStore};
use flyhigh_schemas::{ALERT_VERSION, Alert, AlertRule, Cabin, Severity};

/// A real Kinesis sequence number (56 digits).
const KINESIS_SEQ: &str = "49590338271490256608559692538361571095921575989136588898";
const KINESIS_SEQ_NEXT: &str = "49590338271490256608559692538361571095921575989136588899";
/// The next one after 10^55 - 1 has one digit more: padding must order them.
const KINESIS_NINES: &str = "9999999999999999999999999999999999999999999999999999999";
const KINESIS_LONGER: &str = "10000000000000000000000000000000000000000000000000000000";

const BUCKET: i64 = 1_796_115_600;

async fn client() -> Client {
    Client::new(&common::sdk_config().await)
}

async fn demand_store() -> DynamoDemandStore {
    let client = client().await;
    let table = common::unique_name("demand");
    create_demand_table(&client, &table)
        .await
        .expect("create demand table");
    // Twice: creating is idempotent.
    create_demand_table(&client, &table)
        .await
        .expect("create demand table again");
    DynamoDemandStore::new(client, table)
}

async fn alert_store() -> DynamoAlertStore {
    let client = client().await;
    let table = common::unique_name("alerts");
    create_alerts_table(&client, &table)
        .await
        .expect("create alerts table");
    create_alerts_table(&client, &table)
        .await
        .expect("create alerts table again");
    DynamoAlertStore::new(client, table)
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn key(route: &str, bucket: i64, shard: &str) -> CounterKey {
    CounterKey {
        route: route.into(),
        bucket,
        shard_id: shard.into(),
    }
}

fn counts(searches: u64, bookings: u64) -> Counts {
    Counts {
        searches,
        passengers: searches * 2,
        bookings,
        seats: bookings * 3,
        cancellations: bookings / 2,
        late: searches / 3,
    }
}

fn update(key: &CounterKey, c: Counts, first: (&str, u32), last: (&str, u32)) -> CounterUpdate {
    CounterUpdate {
        key: key.clone(),
        counts: c,
        first: Position::new(first.0, Some(first.1)),
        last: Position::new(last.0, Some(last.1)),
        arrived: chrono::DateTime::from_timestamp(key.bucket + 30, 0).unwrap_or_default(),
    }
}

fn stale(seq: &str, sub: u32) -> Added {
    Added::Stale {
        mark: Position::new(seq, Some(sub)),
    }
}

/// What a scenario saw, step by step, to compare across stores.
#[derive(Debug, Default, PartialEq)]
struct Transcript(Vec<(String, String)>);

impl Transcript {
    /// Notes a step's result and returns it.
    fn note<T: Debug>(&mut self, step: &str, value: T) -> T {
        self.0.push((step.to_string(), format!("{value:?}")));
        value
    }
}

/// Sums counters per bucket over shards.
fn sums(counters: &[(CounterKey, Counts)]) -> BTreeMap<i64, Counts> {
    let mut out: BTreeMap<i64, Counts> = BTreeMap::new();
    for (k, c) in counters {
        out.entry(k.bucket).or_default().add(c);
    }
    out
}

async fn demand_scenario<S: DemandStore>(store: &S) -> Transcript {
    let mut t = Transcript::default();
    let short = key("ORD-SFO", BUCKET, "shardId-000000000001");
    let long = key("ORD-SFO", BUCKET, "shardId-000000000002");
    let later = key("ORD-SFO", BUCKET + 60, "shardId-000000000001");
    let other = key("LHR-JFK", BUCKET, "shardId-000000000001");
    let old = key("LHR-JFK", -120, "shardId-000000000001");

    // moto-like short sequence numbers: "9" is below "10" only when padded.
    let steps = [
        (
            "short first",
            update(&short, counts(3, 1), ("9", 0), ("9", 0)),
            Added::Applied,
        ),
        (
            "short 10 after 9",
            update(&short, counts(2, 0), ("10", 0), ("12", 0)),
            Added::Applied,
        ),
        (
            "short redelivered",
            update(&short, counts(2, 0), ("10", 0), ("12", 0)),
            stale("12", 0),
        ),
        (
            "short overlapping",
            update(&short, counts(1, 1), ("11", 0), ("13", 0)),
            stale("12", 0),
        ),
        (
            "short above the mark",
            update(&short, counts(1, 1), ("13", 0), ("13", 0)),
            Added::Applied,
        ),
        (
            "short 9 again",
            update(&short, counts(1, 0), ("9", 0), ("9", 0)),
            stale("13", 0),
        ),
        // Kinesis-like sequence numbers and sub-sequence numbers in an aggregate.
        (
            "long first",
            update(&long, counts(5, 2), (KINESIS_SEQ, 0), (KINESIS_SEQ, 3)),
            Added::Applied,
        ),
        (
            "long same record",
            update(&long, counts(1, 0), (KINESIS_SEQ, 3), (KINESIS_SEQ, 4)),
            stale(KINESIS_SEQ, 3),
        ),
        (
            "long next sub",
            update(&long, counts(1, 0), (KINESIS_SEQ, 4), (KINESIS_SEQ_NEXT, 0)),
            Added::Applied,
        ),
        (
            "long nines",
            update(&long, counts(1, 1), (KINESIS_NINES, 0), (KINESIS_NINES, 0)),
            stale(KINESIS_SEQ_NEXT, 0),
        ),
        (
            "later nines",
            update(&later, counts(4, 0), (KINESIS_NINES, 0), (KINESIS_NINES, 0)),
            Added::Applied,
        ),
        (
            "later one digit more",
            update(
                &later,
                counts(4, 4),
                (KINESIS_LONGER, 0),
                (KINESIS_LONGER, 0),
            ),
            Added::Applied,
        ),
        (
            "other route",
            update(&other, counts(7, 7), ("1", 0), ("2", 5)),
            Added::Applied,
        ),
        (
            "before the epoch",
            update(&old, counts(1, 0), ("1", 0), ("1", 0)),
            Added::Applied,
        ),
    ];
    for (step, u, expected) in &steps {
        let added = t.note(step, store.add(u).await.expect(step));
        assert_eq!(&added, expected, "{step}");
    }
    // The last change of each counter again, as one batch: each is stale on its own
    // mark (the counts below are unchanged).
    let mut again: Vec<CounterUpdate> = Vec::new();
    for (_, u, _) in steps.iter().rev() {
        if !again.iter().any(|a| a.key == u.key) {
            again.push(u.clone());
        }
    }
    let results = t.note("the batch again", store.add_all(&again).await);
    assert_eq!(results.len(), again.len());
    assert!(
        results.iter().all(|r| matches!(r, Ok(Added::Stale { .. }))),
        "{results:?}"
    );

    let all = t.note(
        "ORD-SFO all",
        store.counters("ORD-SFO", i64::MIN, i64::MAX).await.unwrap(),
    );
    assert_eq!(all.len(), 3);
    let first_bucket = t.note(
        "ORD-SFO first bucket",
        store
            .counters("ORD-SFO", BUCKET, BUCKET + 60)
            .await
            .unwrap(),
    );
    assert_eq!(first_bucket.len(), 2, "one counter per shard");
    let mut expected = counts(3, 1);
    expected.add(&counts(2, 0));
    expected.add(&counts(1, 1));
    expected.add(&counts(5, 2));
    expected.add(&counts(1, 0));
    assert_eq!(
        t.note("ORD-SFO sums", sums(&first_bucket))[&BUCKET],
        expected
    );
    assert!(
        t.note(
            "empty range",
            store.counters("ORD-SFO", BUCKET, BUCKET).await.unwrap()
        )
        .is_empty()
    );
    assert!(
        t.note(
            "reversed range",
            store
                .counters("ORD-SFO", BUCKET + 60, BUCKET)
                .await
                .unwrap()
        )
        .is_empty()
    );
    assert_eq!(
        t.note(
            "later bucket only",
            store
                .counters("ORD-SFO", BUCKET + 1, BUCKET + 61)
                .await
                .unwrap()
        )
        .len(),
        1
    );
    assert_eq!(
        t.note(
            "LHR-JFK negative buckets",
            store.counters("LHR-JFK", -180, 0).await.unwrap()
        )
        .len(),
        1
    );
    assert!(
        t.note(
            "unknown route",
            store.counters("AAA-BBB", i64::MIN, i64::MAX).await.unwrap()
        )
        .is_empty()
    );

    // The registry: idempotent, sorted, repeats and more than one batch of 25.
    let many: Vec<String> = (0..30).map(|i| format!("R{i:02}-XYZ")).collect();
    store
        .note_routes(
            &["ORD-SFO".into(), "LHR-JFK".into(), "ORD-SFO".into()],
            at("2026-12-01T09:00:00Z"),
        )
        .await
        .unwrap();
    store
        .note_routes(&many, at("2026-12-01T09:00:00Z"))
        .await
        .unwrap();
    store
        .note_routes(&many, at("2026-12-01T09:00:00Z"))
        .await
        .unwrap();
    store
        .note_routes(&[], at("2026-12-01T09:00:00Z"))
        .await
        .unwrap();
    let routes = t.note("routes", store.routes().await.unwrap());
    assert_eq!(routes.len(), 32);
    assert_eq!(routes[0], "LHR-JFK");

    // Watermarks never go back.
    let (s1, s2) = ("shardId-000000000001", "shardId-000000000002");
    t.note("no watermark", store.watermark(s1).await.unwrap());
    store
        .advance_watermark(
            s1,
            at("2026-12-01T09:00:00.125Z"),
            at("2026-12-01T09:00:01Z"),
        )
        .await
        .unwrap();
    store
        .advance_watermark(s1, at("2026-12-01T08:59:00Z"), at("2026-12-01T09:00:02Z"))
        .await
        .unwrap();
    assert_eq!(
        t.note("not back", store.watermark(s1).await.unwrap()),
        Some(at("2026-12-01T09:00:00.125Z"))
    );
    store
        .advance_watermark(s1, at("2026-12-01T09:05:00Z"), at("2026-12-01T09:05:01Z"))
        .await
        .unwrap();
    store
        .advance_watermark(s1, at("2026-12-01T09:05:00Z"), at("2026-12-01T09:05:09Z"))
        .await
        .unwrap();
    store
        .advance_watermark(s2, at("2026-12-01T09:01:00Z"), at("2026-12-01T09:01:01Z"))
        .await
        .unwrap();
    assert_eq!(
        t.note("forward", store.watermark(s1).await.unwrap()),
        Some(at("2026-12-01T09:05:00Z"))
    );
    let marks = t.note("watermarks", store.watermarks().await.unwrap());
    assert_eq!(marks.len(), 2);
    assert_eq!(
        marks[0].updated_at,
        at("2026-12-01T09:05:01Z"),
        "an equal time stamps nothing"
    );
    t
}

#[tokio::test]
async fn the_demand_store_behaves_as_the_memory_store() {
    let memory = demand_scenario(&MemoryDemandStore::new()).await;
    let dynamo = demand_scenario(&demand_store().await).await;
    assert_eq!(dynamo, memory);
}

/// Updates of one shard's batches: several counters, each a run of consecutive
/// positions.
fn batch_updates(n: usize) -> Vec<CounterUpdate> {
    (0..n)
        .map(|i| {
            let k = key(
                ["ORD-SFO", "LHR-JFK"][i % 2],
                BUCKET + 60 * ((i / 2) % 2) as i64,
                "shardId-000000000007",
            );
            let seq = format!("4959033827149025660855969253836157109592157598913{:07}", i);
            update(
                &k,
                counts(i as u64 % 5 + 1, i as u64 % 3),
                (&seq, 0),
                (&seq, 9),
            )
        })
        .collect()
}

#[tokio::test]
async fn delivering_the_same_updates_twice_adds_nothing() {
    let store = demand_store().await;
    let updates = batch_updates(20);
    for u in &updates {
        assert_eq!(store.add(u).await.unwrap(), Added::Applied);
    }
    let once = store
        .counters("ORD-SFO", BUCKET, BUCKET + 120)
        .await
        .unwrap();
    let mut marks: BTreeMap<&CounterKey, &Position> = BTreeMap::new();
    for u in &updates {
        marks.insert(&u.key, &u.last);
    }
    for u in &updates {
        assert_eq!(
            store.add(u).await.unwrap(),
            Added::Stale {
                mark: marks[&u.key].clone()
            },
            "the counter's mark is its last update's last position"
        );
    }
    assert_eq!(
        store
            .counters("ORD-SFO", BUCKET, BUCKET + 120)
            .await
            .unwrap(),
        once
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_consumers_racing_apply_each_update_exactly_once() {
    let store = demand_store().await;
    let updates = batch_updates(100);
    let race = |store: DynamoDemandStore, updates: Vec<CounterUpdate>| {
        tokio::spawn(async move {
            let mut applied = Vec::new();
            for u in &updates {
                applied.push(store.add(u).await.expect("add") == Added::Applied);
            }
            applied
        })
    };
    let a = race(store.clone(), updates.clone());
    let b = race(store.clone(), updates.clone());
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            x ^ y,
            "update {i} applied by {} consumers",
            u8::from(*x) + u8::from(*y)
        );
    }
    let mut expected: BTreeMap<(String, i64), Counts> = BTreeMap::new();
    for u in &updates {
        expected
            .entry((u.key.route.clone(), u.key.bucket))
            .or_default()
            .add(&u.counts);
    }
    let mut stored: BTreeMap<(String, i64), Counts> = BTreeMap::new();
    for route in ["ORD-SFO", "LHR-JFK"] {
        for (k, c) in store.counters(route, BUCKET, BUCKET + 120).await.unwrap() {
            stored
                .entry((k.route.clone(), k.bucket))
                .or_default()
                .add(&c);
        }
    }
    assert_eq!(stored, expected, "sums equal one application");
}

fn surge(route: &str, raised_at: &str, severity: Severity) -> Alert {
    let start = at("2026-12-01T09:34:00Z");
    let (origin, destination) = route.split_once('-').unwrap();
    Alert {
        alert_id: Alert::surge_id(route, start),
        alert_version: ALERT_VERSION,
        status: Default::default(),
        clears: None,
        rule: AlertRule::RouteSurge,
        severity,
        route: route.into(),
        origin: origin.into(),
        destination: destination.into(),
        flight_id: None,
        cabin: None,
        window_start: Some(start),
        window_end: Some(at("2026-12-01T09:37:00Z")),
        observed: Some(61),
        baseline: Some(10.0 / 3.0),
        capacity: None,
        sold: None,
        detected_at: at("2026-12-01T09:37:00Z"),
        raised_at: at(raised_at),
        summary: format!("demand on {route} 5.8x baseline"),
    }
}

fn flight(rule: AlertRule, flight_id: &str, raised_at: &str) -> Alert {
    Alert {
        alert_id: Alert::flight_id_for(rule, flight_id, Cabin::Business, 1),
        alert_version: ALERT_VERSION,
        status: Default::default(),
        clears: None,
        rule,
        severity: Severity::Critical,
        route: "LHR-JFK".into(),
        origin: "LHR".into(),
        destination: "JFK".into(),
        flight_id: Some(flight_id.into()),
        cabin: Some(Cabin::Business),
        window_start: None,
        window_end: None,
        observed: None,
        baseline: None,
        capacity: Some(8),
        sold: Some(9),
        detected_at: at("2026-12-01T09:30:00Z"),
        raised_at: at(raised_at),
        summary: format!("{flight_id} business: {rule}"),
    }
}

async fn alert_scenario<S: AlertStore>(store: &S) -> Transcript {
    let mut t = Transcript::default();
    let a1 = surge("ORD-SFO", "2026-12-01T09:37:02.125Z", Severity::Critical);
    // Raised at the same time as a1 with a smaller id: sorts first.
    let a2 = flight(
        AlertRule::Oversold,
        "FH0310-20261201",
        "2026-12-01T09:37:02.125Z",
    );
    let a3 = flight(
        AlertRule::NearSoldOut,
        "FH0311-20261201",
        "2026-12-01T09:38:00Z",
    );
    let a4 = surge("LHR-JFK", "2026-12-01T09:40:00Z", Severity::Warning);
    assert!(a2.alert_id < a1.alert_id);

    for a in [&a3, &a1, &a4, &a2] {
        assert!(t.note(
            &format!("record {}", a.alert_id),
            store.record(a).await.unwrap()
        ));
    }
    let mut again = a1.clone();
    again.raised_at = at("2026-12-01T09:50:00Z");
    again.summary = "raised by another invocation".into();
    assert!(!t.note("record a1 twice", store.record(&again).await.unwrap()));

    let ids = |alerts: &[Alert]| {
        alerts
            .iter()
            .map(|a| a.alert_id.clone())
            .collect::<Vec<_>>()
    };
    let pending = t.note("pending", store.pending(10).await.unwrap());
    assert_eq!(
        ids(&pending),
        ids(&[a2.clone(), a1.clone(), a3.clone(), a4.clone()])
    );
    assert_eq!(pending[1], a1, "the first record wins");
    assert_eq!(
        t.note("pending 2", ids(&store.pending(2).await.unwrap())),
        ids(&[a2.clone(), a1.clone()])
    );
    assert!(
        t.note("pending 0", store.pending(0).await.unwrap())
            .is_empty()
    );

    // Claims: held until they expire, strictly before `now`.
    let now = at("2026-12-01T09:41:00Z");
    let until = now + Duration::seconds(30);
    assert!(t.note(
        "claim",
        store.claim(&a1.alert_id, now, until).await.unwrap()
    ));
    assert!(
        !t.note(
            "claim held",
            store
                .claim(&a1.alert_id, now + Duration::seconds(10), until)
                .await
                .unwrap()
        )
    );
    assert!(
        !t.note(
            "claim at expiry",
            store
                .claim(&a1.alert_id, until, until + Duration::seconds(30))
                .await
                .unwrap()
        )
    );
    let reclaimed = until + Duration::milliseconds(1);
    assert!(
        t.note(
            "claim expired",
            store
                .claim(&a1.alert_id, reclaimed, reclaimed + Duration::seconds(30))
                .await
                .unwrap()
        )
    );
    assert!(!t.note(
        "claim unknown",
        store.claim("nope", now, until).await.unwrap()
    ));
    assert!(t.note(
        "claim other",
        store.claim(&a2.alert_id, now, until).await.unwrap()
    ));

    // Marks: idempotent, the first time kept.
    let published = at("2026-12-01T09:41:05Z");
    store.mark_published(&a1.alert_id, published).await.unwrap();
    store
        .mark_published(&a1.alert_id, published + Duration::minutes(5))
        .await
        .unwrap();
    store.mark_published("nope", published).await.unwrap();
    assert_eq!(
        t.note("pending after mark", ids(&store.pending(10).await.unwrap())),
        ids(&[a2.clone(), a3.clone(), a4.clone()])
    );
    assert!(
        !t.note(
            "claim published",
            store
                .claim(
                    &a1.alert_id,
                    reclaimed + Duration::hours(1),
                    until + Duration::hours(2)
                )
                .await
                .unwrap()
        )
    );

    // Listings.
    let all = t.note(
        "alerts",
        store.alerts(&AlertFilter::default()).await.unwrap(),
    );
    assert_eq!(all.len(), 4);
    assert_eq!(all[1].alert, a1);
    assert_eq!(all[1].published_at, Some(published));
    assert_eq!(all[0].published_at, None);
    let since = t.note(
        "since",
        store
            .alerts(&AlertFilter {
                since: Some(at("2026-12-01T09:38:00Z")),
                ..Default::default()
            })
            .await
            .unwrap(),
    );
    assert_eq!(since.len(), 2, "raised at `since` counts");
    let surges = t.note(
        "rule",
        store
            .alerts(&AlertFilter {
                rule: Some(AlertRule::RouteSurge),
                ..Default::default()
            })
            .await
            .unwrap(),
    );
    assert_eq!(surges.len(), 2);
    let latest = t.note(
        "limit",
        store
            .alerts(&AlertFilter {
                limit: Some(2),
                ..Default::default()
            })
            .await
            .unwrap(),
    );
    assert_eq!(
        latest
            .iter()
            .map(|a| a.alert.alert_id.clone())
            .collect::<Vec<_>>(),
        [a3.alert_id.clone(), a4.alert_id.clone()]
    );
    let narrow = t.note(
        "since, rule and limit",
        store
            .alerts(&AlertFilter {
                since: Some(at("2026-12-01T09:37:02.125Z")),
                rule: Some(AlertRule::Oversold),
                limit: Some(1),
            })
            .await
            .unwrap(),
    );
    assert_eq!(narrow.len(), 1);
    assert!(
        t.note(
            "limit 0",
            store
                .alerts(&AlertFilter {
                    limit: Some(0),
                    ..Default::default()
                })
                .await
                .unwrap()
        )
        .is_empty()
    );

    // Route states: saved over their previous version only.
    let config = SurgeConfig::default();
    let mut state = RouteState::new(&config, BUCKET);
    assert_eq!(
        t.note(
            "no route state",
            store.route_state("ORD-SFO").await.unwrap()
        ),
        None
    );
    assert!(
        !t.note(
            "save version 0",
            store
                .save_route_state("ORD-SFO", &state, &[])
                .await
                .unwrap()
        )
    );
    state.version = 2;
    assert!(
        !t.note(
            "save version 2 first",
            store
                .save_route_state("ORD-SFO", &state, &[])
                .await
                .unwrap()
        )
    );
    state.version = 1;
    state.baseline = Some(0.1 + 0.2);
    assert!(
        t.note(
            "save version 1",
            store
                .save_route_state("ORD-SFO", &state, &[])
                .await
                .unwrap()
        )
    );
    assert!(
        !t.note(
            "save version 1 again",
            store
                .save_route_state("ORD-SFO", &state, &[])
                .await
                .unwrap()
        )
    );
    state.version = 3;
    assert!(
        !t.note(
            "save version 3 over 1",
            store
                .save_route_state("ORD-SFO", &state, &[])
                .await
                .unwrap()
        )
    );
    state.version = 2;
    state.history = 7;
    assert!(
        t.note(
            "save version 2",
            store
                .save_route_state("ORD-SFO", &state, &[])
                .await
                .unwrap()
        )
    );
    assert_eq!(
        t.note("route state", store.route_state("ORD-SFO").await.unwrap()),
        Some(state)
    );

    // Cabin states: more keys than one BatchGetItem takes, repeats, missing ones.
    let keys: Vec<CabinKey> = (0..60)
        .flat_map(|i| {
            [Cabin::Economy, Cabin::Business]
                .map(|c| CabinKey::new(format!("FH{i:04}-20261201"), c))
        })
        .collect();
    for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 8 != 0) {
        let mut latches = CabinAlertState {
            version: 1,
            ..Default::default()
        };
        latches.near_sold_out.fired = i % 2 == 0;
        latches.near_sold_out.crossings = (i % 3) as u32;
        assert!(
            store.save_cabin_state(k, &latches, &[]).await.unwrap(),
            "{k:?}"
        );
    }
    let mut latched = CabinAlertState {
        version: 2,
        ..Default::default()
    };
    latched.oversold.fired = true;
    latched.oversold.crossings = 1;
    assert!(
        t.note(
            "save cabin 2",
            store
                .save_cabin_state(&keys[1], &latched, &[])
                .await
                .unwrap()
        )
    );
    assert!(
        !t.note(
            "save cabin 2 again",
            store
                .save_cabin_state(&keys[1], &latched, &[])
                .await
                .unwrap()
        )
    );
    assert!(
        !t.note(
            "save cabin 1 over 2",
            store
                .save_cabin_state(
                    &keys[1],
                    &CabinAlertState {
                        version: 1,
                        ..Default::default()
                    },
                    &[]
                )
                .await
                .unwrap()
        )
    );
    let mut asked = keys.clone();
    asked.push(keys[1].clone());
    let states = store.cabin_states(&asked).await.unwrap();
    assert_eq!(states.len(), 120 - 15, "cabins never saved are absent");
    assert_eq!(states[&keys[1]], latched);
    t.note(
        "cabin states",
        states.into_iter().collect::<BTreeMap<_, _>>(),
    );
    assert!(
        t.note("no cabins", store.cabin_states(&[]).await.unwrap())
            .is_empty()
    );
    t
}

#[tokio::test]
async fn the_alert_store_behaves_as_the_memory_store() {
    let memory = alert_scenario(&MemoryAlertStore::new()).await;
    let dynamo = alert_scenario(&alert_store().await).await;
    assert_eq!(dynamo, memory);
}

#[tokio::test]
async fn a_store_on_a_missing_table_fails_permanently_in_one_line() {
    let store = DynamoDemandStore::new(client().await, common::unique_name("missing"));
    let err = store.routes().await.unwrap_err();
    let flyhigh_core::StoreError::Permanent(message) = err else {
        panic!("not permanent: {err:?}")
    };
    assert!(message.contains("ResourceNotFoundException"), "{message}");
    assert!(
        !message.contains('\n') && !message.contains("HttpResponse"),
        "{message}"
    );
}

#[tokio::test]
async fn regression_a_counter_of_an_event_40_days_old_expires_from_its_arrival() {
    // Issue 15: `expires_at` was the bucket plus 35 days, already past for an event
    // dated more than 35 days back: TTL could delete the counter as it was written,
    // and a redelivery count the event twice.
    let client = client().await;
    let table = common::unique_name("demand");
    create_demand_table(&client, &table).await.unwrap();
    let store = DynamoDemandStore::new(client.clone(), table.clone());
    let arrived = at("2026-12-01T09:00:00Z");
    let bucket = (arrived - Duration::days(40)).timestamp() / 60 * 60;
    let k = key("ORD-SFO", bucket, "shardId-000000000001");
    let u = CounterUpdate {
        arrived,
        ..update(&k, counts(1, 0), ("1", 0), ("1", 0))
    };
    assert_eq!(store.add(&u).await.unwrap(), Added::Applied);
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("ROUTE#ORD-SFO".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "{bucket:020}#shardId-000000000001"
            )),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the counter");
    let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    assert_eq!(
        expires,
        arrived.timestamp() + flyhigh_aws::demand::COUNTER_TTL_SECONDS
    );
    assert!(
        expires > arrived.timestamp(),
        "not expired as it is written"
    );
    // The redelivery meets the mark.
    assert!(matches!(store.add(&u).await.unwrap(), Added::Stale { .. }));
}

#[tokio::test]
async fn a_progress_no_arrival_can_have_stamped_is_replaced_and_then_moves_only_forward() {
    // Issue 15: an event-time watermark an hour ahead (written by an older build)
    // held the shard's progress still; the next write replaces it.
    let store = demand_store().await;
    let s = "shardId-000000000001";
    let (t1, t2) = (at("2026-12-01T09:00:00Z"), at("2026-12-01T09:01:00Z"));
    store
        .advance_watermark(s, t1 + Duration::hours(1), t1)
        .await
        .unwrap();
    store.advance_watermark(s, t2, t2).await.unwrap();
    assert_eq!(store.watermark(s).await.unwrap(), Some(t2));
    store
        .advance_watermark(s, t1, t2 + Duration::seconds(1))
        .await
        .unwrap();
    let marks = store.watermarks().await.unwrap();
    assert_eq!(
        (marks[0].progress, marks[0].updated_at),
        (t2, t2),
        "never back"
    );
}
