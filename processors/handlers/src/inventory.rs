//! The inventory handler: seat inventory per flight and cabin, exactly once.
//!
//! Per batch:
//! 1. expand every Kinesis record into its user records (a KPL aggregate holds
//!    several) and decode each; poison is set aside with the reason (a damaged
//!    aggregate as a whole, an event that is not one or is invalid on its own, a
//!    booking on a flight beyond the retention horizon), and the rest of the batch
//!    goes on;
//! 2. read the stored state of every booking the batch mentions;
//! 3. fold the batch over those states ([`flyhigh_core::inventory::plan`]) and pack
//!    the changes into transactions of bounded size, in order of their earliest
//!    event;
//! 4. commit the transactions in turn, each conditional on the states read; a
//!    conflict (a retry, a replay or a second consumer got there first) means re-read
//!    and re-plan those bookings; a store error stops the batch;
//! 5. report the first Kinesis record whose effect may not be stored, so that Lambda
//!    retries from there (see [`InventoryHandler::process`] for exactly what that
//!    promises), and write the dead letters of the records before it. Events keep
//!    the index of their Kinesis record, so a failure inside an aggregate names the
//!    aggregate's sequence number; the retry replays the aggregate's earlier user
//!    records, which the fold turns into no-ops.
//!
//! A booking re-emitted with another flight, cabin or seat count is counted
//! ([`HandlerStats::changed_duplicates`]) and logged, and changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::{DateTime, Utc};
use flyhigh_core::demand::flights::SeatStep;
use flyhigh_core::inventory::{
    InventoryEvent, MAX_TRANSACTION_ITEMS, booking_expiry, pack, plan_at, seat_effect,
    within_horizon,
};
use flyhigh_core::{
    BookingRecord, CommitError, DeadLetter, DeadLetterSink, EventRecord, InventoryStore,
    KinesisRecord, Position, StoreError,
};
use flyhigh_schemas::{Booking, Envelope, Payload};

use crate::batch::{self, BatchOutcome, Decoded};
use crate::demand::flights::{FlightWatch, NoFlightWatch, TouchedFlight};
use crate::kinesis;

/// The processor's name in dead letters and logs.
pub const PROCESSOR: &str = "inventory";

/// The dead-letter `reason_kind` of an event beyond the retention horizon.
pub const REASON_BEYOND_HORIZON: &str = "beyond_retention_horizon";

/// Rounds of re-read and re-plan after conflicts before the batch is handed back to
/// the event source to retry later.
const MAX_CONFLICT_ROUNDS: usize = 4;

/// Counters over the handler's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HandlerStats {
    /// Batches handled.
    pub batches: u64,
    /// Kinesis records received (retries count again).
    pub records: u64,
    /// User records found in them: one per plain record, every record of an
    /// aggregate (retries count again).
    pub user_records: u64,
    /// Searches seen (no effect on inventory).
    pub searches: u64,
    /// Bookings and cancellations seen.
    pub inventory_events: u64,
    /// Booking state changes committed.
    pub changes_committed: u64,
    /// Events that changed nothing (duplicates, replays).
    pub no_ops: u64,
    /// Store transactions committed.
    pub transactions: u64,
    /// Conflicts met (each leads to a re-read).
    pub conflicts: u64,
    /// Dead letters written: poison user records, and damaged aggregates (one letter
    /// for the whole Kinesis record).
    pub dead_lettered: u64,
    /// Batches that reported a failure.
    pub failed_batches: u64,
    /// Booking events whose `booking_id` was already booked with another flight,
    /// cabin or seat count (a producer bug; the first booking is kept). Counted each
    /// time one is seen, redeliveries included.
    pub changed_duplicates: u64,
    /// Bookings on flights beyond the retention horizon, dead-lettered unapplied (also
    /// counted in `dead_lettered` once written). Counted each time one is seen.
    pub beyond_horizon: u64,
    /// Flight-alert checks that failed permanently (logged; the batch went on).
    pub flight_watch_errors: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    user_records: AtomicU64,
    searches: AtomicU64,
    inventory_events: AtomicU64,
    changes_committed: AtomicU64,
    no_ops: AtomicU64,
    transactions: AtomicU64,
    conflicts: AtomicU64,
    dead_lettered: AtomicU64,
    failed_batches: AtomicU64,
    changed_duplicates: AtomicU64,
    beyond_horizon: AtomicU64,
    flight_watch_errors: AtomicU64,
}

