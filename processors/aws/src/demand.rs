//! The hot-route processor's state in two DynamoDB tables: [`DynamoDemandStore`]
//! implements [`DemandStore`] (demand counters: hot and short-lived) and
//! [`DynamoAlertStore`] implements [`AlertStore`](flyhigh_core::AlertStore) (alerts,
//! their outbox and the rules' states: few and kept).
//!
//! - `keys`: strings whose byte order is the order of buckets and times (pure).
//! - `items`, `alert_items`: the two tables' items and requests (pure).
//! - `errors`: failed conditions told apart from failures (pure).
//! - this module and `alerts`: the only code that calls DynamoDB.
//!
//! Both tables have string keys `pk` (partition) and `sk` (sort), like the inventory
//! table. Every write is conditional or idempotent, so a retried Lambda batch, a replay
//! or a second evaluator changes nothing twice.
//!
//! # The demand table
//!
//! ```text
//! item       pk              sk                         attributes
//! ---------  --------------  -------------------------  ------------------------------------------
//! counter    ROUTE#<route>   <bucket, 20 chars>#<shard>  searches passengers bookings seats
//!                                                        cancellations late (N, changed only by ADD),
//!                                                        mark (S, Position::to_key), route,
//!                                                        bucket (N), shard_id, expires_at (N)
//! route      #routes         <route>                     route, last_seen (S, fixed-width RFC 3339)
//! watermark  #watermarks     <shard_id>                  shard_id, event_time (the progress: an
//!                                                        arrival time), updated_at (S, fixed-
//!                                                        width RFC 3339 with nanoseconds)
//! ```
//!
//! The bucket in a counter's sort key is zero-padded to 20 digits (see `keys`), so a
//! route's counters sort by bucket, then shard, and a bucket range is one key
//! condition. The mark is the 64-digit padded position, so the condition
//! `mark < :first` compares Kinesis sequence numbers of any length as numbers
//! (`"9"` < `"10"`). `expires_at` (the table's TTL attribute) is the later of the
//! bucket and the last arrival counted, plus [`COUNTER_TTL_SECONDS`] (35 days): from
//! arrival, so a counter of an event dated long ago is not expired as it is written.
//! The `event_time` attribute of a watermark holds the shard's progress, an arrival
//! time (it kept its name from when it held event time).
//!
//! | port method | calls | cost |
//! |---|---|---|
//! | `add` | one `UpdateItem`: `ADD` the six counts, `SET mark = :last` (and the key attributes), condition `attribute_not_exists(pk) OR mark < :first`, `ReturnValuesOnConditionCheckFailure = ALL_OLD` so a stale change learns the stored mark without a read | 1 WCU (an item is ~250 bytes), applied or stale |
//! | `counters` | one `Query` of `pk = ROUTE#<route> AND sk BETWEEN <from># AND <to - 1>$`, paginated, strongly consistent (the evaluator judges each bucket once, for good: it must see every change written before it read) | 1 RCU per 4 KB read: ~16 counters (~250 bytes each) per RCU |
//! | `note_routes` | `BatchWriteItem` of idempotent puts (`last_seen` = the consumer's clock), 25 per request, unprocessed items sent again with backoff | 1 WCU per route (callers note a route once per container and [refresh period](flyhigh_core::demand::registry::NOTE_REFRESH), not per batch) |
//! | `routes`, `noted_routes` | one `Query` of `pk = #routes`, paginated, eventually consistent | 0.5 RCU per 4 KB: 10,000 routes (~70 bytes each) are one 1 MB page, ~85 RCU |
//! | `forget_route` | one `DeleteItem`, condition `last_seen = :listed` (a route noted again since stays); failed → `Ok(false)` | 1 WCU |
//! | `watermark` | one strongly consistent `GetItem` | 1 RCU |
//! | `advance_watermark` | one `UpdateItem`, condition `attribute_not_exists(pk) OR event_time < :t OR event_time > :u` (a stored value later than the writer's clock is no arrival: replaced); a failed condition is success (it is at or past `:t` already) | 1 WCU |
//! | `watermarks` | one `Query` of `pk = #watermarks`, strongly consistent (they hold the evaluator's horizon back while a consumer lags) | 1 RCU per 4 KB |
//!
//! A route's counters share its partition key; each shard's consumer writes its own
//! items (one per bucket per batch), and DynamoDB splits a hot partition key across
//! partitions by sort key, so a surge of one route spread over many shards is not
//! one item's 1,000 WCU/s.
//!
//! # The alerts table
//!
//! ```text
//! item         pk                  sk                attributes
//! -----------  ------------------  ----------------  ------------------------------------------------
//! alert        ALERT#<alert_id>    ALERT             alert (S, exactly Alert::to_json), alert_id, rule,
//!                                                    raised_at, published_at (absent while pending),
//!                                                    time_pk = ALERTS, time_sk = <raised_at>#<alert_id>
//! outbox       #outbox             <alert_id>        order = <raised_at>#<alert_id>, alert (S, JSON),
//!                                                    claim_until (absent until claimed)
//! route state  ROUTE#<route>       STATE             state (S, RouteState as JSON), version (N), route,
//!                                                    staged (S, a save id; only while a save of more
//!                                                    than 49 alerts is being recorded)
//! cabin state  FLIGHT#<flight_id>  CABIN#<cabin>     state (S, CabinAlertState as JSON), version (N),
//!                                                    flight_id, cabin, staged (as a route state's)
//! staged       STAGE#<save id>     <index, 10 digits> alert (S, JSON): one alert of a large save
//! cursor       #evaluator          CURSOR            cursor (S): the last route the evaluator judged
//! ```
//!
//! Times are fixed-width RFC 3339 with nanoseconds, so they compare as strings.
//! Two indexes:
//!
//! - `outbox_order` ([`OUTBOX_INDEX`]), a local secondary index on `pk` and `order`,
//!   projecting `alert`: only outbox items have `order`, so it holds the pending
//!   alerts in `(raised_at, alert_id)` order, read strongly consistent; a claim changes
//!   `claim_until`, which the index does not project, so it costs the index nothing.
//!   The outbox item is keyed by `alert_id`, so claiming and marking need no lookup.
//! - `by_time` ([`BY_TIME_INDEX`]), a global secondary index on `time_pk` and
//!   `time_sk`, projecting everything: every alert in one index partition in
//!   `(raised_at, alert_id)` order. Alerts are a few hundred a day at most, far below
//!   what one partition takes, and the listing reads it newest first and stops at the
//!   filter's `limit`. A GSI is eventually consistent: an alert shows in listings a
//!   moment after it is recorded.
//!
//! | port method | calls | cost |
//! |---|---|---|
//! | `record` | `TransactWriteItems`: Put the alert item with `attribute_not_exists(pk)`, Put the outbox item; cancelled with `ConditionalCheckFailed` → `Ok(false)` | 2 WCU per KB of each of the two items (transactional), + 1 WCU per KB in each index (the alert item in `by_time`, the outbox item in `outbox_order`) |
//! | `pending` | one `Query` of `outbox_order`, `pk = #outbox`, strongly consistent, `Limit` = the limit | 1 RCU per 4 KB |
//! | `claim` | one `UpdateItem` of the outbox item, `SET claim_until`, condition `attribute_exists(pk) AND (attribute_not_exists(claim_until) OR claim_until < :now)`; failed → `Ok(false)` | 1 WCU (the index does not project `claim_until`) |
//! | `mark_published` | `TransactWriteItems`: Update the alert item `SET published_at = if_not_exists(published_at, :at)` with `attribute_exists(pk)`, Delete the outbox item; idempotent | 2 WCU per KB of each item, + 1 WCU per KB in each index |
//! | `alerts` | one `Query` of `by_time`, `time_pk = ALERTS` (and `time_sk >= <since>`), filter `rule = :rule`, newest first, paginated until `limit`; then [`AlertFilter::select`](flyhigh_core::AlertFilter::select) | 0.5 RCU per 4 KB read |
//! | `route_state` | one strongly consistent `GetItem`; a state marked `staged` is finished first (below) | 1 RCU |
//! | `save_route_state`, `save_cabin_state` | no alert: one `PutItem`, condition `attribute_not_exists(pk)` for version 1, else `version = :expected` (the new version - 1); failed → `Ok(false)`; version 0 is refused without a call. 1 to 49 alerts: one `TransactWriteItems` of that `Put` and each alert's two items (as `record`). More: staged (`BatchWriteItem` of the copies, the `PutItem` marked `staged`, transactions of 49 alerts, an `UpdateItem` removing the mark, `BatchWriteItem` deleting the copies; see `DynamoAlertStore::save_staged`) | 1 WCU; + as `record` per alert; + 2 WCU per staged alert |
//! | `cabin_states` | `BatchGetItem`, 100 keys per request, strongly consistent, unprocessed keys asked again; marked states finished first | 1 RCU per cabin |
//! | `evaluator_cursor`, `save_evaluator_cursor` | one strongly consistent `GetItem`; one `PutItem` (last writer wins) | 1 RCU; 1 WCU |

