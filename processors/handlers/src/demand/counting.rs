//! [`DemandHandler`]: Kinesis batches → demand counters per route, bucket and shard.
//!
//! Per batch:
//! 1. expand and decode (poison is dead-lettered with the reason, as every handler
//!    does); a cancellation names only its flight, so its route comes from the
//!    inventory's schedule (known routes are cached; a cancellation of a flight the
//!    schedule does not know is counted in [`DemandStats::unrouted_cancellations`]
//!    and nowhere else, and its flight is asked again next time);
//! 2. per shard, flag events late or early against their own record's arrival time
//!    (`approximateArrivalTimestamp`; the handler's clock when a record has none),
//!    group the events by counter (buckets of event time) and write one conditional
//!    change per counter
//!    ([`flyhigh_core::demand::counting`]); a stale mark means part of the change is
//!    counted already, so the change is rebuilt above the stored mark and written
//!    again;
//! 3. report the first Kinesis record of the first counter that could not be
//!    written: every record before it has all its counters written, and the retry's
//!    changes for counters already written are stale and shrink to nothing;
//! 4. move the shard's progress (the latest arrival counted, capped at the clock plus
//!    the skew: never an event time), note new routes, write the dead letters of the
//!    records before the failure.
//!
//! The late flag's allowance is the evaluator's (one setting,
//! [`flyhigh_core::demand::counting::DEFAULT_ALLOWANCE`]); see
//! [`flyhigh_core::demand::counting`] for why events are bucketed by event time but
//! progress and expiry come from arrival.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::{DateTime, Duration, Utc};
use flyhigh_core::demand::counting::Timing;
use flyhigh_core::demand::counting::{DEFAULT_ALLOWANCE, DEFAULT_SKEW, Tally, flag_timing, tally};
use flyhigh_core::demand::registry::NOTE_REFRESH;
use flyhigh_core::demand::{DemandEvent, DemandKind, Position};
use flyhigh_core::{Added, DeadLetterSink, DemandStore, InventoryStore, KinesisRecord, StoreError};
use flyhigh_schemas::Payload;

use super::PROCESSOR;
use crate::batch::{self, BatchOutcome};
use crate::kinesis;

/// Bucket length of the counters, seconds (one minute).
pub const DEFAULT_BUCKET_SECONDS: i64 = 60;
/// How long after its event time an event may arrive before it is late: the one
/// setting the evaluator's horizon uses too
/// ([`flyhigh_core::demand::counting::DEFAULT_ALLOWANCE`], two minutes).
pub const DEFAULT_LATE_ALLOWANCE: Duration = DEFAULT_ALLOWANCE;
/// Attempts per counter: a stale mark costs one more (a second consumer racing on
/// the shard could cost another).
const MAX_ATTEMPTS: usize = 4;
/// Flight routes remembered for cancellations before the cache starts over.
const ROUTE_CACHE_LIMIT: usize = 200_000;

/// Counters over the handler's life (retries count again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DemandStats {
    /// Batches handled.
    pub batches: u64,
    /// Kinesis records received.
    pub records: u64,
    /// Valid events seen.
    pub events: u64,
    /// Events that went to a counter change that applied.
    pub events_counted: u64,
    /// Events among them that arrived more than the allowance after their event
    /// time.
    pub late: u64,
    /// Events among them dated more than the skew after their arrival (a client
    /// clock ahead).
    pub early: u64,
    /// How long after its event time the most delayed event arrived, in seconds (late
    /// or not): what the allowance must cover.
    pub max_behind_seconds: u64,
    /// Conditional counter changes sent (applied or stale).
    pub counter_writes: u64,
    /// Of those, changes refused because the counter had counted some of their events
    /// already (redeliveries, retries, a racing consumer).
    pub stale_writes: u64,
    /// Cancellations of flights the schedule does not know: not attributable to a
    /// route, so not counted.
    pub unrouted_cancellations: u64,
    /// Dead letters written.
    pub dead_lettered: u64,
    /// Batches that reported a failure.
    pub failed_batches: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    events: AtomicU64,
    events_counted: AtomicU64,
    late: AtomicU64,
    early: AtomicU64,
    max_behind_seconds: AtomicU64,
    counter_writes: AtomicU64,
    stale_writes: AtomicU64,
    unrouted_cancellations: AtomicU64,
    dead_lettered: AtomicU64,
    failed_batches: AtomicU64,
}

