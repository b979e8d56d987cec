//! [`DynamoLedger`]: the event ledger in a DynamoDB table, for `ingest-lambda`, where
//! many short-lived instances answer one client's retries (feature `dynamodb`).
//!
//! One item per `event_id` (partition key `event_id`, S):
//! - `state`: `claimed` (a request holds it and is writing it) or `written` (durable
//!   in the stream);
//! - `claimed_at` (N): when it was claimed, in epoch milliseconds;
//! - `expires_at` (N): the table's TTL attribute, in epoch seconds: a claim's lease
//!   ([`CLAIM_LEASE`]) after the claim, [`WRITTEN_RETENTION`] after the write (as
//!   long as the stream keeps it, by default).
//!
//! A claim is one conditional PutItem per id (at most [`CLAIM_CONCURRENCY`] at a
//! time): it succeeds when there is no item or a lapsed claim, and otherwise returns
//! the item it found (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), which says
//! [`Claim::Written`] or [`Claim::InFlight`]. Settling marks written ids `written`
//! (UpdateItem) and deletes released claims (DeleteItem, only while still
//! `claimed`). TTL deletion is lazy (up to days late), so a claim is judged lapsed
//! by `claimed_at`, never by the item's absence.
//!
//! ```no_run
//! # async fn run() -> Result<(), flyhigh_ingest::LedgerError> {
//! use flyhigh_ingest::{Claim, DynamoLedger, Ledger};
//!
//! let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let ledger = DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), "flyhigh-ingest-ledger");
//! let id = uuid::Uuid::now_v7();
//! assert_eq!(ledger.claim(&[id]).await?, [Claim::New]);
//! ledger.settle(&[id], &[]).await?;
//! assert_eq!(ledger.claim(&[id]).await?, [Claim::Written]);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::ledger::{CLAIM_LEASE, Claim, Ledger, LedgerError};

/// How long a written id is remembered: the stream's default retention (24 h), so a
/// retry is answered `duplicate` for as long as consumers can still read the event.
pub const WRITTEN_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Most DynamoDB calls one claim or settlement has in flight at once.
pub const CLAIM_CONCURRENCY: usize = 32;

/// The partition key.
pub const EVENT_ID: &str = "event_id";
/// `claimed` or `written`.
pub const STATE: &str = "state";
/// Epoch milliseconds of the claim.
pub const CLAIMED_AT: &str = "claimed_at";
/// The TTL attribute, epoch seconds.
pub const EXPIRES_AT: &str = "expires_at";

const CLAIMED: &str = "claimed";
const WRITTEN: &str = "written";

/// How long [`DynamoLedger::create_table`] waits for the table to become `ACTIVE`.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);

/// The event ledger in the DynamoDB table `table` (see the module docs for its items).
#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    lease: Duration,
}

impl DynamoLedger {
    /// The ledger in `table`, through `client` (endpoint, region and credentials are
    /// the client's). Claims lapse after [`CLAIM_LEASE`].
    pub fn new(client: Client, table: impl Into<String>) -> DynamoLedger {
        DynamoLedger {
            client,
            table: table.into(),
            lease: CLAIM_LEASE,
        }
    }