mod alert_items;
mod alerts;
mod errors;
mod items;
mod keys;

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest};
use chrono::{DateTime, Utc};
use flyhigh_core::demand::{CounterKey, CounterUpdate, Counts};
use flyhigh_core::ports::{Added, DemandStore, NotedRoute, ShardWatermark, StoreError};
use futures::StreamExt;

pub use self::alert_items::{BY_TIME_INDEX, OUTBOX_INDEX};
pub use self::alerts::{DynamoAlertStore, create_alerts_table};
use self::errors::update_refused;
use self::items::Write;
pub use self::items::{BATCH_WRITE_MAX_ITEMS, COUNTER_TTL_SECONDS};
use crate::dynamodb::errors::store_error;
use crate::dynamodb::items::Item;
use crate::dynamodb::{create_and_wait, enable_ttl, pk_sk_table};
use crate::retry::backoff;

/// Rounds of a batch request for what DynamoDB left unprocessed, the first included.
const BATCH_MAX_ROUNDS: u32 = 8;
/// Counter writes of one `add_all` in flight at once.
const ADD_CONCURRENCY: usize = 16;
const BATCH_BACKOFF_BASE: Duration = Duration::from_millis(50);
const BATCH_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What a conditional `UpdateItem` did.
#[derive(Debug)]
enum Outcome {
    Applied,
    /// The condition failed; the item as it was, when DynamoDB returned it.
    Refused(Option<Item>),
}