/// The inventory handler, generic over its store, its dead-letter sink and what
/// watches the flights it changes (flight alerts; none by default).
pub struct InventoryHandler<S, D, W = NoFlightWatch> {
    store: S,
    dead_letters: D,
    watch: W,
    counters: Counters,
    clock: Box<dyn Fn() -> DateTime<Utc> + Send + Sync>,
    max_transaction_items: usize,
    latency: Option<std::sync::Arc<crate::Latency>>,
}

impl<S: InventoryStore, D: DeadLetterSink> InventoryHandler<S, D> {
    /// A handler over ready-built adapters, on the system clock, with no flight
    /// alerts.
    pub fn new(store: S, dead_letters: D) -> Self {
        InventoryHandler {
            store,
            dead_letters,
            watch: NoFlightWatch,
            counters: Counters::default(),
            clock: Box::new(Utc::now),
            max_transaction_items: MAX_TRANSACTION_ITEMS,
            latency: None,
        }
    }

    /// Checks the flights each batch changes with `watch` (see
    /// [`crate::demand::flights`]): near-sold-out, sold-out and oversold alerts from the
    /// committed state.
    pub fn with_flight_watch<W: FlightWatch>(self, watch: W) -> InventoryHandler<S, D, W> {
        InventoryHandler {
            store: self.store,
            dead_letters: self.dead_letters,
            watch,
            counters: self.counters,
            clock: self.clock,
            max_transaction_items: self.max_transaction_items,
            latency: self.latency,
        }
    }
}

impl<S: InventoryStore, D: DeadLetterSink, W: FlightWatch> InventoryHandler<S, D, W> {
    /// Records each committed event's time from `occurred_at` to its commit in
    /// `latency` (see [`crate::latency`]).
    pub fn with_latency(mut self, latency: std::sync::Arc<crate::Latency>) -> Self {
        self.latency = Some(latency);
        self
    }

    /// Reads "now" from `clock` instead of the system clock; it decides which events
    /// are beyond the retention horizon ([`flyhigh_core::inventory::within_horizon`]).
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// Caps the items of one store transaction below the store's own limit
    /// ([`MAX_TRANSACTION_ITEMS`]); tests use it to split small batches into many
    /// transactions.
    pub fn with_max_transaction_items(mut self, items: usize) -> Self {
        self.max_transaction_items = items.clamp(2, MAX_TRANSACTION_ITEMS);
        self
    }

    /// The store (for reports).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles one Lambda batch.
    pub async fn handle(&self, event: KinesisEvent) -> KinesisEventResponse {
        let records = kinesis::kinesis_records(&event);
        let outcome = self.process(&records).await;
        kinesis::respond(PROCESSOR, &records, &outcome)
    }

