//! [`DynamoAlertStore`]: alerts, their outbox and the rules' states in the alerts
//! table (layout and costs in the parent module's docs). The only code that calls
//! DynamoDB for them.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    BillingMode, DeleteRequest, GlobalSecondaryIndex, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, Put, PutRequest, TransactWriteItem, WriteRequest,
};
use chrono::{DateTime, Utc};
use flyhigh_core::demand::{CabinAlertState, RouteState};
use flyhigh_core::inventory::CabinKey;
use flyhigh_core::inventory::MAX_TRANSACTION_ITEMS;
use flyhigh_core::ports::{AlertFilter, AlertStore, StoreError, StoredAlert};
use flyhigh_schemas::Alert;

use super::Outcome;
use super::alert_items::{
    self, ALERT, BY_TIME_INDEX, ORDER, OUTBOX_INDEX, StatePut, TIME_PK, TIME_SK,
};
use super::errors::{condition_failures, put_refused, transaction_refused};
use super::{BATCH_WRITE_MAX_ITEMS, batch_write, conditional_update, page_limit, query_items};
use crate::dynamodb::errors::store_error;
use crate::dynamodb::items::{Item, PK, SK};
use crate::dynamodb::{
    BATCH_GET_MAX_KEYS, batch_get_consistent, create_and_wait, key_element, string_attribute,
};

/// Alerts, the outbox and the rules' states in a DynamoDB table of the design in the
/// module docs.
#[derive(Debug, Clone)]
pub struct DynamoAlertStore {
    client: Client,
    table: String,
}

impl DynamoAlertStore {
    /// A store on `table`, which must exist with its indexes (see
    /// [`create_alerts_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> DynamoAlertStore {
        DynamoAlertStore {
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

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", &e))?;
        Ok(out.item)
    }

