//! The event ledger: which `event_id`s are already durable, so that a client's retry
//! changes nothing downstream.
//!
//! A request's events are claimed before they are sent and settled once the stream
//! has answered. An id already written is answered `duplicate` and not sent again;
//! an id claimed by a request still writing it is answered `retry` (`in_flight`), so
//! two concurrent retries do not both write it. A claim whose request died (a crashed
//! process, a Lambda timed out) lapses after [`CLAIM_LEASE`].
//!
//! Implementations: [`MemoryLedger`] (one process: tests, and a ledger-less
//! deployment's best effort), the DynamoDB ledger (feature `dynamodb`) for
//! `ingest-lambda`, and in `flyhigh serve` the durable local stream itself, which
//! drops a repeated `event_id` in the same transaction that writes it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long a claim holds an `event_id` for the request that made it. Longer than
/// any request's budget ([`crate::limits::DEFAULT_REQUEST_BUDGET`]) plus the
/// producer's record time-to-live, so a claim lapses only when its request is gone.
pub const CLAIM_LEASE: Duration = Duration::from_secs(180);

/// What the ledger knows of one `event_id` when it is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not seen (or its earlier claim lapsed): this request now holds it; send it.
    New,
    /// Already durable: answer `duplicate`.
    Written,
    /// Another request holds it and has not settled: answer `retry` (`in_flight`).
    InFlight,
}

/// Why the ledger could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event ledger unavailable: {0}")]
pub struct LedgerError(pub String);

/// The port. Claims and settlements are per `event_id`; calls are batched per request.
pub trait Ledger: Send + Sync + 'static {
    /// Claims each id for this request; one answer per id, in order.
    fn claim(&self, ids: &[Uuid]) -> impl Future<Output = Result<Vec<Claim>, LedgerError>> + Send;

    /// Records the outcome of claimed ids: `written` are durable (later claims answer
    /// [`Claim::Written`]), `released` were not written (a later claim is
    /// [`Claim::New`]).
    fn settle(
        &self,
        written: &[Uuid],
        released: &[Uuid],
    ) -> impl Future<Output = Result<(), LedgerError>> + Send;
}

impl<L: Ledger> Ledger for Arc<L> {
    fn claim(&self, ids: &[Uuid]) -> impl Future<Output = Result<Vec<Claim>, LedgerError>> + Send {
        (**self).claim(ids)
    }

    fn settle(
        &self,
        written: &[Uuid],
        released: &[Uuid],
    ) -> impl Future<Output = Result<(), LedgerError>> + Send {
        (**self).settle(written, released)
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Written,
    Claimed(Instant),
}

/// A ledger in this process's memory: exact within the process, forgotten on restart.
/// Keeps at most `capacity` written ids (the oldest go first).
#[derive(Debug, Clone)]
pub struct MemoryLedger {
    inner: Arc<Mutex<MemoryInner>>,
    lease: Duration,
}

#[derive(Debug, Default)]
struct MemoryInner {
    ids: HashMap<Uuid, State>,
    written_order: std::collections::VecDeque<Uuid>,
    capacity: usize,
}

impl Default for MemoryLedger {
    fn default() -> Self {
        MemoryLedger::new(1_000_000)
    }
}

impl MemoryLedger {
    /// A ledger remembering up to `capacity` written ids.
    pub fn new(capacity: usize) -> MemoryLedger {
        MemoryLedger {
            inner: Arc::new(Mutex::new(MemoryInner {
                capacity: capacity.max(1),
                ..MemoryInner::default()
            })),
            lease: CLAIM_LEASE,
        }
    }

    /// The same with another lease (tests).
    pub fn with_lease(mut self, lease: Duration) -> MemoryLedger {
        self.lease = lease;
        self
    }
}

impl Ledger for MemoryLedger {
    async fn claim(&self, ids: &[Uuid]) -> Result<Vec<Claim>, LedgerError> {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Ok(ids
            .iter()
            .map(|id| match inner.ids.get(id) {
                Some(State::Written) => Claim::Written,
                Some(State::Claimed(at)) if now.duration_since(*at) < self.lease => Claim::InFlight,
                _ => {
                    inner.ids.insert(*id, State::Claimed(now));
                    Claim::New
                }
            })
            .collect())
    }

    async fn settle(&self, written: &[Uuid], released: &[Uuid]) -> Result<(), LedgerError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for id in released {
            if matches!(inner.ids.get(id), Some(State::Claimed(_))) {
                inner.ids.remove(id);
            }
        }
        for id in written {
            if !matches!(inner.ids.insert(*id, State::Written), Some(State::Written)) {
                inner.written_order.push_back(*id);
            }
        }
        while inner.written_order.len() > inner.capacity {
            if let Some(old) = inner.written_order.pop_front() {
                inner.ids.remove(&old);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_claim_is_new_then_in_flight_then_written() {
        let ledger = MemoryLedger::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            ledger.claim(&[a, b]).await.unwrap(),
            [Claim::New, Claim::New]
        );
        assert_eq!(ledger.claim(&[a]).await.unwrap(), [Claim::InFlight]);
        ledger.settle(&[a], &[b]).await.unwrap();
        assert_eq!(
            ledger.claim(&[a, b]).await.unwrap(),
            [Claim::Written, Claim::New]
        );
    }

    #[tokio::test]
    async fn a_lapsed_claim_can_be_taken_again() {
        let ledger = MemoryLedger::default().with_lease(Duration::ZERO);
        let a = Uuid::now_v7();
        assert_eq!(ledger.claim(&[a]).await.unwrap(), [Claim::New]);
        assert_eq!(ledger.claim(&[a]).await.unwrap(), [Claim::New]);
    }

    #[tokio::test]
    async fn the_oldest_written_ids_go_first() {
        let ledger = MemoryLedger::new(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        ledger.claim(&ids).await.unwrap();
        ledger.settle(&ids, &[]).await.unwrap();
        assert_eq!(
            ledger.claim(&ids).await.unwrap(),
            [Claim::New, Claim::Written, Claim::Written]
        );
    }
}
