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
use flyhigh_core::{InventoryStore, KinesisRecord};
use flyhigh_handlers::demand::counting::DEFAULT_BUCKET_SECONDS;
use flyhigh_handlers::{DemandHandler, SurgeEvaluator};
use flyhigh_schemas::{Alert, AlertRule, Envelope, Payload};
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
                let Payload::Search(s) = &e.payload else { return };
                c.searches += 1;
                c.passengers += u64::from(s.passengers);
            }),
            Payload::Booking(b) => (Some(format!("{}-{}", b.origin, b.destination)), |c, e| {
                let Payload::Booking(b) = &e.payload else { return };
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
    alerts.iter().filter(|a| a.rule == AlertRule::RouteSurge).collect()
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
    stores.inventory.load_schedule(&day.sim.schedule()).await.unwrap();
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
    assert!(twice.demand.writes() > once.demand.writes(), "the second deliveries were made");
    let ids = |a: &[Alert]| a.iter().map(|a| a.alert_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&alerts_once), ids(&alerts_twice));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_day_raises_no_surge_for_any_seed() {
    for seed in [1, 2, 3, 42, 2026] {
        let day = day(seed, 200_000, false);
        let alerts = judge_day(&day, &Stores::default(), 500, false).await;
        let surges = surge_alerts(&alerts);
        assert!(surges.is_empty(), "seed {seed}: {:#?}", surges);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_surge_day_raises_one_surge_for_the_surge_route_within_two_buckets_of_its_start() {
    for seed in [42, 5, 11] {
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