/// Sends a conditional update, asking for the old item when the condition fails.
async fn conditional_update(
    client: &Client,
    table: &str,
    write: Write,
) -> Result<Outcome, StoreError> {
    let sent = client
        .update_item()
        .table_name(table)
        .set_key(Some(write.key))
        .update_expression(write.update)
        .condition_expression(write.condition)
        .set_expression_attribute_names(Some(write.names))
        .set_expression_attribute_values(Some(write.values))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match sent {
        Ok(_) => Ok(Outcome::Applied),
        Err(e) => update_refused(&e).map(Outcome::Refused),
    }
}

/// Every item a query returns, page after page, up to `limit` items when given.
async fn query_items(
    query: QueryFluentBuilder,
    limit: Option<usize>,
) -> Result<Vec<Item>, StoreError> {
    let mut pages = query.into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| store_error("Query", &e))?;
        out.extend(page.items().iter().cloned());
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    if let Some(limit) = limit {
        out.truncate(limit);
    }
    Ok(out)
}

/// A page size for a query that needs at most `limit` items (DynamoDB takes 1 and up).
fn page_limit(limit: usize) -> i32 {
    i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000)
}

/// Sleeps before round `round` of a batch request (none before the first).
async fn batch_pause(round: u32) {
    if round > 0 {
        tokio::time::sleep(backoff(round - 1, BATCH_BACKOFF_BASE, BATCH_BACKOFF_MAX)).await;
    }
}

/// Demand counters, the route registry and the shards' watermarks in a DynamoDB table
/// of the design in the module docs.
#[derive(Debug, Clone)]
pub struct DynamoDemandStore {
    client: Client,
    table: String,
}

impl DynamoDemandStore {
    /// A store on `table`, which must exist (see [`create_demand_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> DynamoDemandStore {
        DynamoDemandStore {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn broken(&self, what: &str, e: String) -> StoreError {
        StoreError::Permanent(format!("table {}: {what} item: {e}", self.table))
    }

    /// The mark of a counter whose condition failed, when DynamoDB did not return
    /// the old item (it always does; an emulator might not).
    async fn read_mark(&self, key: &CounterKey) -> Result<Added, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::counter_key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", &e))?;
        match out.item() {
            Some(item) => Ok(Added::Stale {
                mark: items::parse_mark(item).map_err(|e| self.broken("counter", e))?,
            }),
            // Refused, then gone: only TTL deletes counters. Try the change again.
            None => Err(StoreError::Transient(format!(
                "table {}: counter {} {} {} refused the change and is gone",
                self.table, key.route, key.bucket, key.shard_id
            ))),
        }
    }

    fn partition(&self, pk: &str) -> QueryFluentBuilder {
        let key = items::partition_query(pk);
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression(key.text)
            .set_expression_attribute_names(Some(key.names))
            .set_expression_attribute_values(Some(key.values))
    }

    /// Puts one batch of items, sending again what DynamoDB leaves unprocessed.
    async fn batch_put(&self, batch: Vec<Item>) -> Result<(), StoreError> {
        let requests = batch
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| StoreError::Permanent(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        batch_write(&self.client, &self.table, requests).await
    }
}

/// Sends one `BatchWriteItem` (at most [`BATCH_WRITE_MAX_ITEMS`] requests), sending
/// again what DynamoDB leaves unprocessed.
async fn batch_write(
    client: &Client,
    table: &str,
    mut pending: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    for round in 0..BATCH_MAX_ROUNDS {
        batch_pause(round).await;
        let out = client
            .batch_write_item()
            .request_items(table, pending)
            .send()
            .await
            .map_err(|e| store_error("BatchWriteItem", &e))?;
        pending = out
            .unprocessed_items()
            .and_then(|u| u.get(table))
            .cloned()
            .unwrap_or_default();
        if pending.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            table,
            unprocessed = pending.len(),
            round,
            "batch write left items unprocessed"
        );
    }
    Err(StoreError::Transient(format!(
        "DynamoDB BatchWriteItem: {} items still unprocessed after {BATCH_MAX_ROUNDS} rounds",
        pending.len()
    )))
}