    /// Processes a batch of Kinesis records in shard order.
    ///
    /// # What a reported failure promises
    ///
    /// When the outcome names record `i` as the first failure, every record before
    /// `i` is applied (or dead-lettered), and Lambda retries from `i`. Records from
    /// `i` on may be applied already or not; this is weaker than "nothing after a
    /// failure is applied ahead of it", and it is safe because:
    ///
    /// - all the events of one booking in a batch form one conditional change, which
    ///   commits together with the counter deltas it implies or not at all, so no
    ///   booking is ever half applied;
    /// - a booking's state depends only on its own events, in shard order, and the
    ///   counters are sums: applying bookings of one batch in another order than the
    ///   shard's ends in the same inventory, and only the moment at which each becomes
    ///   visible differs, within one batch;
    /// - the retry from `i` replays the records already applied, which the fold turns
    ///   into no-ops against the stored states.
    ///
    /// Transactions commit in order of their earliest event and the first store error
    /// stops the batch, so what lies ahead of the failure is at most the
    /// transactions already committed in that round.
    pub async fn process(&self, records: &[KinesisRecord]) -> BatchOutcome {
        self.add(&self.counters.batches, 1);
        self.add(&self.counters.records, records.len() as u64);
        let mut outcome = BatchOutcome::default();

        // Indexes are those of the Kinesis records: every failure is reported, and
        // retried, by Kinesis record.
        let now = (self.clock)();
        let mut inventory: Vec<(usize, Position, InventoryEvent<'_>)> = Vec::new();
        let expanded = batch::expand(PROCESSOR, records, |record, event| {
            let letter = beyond_horizon(record, event, now)?;
            self.add(&self.counters.beyond_horizon, 1);
            Some(letter)
        });
        self.add(&self.counters.user_records, expanded.user_records as u64);
        let poison = expanded.poison;
        for d in &expanded.events {
            let position = || position_of(records, d);
            match &d.event.payload {
                Payload::Search(_) => self.add(&self.counters.searches, 1),
                Payload::Booking(b) => {
                    inventory.push((d.index, position(), InventoryEvent::Booking(b)))
                }
                Payload::Cancellation(c) => {
                    inventory.push((d.index, position(), InventoryEvent::Cancellation(c)))
                }
            }
        }
        self.add(&self.counters.inventory_events, inventory.len() as u64);

        let mut finals = Finals::default();
        let unsettled = match self.apply(records, inventory, &mut finals).await {
            Ok(()) => HashSet::new(),
            Err(failure) => {
                outcome.fail(failure.index, failure.error);
                failure.pending
            }
        };
        self.watch_flights(records, &expanded.events, &finals, &unsettled, &mut outcome)
            .await;

        match batch::send_final_letters(&self.dead_letters, &poison, outcome.first_failed).await {
            Ok(n) => self.add(&self.counters.dead_lettered, n as u64),
            Err((index, error)) => outcome.fail(index, error),
        }
        if outcome.first_failed.is_some() {
            self.add(&self.counters.failed_batches, 1);
        }
        if let Some(latency) = &self.latency {
            latency.record_decoded(&expanded.events, outcome.first_failed);
        }
        outcome
    }

    /// Applies the inventory events of a batch; on failure, the index of the first
    /// Kinesis record whose effect may not be stored, and why.
    ///
    /// Each round reads the bookings still pending, plans them, and commits the
    /// transactions in order. A booking leaves `pending` only when its change is
    /// committed or when it had nothing to change; a conflict keeps it for the next
    /// round, and a store error stops the loop with every booking not yet committed
    /// still pending. The reported index is the smallest of the pending events, so it
    /// covers every record whose effect is not stored.
    ///
    /// `finals` receives the stored record of every booking whose events are settled:
    /// the one a committed change wrote, or the one read when its events were no-ops
    /// (a retried batch's own earlier commits). The flight watch reads each event's
    /// step off them.
    async fn apply<'e>(
        &self,
        records: &[KinesisRecord],
        mut pending: Vec<(usize, Position, InventoryEvent<'e>)>,
        finals: &mut Finals,
    ) -> Result<(), ApplyFailure> {
        let failure =
            |pending: &[(usize, Position, InventoryEvent<'e>)], error: String| ApplyFailure {
                index: pending.iter().map(|(i, ..)| *i).min().unwrap_or(0),
                error,
                pending: pending
                    .iter()
                    .map(|(.., e)| e.booking_id().to_string())
                    .collect(),
            };
        // Counted once per batch even when a conflict makes a round see them again.
        let mut changed_duplicates = HashSet::new();
        for round in 1.. {
            if pending.is_empty() {
                break;
            }
            if round > MAX_CONFLICT_ROUNDS {
                let ids: BTreeSet<&str> = pending.iter().map(|(.., e)| e.booking_id()).collect();
                let error =
                    format!("bookings kept changing under {MAX_CONFLICT_ROUNDS} attempts: {ids:?}");
                return Err(failure(&pending, error));
            }
            let mut ids: Vec<String> = pending
                .iter()
                .map(|(.., e)| e.booking_id().to_string())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let current = match self.store.bookings(&ids).await {
                Ok(current) => current,
                Err(e) => return Err(failure(&pending, e.to_string())),
            };
            let plan = plan_at(&current, pending.iter().map(|(i, p, e)| (*i, Some(p), *e)));
            if round == 1 {
                self.add(&self.counters.no_ops, plan.no_ops as u64);
            }
            // No-ops of every round: one that a conflict revealed (another delivery, or
            // a commit whose answer was lost) is as settled as the first round's.
            let changing: HashSet<&str> = plan
                .changes
                .iter()
                .map(|c| c.record.booking_id.as_str())
                .collect();
            for (.., e) in &pending {
                let id = e.booking_id();
                if !changing.contains(id)
                    && let Some(record) = current.get(id)
                {
                    finals.records.insert(id.to_string(), record.clone());
                }
            }
            for dup in &plan.changed_duplicates {
                if changed_duplicates.insert((
                    dup.index,
                    dup.booking_id.clone(),
                    dup.received.clone(),
                )) {
                    self.add(&self.counters.changed_duplicates, 1);
                    let record = &records[dup.index];
                    tracing::warn!(shard_id = %record.shard_id, sequence_number = %record.sequence_number,
                        booking_id = %dup.booking_id,
                        recorded = ?dup.recorded, received = ?dup.received,
                        "booking re-emitted with another flight, cabin or seat count; the first one is kept");
                }
            }
            let mut unsettled: HashSet<String> = HashSet::new();
            let mut store_error: Option<String> = None;
            for tx in pack(plan.changes, self.max_transaction_items) {
                if store_error.is_some() {
                    unsettled.extend(tx.changes.iter().map(|c| c.record.booking_id.clone()));
                    continue;
                }
                match self.store.commit(&tx).await {
                    Ok(()) => {
                        for c in &tx.changes {
                            finals
                                .records
                                .insert(c.record.booking_id.clone(), c.record.clone());
                            finals.committed.insert(c.record.booking_id.clone());
                        }
                        self.add(&self.counters.changes_committed, tx.changes.len() as u64);
                        self.add(&self.counters.transactions, 1);
                    }
                    Err(CommitError::Conflict) => {
                        self.add(&self.counters.conflicts, 1);
                        unsettled.extend(tx.changes.iter().map(|c| c.record.booking_id.clone()));
                    }
                    Err(CommitError::Store(e)) => {
                        unsettled.extend(tx.changes.iter().map(|c| c.record.booking_id.clone()));
                        store_error = Some(e.to_string());
                    }
                }
            }
            pending.retain(|(.., e)| unsettled.contains(e.booking_id()));
            if let Some(error) = store_error {
                return Err(failure(&pending, error));
            }
        }
        Ok(())
    }

    /// Runs the flight watch over the flights whose seats the batch's events moved,
    /// in order of their first event, so that a check that fails fails the batch from
    /// that flight's first event and every flight not checked yet lies after it (the
    /// retry checks them). Each event's step is read off its booking's stored record
    /// (`finals`); on a flight with a booking whose change may not be stored
    /// (`unsettled`), steps from that booking's first event on are left for the retry.
    /// A permanent error (a broken latch item, a missing permission) is logged and
    /// counted, not retried: it must not hold the shard's inventory back.
    async fn watch_flights(
        &self,
        records: &[KinesisRecord],
        events: &[Decoded],
        finals: &Finals,
        unsettled: &HashSet<String>,
        outcome: &mut BatchOutcome,
    ) {
        let (finals, committed_now) = (&finals.records, &finals.committed);
        // Per flight: the index of its first event that matters here, and its steps.
        let mut by_flight: HashMap<String, (usize, TouchedFlight)> = HashMap::new();
        for d in events {
            let (booking_id, flight_id) = match &d.event.payload {
                Payload::Booking(b) => (&b.booking_id, &b.flight_id),
                Payload::Cancellation(c) => (&c.booking_id, &c.flight_id),
                Payload::Search(_) => continue,
            };
            let position = position_of(records, d);
            if unsettled.contains(booking_id) {
                let (_, f) = by_flight
                    .entry(flight_id.clone())
                    .or_insert_with(|| (d.index, TouchedFlight::new(flight_id)));
                f.judge_before.get_or_insert(position);
                continue;
            }
            let Some((key, delta)) = finals
                .get(booking_id)
                .and_then(|r| seat_effect(r, &position))
            else {
                continue;
            };
            // The booking's own flight and cabin: a cancellation releases what its
            // booking holds, whatever flight it names.
            let (_, f) = by_flight
                .entry(key.flight_id.clone())
                .or_insert_with(|| (d.index, TouchedFlight::new(&key.flight_id)));
            f.steps.push((
                key.cabin,
                SeatStep {
                    position,
                    delta,
                    occurred_at: d.event.occurred_at,
                    fresh: committed_now.contains(booking_id.as_str()),
                },
            ));
        }
        let mut touched: Vec<(usize, TouchedFlight)> = by_flight
            .into_values()
            .filter(|(_, f)| !f.steps.is_empty())
            .collect();
        if touched.is_empty() {
            return;
        }
        touched.sort_by_key(|(first, _)| *first);
        let (first_index, flights): (Vec<usize>, Vec<TouchedFlight>) = touched.into_iter().unzip();
        match self.watch.check(&self.store, &flights).await {
            Ok(()) => {}
            Err((flight, StoreError::Permanent(error))) => {
                self.add(&self.counters.flight_watch_errors, 1);
                tracing::error!(flight_id = %flight, %error, "flight alerts not checked; inventory goes on");
            }
            Err((flight, error)) => {
                let index = flights
                    .iter()
                    .position(|f| f.flight_id == flight)
                    .map_or(0, |i| first_index[i]);
                outcome.fail(index, format!("flight alerts of {flight}: {error}"));
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> HandlerStats {
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HandlerStats {
            batches: c(&self.counters.batches),
            records: c(&self.counters.records),
            user_records: c(&self.counters.user_records),
            searches: c(&self.counters.searches),
            inventory_events: c(&self.counters.inventory_events),
            changes_committed: c(&self.counters.changes_committed),
            no_ops: c(&self.counters.no_ops),
            transactions: c(&self.counters.transactions),
            conflicts: c(&self.counters.conflicts),
            dead_lettered: c(&self.counters.dead_lettered),
            failed_batches: c(&self.counters.failed_batches),
            changed_duplicates: c(&self.counters.changed_duplicates),
            beyond_horizon: c(&self.counters.beyond_horizon),
            flight_watch_errors: c(&self.counters.flight_watch_errors),
        }
    }

    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The stored record of every booking whose events are settled, and which of them
/// this delivery committed (the others it found stored already).
#[derive(Default)]
struct Finals {
    records: HashMap<String, BookingRecord>,
    committed: HashSet<String>,
}

/// Why [`InventoryHandler::apply`] stopped.
struct ApplyFailure {
    /// The first Kinesis record whose effect may not be stored.
    index: usize,
    /// What failed.
    error: String,
    /// The bookings whose changes may not be stored.
    pending: HashSet<String>,
}

/// Where a decoded event sits in its shard.
fn position_of(records: &[KinesisRecord], d: &Decoded) -> Position {
    let sequence = records
        .get(d.index)
        .map_or("0", |r| r.sequence_number.as_str());
    Position::new(sequence, d.sub_sequence_number)
}

/// The letter for a booking on a flight whose booking records may be forgotten
/// already: applying it could count it twice, so it is set aside instead.
fn beyond_horizon(
    record: &EventRecord<'_>,
    event: &Envelope,
    now: DateTime<Utc>,
) -> Option<DeadLetter> {
    // Only a booking can count twice when it meets a forgotten record. A cancellation
    // that meets one leaves a tombstone and moves no seat, and it releases what its
    // booking's own record says, whatever flight it names, so it is always applied.
    let Payload::Booking(Booking { flight_id, .. }) = &event.payload else {
        return None;
    };
    if within_horizon(flight_id, now) {
        return None;
    }
    let expiry = booking_expiry(flight_id).map_or_else(
        || "unknown".to_string(),
        |e| e.format("%Y-%m-%d").to_string(),
    );
    let mut letter = batch::letter_for(PROCESSOR, record);
    letter.reason_kind = REASON_BEYOND_HORIZON.to_string();
    letter.reason = format!(
        "event {} on flight {flight_id}: its booking records expire on {expiry}, so it can \
         no longer be applied exactly once",
        event.event_id
    );
    Some(letter)
}

#[cfg(test)]
mod tests;
