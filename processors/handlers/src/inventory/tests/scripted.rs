//! A store that fails or conflicts on any chosen commit, and the property every
//! script must keep: the reported first failure covers every record whose effect is
//! not stored.
//!
//! For each script the batch is handled once against the scripted store, then the
//! records from the reported failure on are delivered again to a healthy store, as
//! Lambda does. The inventory must then equal the independent reference of the whole
//! batch; a handler that drops an event before the reported record (the bug of a
//! conflict followed by a store error in one round) leaves it missing.

use std::collections::VecDeque;
use std::sync::Mutex;

use flyhigh_core::inventory::Transaction;
use flyhigh_core::{BookingRecord, CommitError, StoreError};

use super::reference::Reference;
use super::*;

/// What the store does with one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Applies it.
    Commit,
    /// Reports a conflict and applies nothing (a writer moved a booking and moved it
    /// back, or a condition failed on a state that has since changed again).
    Conflict,
    /// Another consumer applied the same changes first: they are stored, and this
    /// commit reports a conflict.
    RacedBy,
    /// A store error (throttling, a timeout): nothing applied.
    Fail,
}

/// A [`MemoryStore`] whose commits follow a script, then all succeed; reads fail
/// while `failing_reads` lasts.
#[derive(Default)]
pub(super) struct ScriptedStore {
    pub(super) inner: MemoryStore,
    script: Mutex<VecDeque<Step>>,
    failing_reads: Mutex<u32>,
    /// Yield to other tasks before each call, so that two consumers interleave.
    yields: Mutex<VecDeque<u8>>,
}

impl ScriptedStore {
    pub(super) fn new(script: impl IntoIterator<Item = Step>) -> ScriptedStore {
        let store = ScriptedStore::default();
        store.script.lock().unwrap().extend(script);
        store
    }

    pub(super) fn fail_reads(&self, n: u32) {
        *self.failing_reads.lock().unwrap() = n;
    }

    pub(super) fn with_yields(self, yields: impl IntoIterator<Item = u8>) -> ScriptedStore {
        self.yields.lock().unwrap().extend(yields);
        self
    }

    async fn interleave(&self) {
        let n = self.yields.lock().unwrap().pop_front().unwrap_or(0);
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    }
}

impl InventoryStore for ScriptedStore {
    async fn bookings(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, BookingRecord>, StoreError> {
        self.interleave().await;
        {
            let mut failing = self.failing_reads.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(StoreError::Transient("scripted read failure".into()));
            }
        }
        self.inner.bookings(ids).await
    }

    async fn commit(&self, tx: &Transaction) -> Result<(), CommitError> {
        self.interleave().await;
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::Commit);
        match step {
            Step::Commit => self.inner.commit(tx).await,
            Step::Conflict => Err(CommitError::Conflict),
            Step::RacedBy => {
                // The other writer's commit may itself conflict (it planned on the same
                // state); either way this one reports a conflict.
                let _ = self.inner.commit(tx).await;
                Err(CommitError::Conflict)
            }
            Step::Fail => Err(StoreError::Transient("scripted commit failure".into()).into()),
        }
    }

    async fn load_schedule(&self, schedule: &flyhigh_core::Schedule) -> Result<(), StoreError> {
        self.inner.load_schedule(schedule).await
    }

    async fn inventory(&self) -> Result<Vec<flyhigh_core::CabinInventory>, StoreError> {
        self.inner.inventory().await
    }
}

/// A batch that needs several transactions of 4 items, with re-emitted bookings,
/// cancellations before and after their booking, a repeated cancellation and a
/// changed duplicate, over two flights and an unscheduled one.
fn batch() -> Vec<Envelope> {
    const OTHER: &str = "FH0456-20261202";
    const UNSCHEDULED: &str = "FH0999-20261203";
    vec![
        booking("BK000001", FLIGHT, 2),
        cancellation("BK000002", OTHER),
        booking("BK000003", OTHER, 1),
        booking("BK000004", UNSCHEDULED, 3),
        booking("BK000001", FLIGHT, 2),
        booking("BK000005", FLIGHT, 1),
        cancellation("BK000003", OTHER),
        booking("BK000002", OTHER, 4),
        booking("BK000006", OTHER, 2),
        cancellation("BK000006", OTHER),
        cancellation("BK000006", OTHER),
        booking("BK000005", FLIGHT, 3),
        booking("BK000007", FLIGHT, 1),
        booking("BK000008", UNSCHEDULED, 1),
    ]
}

