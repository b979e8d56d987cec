//! The ports the handlers need: the inventory's, the hot-route processor's
//! ([`DemandStore`], [`AlertStore`], [`AlertPublisher`]) and dead letters. Adapters (DynamoDB, SQS, SQLite, files) implement
//! them; tests implement them in memory.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use flyhigh_schemas::{Alert, AlertRule};

use crate::demand::{CabinAlertState, CounterKey, CounterUpdate, Counts, Position, RouteState};
use crate::inventory::{BookingRecord, CabinInventory, CabinKey, Transaction};
use crate::listing::InventoryFilter;
use crate::schedule::Schedule;

#[cfg(feature = "archive")]
mod archive;
#[cfg(feature = "archive")]
pub use archive::{ArchiveCheckpoints, ObjectInfo, ObjectStore};

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

/// What a conditional counter change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// The counts were added and the mark moved.
    Applied,
    /// The stored mark was not below the change's first position: some or all of its
    /// events are counted already. Build the change again above `mark`.
    Stale {
        /// The counter's stored mark.
        mark: Position,
    },
}

/// How far one shard's consumer has got: its *progress*, the latest arrival time of
/// the records it has counted, never an event time (see
/// [`crate::demand::counting`]'s "Event time and arrival").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardWatermark {
    /// The shard.
    pub shard_id: String,
    /// The latest arrival time counted from it, capped at the consumer's clock plus
    /// the skew.
    pub progress: DateTime<Utc>,
    /// When (the consumer's clock) it last moved.
    pub updated_at: DateTime<Utc>,
}

/// A route of the registry and when a demand consumer last noted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotedRoute {
    /// `ORIGIN-DESTINATION`.
    pub route: String,
    /// When (a consumer's wall clock) it was last noted.
    pub last_seen: DateTime<Utc>,
}

/// Where demand counters live (the hot-route processor's counting side).
pub trait DemandStore: Send + Sync {
    /// Adds `update.counts` to its counter and sets the counter's mark to
    /// `update.last`, if the stored mark is below `update.first` or there is no
    /// counter yet; else changes nothing and returns the stored mark. An applied
    /// change keeps the counter at least until [`CounterUpdate::expires_at`] (from
    /// arrival, never from an event time in the past).
    fn add(&self, update: &CounterUpdate)
    -> impl Future<Output = Result<Added, StoreError>> + Send;

    /// [`add`](Self::add) for the counters of one batch (distinct keys), one result
    /// per update in order, each applied or found stale against its own mark exactly
    /// as `add` decides. A store that can write them together does (SQLite: one
    /// transaction, so a batch costs one commit, not one per route-bucket); one that
    /// cannot writes them concurrently (DynamoDB: one conditional write each).
    fn add_all(
        &self,
        updates: &[CounterUpdate],
    ) -> impl Future<Output = Vec<Result<Added, StoreError>>> + Send;

