//! The hot-route processor end to end in memory, over simulated days: the real
//! handlers (counting, evaluator, flight watch on the inventory handler, outbox) on
//! the ports' in-memory adapters, fed Kinesis batches per shard as Lambda would.
//!
//! The reference is computed independently, straight from the simulator's events.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use flyhigh_core::demand::Counts;
use flyhigh_core::memory::{
    MemoryAlertStore, MemoryDeadLetters, MemoryDemandStore, MemoryPublisher, MemoryStore,
};
use flyhigh_core::{AlertStore, InventoryStore, KinesisRecord};
use flyhigh_handlers::demand::Outbox;
use flyhigh_handlers::demand::counting::DEFAULT_BUCKET_SECONDS;
use flyhigh_handlers::{DemandHandler, FlightAlerts, InventoryHandler, SurgeEvaluator};
use flyhigh_schemas::{Alert, AlertRule, AlertStatus, Envelope, Payload};
use flyhigh_simulator::{SimConfig, Simulator, SurgeConfig};

const SHARDS: u128 = 4;

/// A simulated day as Kinesis records per shard, in production order, and the
/// simulator's events.
struct Day {
    shards: Vec<Vec<KinesisRecord>>,
    events: Vec<Envelope>,
    sim: Simulator,
}

fn day(seed: u64, events: usize, surge: bool) -> Day {
    let mut config = SimConfig::new(seed, events);
    if !surge {
        config.surge = SurgeConfig::disabled();
    }
    let mut sim = Simulator::new(config).unwrap();
    let events: Vec<Envelope> = sim.by_ref().collect();
    let mut shards: Vec<Vec<KinesisRecord>> = (0..SHARDS).map(|_| Vec::new()).collect();
    for e in &events {
        let key = e.partition_key();
        let shard = (flyhigh_schemas::hash_key(&key) / (u128::MAX / SHARDS + 1)) as usize;
        let seq = shards[shard].len() + 1;
        shards[shard].push(KinesisRecord {
            shard_id: format!("shardId-{shard:012}"),
            // Kinesis-like: long, increasing, same length.
            sequence_number: format!("4959{seq:052}"),
            partition_key: key,
            approximate_arrival: Some(e.occurred_at),
            data: e.to_json(),
        });
    }
    Day {
        shards,
        events,
        sim,
    }
}

/// Demand per route and bucket straight from the events (cancellations by the
/// schedule's route).
fn reference(day: &Day) -> BTreeMap<(String, i64), Counts> {
    let routes: BTreeMap<String, String> = day
        .sim
        .schedule()
        .flights
        .iter()
        .map(|f| (f.flight_id.clone(), f.route()))
        .collect();
    let mut out: BTreeMap<(String, i64), Counts> = BTreeMap::new();
    for e in &day.events {
        let bucket = e.occurred_at.timestamp().div_euclid(60) * 60;
        let (route, f): (Option<String>, fn(&mut Counts, &Envelope)) = match &e.payload {
            Payload::Search(s) => (Some(format!("{}-{}", s.origin, s.destination)), |c, e| {
                let Payload::Search(s) = &e.payload else {
                    return;
                };
                c.searches += 1;
                c.passengers += u64::from(s.passengers);
            }),
            Payload::Booking(b) => (Some(format!("{}-{}", b.origin, b.destination)), |c, e| {
                let Payload::Booking(b) = &e.payload else {
                    return;
                };
                c.bookings += 1;
                c.seats += u64::from(b.seats);
            }),
            Payload::Cancellation(c) => (routes.get(&c.flight_id).cloned(), |c, _| {
                c.cancellations += 1;
            }),
        };
        if let Some(route) = route {
            f(out.entry((route, bucket)).or_default(), e);
        }
    }
    out
}

type Demand<'a> = DemandHandler<&'a MemoryDemandStore, &'a MemoryStore, &'a MemoryDeadLetters>;

/// Feeds every shard to `handler` in batches of `batch`, as Lambda does (a failed
/// batch is retried from the reported record); `twice` delivers each batch twice.
async fn feed(handler: &Demand<'_>, day: &Day, batch: usize, twice: bool) {
    for records in &day.shards {
        let mut from = 0;
        while from < records.len() {
            let to = (from + batch).min(records.len());
            let outcome = handler.process(&records[from..to]).await;
            if twice {
                handler.process(&records[from..to]).await;
            }
            from += outcome.first_failed.unwrap_or(to - from);
        }
    }
}