/// The demand-counting handler, generic over its counter store, the inventory store
/// it reads cancellations' routes from, and its dead-letter sink.
pub struct DemandHandler<S, R, D> {
    store: S,
    routes_from: R,
    dead_letters: D,
    bucket_seconds: i64,
    late_allowance: Duration,
    skew: Duration,
    counters: Counters,
    /// Flight id → route, from the schedule.
    flight_routes: Mutex<HashMap<String, String>>,
    /// Routes noted in the store by this instance, and when: noted again after
    /// [`NOTE_REFRESH`], so that a route still in use never looks quiet.
    noted: Mutex<HashMap<String, DateTime<Utc>>>,
    clock: Box<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    latency: Option<std::sync::Arc<crate::Latency>>,
}

impl<S: DemandStore, R: InventoryStore, D: DeadLetterSink> DemandHandler<S, R, D> {
    /// A handler with one-minute buckets, the two-minute allowance and the two-minute
    /// skew.
    pub fn new(store: S, routes_from: R, dead_letters: D) -> Self {
        DemandHandler {
            store,
            routes_from,
            dead_letters,
            bucket_seconds: DEFAULT_BUCKET_SECONDS,
            late_allowance: DEFAULT_LATE_ALLOWANCE,
            skew: DEFAULT_SKEW,
            counters: Counters::default(),
            flight_routes: Mutex::new(HashMap::new()),
            noted: Mutex::new(HashMap::new()),
            clock: Box::new(Utc::now),
            latency: None,
        }
    }

    /// Buckets of `seconds` (≥ 1) instead of one minute; the evaluator must use the
    /// same.
    pub fn with_bucket_seconds(mut self, seconds: i64) -> Self {
        self.bucket_seconds = seconds.max(1);
        self
    }

    /// How long after its event time an event may arrive before it is late; give the
    /// evaluator's horizon the same.
    pub fn with_late_allowance(mut self, allowance: Duration) -> Self {
        self.late_allowance = allowance;
        self
    }

    /// How far after its arrival an event may be dated before it is early, and how
    /// far ahead of the clock an arrival time may be before it is capped.
    pub fn with_skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Records each committed event's time from `occurred_at` to its commit in
    /// `latency` (see [`crate::latency`]).
    pub fn with_latency(mut self, latency: std::sync::Arc<crate::Latency>) -> Self {
        self.latency = Some(latency);
        self
    }

    /// The clock of the shards' progress: the `updated_at` it is stamped with, the
    /// cap of arrival times, and the arrival of a record without one. The wall clock
    /// by default; locally, the pipeline's clock (the one the stream stamps arrivals
    /// with).
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// The counter store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles one Lambda batch.
    pub async fn handle(&self, event: KinesisEvent) -> KinesisEventResponse {
        let records = kinesis::kinesis_records(&event);
        let outcome = self.process(&records).await;
        kinesis::respond(PROCESSOR, &records, &outcome)
    }

