//! The ports the handlers need. Adapters (DynamoDB, SQS, SQLite, files) implement
//! them; tests implement them in memory.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::inventory::{BookingRecord, CabinInventory, Transaction};
use crate::listing::InventoryFilter;
use crate::schedule::Schedule;

/// A store failure, classified by what the caller must do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Throttling, timeouts, 5xx: retry later (the batch is reported as failed from
    /// the first record not yet applied, and redelivered).
    #[error("transient store error: {0}")]
    Transient(String),
    /// Misconfiguration or a rejected request: retrying the same request cannot
    /// succeed; an operator must look.
    #[error("permanent store error: {0}")]
    Permanent(String),
}

/// Why a [`Transaction`] did not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// A booking was not in the expected state: someone else (a retry, a replay)
    /// moved it. Nothing was applied; re-read the bookings and plan again.
    #[error("a booking changed since it was read")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where seat inventory lives.
pub trait InventoryStore: Send + Sync {
    /// The stored records of these bookings; absent ones are missing from the map.
    fn bookings(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, BookingRecord>, StoreError>> + Send;

    /// Applies a transaction atomically: every booking write conditional on its
    /// `expected` status, every counter incremented. All or nothing.
    fn commit(&self, tx: &Transaction) -> impl Future<Output = Result<(), CommitError>> + Send;

    /// Sets the capacity of every flight and cabin in the schedule, keeping what was
    /// already sold.
    fn load_schedule(
        &self,
        schedule: &Schedule,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every flight and cabin with a capacity or a sale.
    fn inventory(&self) -> impl Future<Output = Result<Vec<CabinInventory>, StoreError>> + Send;

    /// The cabins of one flight, by key (ordered by cabin); empty when the store
    /// knows nothing of it.
    ///
    /// The default reads the whole [`inventory`](Self::inventory); the stores of
    /// this workspace read the flight's key only.
    fn flight(
        &self,
        flight_id: &str,
    ) -> impl Future<Output = Result<Vec<CabinInventory>, StoreError>> + Send {
        async move {
            let mut out: Vec<CabinInventory> = self
                .inventory()
                .await?
                .into_iter()
                .filter(|c| c.flight_id == flight_id)
                .collect();
            out.sort_by_key(|c| c.cabin);
            Ok(out)
        }
    }

    /// The cabins an operator's listing shows: those passing `filter`, ordered by
    /// flight id and cabin, at most `filter.limit`. An operator command, not the
    /// record path: a store may read its whole inventory to answer.
    fn list(
        &self,
        filter: &InventoryFilter,
    ) -> impl Future<Output = Result<Vec<CabinInventory>, StoreError>> + Send {
        async move { Ok(filter.select(self.inventory().await?)) }
    }
}

impl<T: InventoryStore> InventoryStore for &T {
    fn bookings(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, BookingRecord>, StoreError>> + Send {
        (**self).bookings(ids)
    }
    fn commit(&self, tx: &Transaction) -> impl Future<Output = Result<(), CommitError>> + Send {
        (**self).commit(tx)
    }
    fn load_schedule(
        &self,
        schedule: &Schedule,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).load_schedule(schedule)
    }
    fn inventory(&self) -> impl Future<Output = Result<Vec<CabinInventory>, StoreError>> + Send {
        (**self).inventory()
    }
    fn flight(
        &self,
        flight_id: &str,
    ) -> impl Future<Output = Result<Vec<CabinInventory>, StoreError>> + Send {
        (**self).flight(flight_id)
    }
    fn list(
        &self,
        filter: &InventoryFilter,
    ) -> impl Future<Output = Result<Vec<CabinInventory>, StoreError>> + Send {
        (**self).list(filter)
    }
}

/// A record set aside because it can never be processed, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The processor that rejected it, e.g. `inventory`.
    pub processor: String,
    /// The shard it came from.
    pub shard_id: String,
    /// Its sequence number, to find it in the stream.
    pub sequence_number: String,
    /// Which user record of an aggregated Kinesis record it is (from 0); absent when
    /// the Kinesis record is not aggregated or is dead-lettered as a whole (a damaged
    /// aggregate). Absent in letters written before consumers read aggregates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_sequence_number: Option<u32>,
    /// Its partition key (a user record's own, inside an aggregate).
    pub partition_key: String,
    /// When Kinesis accepted it.
    pub approximate_arrival: Option<DateTime<Utc>>,
    /// A stable label of the cause (see `flyhigh_schemas::DecodeError::kind` and
    /// `flyhigh_schemas::AggregateError::kind`).
    pub reason_kind: String,
    /// The cause, naming the field.
    pub reason: String,
    /// The rejected bytes, base64: the user record's, or the whole Kinesis record's
    /// when the aggregate itself is damaged.
    pub data_base64: String,
}

/// Where poison records go.
pub trait DeadLetterSink: Send + Sync {
    /// Stores the letters durably, or fails (then the records are reported as failed
    /// and redelivered, never dropped).
    fn send(&self, letters: &[DeadLetter]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: DeadLetterSink> DeadLetterSink for &T {
    fn send(&self, letters: &[DeadLetter]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).send(letters)
    }
}
