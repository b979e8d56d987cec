//! Seat inventory in one DynamoDB table: [`DynamoInventoryStore`] implements
//! [`InventoryStore`].
//!
//! - `items`: item keys and attributes, and the write requests built from a
//!   transaction (pure).
//! - `errors`: SDK errors classified by what the caller must do (pure).
//! - `reads`: the `Query` of one flight and the filtered `Scan` of an operator's
//!   listing (pure).
//! - this module: the only code that calls DynamoDB.
//!
//! See the crate docs for the table design.

pub(crate) mod errors;
pub(crate) mod items;
pub(crate) mod reads;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    ScalarAttributeType, TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};
use flyhigh_core::InventoryFilter;
use flyhigh_core::inventory::{BookingRecord, CabinInventory, Transaction};
use flyhigh_core::ports::{CommitError, InventoryStore, StoreError};
use flyhigh_core::schedule::Schedule;
use futures::{StreamExt, TryStreamExt};

use self::errors::{commit_error, store_error};
use self::items::{Item, PK, SK};
use crate::retry::{backoff, wait_until_active};

/// Most keys one `BatchGetItem` request may carry.
pub const BATCH_GET_MAX_KEYS: usize = 100;

/// Schedule writes in flight at once. Each touches its own item, so the bound is
/// about the client's connection pool and the table's write rate, not contention.
pub const SCHEDULE_CONCURRENCY: usize = 16;

/// Rounds of `BatchGetItem` for keys DynamoDB left unprocessed, the first included.
const BATCH_GET_MAX_ROUNDS: u32 = 8;
const BATCH_GET_BACKOFF_BASE: Duration = Duration::from_millis(50);
const BATCH_GET_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How long [`create_table`] waits for the table to become `ACTIVE`.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// Seat inventory in a DynamoDB table of the design in the crate docs.
///
/// Every write is conditional or commutative, so a retried or replayed batch changes
/// nothing twice: booking items move only from the status the plan read, counters
/// move only in the same transaction.
#[derive(Debug, Clone)]
pub struct DynamoInventoryStore {
    client: Client,
    table: String,
    scan_page_size: Option<i32>,
}

impl DynamoInventoryStore {
    /// A store on `table`, which must exist (see [`create_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> DynamoInventoryStore {
        DynamoInventoryStore {
            client,
            table: table.into(),
            scan_page_size: None,
        }
    }

    /// Caps the items each `Scan` page of [`InventoryStore::inventory`] examines
    /// (DynamoDB's `Limit`; by default a page is up to 1 MB).
    pub fn with_scan_page_size(mut self, items: i32) -> DynamoInventoryStore {
        self.scan_page_size = Some(items.max(1));
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Reads one chunk of at most [`BATCH_GET_MAX_KEYS`] keys, retrying the keys
    /// DynamoDB leaves unprocessed (throttling, 16 MB response cap) with backoff.
    async fn batch_get(
        &self,
        keys: Vec<Item>,
        out: &mut HashMap<String, BookingRecord>,
    ) -> Result<(), StoreError> {
        // The plan is made from what this read returns; a stale read would only cost
        // a conflict and a re-read, but a strong one avoids it.
        for item in batch_get_consistent(&self.client, &self.table, keys).await? {
            let record = items::parse_booking(&item).map_err(|e| {
                StoreError::Permanent(format!("table {}: booking item: {e}", self.table))
            })?;
            out.insert(record.booking_id.clone(), record);
        }
        Ok(())
    }
}