    /// Saves a state conditional on its version and records `alerts` with it: in one
    /// transaction when they fit ([`ALERTS_PER_TRANSACTION`] with the state), else
    /// staged first ([`save_staged`](Self::save_staged)). The state's condition
    /// failing is `Ok(false)`.
    async fn save(&self, put: Option<StatePut>, alerts: &[Alert]) -> Result<bool, StoreError> {
        // Version 0: no stored state can be version -1.
        let Some(put) = put else {
            return Ok(false);
        };
        if alerts.is_empty() {
            return self.put_state(put).await;
        }
        if alerts.len() > ALERTS_PER_TRANSACTION {
            return self.save_staged(put, alerts).await;
        }
        let state_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(put.item))
            .condition_expression(put.condition)
            .set_expression_attribute_names(Some(put.names))
            .set_expression_attribute_values((!put.values.is_empty()).then_some(put.values))
            .build()
            .map_err(|e| StoreError::Permanent(e.to_string()))?;
        self.transact(Some(state_put), alerts).await
    }

    /// A state's conditional `PutItem`; `Ok(false)` when its condition fails.
    async fn put_state(&self, put: StatePut) -> Result<bool, StoreError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item))
            .condition_expression(put.condition)
            .set_expression_attribute_names(Some(put.names))
            .set_expression_attribute_values((!put.values.is_empty()).then_some(put.values))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) => put_refused(&e).map(|()| false),
        }
    }

    /// Records `alerts` (at most [`ALERTS_PER_TRANSACTION`]), with `state` first
    /// when given, in one transaction. An alert already recorded (its own condition
    /// fails) is dropped from the transaction, which is sent again; the state's
    /// condition failing is `Ok(false)`.
    async fn transact(&self, state: Option<Put>, alerts: &[Alert]) -> Result<bool, StoreError> {
        let base = usize::from(state.is_some());
        let mut remaining: Vec<&Alert> = alerts.iter().collect();
        for _ in 0..=alerts.len() {
            if remaining.is_empty() && state.is_none() {
                return Ok(true);
            }
            let mut actions: Vec<TransactWriteItem> = state
                .iter()
                .map(|put| TransactWriteItem::builder().put(put.clone()).build())
                .collect();
            for alert in &remaining {
                actions.extend(
                    alert_items::record_items(&self.table, alert).map_err(StoreError::Permanent)?,
                );
            }
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            match condition_failures(&err) {
                // Action 0 is the state, if any; then two per alert (the alert, its
                // outbox entry).
                Some(failed) if base == 1 && failed.contains(&0) => return Ok(false),
                Some(failed) if !failed.is_empty() => {
                    let recorded: Vec<usize> = failed.iter().map(|i| (i - base) / 2).collect();
                    remaining = remaining
                        .into_iter()
                        .enumerate()
                        .filter(|(j, _)| !recorded.contains(j))
                        .map(|(_, a)| a)
                        .collect();
                }
                _ => return transaction_refused(&err).map(|()| false),
            }
        }
        Err(StoreError::Transient(format!(
            "table {}: a state save kept failing its alerts' conditions",
            self.table
        )))
    }

    /// Saves a state with more alerts than one transaction holds, in three steps:
    ///
    /// 1. **stage** the alerts in their own partition (`STAGE#<save id>`, out of the
    ///    outbox and the listing), with `BatchWriteItem`;
    /// 2. **save the state** conditionally, marked `staged = <save id>`: this is the
    ///    decision, as the one transaction is for fewer alerts;
    /// 3. **record** the staged alerts (transactions of [`ALERTS_PER_TRANSACTION`],
    ///    each alert conditional on its id as [`AlertStore::record`] does), then take
    ///    the mark off and delete the staged copies.
    ///
    /// A crash in step 1, or a lost race in step 2, leaves staged copies nobody
    /// records (deleted when the race is seen; a crash leaves a few inert items) and
    /// no state: the judgement is made again. A crash in step 3 leaves the state
    /// marked: the next read of that state ([`route_state`](AlertStore::route_state),
    /// [`cabin_states`](AlertStore::cabin_states)) records the staged alerts before
    /// answering, so no judgement is made on a state whose alerts are not all
    /// recorded. Recording is idempotent by alert id, so finishing twice records each
    /// once: no alert is lost or doubled.
    async fn save_staged(&self, mut put: StatePut, alerts: &[Alert]) -> Result<bool, StoreError> {
        let save_id = alert_items::save_id(&put.item, alerts).map_err(StoreError::Permanent)?;
        let staged = alerts
            .iter()
            .enumerate()
            .map(|(i, a)| alert_items::staged_item(&save_id, i, a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::Permanent)?;
        for chunk in staged.chunks(BATCH_WRITE_MAX_ITEMS) {
            let requests = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|p| WriteRequest::builder().put_request(p).build())
                        .map_err(|e| StoreError::Permanent(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            batch_write(&self.client, &self.table, requests).await?;
        }
        let key = HashMap::from([
            (PK.into(), put.item[PK].clone()),
            (SK.into(), put.item[SK].clone()),
        ]);
        put.item
            .insert(alert_items::STAGED.into(), string_value(&save_id));
        if !self.put_state(put).await? {
            self.drop_staged(&save_id, alerts.len()).await;
            return Ok(false);
        }
        self.record_staged(key, &save_id, alerts).await?;
        Ok(true)
    }

    /// Step 3 of [`save_staged`](Self::save_staged): records the alerts, unmarks the
    /// state, deletes the staged copies.
    async fn record_staged(
        &self,
        key: Item,
        save_id: &str,
        alerts: &[Alert],
    ) -> Result<(), StoreError> {
        for chunk in alerts.chunks(ALERTS_PER_TRANSACTION) {
            if !self.transact(None, chunk).await? {
                // A conflicting transaction: the mark stays, the next read finishes.
                return Err(StoreError::Transient(format!(
                    "table {}: staged alerts of save {save_id} met a conflicting transaction",
                    self.table
                )));
            }
        }
        // A failed condition: another reader finished it first.
        conditional_update(
            &self.client,
            &self.table,
            alert_items::unstage_write(key, save_id),
        )
        .await?;
        tracing::info!(table = %self.table, save_id, alerts = alerts.len(), "staged alerts recorded");
        self.drop_staged(save_id, alerts.len()).await;
        Ok(())
    }

    /// Deletes a save's staged copies; a failure leaves inert items, logged.
    async fn drop_staged(&self, save_id: &str, count: usize) {
        let keys: Vec<Item> = (0..count)
            .map(|i| alert_items::staged_key(save_id, i))
            .collect();
        for chunk in keys.chunks(BATCH_WRITE_MAX_ITEMS) {
            let requests: Result<Vec<WriteRequest>, _> = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect();
            let sent = match requests {
                Ok(requests) => batch_write(&self.client, &self.table, requests).await,
                Err(e) => Err(StoreError::Permanent(e.to_string())),
            };
            if let Err(e) = sent {
                tracing::warn!(table = %self.table, save_id, error = %e, "staged alerts not deleted");
                return;
            }
        }
    }

    /// Finishes a save a crash cut short in step 3, if `item` (a state) is marked.
    async fn finish_staged(&self, item: &Item) -> Result<(), StoreError> {
        let Some(save_id) = alert_items::staged_of(item) else {
            return Ok(());
        };
        let save_id = save_id.to_string();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", string_value(&alert_items::stage_pk(&save_id)))
            .consistent_read(true);
        let alerts = query_items(query, None)
            .await?
            .iter()
            .map(|i| alert_items::parse_staged(i).map_err(|e| self.broken("staged alert", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let key = HashMap::from([(PK.into(), item[PK].clone()), (SK.into(), item[SK].clone())]);
        tracing::warn!(table = %self.table, save_id, alerts = alerts.len(), "finishing a state save cut short");
        self.record_staged(key, &save_id, &alerts).await
    }
}

/// Alerts one transaction records with a state (two items each, plus the state, in
/// DynamoDB's 100): a save of more stages them.
pub(crate) const ALERTS_PER_TRANSACTION: usize = (MAX_TRANSACTION_ITEMS - 1) / 2;

fn string_value(v: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(v.to_string())
}

impl AlertStore for DynamoAlertStore {
    async fn record(&self, alert: &Alert) -> Result<bool, StoreError> {
        let actions =
            alert_items::record_items(&self.table, alert).map_err(StoreError::Permanent)?;
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match sent {
            Ok(_) => {
                tracing::info!(table = %self.table, alert_id = %alert.alert_id, "alert recorded");
                Ok(true)
            }
            // The alert item's condition: an alert with this id exists.
            Err(e) => transaction_refused(&e).map(|()| false),
        }
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Alert>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = alert_items::pending_query();
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(OUTBOX_INDEX)
            .key_condition_expression(key.text)
            .set_expression_attribute_names(Some(key.names))
            .set_expression_attribute_values(Some(key.values))
            .consistent_read(true)
            .limit(page_limit(limit));
        query_items(query, Some(limit))
            .await?
            .iter()
            .map(|item| alert_items::parse_outbox(item).map_err(|e| self.broken("outbox", e)))
            .collect()
    }

    async fn claim(
        &self,
        alert_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let write =
            alert_items::claim_write(alert_id, now, until).map_err(StoreError::Permanent)?;
        Ok(matches!(
            conditional_update(&self.client, &self.table, write).await?,
            Outcome::Applied
        ))
    }

    async fn mark_published(&self, alert_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        let actions =
            alert_items::mark_items(&self.table, alert_id, at).map_err(StoreError::Permanent)?;
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // No such alert: nothing to mark, as in every store.
            Err(e) => transaction_refused(&e),
        }
    }

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<StoredAlert>, StoreError> {
        if filter.limit == Some(0) {
            return Ok(Vec::new());
        }
        let listing = alert_items::listing(filter).map_err(StoreError::Permanent)?;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_TIME_INDEX)
            .key_condition_expression(listing.key)
            .set_filter_expression(listing.filter)
            .set_expression_attribute_names(Some(listing.names))
            .set_expression_attribute_values(Some(listing.values))
            // Newest first: the latest `limit` are the first `limit` read.
            .scan_index_forward(false)
            .set_limit(filter.limit.map(page_limit));
        let stored = query_items(query, filter.limit)
            .await?
            .iter()
            .map(|item| alert_items::parse_stored(item).map_err(|e| self.broken("alert", e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(filter.select(stored))
    }

    async fn route_state(&self, route: &str) -> Result<Option<RouteState>, StoreError> {
        let Some(item) = self.get(alert_items::route_state_key(route)).await? else {
            return Ok(None);
        };
        self.finish_staged(&item).await?;
        alert_items::parse_route_state(&item)
            .map(Some)
            .map_err(|e| self.broken("route state", e))
    }

    async fn save_route_state(
        &self,
        route: &str,
        state: &RouteState,
        alerts: &[Alert],
    ) -> Result<bool, StoreError> {
        let put = alert_items::route_state_put(route, state).map_err(StoreError::Permanent)?;
        self.save(put, alerts).await
    }

    async fn evaluator_cursor(&self) -> Result<Option<String>, StoreError> {
        self.get(alert_items::cursor_key())
            .await?
            .map(|item| alert_items::parse_cursor(&item).map_err(|e| self.broken("cursor", e)))
            .transpose()
    }

    async fn save_evaluator_cursor(&self, route: &str) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(alert_items::cursor_item(route)))
            .send()
            .await
            .map_err(|e| store_error("PutItem", &e))?;
        Ok(())
    }

    async fn cabin_states(
        &self,
        keys: &[CabinKey],
    ) -> Result<HashMap<CabinKey, CabinAlertState>, StoreError> {
        // BatchGetItem refuses a request that names one key twice.
        let mut seen = HashSet::new();
        let unique: Vec<&CabinKey> = keys.iter().filter(|k| seen.insert(*k)).collect();
        let mut items = Vec::new();
        for chunk in unique.chunks(BATCH_GET_MAX_KEYS) {
            let keys = chunk
                .iter()
                .map(|k| alert_items::cabin_state_key(k))
                .collect();
            // Latches are read to decide whether to raise: the latest, always.
            items.extend(batch_get_consistent(&self.client, &self.table, keys).await?);
        }
        for item in &items {
            self.finish_staged(item).await?;
        }
        items
            .iter()
            .map(|item| {
                alert_items::parse_cabin_state(item).map_err(|e| self.broken("cabin state", e))
            })
            .collect()
    }

    async fn save_cabin_state(
        &self,
        key: &CabinKey,
        state: &CabinAlertState,
        alerts: &[Alert],
    ) -> Result<bool, StoreError> {
        let put = alert_items::cabin_state_put(key, state).map_err(StoreError::Permanent)?;
        self.save(put, alerts).await
    }
}

/// Creates the alerts table (on-demand capacity, string keys `pk` and `sk`, the
/// indexes [`OUTBOX_INDEX`] and [`BY_TIME_INDEX`]) and waits until it is `ACTIVE`. A
/// table that already exists is fine if it has both indexes.
///
/// Meant for tests and the local setup; production tables come from `infra/`.
pub async fn create_alerts_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let permanent = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Permanent(e.to_string());
    let outbox = LocalSecondaryIndex::builder()
        .index_name(OUTBOX_INDEX)
        .key_schema(key_element(PK, KeyType::Hash)?)
        .key_schema(key_element(ORDER, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .non_key_attributes(ALERT)
                .build(),
        )
        .build()
        .map_err(permanent)?;
    let by_time = GlobalSecondaryIndex::builder()
        .index_name(BY_TIME_INDEX)
        .key_schema(key_element(TIME_PK, KeyType::Hash)?)
        .key_schema(key_element(TIME_SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(permanent)?;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key_element(PK, KeyType::Hash)?)
        .key_schema(key_element(SK, KeyType::Range)?)
        .local_secondary_indexes(outbox)
        .global_secondary_indexes(by_time);
    for attr in [PK, SK, ORDER, TIME_PK, TIME_SK] {
        request = request.attribute_definitions(string_attribute(attr)?);
    }
    let table = create_and_wait(client, name, request).await?;
    let has = |index: &str| {
        table
            .local_secondary_indexes()
            .iter()
            .any(|i| i.index_name() == Some(index))
            || table
                .global_secondary_indexes()
                .iter()
                .any(|i| i.index_name() == Some(index))
    };
    for index in [OUTBOX_INDEX, BY_TIME_INDEX] {
        if !has(index) {
            return Err(StoreError::Permanent(format!(
                "table {name} exists without the index `{index}` the alert store reads: \
                 recreate it or add the index"
            )));
        }
    }
    Ok(())
}
