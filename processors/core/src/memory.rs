//! In-memory adapters of the ports, for unit tests and examples.
//!
//! They keep the same contract as the real stores (conditional, all-or-nothing
//! commits) and can inject the failures real stores have, so handler tests exercise
//! the retry paths without a network.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::inventory::{BookingRecord, CabinInventory, CabinKey, Transaction};
use crate::ports::{CommitError, DeadLetter, DeadLetterSink, InventoryStore, StoreError};
use crate::schedule::Schedule;

#[derive(Debug, Default)]
struct State {
    bookings: HashMap<String, BookingRecord>,
    capacity: BTreeMap<CabinKey, u32>,
    sold: BTreeMap<CabinKey, i64>,
    /// Commits that touched each counter (to check write amplification).
    counter_writes: BTreeMap<CabinKey, u64>,
    commits: u64,
    fail_commits: u32,
    fail_reads: u32,
    race: Option<BookingRecord>,
}

/// An in-memory [`InventoryStore`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `n` commits fail with a transient error, applying nothing.
    pub fn fail_next_commits(&self, n: u32) {
        self.lock().fail_commits = n;
    }

    /// The next `n` reads fail with a transient error.
    pub fn fail_next_reads(&self, n: u32) {
        self.lock().fail_reads = n;
    }

    /// Just before the next commit, another writer stores `record` (so a commit
    /// planned on the old state conflicts).
    pub fn race_next_commit(&self, record: BookingRecord) {
        self.lock().race = Some(record);
    }

    /// Overwrites a booking record, as a concurrent writer would.
    pub fn put_booking(&self, record: BookingRecord) {
        self.lock()
            .bookings
            .insert(record.booking_id.clone(), record);
    }

    /// Seats sold on a flight and cabin.
    pub fn sold(&self, key: &CabinKey) -> i64 {
        self.lock().sold.get(key).copied().unwrap_or(0)
    }

    /// How many commits wrote a flight and cabin's counter.
    pub fn counter_writes(&self, key: &CabinKey) -> u64 {
        self.lock().counter_writes.get(key).copied().unwrap_or(0)
    }

    /// Commits applied.
    pub fn commits(&self) -> u64 {
        self.lock().commits
    }

    /// A booking's record.
    pub fn booking(&self, id: &str) -> Option<BookingRecord> {
        self.lock().bookings.get(id).cloned()
    }

    /// How many bookings are stored.
    pub fn booking_count(&self) -> usize {
        self.lock().bookings.len()
    }
}

impl InventoryStore for MemoryStore {
    async fn bookings(&self, ids: &[String]) -> Result<HashMap<String, BookingRecord>, StoreError> {
        let mut state = self.lock();
        if state.fail_reads > 0 {
            state.fail_reads -= 1;
            return Err(StoreError::Transient("injected read failure".into()));
        }
        Ok(ids
            .iter()
            .filter_map(|id| state.bookings.get(id).map(|r| (id.clone(), r.clone())))
            .collect())
    }

    async fn commit(&self, tx: &Transaction) -> Result<(), CommitError> {
        let mut state = self.lock();
        if let Some(record) = state.race.take() {
            state.bookings.insert(record.booking_id.clone(), record);
        }
        if state.fail_commits > 0 {
            state.fail_commits -= 1;
            return Err(StoreError::Transient("injected commit failure".into()).into());
        }
        if tx.items() > crate::inventory::MAX_TRANSACTION_ITEMS {
            return Err(
                StoreError::Permanent(format!("transaction of {} items", tx.items())).into(),
            );
        }
        let conflict = tx
            .changes
            .iter()
            .any(|c| state.bookings.get(&c.record.booking_id).map(|r| r.status) != c.expected);
        if conflict {
            return Err(CommitError::Conflict);
        }
        for change in &tx.changes {
            state
                .bookings
                .insert(change.record.booking_id.clone(), change.record.clone());
        }
        for (key, n) in &tx.counters {
            *state.sold.entry(key.clone()).or_insert(0) += n;
            *state.counter_writes.entry(key.clone()).or_insert(0) += 1;
        }
        state.commits += 1;
        Ok(())
    }

    async fn load_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        let mut state = self.lock();
        for flight in &schedule.flights {
            for (cabin, seats) in &flight.capacity {
                state
                    .capacity
                    .insert(CabinKey::new(&flight.flight_id, *cabin), *seats);
            }
        }
        Ok(())
    }

    async fn inventory(&self) -> Result<Vec<CabinInventory>, StoreError> {
        let state = self.lock();
        let keys: std::collections::BTreeSet<&CabinKey> =
            state.capacity.keys().chain(state.sold.keys()).collect();
        Ok(keys
            .into_iter()
            .map(|k| CabinInventory {
                flight_id: k.flight_id.clone(),
                cabin: k.cabin,
                capacity: state.capacity.get(k).copied(),
                sold: state.sold.get(k).copied().unwrap_or(0),
            })
            .collect())
    }
}

/// An in-memory [`DeadLetterSink`].
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    letters: Mutex<Vec<DeadLetter>>,
    fail: Mutex<u32>,
}

impl MemoryDeadLetters {
    /// An empty sink.
    pub fn new() -> MemoryDeadLetters {
        MemoryDeadLetters::default()
    }

    /// The next `n` sends fail.
    pub fn fail_next(&self, n: u32) {
        *self.fail.lock().unwrap_or_else(|p| p.into_inner()) = n;
    }

    /// Letters received.
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    async fn send(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        let mut fail = self.fail.lock().unwrap_or_else(|p| p.into_inner());
        if *fail > 0 {
            *fail -= 1;
            return Err(StoreError::Transient("injected dead-letter failure".into()));
        }
        self.letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(letters);
        Ok(())
    }
}