/// Every script of `len` steps over `steps`.
fn scripts(len: usize, steps: &[Step]) -> Vec<Vec<Step>> {
    let mut out = vec![vec![]];
    for _ in 0..len {
        out = out
            .into_iter()
            .flat_map(|s| {
                steps.iter().map(move |step| {
                    let mut s = s.clone();
                    s.push(*step);
                    s
                })
            })
            .collect();
    }
    out
}

/// Handles `events` once under `script`, checks what the outcome promises, and
/// returns the reported failure.
async fn check_script(events: &[Envelope], script: &[Step], failing_reads: u32) -> Option<usize> {
    let records = kinesis::kinesis_records(&kinesis_event(&json(events), 1));
    let store = ScriptedStore::new(script.iter().copied());
    store.fail_reads(failing_reads);
    let handler =
        InventoryHandler::new(&store, MemoryDeadLetters::new()).with_max_transaction_items(4);
    let outcome = handler.process(&records).await;
    let from = outcome.first_failed.unwrap_or(records.len());

    // Everything before the reported record is applied: the bookings whose events all
    // lie before it are in their final state already.
    let before = Reference::of(&events[..from]);
    let all = Reference::of(events);
    for (id, status) in &before.status {
        let last_event = events
            .iter()
            .rposition(|e| super::reference::booking_id(e) == Some(id.as_str()))
            .unwrap();
        if last_event < from {
            assert_eq!(
                store.inner.booking(id).map(|r| r.status),
                Some(*status),
                "script {script:?}: {id} is before the reported record {from} but not applied"
            );
        }
    }

    // Lambda retries from the reported record; nothing else is delivered again.
    let retry = InventoryHandler::new(&store.inner, MemoryDeadLetters::new());
    let retried = retry.process(&records[from..]).await;
    assert_eq!(
        retried.first_failed, None,
        "script {script:?}: retry failed"
    );
    all.assert_matches(&store.inner, &format!("script {script:?}, reported {from}"))
        .await;
    outcome.first_failed
}

#[tokio::test]
async fn every_script_of_conflicts_and_failures_reports_a_failure_covering_every_unapplied_record()
{
    let events = batch();
    let mut failed = 0;
    for script in scripts(
        4,
        &[Step::Commit, Step::Conflict, Step::RacedBy, Step::Fail],
    ) {
        failed += usize::from(check_script(&events, &script, 0).await.is_some());
    }
    // The scripts with a failure in them report one (and every one was checked).
    assert!(failed > 100, "{failed}");
}

#[tokio::test]
async fn a_failing_read_in_any_round_reports_every_pending_record() {
    let events = batch();
    for script in scripts(3, &[Step::Commit, Step::Conflict, Step::RacedBy]) {
        for failing_reads in 1..3 {
            check_script(&events, &script, failing_reads).await;
        }
    }
}

#[tokio::test]
async fn regression_a_conflict_then_a_store_error_in_one_round_loses_no_booking() {
    // The first transaction conflicts, the second fails. The landed handler broke
    // out of the round, dropped the conflicted bookings and reported the second
    // transaction's first record, so the retry started past them.
    let events = batch();
    let first = check_script(&events, &[Step::Conflict, Step::Fail], 0).await;
    assert_eq!(
        first,
        Some(0),
        "the conflicted first booking must be retried"
    );
}

#[tokio::test]
async fn regression_no_transaction_commits_after_a_store_error() {
    let events = batch();
    let records = kinesis::kinesis_records(&kinesis_event(&json(&events), 1));
    let store = ScriptedStore::new([Step::Commit, Step::Fail]);
    let handler =
        InventoryHandler::new(&store, MemoryDeadLetters::new()).with_max_transaction_items(4);
    let outcome = handler.process(&records).await;
    // The first transaction (holding record 0) committed, so the retry starts later.
    assert!(outcome.first_failed > Some(0), "{outcome:?}");
    // One transaction committed before the failure; none after it.
    assert_eq!(store.inner.commits(), 1);
    assert_eq!(handler.stats().transactions, 1);
}