impl DemandStore for DynamoDemandStore {
    async fn add(&self, update: &CounterUpdate) -> Result<Added, StoreError> {
        match conditional_update(&self.client, &self.table, items::counter_write(update)).await? {
            Outcome::Applied => Ok(Added::Applied),
            Outcome::Refused(Some(old)) => Ok(Added::Stale {
                mark: items::parse_mark(&old).map_err(|e| self.broken("counter", e))?,
            }),
            Outcome::Refused(None) => self.read_mark(&update.key).await,
        }
    }

    async fn add_all(&self, updates: &[CounterUpdate]) -> Vec<Result<Added, StoreError>> {
        // DynamoDB has no conditional batch write short of a transaction, which would
        // fail every counter for one stale mark: one conditional update each, at most
        // ADD_CONCURRENCY in flight, results in order.
        // Futures built in a loop, not by a closure over `&CounterUpdate`: a closure's
        // lifetime-generic signature makes this future fail to be `Send`.
        let mut writes = Vec::with_capacity(updates.len());
        for update in updates {
            writes.push(self.add(update));
        }
        futures::stream::iter(writes)
            .buffered(ADD_CONCURRENCY)
            .collect()
            .await
    }

    async fn counters(
        &self,
        route: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(CounterKey, Counts)>, StoreError> {
        let Some(key) = items::counters_query(route, from, to) else {
            return Ok(Vec::new());
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(key.text)
            .set_expression_attribute_names(Some(key.names))
            .set_expression_attribute_values(Some(key.values))
            // The evaluator judges each bucket once, for good: it must see every
            // change that was written before it read.
            .consistent_read(true);
        query_items(query, None)
            .await?
            .iter()
            .map(|item| items::parse_counter(item).map_err(|e| self.broken("counter", e)))
            .collect()
    }

    async fn note_routes(
        &self,
        routes: &[String],
        seen_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for batch in items::route_batches(routes) {
            let batch = batch
                .into_iter()
                .map(|route| items::route_item(route, seen_at))
                .collect::<Result<_, _>>()
                .map_err(|e| StoreError::Permanent(e.to_string()))?;
            self.batch_put(batch).await?;
        }
        Ok(())
    }

    async fn routes(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .noted_routes()
            .await?
            .into_iter()
            .map(|r| r.route)
            .collect())
    }

    async fn noted_routes(&self) -> Result<Vec<NotedRoute>, StoreError> {
        query_items(self.partition(items::ROUTES_PK), None)
            .await?
            .iter()
            .map(|item| items::parse_route(item).map_err(|e| self.broken("route", e)))
            .collect()
    }

    async fn forget_route(&self, route: &NotedRoute) -> Result<bool, StoreError> {
        let condition = items::forget_route_condition(route)
            .map_err(|e| StoreError::Permanent(e.to_string()))?;
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::route_key(&route.route)))
            .condition_expression(condition.text)
            .set_expression_attribute_names(Some(condition.names))
            .set_expression_attribute_values(Some(condition.values))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => errors::delete_refused(&e).map(|()| false),
        }
    }

    async fn watermark(&self, shard_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::watermark_key(shard_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", &e))?;
        out.item()
            .map(|item| {
                items::parse_watermark(item)
                    .map(|w| w.progress)
                    .map_err(|e| self.broken("watermark", e))
            })
            .transpose()
    }

    async fn advance_watermark(
        &self,
        shard_id: &str,
        progress: DateTime<Utc>,
        updated_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let write = items::watermark_write(shard_id, progress, updated_at)
            .map_err(|e| StoreError::Permanent(format!("watermark of {shard_id}: {e}")))?;
        // Refused: the stored progress is at or past `progress` already.
        conditional_update(&self.client, &self.table, write).await?;
        Ok(())
    }

    async fn watermarks(&self) -> Result<Vec<ShardWatermark>, StoreError> {
        query_items(
            self.partition(items::WATERMARKS_PK).consistent_read(true),
            None,
        )
        .await?
        .iter()
        .map(|item| items::parse_watermark(item).map_err(|e| self.broken("watermark", e)))
        .collect()
    }
}

/// Creates the demand table (on-demand capacity, string keys `pk` and `sk`, TTL on
/// `expires_at`) and waits until it is `ACTIVE`. A table that already exists is fine.
///
/// Meant for tests and the local setup; production tables come from `infra/`.
pub async fn create_demand_table(client: &Client, name: &str) -> Result<(), StoreError> {
    create_and_wait(client, name, pk_sk_table(client, name)?).await?;
    enable_ttl(client, name, items::EXPIRES_AT, "demand counters").await
}