/// Reads at most [`BATCH_GET_MAX_KEYS`] keys of `table` with strongly consistent
/// reads, asking again (with a backoff) for the keys DynamoDB leaves unprocessed.
pub(crate) async fn batch_get_consistent(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
) -> Result<Vec<Item>, StoreError> {
    let mut out = Vec::with_capacity(keys.len());
    let mut pending = keys;
    for round in 0..BATCH_GET_MAX_ROUNDS {
        if round > 0 {
            tokio::time::sleep(backoff(
                round - 1,
                BATCH_GET_BACKOFF_BASE,
                BATCH_GET_BACKOFF_MAX,
            ))
            .await;
        }
        let request = KeysAndAttributes::builder()
            .set_keys(Some(pending))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Permanent(e.to_string()))?;
        let output = client
            .batch_get_item()
            .request_items(table, request)
            .send()
            .await
            .map_err(|e| store_error("BatchGetItem", &e))?;
        if let Some(items) = output.responses().and_then(|r| r.get(table)) {
            out.extend(items.iter().cloned());
        }
        pending = output
            .unprocessed_keys()
            .and_then(|u| u.get(table))
            .map(|k| k.keys().to_vec())
            .unwrap_or_default();
        if pending.is_empty() {
            return Ok(out);
        }
        tracing::debug!(
            table,
            unprocessed = pending.len(),
            round,
            "batch get left keys unprocessed"
        );
    }
    Err(StoreError::Transient(format!(
        "DynamoDB BatchGetItem: {} keys still unprocessed after {BATCH_GET_MAX_ROUNDS} rounds",
        pending.len()
    )))
}

impl InventoryStore for DynamoInventoryStore {
    async fn bookings(&self, ids: &[String]) -> Result<HashMap<String, BookingRecord>, StoreError> {
        // BatchGetItem rejects a request that names one key twice.
        let mut seen = HashSet::new();
        let unique: Vec<&String> = ids.iter().filter(|id| seen.insert(id.as_str())).collect();
        let mut out = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(BATCH_GET_MAX_KEYS) {
            let keys = chunk.iter().map(|id| items::booking_key(id)).collect();
            self.batch_get(keys, &mut out).await?;
        }
        Ok(out)
    }

    async fn commit(&self, tx: &Transaction) -> Result<(), CommitError> {
        let actions =
            items::transact_items(&self.table, tx).map_err(|e| StoreError::Permanent(e.0))?;
        if actions.is_empty() {
            return Ok(());
        }
        let count = actions.len();
        self.client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
            .map_err(|e| commit_error(&e))?;
        tracing::debug!(table = %self.table, items = count, "transaction committed");
        Ok(())
    }

    async fn load_schedule(&self, schedule: &Schedule) -> Result<(), StoreError> {
        let updates = items::schedule_updates(schedule);
        let count = updates.len();
        let names = items::schedule_names();
        futures::stream::iter(updates)
            .map(|update| {
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(update.key))
                    .update_expression(items::SCHEDULE_EXPRESSION)
                    .set_expression_attribute_names(Some(names.clone()))
                    .set_expression_attribute_values(Some(update.values))
                    .send()
            })
            .buffer_unordered(SCHEDULE_CONCURRENCY)
            .map_err(|e| store_error("UpdateItem", &e))
            .try_for_each(|_| async { Ok(()) })
            .await?;
        tracing::info!(table = %self.table, cabins = count, "schedule loaded");
        Ok(())
    }

    /// Every flight-cabin item: the listing with no filter (a whole-table `Scan`).
    async fn inventory(&self) -> Result<Vec<CabinInventory>, StoreError> {
        self.list(&InventoryFilter::default()).await
    }

    /// One `Query` on the flight's partition key (paged, though a flight has at most
    /// four cabin items), strongly consistent.
    async fn flight(&self, flight_id: &str) -> Result<Vec<CabinInventory>, StoreError> {
        let key = reads::flight_key_condition(flight_id);
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(key.text)
            .set_expression_attribute_names(Some(key.names))
            .set_expression_attribute_values(Some(key.values))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_error("Query", &e))?;
            for item in page.items() {
                out.push(self.cabin(item)?);
            }
        }
        out.sort_by_key(|c| c.cabin);
        Ok(out)
    }

    /// A `Scan` with a filter expression (see the `reads` module): it reads the whole
    /// table, which is fine for an operator command and never done on the record path.
    async fn list(&self, filter: &InventoryFilter) -> Result<Vec<CabinInventory>, StoreError> {
        let expression = reads::list_filter(filter);
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression(expression.text)
            .set_expression_attribute_names(Some(expression.names))
            .set_expression_attribute_values(Some(expression.values))
            .consistent_read(true)
            .set_limit(self.scan_page_size)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        let mut page_count = 0usize;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| store_error("Scan", &e))?;
            page_count += 1;
            for item in page.items() {
                out.push(self.cabin(item)?);
            }
        }
        tracing::debug!(table = %self.table, pages = page_count, matched = out.len(), "inventory listing scanned");
        Ok(filter.select(out))
    }
}