fn surge_alerts(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| a.rule == AlertRule::RouteSurge)
        .collect()
}

/// The stores of one run.
#[derive(Default)]
struct Stores {
    demand: MemoryDemandStore,
    inventory: MemoryStore,
    letters: MemoryDeadLetters,
    alerts: MemoryAlertStore,
    publisher: MemoryPublisher,
}

/// Counts, then judges the whole day (the horizon is past its end); returns what
/// was published.
async fn judge_day(day: &Day, stores: &Stores, batch: usize, twice: bool) -> Vec<Alert> {
    stores
        .inventory
        .load_schedule(&day.sim.schedule())
        .await
        .unwrap();
    let handler = DemandHandler::new(&stores.demand, &stores.inventory, &stores.letters);
    feed(&handler, day, batch, twice).await;
    let evaluator = SurgeEvaluator::new(&stores.demand, &stores.alerts, &stores.publisher);
    let end = day.events.last().unwrap().occurred_at + Duration::minutes(2);
    evaluator.run(end, Utc::now).await.unwrap();
    stores.publisher.published()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_equal_the_reference_and_delivering_every_batch_twice_changes_nothing() {
    let day = day(7, 40_000, true);
    let expected = reference(&day);
    let (once, twice) = (Stores::default(), Stores::default());
    let alerts_once = judge_day(&day, &once, 100, false).await;
    let alerts_twice = judge_day(&day, &twice, 100, true).await;
    assert_eq!(once.demand.totals(), expected);
    assert_eq!(twice.demand.totals(), expected);
    assert!(
        twice.demand.writes() > once.demand.writes(),
        "the second deliveries were made"
    );
    let ids = |a: &[Alert]| a.iter().map(|a| a.alert_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&alerts_once), ids(&alerts_twice));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_day_raises_no_surge_for_any_seed() {
    for seed in [1, 42, 2026] {
        let day = day(seed, 200_000, false);
        let alerts = judge_day(&day, &Stores::default(), 500, false).await;
        let surges = surge_alerts(&alerts);
        assert!(surges.is_empty(), "seed {seed}: {:#?}", surges);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_surge_day_raises_one_surge_for_the_surge_route_within_two_buckets_of_its_start() {
    for seed in [42, 11] {
        let day = day(seed, 200_000, true);
        let (route, (start, _)) = (
            day.sim.stats().surge_route.clone().unwrap(),
            day.sim.stats().surge_window.unwrap(),
        );
        let alerts = judge_day(&day, &Stores::default(), 500, false).await;
        let surges = surge_alerts(&alerts);
        assert_eq!(surges.len(), 1, "seed {seed}: {surges:#?}");
        let alert = surges[0];
        assert_eq!(alert.route, route, "seed {seed}");
        let lag = alert.detected_at - start;
        assert!(
            lag > Duration::zero() && lag <= Duration::seconds(2 * DEFAULT_BUCKET_SECONDS),
            "seed {seed}: detected {lag} after the surge began at {start}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_from_checkpoints_store_failures_and_a_racing_consumer_count_each_event_once() {
    let day = day(3, 20_000, true);
    let expected = reference(&day);
    let stores = Stores::default();
    stores
        .inventory
        .load_schedule(&day.sim.schedule())
        .await
        .unwrap();
    let a = DemandHandler::new(&stores.demand, &stores.inventory, &stores.letters);
    let b = DemandHandler::new(&stores.demand, &stores.inventory, &stores.letters);
    let mut failures = 0;
    for records in &day.shards {
        let mut from = 0;
        let mut round = 0u32;
        while from < records.len() {
            round += 1;
            let to = (from + 250).min(records.len());
            // Every third batch meets a store that fails a few counter writes.
            if round.is_multiple_of(3) {
                stores.demand.fail_next_adds(2);
            }
            // A second consumer races on the same records; a retry "from a
            // checkpoint" replays the last 40 records of the previous batch.
            let replay = from.saturating_sub(40);
            let (outcome, _) = tokio::join!(
                a.process(&records[from..to]),
                b.process(&records[replay..to])
            );
            if outcome.first_failed.is_some() {
                failures += 1;
            }
            from += outcome.first_failed.unwrap_or(to - from);
        }
    }
    assert!(failures > 0, "the injected failures were met");
    assert_eq!(stores.demand.totals(), expected);
    let stale = a.stats().stale_writes + b.stats().stale_writes;
    assert!(stale > 0, "the race and the replays met counted records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_writes_are_bounded_by_route_buckets_not_events() {
    // Airline-scale traffic: 10 million events a day, of which the first 8,000 (a
    // few minutes of the night).
    let mut day = day(9, 8_000, false);
    let mut config = SimConfig::new(9, 10_000_000);
    config.surge = SurgeConfig::disabled();
    let dense: Vec<Envelope> = Simulator::new(config).unwrap().take(8_000).collect();
    day.shards = vec![
        dense
            .iter()
            .enumerate()
            .map(|(i, e)| KinesisRecord {
                shard_id: "shardId-000000000000".into(),
                sequence_number: format!("{}", 1000 + i),
                partition_key: e.partition_key(),
                approximate_arrival: None,
                data: e.to_json(),
            })
            .collect(),
    ];
    let stores = Stores::default();
    stores
        .inventory
        .load_schedule(&day.sim.schedule())
        .await
        .unwrap();
    let handler = DemandHandler::new(&stores.demand, &stores.inventory, &stores.letters);
    handler.process(&day.shards[0]).await;
    let stats = handler.stats();
    let route_buckets: std::collections::BTreeSet<(String, i64)> = stores
        .demand
        .all()
        .into_iter()
        .map(|(k, _, _)| (k.route, k.bucket))
        .collect();
    assert_eq!(stats.counter_writes as usize, route_buckets.len());
    assert!(stats.counter_writes * 10 < stats.events, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_alerts_cover_every_cabin_the_inventory_reports_oversold_or_sold_out_and_were_true_when_raised()
 {
    for seed in [42] {
        let day = day(seed, 200_000, true);
        let stores = Stores::default();
        stores
            .inventory
            .load_schedule(&day.sim.schedule())
            .await
            .unwrap();
        let watch = FlightAlerts::new(&stores.alerts, &stores.publisher);
        let handler = InventoryHandler::new(&stores.inventory, &stores.letters)
            .with_clock(move || "2026-12-02T00:00:00Z".parse().unwrap())
            .with_flight_watch(watch);
        for records in &day.shards {
            for chunk in records.chunks(200) {
                let outcome = handler.process(chunk).await;
                assert_eq!(outcome.first_failed, None);
                // Redelivered: no alert twice.
                handler.process(chunk).await;
            }
        }
        let inventory = stores.inventory.inventory().await.unwrap();
        let cabins = |rule: AlertRule| -> std::collections::BTreeSet<(String, String)> {
            stores
                .publisher
                .published()
                .into_iter()
                .filter(|a| a.rule == rule && a.status == AlertStatus::Raised)
                .map(|a| (a.flight_id.unwrap(), a.cabin.unwrap().as_str().to_string()))
                .collect()
        };
        let key =
            |c: &flyhigh_core::CabinInventory| (c.flight_id.clone(), c.cabin.as_str().to_string());
        let oversold: std::collections::BTreeSet<_> = inventory
            .iter()
            .filter(|c| c.oversold() > 0)
            .map(key)
            .collect();
        let sold_out: std::collections::BTreeSet<_> =
            inventory.iter().filter(|c| c.sold_out()).map(key).collect();
        assert!(
            !oversold.is_empty(),
            "seed {seed}: the surge oversells flights"
        );
        // Every cabin the inventory reports oversold or sold out has its alert. An
        // alert for a cabin the inventory no longer reports is one that crossed and
        // came back below (a later cancellation): it must have been true when raised.
        for (rule, now) in [
            (AlertRule::Oversold, &oversold),
            (AlertRule::SoldOut, &sold_out),
        ] {
            let alerted = cabins(rule);
            assert!(
                alerted.is_superset(now),
                "seed {seed} {rule}: missing {:?}",
                now.difference(&alerted)
            );
            for a in stores
                .publisher
                .published()
                .iter()
                .filter(|a| a.rule == rule)
            {
                let (sold, capacity) = (a.sold.unwrap(), i64::from(a.capacity.unwrap()));
                let true_when_sent = match (a.status, rule) {
                    (AlertStatus::Raised, AlertRule::Oversold) => sold > capacity,
                    (AlertStatus::Raised, _) => sold >= capacity,
                    (AlertStatus::Cleared, AlertRule::Oversold) => sold <= capacity,
                    (AlertStatus::Cleared, _) => sold < capacity,
                };
                assert!(true_when_sent, "{a:?}");
            }
            // A cabin the inventory reports oversold or sold out now has no clearance
            // of its last alert.
            for a in stores.publisher.published().iter().filter(|a| {
                a.rule == rule && a.status == AlertStatus::Raised && {
                    let key = (
                        a.flight_id.clone().unwrap(),
                        a.cabin.unwrap().as_str().to_string(),
                    );
                    now.contains(&key)
                }
            }) {
                let cleared = Alert::cleared_id(&a.alert_id);
                let later = stores.publisher.published().iter().any(|b| {
                    b.flight_id == a.flight_id
                        && b.cabin == a.cabin
                        && b.rule == rule
                        && b.status == AlertStatus::Raised
                        && b.alert_id > a.alert_id
                });
                if !later {
                    assert!(
                        stores
                            .publisher
                            .published()
                            .iter()
                            .all(|b| b.alert_id != cleared),
                        "{cleared} sent while the cabin is still {rule}"
                    );
                }
            }
            let came_back: Vec<_> = alerted.difference(now).collect();
            for (flight, cabin) in &came_back {
                let c = inventory
                    .iter()
                    .find(|c| &c.flight_id == flight && c.cabin.as_str() == cabin)
                    .unwrap();
                assert!(c.sold <= i64::from(c.capacity.unwrap()), "{c:?}");
            }
        }
        let published = stores.publisher.published();
        let ids: std::collections::BTreeSet<_> = published.iter().map(|a| &a.alert_id).collect();
        assert_eq!(
            ids.len(),
            published.len(),
            "seed {seed}: an alert was published twice"
        );
    }
}

fn alert(id: &str) -> Alert {
    let t = "2026-12-01T09:37:00Z"
        .parse::<chrono::DateTime<Utc>>()
        .unwrap()
        .timestamp();
    let firing = flyhigh_core::demand::surge::SurgeFiring {
        window_start: t - 180,
        window_end: t,
        observed: 50,
        expected: 9.0,
        severity: flyhigh_schemas::Severity::Critical,
        alert_id: id.to_string(),
    };
    flyhigh_core::demand::surge::surge_alert("ORD-SFO", &firing, Utc::now())
}

#[tokio::test]
async fn a_failed_publish_is_retried_and_published_once() {
    let stores = Stores::default();
    let outbox = Outbox::new(&stores.alerts, &stores.publisher)
        .with_attempts(2, std::time::Duration::from_millis(1))
        .with_claim(Duration::seconds(30));
    assert!(stores.alerts.record(&alert("a")).await.unwrap());
    assert!(
        !stores.alerts.record(&alert("a")).await.unwrap(),
        "recorded once"
    );
    // Both attempts of the first pass fail: it stays pending, claimed.
    stores.publisher.fail_next(2);
    let t0 = Utc::now();
    let report = outbox.publish_pending(&|| t0).await;
    assert_eq!(
        (
            report.published,
            report.left_pending,
            report.failed_attempts
        ),
        (0, 1, 2)
    );
    // A pass within the claim leaves it alone; one after it publishes it.
    let report = outbox.publish_pending(&|| t0 + Duration::seconds(10)).await;
    assert_eq!(report.claimed_elsewhere, 1);
    let report = outbox.publish_pending(&|| t0 + Duration::seconds(31)).await;
    assert_eq!(report.published, 1);
    assert_eq!(stores.publisher.published().len(), 1);
    assert_eq!(
        outbox
            .publish_pending(&|| t0 + Duration::seconds(99))
            .await
            .published,
        0
    );
}

#[tokio::test]
async fn a_crash_between_publish_and_mark_repeats_the_alert_once_with_the_same_id() {
    let stores = Stores::default();
    let outbox = Outbox::new(&stores.alerts, &stores.publisher)
        .with_claim(Duration::seconds(30))
        .with_attempts(3, std::time::Duration::from_millis(1));
    stores.alerts.record(&alert("b")).await.unwrap();
    // The mark fails three times in a row (its retries too): as good as a crash.
    stores.alerts.fail_next_marks(3);
    let t0 = Utc::now();
    outbox.publish_pending(&|| t0).await;
    outbox.publish_pending(&|| t0 + Duration::seconds(31)).await;
    outbox.publish_pending(&|| t0 + Duration::seconds(62)).await;
    let ids: Vec<String> = stores
        .publisher
        .published()
        .into_iter()
        .map(|a| a.alert_id)
        .collect();
    assert_eq!(ids, ["b", "b"]);
    assert!(stores.alerts.pending(10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_evaluators_racing_raise_each_surge_once() {
    let day = day(42, 200_000, true);
    let stores = Stores::default();
    stores
        .inventory
        .load_schedule(&day.sim.schedule())
        .await
        .unwrap();
    let handler = DemandHandler::new(&stores.demand, &stores.inventory, &stores.letters);
    feed(&handler, &day, 500, false).await;
    let a = SurgeEvaluator::new(&stores.demand, &stores.alerts, &stores.publisher);
    let b = SurgeEvaluator::new(&stores.demand, &stores.alerts, &stores.publisher);
    let start = day.events[0].occurred_at;
    // A scheduled run every ten simulated minutes, two evaluators each time.
    let mut t = start;
    let end = day.events.last().unwrap().occurred_at + Duration::minutes(2);
    while t < end {
        t += Duration::minutes(10);
        let (ra, rb) = tokio::join!(a.run(t, Utc::now), b.run(t, Utc::now));
        ra.unwrap();
        rb.unwrap();
    }
    let surges = surge_alerts(&stores.publisher.published()).len();
    assert_eq!(surges, 1);
    assert_eq!(
        stores.alerts.all().len(),
        stores.publisher.published().len()
    );
}

/// An inventory whose flight reads fail while `failing` is set.
struct FlakyRoutes<'a> {
    inner: &'a MemoryStore,
    failing: std::sync::atomic::AtomicBool,
}

impl InventoryStore for FlakyRoutes<'_> {
    async fn bookings(
        &self,
        ids: &[String],
    ) -> Result<
        std::collections::HashMap<String, flyhigh_core::BookingRecord>,
        flyhigh_core::StoreError,
    > {
        self.inner.bookings(ids).await
    }
    async fn commit(
        &self,
        tx: &flyhigh_core::inventory::Transaction,
    ) -> Result<(), flyhigh_core::CommitError> {
        self.inner.commit(tx).await
    }
    async fn load_schedule(
        &self,
        schedule: &flyhigh_core::Schedule,
    ) -> Result<(), flyhigh_core::StoreError> {
        self.inner.load_schedule(schedule).await
    }
    async fn inventory(
        &self,
    ) -> Result<Vec<flyhigh_core::CabinInventory>, flyhigh_core::StoreError> {
        self.inner.inventory().await
    }
    async fn flight(
        &self,
        flight_id: &str,
    ) -> Result<Vec<flyhigh_core::CabinInventory>, flyhigh_core::StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(flyhigh_core::StoreError::Transient(
                "injected read failure".into(),
            ));
        }
        self.inner.flight(flight_id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_cancellation_whose_route_cannot_be_read_is_counted_by_the_retry() {
    // Were the events after it counted while it was left out, their counters' marks
    // would pass it and the retry would skip it for good.
    let day = day(21, 20_000, false);
    let expected = reference(&day);
    let stores = Stores::default();
    stores
        .inventory
        .load_schedule(&day.sim.schedule())
        .await
        .unwrap();
    let routes = FlakyRoutes {
        inner: &stores.inventory,
        failing: true.into(),
    };
    let handler = DemandHandler::new(&stores.demand, &routes, &stores.letters);
    let mut failed = 0;
    for records in &day.shards {
        let mut from = 0;
        while from < records.len() {
            let to = (from + 300).min(records.len());
            let outcome = handler.process(&records[from..to]).await;
            if outcome.first_failed.is_some() {
                failed += 1;
                // The next delivery finds the inventory readable again.
                routes
                    .failing
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
            from += outcome.first_failed.unwrap_or(to - from);
        }
        routes
            .failing
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    assert!(failed >= 4, "every shard met the failure ({failed})");
    assert_eq!(stores.demand.totals(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_failed_state_save_then_late_counters_raise_one_surge_not_two() {
    // Recording the alert and saving the state were two writes: a failed save left
    // the alert behind, the next run judged the same buckets again with a lagging
    // shard's counters in, fired at another window and raised a second alert under
    // another id.
    use flyhigh_core::demand::counting::Tally;
    let day = day(42, 200_000, true);
    let (route, (start, _)) = (
        day.sim.stats().surge_route.clone().unwrap(),
        day.sim.stats().surge_window.unwrap(),
    );
    let stores = Stores::default();
    stores
        .inventory
        .load_schedule(&day.sim.schedule())
        .await
        .unwrap();
    let handler = DemandHandler::new(&stores.demand, &stores.inventory, &stores.letters);
    feed(&handler, &day, 500, false).await;
    let evaluator = SurgeEvaluator::new(&stores.demand, &stores.alerts, &stores.publisher);
    let horizon = start + Duration::minutes(4);
    evaluator
        .run(start - Duration::minutes(30), Utc::now)
        .await
        .unwrap();
    // Every route's save fails this time (a crash, a throttled table).
    stores.alerts.fail_next_saves(1_000);
    let failed = evaluator.run(horizon, Utc::now).await.unwrap();
    stores.alerts.fail_next_saves(0);
    assert!(
        failed.failed_routes.iter().any(|(r, _)| *r == route),
        "{failed:?}"
    );
    assert!(
        stores.alerts.all().is_empty(),
        "nothing recorded without its state"
    );
    // A lagging shard's counters for the minute before the surge arrive.
    let bucket = start.timestamp() - 60;
    let late: Vec<flyhigh_core::demand::DemandEvent> = (0..40)
        .map(|i| flyhigh_core::demand::DemandEvent {
            route: route.clone(),
            occurred_at: start - Duration::seconds(30),
            arrived_at: start + Duration::minutes(20),
            position: flyhigh_core::demand::Position::new("1", Some(i)),
            kind: flyhigh_core::demand::DemandKind::Search { passengers: 1 },
            timing: flyhigh_core::demand::counting::Timing::Late,
        })
        .collect();
    let tally = Tally {
        key: flyhigh_core::demand::CounterKey {
            route: route.clone(),
            bucket,
            shard_id: "shardId-lagging".into(),
        },
        events: (0..late.len()).collect(),
    };
    use flyhigh_core::DemandStore;
    stores
        .demand
        .add(&tally.update_above(&late, None).unwrap())
        .await
        .unwrap();
    let end = day.events.last().unwrap().occurred_at + Duration::minutes(2);
    evaluator.run(end, Utc::now).await.unwrap();
    let surges: Vec<_> = stores
        .alerts
        .all()
        .into_iter()
        .filter(|a| a.alert.rule == AlertRule::RouteSurge)
        .collect();
    assert_eq!(surges.len(), 1, "{surges:#?}");
    assert_eq!(surge_alerts(&stores.publisher.published()).len(), 1);
}

/// How a run delivers a shard's records to the inventory handler.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    /// Fixed batches of this size, each delivered once.
    Fixed(usize),
    /// Random batches (1 to 10,000 records, log-uniform) from this seed, with
    /// redeliveries, store failures (Lambda retries from the reported record) and
    /// bisects (a failed batch retried as its two halves).
    Random(u64),
}

/// The flight alert ids a surge day raises when its shards are delivered as
/// `delivery` says, in the order they were raised per shard.
async fn flight_alert_ids(day: &Day, delivery: Delivery) -> Vec<String> {
    flight_alert_ids_with(day, &day.sim.schedule(), delivery).await
}

async fn flight_alert_ids_with(
    day: &Day,
    schedule: &flyhigh_core::Schedule,
    delivery: Delivery,
) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let stores = Stores::default();
    stores.inventory.load_schedule(schedule).await.unwrap();
    let watch = FlightAlerts::new(&stores.alerts, &stores.publisher);
    let handler = InventoryHandler::new(&stores.inventory, &stores.letters)
        .with_clock(move || "2026-12-02T00:00:00Z".parse().unwrap())
        .with_flight_watch(watch);
    let mut rng = rand::rngs::StdRng::seed_from_u64(match delivery {
        Delivery::Random(seed) => seed,
        Delivery::Fixed(_) => 0,
    });
    for records in &day.shards {
        let mut from = 0;
        // A batch that reported a failure is retried from the reported record to its
        // own end, as Lambda retries the rest of a batch.
        let mut retry_to = None;
        while from < records.len() {
            let size = match delivery {
                Delivery::Fixed(n) => n,
                Delivery::Random(_) => {
                    let log: f64 = rng.gen_range(0.0..(10_000f64).ln());
                    log.exp() as usize
                }
            }
            .max(1);
            let to = retry_to.take().unwrap_or((from + size).min(records.len()));
            let batch = &records[from..to];
            if let Delivery::Random(_) = delivery {
                match rng.gen_range(0..10) {
                    // A store failure in the inventory or in the latch save: the
                    // batch reports a record and Lambda retries from it.
                    0 => stores.inventory.fail_next_commits(1),
                    1 => stores.alerts.fail_next_saves(1),
                    // A whole-batch failure bisected: each half, then the batch again.
                    2 if batch.len() > 1 => {
                        stores.inventory.fail_next_commits(1);
                        handler.process(batch).await;
                        let mid = batch.len() / 2;
                        for half in [&batch[..mid], &batch[mid..]] {
                            // Each half until it succeeds, retried from what it reports.
                            let mut at = 0;
                            while at < half.len() {
                                let outcome = handler.process(&half[at..]).await;
                                at += outcome.first_failed.unwrap_or(half.len() - at);
                            }
                        }
                    }
                    // A redelivery of a batch that succeeded.
                    3 => {
                        handler.process(batch).await;
                    }
                    _ => {}
                }
            }
            let outcome = handler.process(batch).await;
            if let Some(failed) = outcome.first_failed {
                retry_to = Some(to);
                from += failed;
            } else {
                from = to;
            }
        }
    }
    assert_eq!(handler.stats().flight_watch_errors, 0);
    // What a failure left pending, the alerts Lambda's outbox pass publishes.
    Outbox::new(&stores.alerts, &stores.publisher)
        .publish_pending(&Utc::now)
        .await;
    let published = stores.publisher.published();
    let ids: Vec<String> = published.iter().map(|a| a.alert_id.clone()).collect();
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "an alert was published twice: {delivery:?}"
    );
    let mut ids = ids;
    ids.sort();
    ids
}

fn surge_day_9() -> &'static Day {
    static DAY: std::sync::OnceLock<Day> = std::sync::OnceLock::new();
    DAY.get_or_init(|| day(9, 200_000, true))
}

/// The flight alert ids of seed 9's surge day delivered one record at a time, from
/// its bookings and cancellations only (searches move no seat; leaving them out makes
/// the 30,000 one-record deliveries affordable, and shows that the ids depend on the
/// inventory events alone).
fn one_at_a_time_reference() -> &'static Vec<String> {
    static IDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    IDS.get_or_init(|| {
        let full = surge_day_9();
        let inventory_only = Day {
            shards: full
                .shards
                .iter()
                .map(|records| records.iter().filter(|r| !is_search(r)).cloned().collect())
                .collect(),
            events: Vec::new(),
            sim: Simulator::new(SimConfig::new(9, 1)).unwrap(),
        };
        // The schedule of the surge day, not of the one-event simulator above.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(flight_alert_ids_with(
            &inventory_only,
            &full.sim.schedule(),
            Delivery::Fixed(1),
        ))
    })
}

fn is_search(record: &KinesisRecord) -> bool {
    flyhigh_schemas::decode::decode(&record.data)
        .is_ok_and(|e| matches!(e.payload, Payload::Search(_)))
}

#[test]
fn regression_flight_alerts_of_the_surge_day_do_not_depend_on_the_batch_size() {
    // Seed 9 raised 30 flight alerts in batches of 500 and 34 in batches of 37: a
    // business cabin oversold and brought back by a cancellation inside one batch of
    // 500 was never seen.
    let reference = one_at_a_time_reference();
    assert!(
        reference.iter().any(|id| id.starts_with("oversold:")),
        "the surge day oversells a cabin: {reference:?}"
    );
    assert!(
        reference.iter().any(|id| id.ends_with(":cleared")),
        "a cabin comes back below a level: {reference:?}"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for size in [37, 500, 10_000] {
        assert_eq!(
            &runtime.block_on(flight_alert_ids(surge_day_9(), Delivery::Fixed(size))),
            reference,
            "batches of {size}"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 8, ..Default::default() })]

    /// Random batchings (1 to 10,000 records), bisects, whole-batch redeliveries and
    /// retries from a reported record raise exactly the alert ids of one-at-a-time
    /// delivery.
    #[test]
    fn flight_alerts_are_the_same_for_any_batching_redelivery_bisect_or_retry(seed in proptest::prelude::any::<u64>()) {
        let reference = one_at_a_time_reference();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let ids = runtime.block_on(flight_alert_ids(surge_day_9(), Delivery::Random(seed)));
        proptest::prop_assert_eq!(&ids, reference);
    }
}
