//! The inventory handler: seat inventory per flight and cabin, exactly once.
//!
//! Per batch:
//! 1. expand every Kinesis record into its user records (a KPL aggregate holds
//!    several) and decode each; poison goes to the dead-letter sink with the reason
//!    (a damaged aggregate as a whole, an event that is not one or is invalid on its
//!    own), and the rest of the batch goes on;
//! 2. read the stored state of every booking the batch mentions;
//! 3. fold the batch over those states ([`flyhigh_core::inventory::plan`]) and pack
//!    the changes into transactions of bounded size;
//! 4. commit each transaction, conditional on the states read; a conflict (a retry or
//!    replay got there first) means re-read and re-plan those bookings;
//! 5. report the first Kinesis record whose effect is not stored, so that Lambda
//!    retries from there; everything before it is done, and everything after it is
//!    idempotent. Events keep the index of their Kinesis record, so a failure inside
//!    an aggregate names the aggregate's sequence number; the retry replays the
//!    aggregate's earlier user records, which the fold turns into no-ops.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use flyhigh_core::inventory::{InventoryEvent, MAX_TRANSACTION_ITEMS, pack, plan};
use flyhigh_core::{
    CommitError, DeadLetter, DeadLetterSink, EventRecord, InventoryStore, KinesisRecord,
};
use flyhigh_schemas::{AggregateError, DecodeError, Envelope, Payload};

use crate::kinesis;

/// The processor's name in dead letters and logs.
pub const PROCESSOR: &str = "inventory";

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
}

/// The inventory handler, generic over its store and dead-letter sink.
pub struct InventoryHandler<S, D> {
    store: S,
    dead_letters: D,
    counters: Counters,
}

/// What one batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Index of the first Kinesis record to retry, if any.
    pub first_failed: Option<usize>,
    /// Why, when there is a failure.
    pub error: Option<String>,
}

impl<S: InventoryStore, D: DeadLetterSink> InventoryHandler<S, D> {
    /// A handler over ready-built adapters.
    pub fn new(store: S, dead_letters: D) -> Self {
        InventoryHandler {
            store,
            dead_letters,
            counters: Counters::default(),
        }
    }

    /// The store (for reports).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles one Lambda batch.
    pub async fn handle(&self, event: KinesisEvent) -> KinesisEventResponse {
        let records = kinesis::kinesis_records(&event);
        let outcome = self.process(&records).await;
        if let (Some(index), Some(error)) = (outcome.first_failed, &outcome.error) {
            let record = &records[index];
            tracing::warn!(shard_id = %record.shard_id, sequence_number = %record.sequence_number, %error, "batch failed; retrying from record");
        }
        kinesis::response(&records, outcome.first_failed)
    }