    /// The same with another lease (tests).
    pub fn with_lease(mut self, lease: Duration) -> DynamoLedger {
        self.lease = lease;
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates `table` for a ledger (on demand, key `event_id`), waits until it is
    /// `ACTIVE` and turns TTL on for `expires_at`: for tests and first-time setup
    /// (deployments create it in their template).
    ///
    /// # Errors
    ///
    /// The table cannot be created (it exists already, no permission...), does not
    /// become active within two minutes, or TTL cannot be turned on.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), LedgerError> {
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(built(
                table,
                AttributeDefinition::builder()
                    .attribute_name(EVENT_ID)
                    .attribute_type(ScalarAttributeType::S)
                    .build(),
            )?)
            .key_schema(built(
                table,
                KeySchemaElement::builder()
                    .attribute_name(EVENT_ID)
                    .key_type(KeyType::Hash)
                    .build(),
            )?)
            .send()
            .await
            .map_err(|e| sdk_error("CreateTable", table, e))?;
        let deadline = tokio::time::Instant::now() + CREATE_TIMEOUT;
        loop {
            let described = client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", table, e))?;
            let status = described.table().and_then(|t| t.table_status());
            if status == Some(&TableStatus::Active) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LedgerError(format!(
                    "table {table} not ACTIVE after {CREATE_TIMEOUT:?} (status {status:?})"
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(built(
                table,
                TimeToLiveSpecification::builder()
                    .attribute_name(EXPIRES_AT)
                    .enabled(true)
                    .build(),
            )?)
            .send()
            .await
            .map_err(|e| sdk_error("UpdateTimeToLive", table, e))?;
        Ok(())
    }

    /// Claims one id: a conditional PutItem, and on a failed condition the item found.
    async fn claim_one(&self, id: Uuid) -> Result<Claim, LedgerError> {
        let now = SystemTime::now();
        let now_ms = epoch_millis(now);
        let lapsed =
            now_ms.saturating_sub(u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(EVENT_ID, key(id))
            .item(STATE, AttributeValue::S(CLAIMED.into()))
            .item(CLAIMED_AT, number(now_ms))
            .item(
                EXPIRES_AT,
                number(epoch_seconds(now + self.lease).saturating_add(1)),
            )
            .condition_expression(
                "attribute_not_exists(#id) OR (#state = :claimed AND #claimed_at < :lapsed)",
            )
            .expression_attribute_names("#id", EVENT_ID)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#claimed_at", CLAIMED_AT)
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
            .expression_attribute_values(":lapsed", number(lapsed))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::New),
            Err(SdkError::ServiceError(e)) => match e.err() {
                PutItemError::ConditionalCheckFailedException(failed) => match failed.item() {
                    Some(item) => Ok(claim_of(item)),
                    // An emulator that does not return the item: read it.
                    None => self.read_claim(id).await,
                },
                other => Err(service_error("PutItem", &self.table, other)),
            },
            Err(e) => Err(sdk_error("PutItem", &self.table, e)),
        }
    }

    /// What the item of an id already claimed says (strongly consistent read).
    async fn read_claim(&self, id: Uuid) -> Result<Claim, LedgerError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(EVENT_ID, key(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", &self.table, e))?;
        // Gone since the PutItem (released): another request may claim it right now,
        // so this one does not; the client retries.
        Ok(got.item().map_or(Claim::InFlight, claim_of))
    }

    async fn mark_written(&self, id: Uuid) -> Result<(), LedgerError> {
        let expires = epoch_seconds(SystemTime::now() + WRITTEN_RETENTION);
        self.client
            .update_item()
            .table_name(&self.table)
            .key(EVENT_ID, key(id))
            .update_expression("SET #state = :written, #expires_at = :expires")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#expires_at", EXPIRES_AT)
            .expression_attribute_values(":written", AttributeValue::S(WRITTEN.into()))
            .expression_attribute_values(":expires", number(expires))
            .send()
            .await
            .map_err(|e| sdk_error("UpdateItem", &self.table, e))?;
        Ok(())
    }

    async fn release(&self, id: Uuid) -> Result<(), LedgerError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(EVENT_ID, key(id))
            .condition_expression("#state = :claimed")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.into()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // Written meanwhile (a late receipt of an earlier request) or gone:
            // nothing to release.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(sdk_error("DeleteItem", &self.table, e)),
        }
    }
}

impl Ledger for DynamoLedger {
    async fn claim(&self, ids: &[Uuid]) -> Result<Vec<Claim>, LedgerError> {
        let outcomes: Vec<Result<Claim, LedgerError>> = futures::stream::iter(ids.iter().copied())
            .map(|id| self.claim_one(id))
            .buffered(CLAIM_CONCURRENCY)
            .collect()
            .await;
        if let Some(error) = outcomes.iter().find_map(|o| o.as_ref().err()).cloned() {
            // The whole request is answered `retry`: give back what it did claim, so
            // that the client's retry is not answered `in_flight` for a whole lease.
            let claimed: Vec<Uuid> = ids
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| matches!(o, Ok(Claim::New)))
                .map(|(id, _)| *id)
                .collect();
            if let Err(e) = self.settle(&[], &claimed).await {
                tracing::warn!(error = %e, "claims not released after a failed claim");
            }
            return Err(error);
        }
        outcomes.into_iter().collect()
    }

    async fn settle(&self, written: &[Uuid], released: &[Uuid]) -> Result<(), LedgerError> {
        let calls: Vec<(Uuid, bool)> = written
            .iter()
            .map(|id| (*id, true))
            .chain(released.iter().map(|id| (*id, false)))
            .collect();
        futures::stream::iter(calls)
            .map(|(id, was_written)| async move {
                if was_written {
                    self.mark_written(id).await
                } else {
                    self.release(id).await
                }
            })
            .buffer_unordered(CLAIM_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }
}

/// A request shape the SDK refused to build (a required field left out).
fn built<T>(
    table: &str,
    shape: Result<T, aws_sdk_dynamodb::error::BuildError>,
) -> Result<T, LedgerError> {
    shape.map_err(|e| LedgerError(format!("CreateTable {table}: {e}")))
}

/// What an existing item says of a claim that could not be taken.
fn claim_of(item: &HashMap<String, AttributeValue>) -> Claim {
    match item.get(STATE) {
        Some(AttributeValue::S(state)) if state == WRITTEN => Claim::Written,
        _ => Claim::InFlight,
    }
}

fn key(id: Uuid) -> AttributeValue {
    AttributeValue::S(id.hyphenated().to_string())
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn epoch_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The service's error code and message, on one line.
fn service_error(operation: &str, table: &str, e: &impl ProvideErrorMetadata) -> LedgerError {
    LedgerError(format!(
        "DynamoDB {operation} on {table}: {}: {}",
        e.code().unwrap_or("unknown error"),
        e.message().unwrap_or("no message")
    ))
}

/// An SDK error: the service's code and message when it answered, else what failed
/// (no connection, timeout...) with its causes.
fn sdk_error<E, R>(operation: &str, table: &str, e: SdkError<E, R>) -> LedgerError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(service) => service_error(operation, table, service.err()),
        _ => LedgerError(format!(
            "DynamoDB {operation} on {table}: {}",
            DisplayErrorContext(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;

    #[test]
    fn a_written_item_is_written_and_anything_else_in_flight() {
        let item =
            |state: &str| HashMap::from([(STATE.to_string(), AttributeValue::S(state.into()))]);
        assert_eq!(claim_of(&item(WRITTEN)), Claim::Written);
        assert_eq!(claim_of(&item(CLAIMED)), Claim::InFlight);
        assert_eq!(claim_of(&HashMap::new()), Claim::InFlight);
    }

    #[test]
    fn a_service_error_says_its_code_and_message() {
        let e = PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .meta(
                    aws_sdk_dynamodb::error::ErrorMetadata::builder()
                        .code("ConditionalCheckFailedException")
                        .message("The conditional request failed")
                        .build(),
                )
                .build(),
        );
        assert_eq!(
            service_error("PutItem", "ledger", &e).0,
            "DynamoDB PutItem on ledger: ConditionalCheckFailedException: The conditional request failed"
        );
    }
}
