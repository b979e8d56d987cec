//! Event time against arrival in the demand handler (issue 15): events are counted in
//! the bucket of their event time and flagged late or early against their own arrival;
//! a shard's progress, which the evaluator waits for, comes from arrival; expiry too.
//! The real handler and evaluator on the in-memory ports.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use flyhigh_core::demand::CounterKey;
use flyhigh_core::demand::counting::{COUNTER_RETENTION_SECONDS, DEFAULT_ALLOWANCE, DEFAULT_SKEW};
use flyhigh_core::memory::{
    MemoryAlertStore, MemoryDeadLetters, MemoryDemandStore, MemoryPublisher, MemoryStore,
};
use flyhigh_core::{DemandStore, KinesisRecord};
use flyhigh_handlers::{DemandHandler, SurgeEvaluator};
use flyhigh_schemas::{Envelope, Payload};
use flyhigh_simulator::{SimConfig, Simulator};

const ROUTE_SHARD_A: &str = "shardId-000000000000";
const ROUTE_SHARD_B: &str = "shardId-000000000001";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A valid search on some route, dated `occurred_at`.
fn search(occurred_at: DateTime<Utc>) -> (Envelope, String) {
    let template = Simulator::new(SimConfig::new(1, 2_000))
        .unwrap()
        .find(|e| matches!(e.payload, Payload::Search(_)))
        .unwrap();
    let mut e = template;
    e.occurred_at = occurred_at;
    let Payload::Search(s) = &mut e.payload else {
        unreachable!()
    };
    s.departure_date = occurred_at.date_naive();
    s.return_date = None;
    let route = format!("{}-{}", s.origin, s.destination);
    e.validate().unwrap();
    (e, route)
}

/// Records of one shard: `(event time, arrival)` each, sequence numbers from `first`.
fn records(
    shard: &str,
    first: u64,
    events: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Vec<KinesisRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, (occurred, arrived))| {
            let (e, _) = search(*occurred);
            KinesisRecord {
                shard_id: shard.into(),
                sequence_number: format!("4959{:052}", first + i as u64),
                partition_key: e.partition_key(),
                approximate_arrival: Some(*arrived),
                data: e.to_json(),
            }
        })
        .collect()
}

struct Setup {
    demand: MemoryDemandStore,
    inventory: MemoryStore,
    dead_letters: MemoryDeadLetters,
    clock: Arc<Mutex<DateTime<Utc>>>,
}

impl Setup {
    fn new(now: DateTime<Utc>) -> Setup {
        Setup {
            demand: MemoryDemandStore::new(),
            inventory: MemoryStore::new(),
            dead_letters: MemoryDeadLetters::new(),
            clock: Arc::new(Mutex::new(now)),
        }
    }

    fn handler(&self) -> DemandHandler<&MemoryDemandStore, &MemoryStore, &MemoryDeadLetters> {
        let clock = self.clock.clone();
        DemandHandler::new(&self.demand, &self.inventory, &self.dead_letters)
            .with_clock(move || *clock.lock().unwrap())
    }

    fn set_clock(&self, now: DateTime<Utc>) {
        *self.clock.lock().unwrap() = now;
    }
}

#[tokio::test]
async fn regression_a_future_dated_event_does_not_stop_a_lagging_shard_holding_the_horizon_back() {
    // Issue 15, finding 1: the watermark was the largest event time; one search dated
    // an hour ahead moved it an hour ahead, it no longer moved (nor was stamped), the
    // shard looked idle after ten minutes and the horizon stopped waiting for it.
    let t0 = at("2026-12-01T09:00:00Z");
    let setup = Setup::new(t0);
    let handler = setup.handler();
    // Both shards at 09:00; shard A's batch holds a phone an hour ahead.
    let a1 = records(ROUTE_SHARD_A, 1, &[(t0, t0), (t0 + Duration::hours(1), t0)]);
    let b1 = records(ROUTE_SHARD_B, 1, &[(t0, t0)]);
    assert_eq!(handler.process(&a1).await.first_failed, None);
    assert_eq!(handler.process(&b1).await.first_failed, None);
    // Fifteen minutes on, shard A's consumer is still on what arrived at 09:01 (it
    // lags), shard B's is current.
    let now = t0 + Duration::minutes(15);
    setup.set_clock(now);
    let a_lag = t0 + Duration::minutes(1);
    let a2 = records(ROUTE_SHARD_A, 3, &[(a_lag, a_lag)]);
    let b2 = records(ROUTE_SHARD_B, 2, &[(now, now)]);
    assert_eq!(handler.process(&a2).await.first_failed, None);
    assert_eq!(handler.process(&b2).await.first_failed, None);

    let alerts = MemoryAlertStore::new();
    let publisher = MemoryPublisher::new();
    let evaluator = SurgeEvaluator::new(&setup.demand, &alerts, &publisher);
    let horizon = evaluator
        .settled_horizon(now, DEFAULT_ALLOWANCE)
        .await
        .unwrap();
    assert_eq!(
        horizon,
        a_lag - DEFAULT_ALLOWANCE,
        "the lagging shard holds the horizon back to what it has counted"
    );
    // Once it has caught up and gone quiet for ten minutes, it holds nothing back.
    let a3 = records(ROUTE_SHARD_A, 4, &[(now, now)]);
    assert_eq!(handler.process(&a3).await.first_failed, None);
    let later = now + Duration::minutes(11);
    let horizon = evaluator
        .settled_horizon(later, DEFAULT_ALLOWANCE)
        .await
        .unwrap();
    assert_eq!(horizon, later - DEFAULT_ALLOWANCE);
}