impl DynamoInventoryStore {
    fn cabin(&self, item: &items::Item) -> Result<CabinInventory, StoreError> {
        items::parse_cabin(item)
            .map_err(|e| StoreError::Permanent(format!("table {}: flight item: {e}", self.table)))
    }
}

/// A `CreateTable` request for an on-demand table with string keys `pk` (partition)
/// and `sk` (sort), the shape of every table of this crate.
pub(crate) fn pk_sk_table(
    client: &Client,
    name: &str,
) -> Result<aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder, StoreError>
{
    Ok(client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key_element(PK, KeyType::Hash)?)
        .key_schema(key_element(SK, KeyType::Range)?)
        .attribute_definitions(string_attribute(PK)?)
        .attribute_definitions(string_attribute(SK)?))
}

/// Creates the inventory table (on-demand capacity, string keys `pk` and `sk`) and
/// waits until it is `ACTIVE`. A table that already exists is fine.
///
/// Meant for tests and the local setup; production tables come from `infra/`.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    create_and_wait(client, name, pk_sk_table(client, name)?).await?;
    enable_ttl(
        client,
        name,
        items::EXPIRES_AT,
        "the inventory's booking items",
    )
    .await
}

/// One element of a key schema.
pub(crate) fn key_element(attr: &str, kind: KeyType) -> Result<KeySchemaElement, StoreError> {
    KeySchemaElement::builder()
        .attribute_name(attr)
        .key_type(kind)
        .build()
        .map_err(|e| StoreError::Permanent(e.to_string()))
}

/// The definition of a string key attribute.
pub(crate) fn string_attribute(attr: &str) -> Result<AttributeDefinition, StoreError> {
    AttributeDefinition::builder()
        .attribute_name(attr)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| StoreError::Permanent(e.to_string()))
}

/// Sends `request` (a `CreateTable` of table `name`), taking an existing table as
/// success, and waits until the table is `ACTIVE`; returns its description.
pub(crate) async fn create_and_wait(
    client: &Client,
    name: &str,
    request: CreateTableFluentBuilder,
) -> Result<TableDescription, StoreError> {
    match request.send().await {
        Ok(_) => tracing::info!(table = name, "table created"),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) =>
        {
            tracing::debug!(table = name, "table already exists");
        }
        Err(e) => return Err(store_error("CreateTable", &e)),
    }
    let describe = || async {
        client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| store_error("DescribeTable", &e))
    };
    let active = wait_until_active(TABLE_ACTIVE_TIMEOUT, || async {
        let table = describe().await?;
        Ok(table.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active))
    })
    .await?;
    if !active {
        return Err(StoreError::Transient(format!(
            "table {name} not ACTIVE after {TABLE_ACTIVE_TIMEOUT:?}"
        )));
    }
    describe().await?.table.ok_or_else(|| {
        StoreError::Transient(format!(
            "DynamoDB DescribeTable of {name} returned no table"
        ))
    })
}

/// Turns on DynamoDB's TTL on `attribute`, which `items` (named in the error)
/// carry. Already on is fine; TTL on another attribute is a clear error (a table
/// has at most one TTL attribute).
pub(crate) async fn enable_ttl(
    client: &Client,
    name: &str,
    attribute: &str,
    items: &str,
) -> Result<(), StoreError> {
    let current = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|e| store_error("DescribeTimeToLive", &e))?;
    let on = current.time_to_live_description().is_some_and(|d| {
        d.attribute_name() == Some(attribute)
            && matches!(
                d.time_to_live_status(),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            )
    });
    if on {
        return Ok(());
    }
    if let Some(other) = current.time_to_live_description().and_then(|d| {
        d.attribute_name().filter(|a| {
            *a != attribute
                && matches!(
                    d.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                )
        })
    }) {
        return Err(StoreError::Permanent(format!(
            "table {name} has TTL on attribute `{other}`; {items} \
             expire by `{attribute}`: change the table's TTL attribute"
        )));
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .map_err(|e| StoreError::Permanent(e.to_string()))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(|e| store_error("UpdateTimeToLive", &e))?;
    tracing::info!(table = name, attribute, "TTL enabled");
    Ok(())
}