    /// Processes a batch of Kinesis records in shard order. A reported failure at
    /// record `i` promises that every counter of every record before `i` is written;
    /// records from `i` on may be counted already, which the retry's stale marks
    /// absorb.
    pub async fn process(&self, records: &[KinesisRecord]) -> BatchOutcome {
        add(&self.counters.batches, 1);
        add(&self.counters.records, records.len() as u64);
        let mut outcome = BatchOutcome::default();
        let expanded = batch::expand(PROCESSOR, records, |_, _| None);
        add(&self.counters.events, expanded.events.len() as u64);

        // Routes of cancellations, from the schedule.
        let mut unknown: Vec<String> = Vec::new();
        for d in &expanded.events {
            if let Payload::Cancellation(c) = &d.event.payload
                && !lock(&self.flight_routes).contains_key(&c.flight_id)
            {
                unknown.push(c.flight_id.clone());
            }
        }
        unknown.sort_unstable();
        unknown.dedup();
        let mut route_failures: HashMap<String, String> = HashMap::new();
        for flight in unknown {
            match self.routes_from.flight(&flight).await {
                Ok(cabins) => {
                    let route = cabins.iter().find_map(|c| c.route());
                    let mut cache = lock(&self.flight_routes);
                    if cache.len() >= ROUTE_CACHE_LIMIT {
                        cache.clear();
                    }
                    // A flight the schedule does not know yet may be loaded later:
                    // only known routes are remembered.
                    if let Some(route) = route {
                        cache.insert(flight, route);
                    }
                }
                Err(e) => {
                    route_failures.insert(flight, e.to_string());
                }
            }
        }

        // A cancellation whose route could not be read fails the batch from its
        // record, and nothing from there on is counted now: a counter must count all
        // of its events up to its mark, or the retry would skip the one left out.
        let cut = expanded
            .events
            .iter()
            .filter_map(|d| match &d.event.payload {
                Payload::Cancellation(c) => {
                    route_failures.get(&c.flight_id).map(|e| (d.index, c, e))
                }
                _ => None,
            })
            .min_by_key(|(index, _, _)| *index);
        if let Some((index, c, error)) = cut {
            outcome.fail(
                index,
                format!("reading the route of {}: {error}", c.flight_id),
            );
        }
        let cut = outcome.first_failed;

        // Per shard (a Lambda batch has one; the runner's tests may mix), the events
        // as the counters see them, with their Kinesis record's index.
        let now = (self.clock)();
        let mut shards: BTreeMap<&str, (Vec<DemandEvent>, Vec<usize>)> = BTreeMap::new();
        {
            let cache = lock(&self.flight_routes);
            for d in expanded
                .events
                .iter()
                .filter(|d| cut.is_none_or(|c| d.index < c))
            {
                let (route, kind) = match &d.event.payload {
                    Payload::Search(s) => (
                        Some(format!("{}-{}", s.origin, s.destination)),
                        DemandKind::Search {
                            passengers: s.passengers,
                        },
                    ),
                    Payload::Booking(b) => (
                        Some(format!("{}-{}", b.origin, b.destination)),
                        DemandKind::Booking { seats: b.seats },
                    ),
                    Payload::Cancellation(c) => {
                        (cache.get(&c.flight_id).cloned(), DemandKind::Cancellation)
                    }
                };
                let Some(route) = route else {
                    add(&self.counters.unrouted_cancellations, 1);
                    continue;
                };
                let record = &records[d.index];
                let entry = shards.entry(record.shard_id.as_str()).or_default();
                entry.0.push(DemandEvent {
                    route,
                    occurred_at: d.event.occurred_at,
                    // A record without an arrival time arrived when we see it.
                    arrived_at: record.approximate_arrival.unwrap_or(now),
                    position: Position::new(&record.sequence_number, d.sub_sequence_number),
                    kind,
                    timing: Timing::OnTime,
                });
                entry.1.push(d.index);
            }
        }

        for (shard_id, (mut events, indexes)) in shards {
            if let Err((index, error)) =
                self.count_shard(shard_id, &mut events, &indexes, now).await
            {
                outcome.fail(index, error);
            }
        }

        match batch::send_final_letters(&self.dead_letters, &expanded.poison, outcome.first_failed)
            .await
        {
            Ok(n) => add(&self.counters.dead_lettered, n as u64),
            Err((index, error)) => outcome.fail(index, error),
        }
        if outcome.first_failed.is_some() {
            add(&self.counters.failed_batches, 1);
        }
        if let Some(latency) = &self.latency {
            latency.record_decoded(&expanded.events, outcome.first_failed);
        }
        outcome
    }

