//! In-memory adapters of the ports, for unit tests and examples.
//!
//! They keep the same contract as the real stores (conditional, all-or-nothing
//! commits) and can inject the failures real stores have, so handler tests exercise
//! the retry paths without a network.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::inventory::{BookingRecord, CabinInventory, CabinKey, FlightSchedule, Transaction};
use crate::listing::InventoryFilter;
use crate::ports::{CommitError, DeadLetter, DeadLetterSink, InventoryStore, StoreError};
use crate::schedule::Schedule;

#[cfg(feature = "archive")]
mod archive;
mod demand;

#[cfg(feature = "archive")]
pub use archive::{MemoryArchiveCheckpoints, MemoryObjectStore};
pub use demand::{MemoryAlertStore, MemoryDemandStore, MemoryPublisher};

#[derive(Debug, Default)]
struct State {
    bookings: HashMap<String, BookingRecord>,
    capacity: BTreeMap<CabinKey, u32>,
    schedule: BTreeMap<String, FlightSchedule>,
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

    /// Forgets the booking records whose expiry
    /// ([`crate::inventory::booking_expiry`]) is at or before `now`, as DynamoDB's TTL
    /// does; returns how many.
    pub fn purge_expired(&self, now: chrono::DateTime<chrono::Utc>) -> usize {
        let mut state = self.lock();
        let before = state.bookings.len();
        state.bookings.retain(|_, r| {
            crate::inventory::booking_expiry(&r.flight_id).is_none_or(|expiry| expiry > now)
        });
        before - state.bookings.len()
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
            state.schedule.insert(
                flight.flight_id.clone(),
                FlightSchedule {
                    origin: flight.origin.clone(),
                    destination: flight.destination.clone(),
                    departure: flight.departure,
                },
            );
            for (cabin, seats) in &flight.capacity {
                state
                    .capacity
                    .insert(CabinKey::new(&flight.flight_id, *cabin), *seats);
            }
        }
        Ok(())
    }

    async fn inventory(&self) -> Result<Vec<CabinInventory>, StoreError> {
        Ok(self.lock().cabins(|_| true))
    }

    async fn flight(&self, flight_id: &str) -> Result<Vec<CabinInventory>, StoreError> {
        Ok(self.lock().cabins(|k| k.flight_id == flight_id))
    }

    async fn list(&self, filter: &InventoryFilter) -> Result<Vec<CabinInventory>, StoreError> {
        Ok(filter.select(self.lock().cabins(|_| true)))
    }
}

impl State {
    /// The cabins whose key passes `keep`, ordered by flight and cabin.
    fn cabins(&self, keep: impl Fn(&CabinKey) -> bool) -> Vec<CabinInventory> {
        let keys: std::collections::BTreeSet<&CabinKey> = self
            .capacity
            .keys()
            .chain(self.sold.keys())
            .filter(|k| keep(k))
            .collect();
        keys.into_iter()
            .map(|k| CabinInventory {
                flight_id: k.flight_id.clone(),
                cabin: k.cabin,
                capacity: self.capacity.get(k).copied(),
                sold: self.sold.get(k).copied().unwrap_or(0),
                schedule: self.schedule.get(&k.flight_id).cloned(),
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use flyhigh_schemas::Cabin;

    use super::*;
    use crate::inventory::{BookingChange, BookingStatus};
    use crate::schedule::ScheduledFlight;

    fn sell(store: &MemoryStore, id: &str, flight: &str, cabin: Cabin, seats: u8) {
        let key = CabinKey::new(flight, cabin);
        let tx = Transaction {
            changes: vec![BookingChange {
                expected: None,
                record: BookingRecord {
                    booking_id: id.into(),
                    status: BookingStatus::Booked,
                    flight_id: flight.into(),
                    cabin: Some(cabin),
                    seats,
                    booked_at: None,
                    released_at: None,
                },
                delta: Some((key.clone(), i64::from(seats))),
                first_index: 0,
            }],
            counters: vec![(key, i64::from(seats))],
        };
        futures_lite(store.commit(&tx)).unwrap();
    }

    /// The memory store never awaits: its futures are ready on first poll.
    fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("memory store future pending"),
        }
    }

    #[test]
    fn flight_reads_one_flight_with_its_schedule_and_list_filters() {
        let store = MemoryStore::new();
        let departure = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        futures_lite(store.load_schedule(&Schedule {
            flights: vec![ScheduledFlight {
                flight_id: "FH1-20261201".into(),
                origin: "LHR".into(),
                destination: "JFK".into(),
                departure,
                capacity: BTreeMap::from([(Cabin::Economy, 2), (Cabin::Business, 10)]),
            }],
        }))
        .unwrap();
        sell(&store, "B1", "FH1-20261201", Cabin::Economy, 3);
        sell(&store, "B2", "FH2-20261202", Cabin::First, 1);

        let fh1 = futures_lite(store.flight("FH1-20261201")).unwrap();
        assert_eq!(fh1.len(), 2);
        assert_eq!(
            (fh1[0].cabin, fh1[0].sold, fh1[0].oversold()),
            (Cabin::Economy, 3, 1)
        );
        assert_eq!(
            fh1[0].schedule.as_ref().map(|s| s.departure),
            Some(departure)
        );
        let fh2 = futures_lite(store.flight("FH2-20261202")).unwrap();
        assert_eq!((fh2.len(), fh2[0].schedule.is_none()), (1, true));
        assert!(
            futures_lite(store.flight("FH3-20261203"))
                .unwrap()
                .is_empty()
        );

        let oversold = InventoryFilter {
            oversold_only: true,
            ..InventoryFilter::default()
        };
        let got = futures_lite(store.list(&oversold)).unwrap();
        assert_eq!(got, vec![fh1[0].clone()]);
    }
}