#[tokio::test]
async fn regression_events_late_by_more_than_the_horizon_allowance_are_flagged() {
    // Issue 15, finding 5: events were flagged late only past five minutes behind
    // the shard's watermark while the evaluator judged two minutes behind, so events
    // two to five minutes late landed in judged buckets unflagged.
    let t0 = at("2026-12-01T09:00:00Z");
    let setup = Setup::new(t0 + Duration::minutes(4));
    let handler = setup.handler();
    let arrived = t0 + Duration::minutes(4);
    let batch = records(
        ROUTE_SHARD_A,
        1,
        &[
            (arrived, arrived),
            // Three minutes late: past the evaluator's two.
            (t0 + Duration::minutes(1), arrived),
            // Within the allowance.
            (t0 + Duration::minutes(3), arrived),
        ],
    );
    assert_eq!(handler.process(&batch).await.first_failed, None);
    let stats = handler.stats();
    assert_eq!((stats.late, stats.early), (1, 0));
    assert_eq!(stats.max_behind_seconds, 180);
    let totals = setup.demand.totals();
    let late: u64 = totals.values().map(|c| c.late).sum();
    let searches: u64 = totals.values().map(|c| c.searches).sum();
    assert_eq!((searches, late), (3, 1), "{totals:?}");
    let (_, route) = search(t0);
    let minute = (t0 + Duration::minutes(1)).timestamp();
    assert_eq!(totals[&(route, minute)].late, 1);
}

#[tokio::test]
async fn regression_an_event_from_2099_or_2000_is_counted_flagged_and_moves_no_progress() {
    let now = at("2026-12-01T09:00:00Z");
    let setup = Setup::new(now);
    let handler = setup.handler();
    let (far, past) = (at("2099-06-01T12:00:00Z"), at("2000-01-01T00:00:30Z"));
    let batch = records(ROUTE_SHARD_A, 1, &[(now, now), (far, now), (past, now)]);
    assert_eq!(handler.process(&batch).await.first_failed, None);
    let stats = handler.stats();
    assert_eq!((stats.events_counted, stats.late, stats.early), (3, 1, 1));
    let (_, route) = search(now);
    let totals = setup.demand.totals();
    for (t, late) in [(now, 0), (far, 1), (past, 1)] {
        let c = totals[&(route.clone(), t.timestamp() / 60 * 60)];
        assert_eq!((c.searches, c.late), (1, late), "{t}");
    }
    let progress = setup
        .demand
        .watermark(ROUTE_SHARD_A)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(progress, now);
    assert!(progress <= now + DEFAULT_SKEW);
    // An arrival stamped by a clock ahead of ours moves it no further than the skew.
    let ahead = now + Duration::hours(3);
    let batch = records(ROUTE_SHARD_A, 4, &[(ahead, ahead)]);
    assert_eq!(handler.process(&batch).await.first_failed, None);
    assert_eq!(
        setup.demand.watermark(ROUTE_SHARD_A).await.unwrap(),
        Some(now + DEFAULT_SKEW)
    );
}

#[tokio::test]
async fn regression_a_counter_of_an_event_40_days_old_expires_from_its_arrival() {
    // Issue 15, finding 5: expiry counted from the bucket, already past for an event
    // more than 35 days old; TTL could delete the counter and a redelivery count the
    // event twice.
    let now = at("2026-12-01T09:00:00Z");
    let setup = Setup::new(now);
    let handler = setup.handler();
    let old = now - Duration::days(40);
    let batch = records(ROUTE_SHARD_A, 1, &[(old, now)]);
    assert_eq!(handler.process(&batch).await.first_failed, None);
    let (_, route) = search(now);
    let key = CounterKey {
        route,
        bucket: old.timestamp() / 60 * 60,
        shard_id: ROUTE_SHARD_A.into(),
    };
    let expires = setup.demand.expires_at(&key).unwrap();
    assert_eq!(expires, now.timestamp() + COUNTER_RETENTION_SECONDS);
    assert!(expires > now.timestamp());
    // A TTL sweep today keeps it, so a redelivery counts nothing twice.
    assert_eq!(setup.demand.purge_expired(now.timestamp()), 0);
    assert_eq!(handler.process(&batch).await.first_failed, None);
    let searches: u64 = setup.demand.totals().values().map(|c| c.searches).sum();
    assert_eq!(searches, 1);
}