    /// Counts one shard's events; on failure, the smallest Kinesis record index whose
    /// counters may not all be written.
    async fn count_shard(
        &self,
        shard_id: &str,
        events: &mut [DemandEvent],
        indexes: &[usize],
        now: DateTime<Utc>,
    ) -> Result<(), (usize, String)> {
        let first_index = indexes.first().copied().unwrap_or(0);
        let scan = flag_timing(events, self.late_allowance, self.skew, now);
        self.counters.max_behind_seconds.fetch_max(
            u64::try_from(scan.max_behind.num_seconds()).unwrap_or(0),
            Ordering::Relaxed,
        );
        add(&self.counters.late, scan.late);
        add(&self.counters.early, scan.early);
        let events: &[DemandEvent] = events;
        let tallies = tally(shard_id, events, self.bucket_seconds);

        let results = self.write_all(&tallies, events).await;
        let mut failed: Option<(usize, String)> = None;
        for (t, result) in tallies.iter().zip(results) {
            match result {
                Ok(counted) => add(&self.counters.events_counted, counted),
                Err(e) => {
                    let index = t
                        .events
                        .iter()
                        .map(|&i| indexes[i])
                        .min()
                        .unwrap_or(first_index);
                    if failed.as_ref().is_none_or(|(f, _)| index < *f) {
                        failed = Some((index, e.to_string()));
                    }
                }
            }
        }

        // Progress and route registry: only what lies before the failure is final.
        let done = |i: usize| failed.as_ref().is_none_or(|(f, _)| indexes[i] < *f);
        let progress = if failed.is_none() {
            scan.progress
        } else {
            (0..events.len())
                .filter(|&i| done(i))
                .map(|i| events[i].arrived_at.min(now + self.skew))
                .max()
        };
        if let Some(p) = progress
            && let Err(e) = self.store.advance_watermark(shard_id, p, now).await
        {
            // Progress only holds the evaluator back while this consumer lags; a
            // missed move is made good by the next batch.
            tracing::warn!(processor = PROCESSOR, shard_id, error = %e, "watermark not moved");
        }
        let seen_at = (self.clock)();
        let new_routes: Vec<String> = {
            let noted = lock(&self.noted);
            let mut r: Vec<String> = tallies
                .iter()
                .filter(|t| t.events.iter().any(|&i| done(i)))
                .map(|t| t.key.route.clone())
                .filter(|r| noted.get(r).is_none_or(|&at| at + NOTE_REFRESH <= seen_at))
                .collect();
            r.sort_unstable();
            r.dedup();
            r
        };
        if !new_routes.is_empty() {
            match self.store.note_routes(&new_routes, seen_at).await {
                Ok(()) => lock(&self.noted).extend(new_routes.into_iter().map(|r| (r, seen_at))),
                Err(e) => {
                    // A route missing from the registry would never be judged: the
                    // batch is retried from its first record, and its counters are
                    // stale and cost nothing more.
                    let index = first_index;
                    if failed.as_ref().is_none_or(|(f, _)| index < *f) {
                        failed = Some((index, format!("noting routes: {e}")));
                    }
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Writes every counter's change of a batch through one
    /// [`DemandStore::add_all`] per round, rebuilding a stale one above its stored
    /// mark for the next round. Returns, per tally in order, how many events it
    /// counted.
    async fn write_all(
        &self,
        tallies: &[Tally],
        events: &[DemandEvent],
    ) -> Vec<Result<u64, StoreError>> {
        // `None`: still moving after the last attempt.
        let mut outcome: Vec<Option<Result<u64, StoreError>>> = vec![None; tallies.len()];
        let mut marks: Vec<Option<Position>> = vec![None; tallies.len()];
        let mut pending: Vec<usize> = (0..tallies.len()).collect();
        for _ in 0..MAX_ATTEMPTS {
            let mut updates = Vec::with_capacity(pending.len());
            let mut which = Vec::with_capacity(pending.len());
            for &i in &pending {
                match tallies[i].update_above(events, marks[i].as_ref()) {
                    Some(update) => {
                        updates.push(update);
                        which.push(i);
                    }
                    // Everything it holds is already under the stored mark.
                    None => outcome[i] = Some(Ok(0)),
                }
            }
            if updates.is_empty() {
                break;
            }
            add(&self.counters.counter_writes, updates.len() as u64);
            let results = self.store.add_all(&updates).await;
            pending.clear();
            for (i, result) in which.into_iter().zip(results) {
                match result {
                    Ok(Added::Applied) => {
                        let mark = marks[i].as_ref();
                        outcome[i] = Some(Ok(tallies[i]
                            .events
                            .iter()
                            .filter(|&&e| mark.is_none_or(|m| events[e].position > *m))
                            .count() as u64));
                    }
                    Ok(Added::Stale { mark }) => {
                        add(&self.counters.stale_writes, 1);
                        marks[i] = Some(mark);
                        pending.push(i);
                    }
                    Err(e) => outcome[i] = Some(Err(e)),
                }
            }
        }
        outcome
            .into_iter()
            .zip(tallies)
            .map(|(o, t)| {
                o.unwrap_or_else(|| {
                    Err(StoreError::Transient(format!(
                        "counter {} {} {} kept moving under {MAX_ATTEMPTS} attempts",
                        t.key.route, t.key.bucket, t.key.shard_id
                    )))
                })
            })
            .collect()
    }

    /// Counters so far.
    pub fn stats(&self) -> DemandStats {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DemandStats {
            batches: c(&self.counters.batches),
            records: c(&self.counters.records),
            events: c(&self.counters.events),
            events_counted: c(&self.counters.events_counted),
            late: c(&self.counters.late),
            early: c(&self.counters.early),
            max_behind_seconds: c(&self.counters.max_behind_seconds),
            counter_writes: c(&self.counters.counter_writes),
            stale_writes: c(&self.counters.stale_writes),
            unrouted_cancellations: c(&self.counters.unrouted_cancellations),
            dead_lettered: c(&self.counters.dead_lettered),
            failed_batches: c(&self.counters.failed_batches),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