    /// Every counter of `route` in buckets `from <= bucket < to`, one per shard.
    fn counters(
        &self,
        route: &str,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<(CounterKey, Counts)>, StoreError>> + Send;

    /// Notes that these routes have counters, seen at `seen_at` (the consumer's wall
    /// clock), so that [`routes`](Self::routes) lists them without scanning counters.
    /// Idempotent; a route noted again keeps the later `last_seen`.
    fn note_routes(
        &self,
        routes: &[String],
        seen_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every route in the registry, sorted.
    fn routes(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Every route in the registry with when it was last noted, sorted by route.
    fn noted_routes(&self) -> impl Future<Output = Result<Vec<NotedRoute>, StoreError>> + Send;

    /// Takes `route` out of the registry if it is still as listed (not noted again
    /// since): `Ok(false)` when it was noted again or is gone. Its counters stay; a
    /// consumer that sees it again notes it again.
    fn forget_route(
        &self,
        route: &NotedRoute,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The shard's progress, if it has one.
    fn watermark(
        &self,
        shard_id: &str,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Moves the shard's progress to `progress` (an arrival time) if that is later
    /// than the stored one (never back), stamping `updated_at` (the consumer's clock).
    /// A stored progress later than `updated_at` cannot have come from an arrival
    /// (it is an event-time watermark of an older build, or a clock gone wrong) and
    /// is replaced, so no stored value can hold a shard's progress still.
    fn advance_watermark(
        &self,
        shard_id: &str,
        progress: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every shard's progress.
    fn watermarks(&self) -> impl Future<Output = Result<Vec<ShardWatermark>, StoreError>> + Send;
}

/// An alert as stored: the alert and whether it has been published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    /// The alert exactly as published (or to be published).
    pub alert: Alert,
    /// When the outbox marked it published; `None` while pending.
    pub published_at: Option<DateTime<Utc>>,
}

/// Which alerts a listing shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    /// Raised at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Of this rule.
    pub rule: Option<AlertRule>,
    /// At most this many, the latest ones.
    pub limit: Option<usize>,
}

impl AlertFilter {
    /// Whether `alert` passes.
    pub fn accepts(&self, alert: &Alert) -> bool {
        self.since.is_none_or(|s| alert.raised_at >= s) && self.rule.is_none_or(|r| alert.rule == r)
    }

    /// Filters, orders by `(raised_at, alert_id)` and keeps the latest `limit`.
    pub fn select(&self, alerts: impl IntoIterator<Item = StoredAlert>) -> Vec<StoredAlert> {
        let mut out: Vec<StoredAlert> = alerts
            .into_iter()
            .filter(|a| self.accepts(&a.alert))
            .collect();
        out.sort_by(|a, b| {
            (a.alert.raised_at, &a.alert.alert_id).cmp(&(b.alert.raised_at, &b.alert.alert_id))
        });
        if let Some(limit) = self.limit
            && out.len() > limit
        {
            out.drain(..out.len() - limit);
        }
        out
    }
}

/// Where alerts, their outbox and the rules' state live.
///
/// The outbox: [`record`](Self::record) stores an alert and queues it for publishing
/// in one atomic step, and only the first caller for an `alert_id` gets `true`; a
/// publisher [`claim`](Self::claim)s a pending alert, publishes it, then
/// [`mark_published`](Self::mark_published). A crash between publish and mark leaves it
/// pending; once the claim expires it is published again (at most once more per
/// crash), with the same `alert_id`.
pub trait AlertStore: Send + Sync {
    /// Records `alert` and queues it for publishing, if no alert with its id exists.
    /// `Ok(false)`: one does (raised by another invocation); nothing changed.
    fn record(&self, alert: &Alert) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Alerts queued and not marked published, oldest first, at most `limit`.
    fn pending(&self, limit: usize) -> impl Future<Output = Result<Vec<Alert>, StoreError>> + Send;

    /// Claims a pending alert for publishing until `until`, if it is pending and
    /// unclaimed or its claim expired before `now`. `Ok(false)`: someone else holds it,
    /// or it is published.
    fn claim(
        &self,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Marks a published alert (takes it out of the outbox). Idempotent.
    fn mark_published(
        &self,
        alert_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The alerts a listing shows.
    fn alerts(
        &self,
        filter: &AlertFilter,
    ) -> impl Future<Output = Result<Vec<StoredAlert>, StoreError>> + Send;

    /// The surge evaluator's state of a route.
    fn route_state(
        &self,
        route: &str,
    ) -> impl Future<Output = Result<Option<RouteState>, StoreError>> + Send;

    /// Saves a route's state if the stored one has version `state.version - 1` (or
    /// there is none and `state.version == 1`) and, in the same atomic step, records
    /// `alerts` (each queued for publishing, as [`record`](Self::record) does; one whose
    /// id is recorded already is left as it is). `Ok(false)`: another evaluator saved
    /// first; nothing changed, no alert recorded.
    ///
    /// One step, so that the alerts a judgement raises exist exactly when the state
    /// that judged them does: a crash, or a second evaluator, can never leave an
    /// alert whose buckets will be judged again (and may fire at another window, with
    /// another id). Any number of alerts: a store whose transactions are smaller
    /// (DynamoDB: 100 items) stages them first and records them after the state,
    /// finishing a save a crash cut short when the state is next read.
    fn save_route_state(
        &self,
        route: &str,
        state: &RouteState,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Where the surge evaluator's last run stopped: the last route it judged.
    fn evaluator_cursor(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Stores where the surge evaluator stopped (last writer wins: two evaluators
    /// racing at worst judge some routes twice, which changes nothing).
    fn save_evaluator_cursor(
        &self,
        route: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The flight rules' latches of these cabins; cabins without any are absent.
    fn cabin_states(
        &self,
        keys: &[CabinKey],
    ) -> impl Future<Output = Result<HashMap<CabinKey, CabinAlertState>, StoreError>> + Send;

    /// Saves a cabin's latches and records the alerts of the rules that fired, in one
    /// atomic step conditional on the version, as for
    /// [`save_route_state`](Self::save_route_state).
    fn save_cabin_state(
        &self,
        key: &CabinKey,
        state: &CabinAlertState,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Where alerts are published: SNS, or locally a JSON lines file and the console.
pub trait AlertPublisher: Send + Sync {
    /// Publishes one alert (body: [`Alert::to_json`], attributes:
    /// [`Alert::message_attributes`]). An error leaves it in the outbox, to retry.
    fn publish(&self, alert: &Alert) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: DemandStore> DemandStore for &T {
    fn add(
        &self,
        update: &CounterUpdate,
    ) -> impl Future<Output = Result<Added, StoreError>> + Send {
        (**self).add(update)
    }
    fn add_all(
        &self,
        updates: &[CounterUpdate],
    ) -> impl Future<Output = Vec<Result<Added, StoreError>>> + Send {
        (**self).add_all(updates)
    }
    fn counters(
        &self,
        route: &str,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<(CounterKey, Counts)>, StoreError>> + Send {
        (**self).counters(route, from, to)
    }
    fn note_routes(
        &self,
        routes: &[String],
        seen_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).note_routes(routes, seen_at)
    }
    fn routes(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        (**self).routes()
    }
    fn noted_routes(&self) -> impl Future<Output = Result<Vec<NotedRoute>, StoreError>> + Send {
        (**self).noted_routes()
    }
    fn forget_route(
        &self,
        route: &NotedRoute,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).forget_route(route)
    }
    fn watermark(
        &self,
        shard_id: &str,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send {
        (**self).watermark(shard_id)
    }
    fn advance_watermark(
        &self,
        shard_id: &str,
        progress: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).advance_watermark(shard_id, progress, updated_at)
    }
    fn watermarks(&self) -> impl Future<Output = Result<Vec<ShardWatermark>, StoreError>> + Send {
        (**self).watermarks()
    }
}

impl<T: AlertPublisher> AlertPublisher for &T {
    fn publish(&self, alert: &Alert) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).publish(alert)
    }
}

impl<T: AlertStore> AlertStore for &T {
    fn record(&self, alert: &Alert) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).record(alert)
    }
    fn pending(&self, limit: usize) -> impl Future<Output = Result<Vec<Alert>, StoreError>> + Send {
        (**self).pending(limit)
    }
    fn claim(
        &self,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).claim(alert_id, now, until)
    }
    fn mark_published(
        &self,
        alert_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_published(alert_id, at)
    }
    fn alerts(
        &self,
        filter: &AlertFilter,
    ) -> impl Future<Output = Result<Vec<StoredAlert>, StoreError>> + Send {
        (**self).alerts(filter)
    }
    fn route_state(
        &self,
        route: &str,
    ) -> impl Future<Output = Result<Option<RouteState>, StoreError>> + Send {
        (**self).route_state(route)
    }
    fn save_route_state(
        &self,
        route: &str,
        state: &RouteState,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).save_route_state(route, state, alerts)
    }
    fn evaluator_cursor(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        (**self).evaluator_cursor()
    }
    fn save_evaluator_cursor(
        &self,
        route: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_evaluator_cursor(route)
    }
    fn cabin_states(
        &self,
        keys: &[CabinKey],
    ) -> impl Future<Output = Result<HashMap<CabinKey, CabinAlertState>, StoreError>> + Send {
        (**self).cabin_states(keys)
    }
    fn save_cabin_state(
        &self,
        key: &CabinKey,
        state: &CabinAlertState,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).save_cabin_state(key, state, alerts)
    }
}

// Shared adapters (one SQLite file or one SDK client behind several handlers and
// tasks) are `Arc`s.

impl<T: DemandStore> DemandStore for std::sync::Arc<T> {
    fn add(
        &self,
        update: &CounterUpdate,
    ) -> impl Future<Output = Result<Added, StoreError>> + Send {
        (**self).add(update)
    }
    fn add_all(
        &self,
        updates: &[CounterUpdate],
    ) -> impl Future<Output = Vec<Result<Added, StoreError>>> + Send {
        (**self).add_all(updates)
    }
    fn counters(
        &self,
        route: &str,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<(CounterKey, Counts)>, StoreError>> + Send {
        (**self).counters(route, from, to)
    }
    fn note_routes(
        &self,
        routes: &[String],
        seen_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).note_routes(routes, seen_at)
    }
    fn routes(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        (**self).routes()
    }
    fn noted_routes(&self) -> impl Future<Output = Result<Vec<NotedRoute>, StoreError>> + Send {
        (**self).noted_routes()
    }
    fn forget_route(
        &self,
        route: &NotedRoute,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).forget_route(route)
    }
    fn watermark(
        &self,
        shard_id: &str,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send {
        (**self).watermark(shard_id)
    }
    fn advance_watermark(
        &self,
        shard_id: &str,
        progress: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).advance_watermark(shard_id, progress, updated_at)
    }
    fn watermarks(&self) -> impl Future<Output = Result<Vec<ShardWatermark>, StoreError>> + Send {
        (**self).watermarks()
    }
}

impl<T: AlertPublisher> AlertPublisher for std::sync::Arc<T> {
    fn publish(&self, alert: &Alert) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).publish(alert)
    }
}

impl<T: AlertStore> AlertStore for std::sync::Arc<T> {
    fn record(&self, alert: &Alert) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).record(alert)
    }
    fn pending(&self, limit: usize) -> impl Future<Output = Result<Vec<Alert>, StoreError>> + Send {
        (**self).pending(limit)
    }
    fn claim(
        &self,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).claim(alert_id, now, until)
    }
    fn mark_published(
        &self,
        alert_id: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_published(alert_id, at)
    }
    fn alerts(
        &self,
        filter: &AlertFilter,
    ) -> impl Future<Output = Result<Vec<StoredAlert>, StoreError>> + Send {
        (**self).alerts(filter)
    }
    fn route_state(
        &self,
        route: &str,
    ) -> impl Future<Output = Result<Option<RouteState>, StoreError>> + Send {
        (**self).route_state(route)
    }
    fn save_route_state(
        &self,
        route: &str,
        state: &RouteState,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).save_route_state(route, state, alerts)
    }
    fn evaluator_cursor(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send {
        (**self).evaluator_cursor()
    }
    fn save_evaluator_cursor(
        &self,
        route: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_evaluator_cursor(route)
    }
    fn cabin_states(
        &self,
        keys: &[CabinKey],
    ) -> impl Future<Output = Result<HashMap<CabinKey, CabinAlertState>, StoreError>> + Send {
        (**self).cabin_states(keys)
    }
    fn save_cabin_state(
        &self,
        key: &CabinKey,
        state: &CabinAlertState,
        alerts: &[Alert],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).save_cabin_state(key, state, alerts)
    }
}