    /// Processes a batch of Kinesis records in shard order.
    pub async fn process(&self, records: &[KinesisRecord]) -> BatchOutcome {
        self.add(&self.counters.batches, 1);
        self.add(&self.counters.records, records.len() as u64);
        let mut outcome = BatchOutcome::default();
        let mut fail = |index: usize, error: String| {
            if outcome.first_failed.is_none_or(|f| index < f) {
                outcome.first_failed = Some(index);
                outcome.error = Some(error);
            }
        };

        // Indexes are those of the Kinesis records: every failure is reported, and
        // retried, by Kinesis record.
        let mut events: Vec<(usize, Envelope)> = Vec::with_capacity(records.len());
        let mut poison: Vec<(usize, DeadLetter)> = Vec::new();
        for (index, record) in records.iter().enumerate() {
            match record.event_records() {
                Ok(user_records) => {
                    self.add(&self.counters.user_records, user_records.len() as u64);
                    for user_record in user_records {
                        match user_record.decode() {
                            Ok(event) => events.push((index, event)),
                            Err(e) => poison.push((index, poison_event(&user_record, &e))),
                        }
                    }
                }
                Err(e) => poison.push((index, damaged_aggregate(record, &e))),
            }
        }
        if !poison.is_empty() {
            let letters: Vec<DeadLetter> = poison.iter().map(|(_, l)| l.clone()).collect();
            match self.dead_letters.send(&letters).await {
                Ok(()) => {
                    self.add(&self.counters.dead_lettered, letters.len() as u64);
                    for letter in &letters {
                        tracing::warn!(shard_id = %letter.shard_id, sequence_number = %letter.sequence_number,
                            sub_sequence_number = ?letter.sub_sequence_number,
                            reason_kind = %letter.reason_kind, reason = %letter.reason, "record dead-lettered");
                    }
                }
                Err(e) => fail(poison[0].0, format!("dead-letter sink: {e}")),
            }
        }

        let mut inventory: Vec<(usize, InventoryEvent<'_>)> = Vec::new();
        for (index, event) in &events {
            match &event.payload {
                Payload::Search(_) => self.add(&self.counters.searches, 1),
                Payload::Booking(b) => inventory.push((*index, InventoryEvent::Booking(b))),
                Payload::Cancellation(c) => {
                    inventory.push((*index, InventoryEvent::Cancellation(c)))
                }
            }
        }
        self.add(&self.counters.inventory_events, inventory.len() as u64);

        let mut round = 0;
        while !inventory.is_empty() {
            round += 1;
            let mut ids: Vec<String> = inventory
                .iter()
                .map(|(_, e)| e.booking_id().to_string())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let current = match self.store.bookings(&ids).await {
                Ok(current) => current,
                Err(e) => {
                    fail(inventory[0].0, e.to_string());
                    break;
                }
            };
            let plan = plan(&current, inventory.iter().copied());
            if round == 1 {
                self.add(&self.counters.no_ops, plan.no_ops as u64);
            }
            let mut conflicted: HashSet<String> = HashSet::new();
            let mut failed_store = false;
            for tx in pack(plan.changes, MAX_TRANSACTION_ITEMS) {
                match self.store.commit(&tx).await {
                    Ok(()) => {
                        self.add(&self.counters.changes_committed, tx.changes.len() as u64);
                        self.add(&self.counters.transactions, 1);
                    }
                    Err(CommitError::Conflict) => {
                        self.add(&self.counters.conflicts, 1);
                        conflicted.extend(tx.changes.iter().map(|c| c.record.booking_id.clone()));
                    }
                    Err(CommitError::Store(e)) => {
                        fail(tx.first_index().unwrap_or(0), e.to_string());
                        failed_store = true;
                    }
                }
            }
            if failed_store {
                break;
            }
            inventory.retain(|(_, e)| conflicted.contains(e.booking_id()));
            if !inventory.is_empty() && round >= MAX_CONFLICT_ROUNDS {
                let ids: BTreeSet<&str> = inventory.iter().map(|(_, e)| e.booking_id()).collect();
                fail(
                    inventory[0].0,
                    format!("bookings kept changing under {round} attempts: {ids:?}"),
                );
                break;
            }
        }
        if outcome.first_failed.is_some() {
            self.add(&self.counters.failed_batches, 1);
        }
        outcome
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
        }
    }

    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The letter for a user record that is not a valid event: its own bytes, so that a
/// replay sends exactly it, and its place in its Kinesis record.
fn poison_event(record: &EventRecord<'_>, error: &DecodeError) -> DeadLetter {
    let kinesis = record.kinesis;
    DeadLetter {
        processor: PROCESSOR.to_string(),
        shard_id: kinesis.shard_id.clone(),
        sequence_number: kinesis.sequence_number.clone(),
        sub_sequence_number: record.sub_sequence_number,
        partition_key: record.partition_key.to_string(),
        approximate_arrival: kinesis.approximate_arrival,
        reason_kind: error.kind().to_string(),
        reason: error.to_string(),
        data_base64: record.data_base64(),
    }
}

/// The letter for a Kinesis record whose aggregate cannot be read: none of its user
/// records can be trusted, so the whole record goes, bytes and all.
fn damaged_aggregate(record: &KinesisRecord, error: &AggregateError) -> DeadLetter {
    DeadLetter {
        processor: PROCESSOR.to_string(),
        shard_id: record.shard_id.clone(),
        sequence_number: record.sequence_number.clone(),
        sub_sequence_number: None,
        partition_key: record.partition_key.clone(),
        approximate_arrival: record.approximate_arrival,
        reason_kind: error.kind().to_string(),
        reason: error.to_string(),
        data_base64: record.data_base64(),
    }
}

#[cfg(test)]
mod tests;
