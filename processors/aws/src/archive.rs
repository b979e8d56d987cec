//! Each shard's archive checkpoint in a DynamoDB table:
//! [`DynamoArchiveCheckpoints`] implements [`ArchiveCheckpoints`].
//!
//! The archive stages a batch's files, then moves the shard's checkpoint
//! conditionally on the version it read (see `flyhigh_core::archive::checkpoint`):
//! the conditional write here is what makes a redelivered or raced batch add no
//! row. One item per shard:
//!
//! ```text
//! attribute         type     value
//! ----------------  -------  ------------------------------------------------------------
//! shard_id          S        the table's hash key
//! version           N        1 for the first save, one more with every save
//! archived_through  S        Position::to_key (64-digit padded sequence, sub-sequence);
//!                            absent while nothing is archived
//! pending           L of S   staged files not yet promoted; absent when there are none
//! updated_at        S        RFC 3339, UTC, milliseconds: when it was saved (for operators)
//! ```
//!
//! | port method | calls | cost |
//! |---|---|---|
//! | `load` | one strongly consistent `GetItem` (a consumer that read a stale checkpoint would lose its save, or archive a batch twice) | 1 RCU |
//! | `save` | one `PutItem`, condition `attribute_not_exists(shard_id)` for version 1, else `version = :previous` (the new version - 1); failed → `Ok(false)`; version 0 is refused without a call, and an item past 400 KB ([`item_bytes`]) with a permanent error | 1 WCU per KB: under 1 KB with a batch's handful of pending keys, up to 392 KB for a part of a batch spanning thousands of partitions (the handler cuts parts to fit, `flyhigh_core::archive::cut_parts`) |
//!
//! [`create_archive_checkpoints_table`] makes the table for tests and local setups.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, BillingMode, KeyType};
use chrono::{DateTime, SecondsFormat, Utc};
use flyhigh_core::archive::ArchiveCheckpoint;
use flyhigh_core::ports::{ArchiveCheckpoints, StoreError};
use flyhigh_core::records::Position;

use crate::dynamodb::errors::store_error;
use crate::dynamodb::items::{Item, get_n, get_s, n, s};
use crate::dynamodb::{create_and_wait, key_element, string_attribute};

/// The table's hash key.
pub const SHARD_ID: &str = "shard_id";
const VERSION: &str = "version";
const ARCHIVED_THROUGH: &str = "archived_through";
const PENDING: &str = "pending";
const UPDATED_AT: &str = "updated_at";

/// One conditional `PutItem`.
#[derive(Debug, Clone, PartialEq)]
struct CheckpointPut {
    item: Item,
    condition: &'static str,
    names: HashMap<String, String>,
    values: Option<Item>,
}

fn checkpoint_key(shard_id: &str) -> Item {
    HashMap::from([(SHARD_ID.into(), s(shard_id))])
}

/// The save of `next` for `shard_id`, conditional on the version before it; `None`
/// for version 0, which no stored checkpoint can precede.
fn checkpoint_put(
    shard_id: &str,
    next: &ArchiveCheckpoint,
    updated_at: DateTime<Utc>,
) -> Option<CheckpointPut> {
    let previous = next.version.checked_sub(1)?;
    let mut item = checkpoint_key(shard_id);
    item.insert(VERSION.into(), n(next.version));
    if let Some(through) = &next.archived_through {
        item.insert(ARCHIVED_THROUGH.into(), s(through.to_key()));
    }
    if !next.pending.is_empty() {
        item.insert(
            PENDING.into(),
            AttributeValue::L(next.pending.iter().map(s).collect()),
        );
    }
    item.insert(
        UPDATED_AT.into(),
        s(updated_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    Some(if previous == 0 {
        CheckpointPut {
            item,
            condition: "attribute_not_exists(#shard_id)",
            names: HashMap::from([("#shard_id".into(), SHARD_ID.into())]),
            values: None,
        }
    } else {
        CheckpointPut {
            item,
            condition: "#version = :previous",
            names: HashMap::from([("#version".into(), VERSION.into())]),
            values: Some(HashMap::from([(":previous".into(), n(previous))])),
        }
    })
}

/// An attribute value's size as DynamoDB counts it toward the 400 KB item limit:
/// a string's UTF-8 bytes; a number's significant digits halved, plus one (at most
/// 21); a list or map 3 bytes, plus 1 per element and its size (a map's element
/// also counts its name); a boolean or null 1.
pub fn attribute_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => {
            let digits = number
                .trim_start_matches(['-', '+'])
                .trim_start_matches('0')
                .bytes()
                .filter(u8::is_ascii_digit)
                .count();
            (digits.div_ceil(2) + 1).min(21)
        }
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::L(values) => {
            3 + values.iter().map(|v| 1 + attribute_bytes(v)).sum::<usize>()
        }
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + attribute_bytes(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers
            .iter()
            .map(|n| attribute_bytes(&AttributeValue::N(n.clone())))
            .sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        _ => 1,
    }
}

/// An item's size as DynamoDB counts it: each attribute's name and value.
pub fn item_bytes(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + attribute_bytes(v)).sum()
}

/// DynamoDB's limit on an item's size.
pub const ITEM_LIMIT_BYTES: usize = flyhigh_core::archive::checkpoint::DYNAMODB_ITEM_LIMIT_BYTES;

/// The size of the item [`DynamoArchiveCheckpoints::save`] writes for `next`
/// (`None` for version 0, which is never written).
pub fn checkpoint_item_bytes(shard_id: &str, next: &ArchiveCheckpoint) -> Option<usize> {
    checkpoint_put(shard_id, next, Utc::now()).map(|put| item_bytes(&put.item))
}

/// Decodes a checkpoint item. An error names the broken attribute (the item was not
/// written by this adapter).
fn parse_checkpoint(item: &Item) -> Result<ArchiveCheckpoint, String> {
    let version =
        get_n::<u64>(item, VERSION)?.ok_or_else(|| format!("attribute `{VERSION}` is missing"))?;
    let archived_through = match item.get(ARCHIVED_THROUGH) {
        None => None,
        Some(_) => {
            let key = get_s(item, ARCHIVED_THROUGH)?;
            Some(Position::from_key(key).ok_or_else(|| {
                format!("attribute `{ARCHIVED_THROUGH}` is not a position: {key}")
            })?)
        }
    };
    let pending = match item.get(PENDING) {
        None => Vec::new(),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| match v {
                AttributeValue::S(key) => Ok(key.clone()),
                other => Err(format!(
                    "attribute `{PENDING}` holds a non-string: {other:?}"
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("attribute `{PENDING}` is not a list: {other:?}")),
    };
    Ok(ArchiveCheckpoint {
        archived_through,
        version,
        pending,
    })
}

/// A failed `PutItem`: `Ok` if its condition failed.
fn put_refused(err: &aws_sdk_dynamodb::error::SdkError<PutItemError>) -> Result<(), StoreError> {
    match err.as_service_error() {
        Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(()),
        _ => Err(store_error("PutItem", err)),
    }
}

/// The shards' archive checkpoints in a DynamoDB table of the design in the module
/// docs.
#[derive(Debug, Clone)]
pub struct DynamoArchiveCheckpoints {
    client: Client,
    table: String,
}

impl DynamoArchiveCheckpoints {
    /// Checkpoints in `table`, which must exist (see
    /// [`create_archive_checkpoints_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> DynamoArchiveCheckpoints {
        DynamoArchiveCheckpoints {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl ArchiveCheckpoints for DynamoArchiveCheckpoints {
    async fn load(&self, shard_id: &str) -> Result<Option<ArchiveCheckpoint>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(checkpoint_key(shard_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("GetItem", &e))?;
        out.item()
            .map(|item| {
                parse_checkpoint(item).map_err(|e| {
                    StoreError::Permanent(format!(
                        "table {}: archive checkpoint of {shard_id}: {e}",
                        self.table
                    ))
                })
            })
            .transpose()
    }

    async fn save(&self, shard_id: &str, next: &ArchiveCheckpoint) -> Result<bool, StoreError> {
        let Some(put) = checkpoint_put(shard_id, next, Utc::now()) else {
            return Ok(false);
        };
        let bytes = item_bytes(&put.item);
        if bytes > ITEM_LIMIT_BYTES {
            // DynamoDB would refuse it too (a ValidationException); no retry helps.
            return Err(StoreError::Permanent(format!(
                "table {}: archive checkpoint of {shard_id} is {bytes} bytes with {} pending \
                 keys, past DynamoDB's item limit of {ITEM_LIMIT_BYTES}",
                self.table,
                next.pending.len()
            )));
        }
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item))
            .condition_expression(put.condition)
            .set_expression_attribute_names(Some(put.names))
            .set_expression_attribute_values(put.values)
            .send()
            .await;
        match sent {
            Ok(_) => {
                tracing::debug!(table = %self.table, shard_id, version = next.version, "archive checkpoint saved");
                Ok(true)
            }
            Err(e) => put_refused(&e).map(|()| {
                tracing::debug!(table = %self.table, shard_id, version = next.version, "archive checkpoint saved by another consumer first");
                false
            }),
        }
    }
}

/// Creates the archive checkpoints table (on-demand capacity, string hash key
/// `shard_id`) and waits until it is `ACTIVE`. A table that already exists is fine.
///
/// Meant for tests and the local setup; production tables come from `infra/`.
pub async fn create_archive_checkpoints_table(
    client: &Client,
    name: &str,
) -> Result<(), StoreError> {
    let request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key_element(SHARD_ID, KeyType::Hash)?)
        .attribute_definitions(string_attribute(SHARD_ID)?);
    create_and_wait(client, name, request).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::{ErrorMetadata, SdkError};
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    const SEQUENCE: &str = "49590338271490256608559692538361571095921575989136588898";

    fn at() -> DateTime<Utc> {
        "2026-12-01T09:30:00.125Z".parse().unwrap()
    }

    fn committed() -> ArchiveCheckpoint {
        ArchiveCheckpoint::default().commit(
            Position::new(SEQUENCE, Some(3)),
            vec!["bookings/dt=2026-12-01/hour=09/b_x.parquet".into()],
        )
    }

    #[test]
    fn an_item_is_sized_as_dynamodb_counts_it() {
        assert_eq!(attribute_bytes(&s("abc")), 3);
        assert_eq!(attribute_bytes(&n(12345u64)), 4);
        assert_eq!(
            attribute_bytes(&AttributeValue::L(vec![s("ab"), s("c")])),
            3 + 3 + 2
        );
        let put = checkpoint_put("shardId-000000000001", &committed(), at()).unwrap();
        // Names and values: shard_id + version + archived_through + pending + updated_at.
        let pending = 3 + 1 + "bookings/dt=2026-12-01/hour=09/b_x.parquet".len();
        assert_eq!(
            item_bytes(&put.item),
            8 + 20 + 7 + 2 + 16 + 75 + 7 + pending + 10 + 24
        );
    }

    #[test]
    fn a_full_part_of_pending_keys_with_the_longest_shard_key_fits_an_item() {
        // The longest stream ARN (a 128-character name) and shard id.
        let key = format!(
            "arn:aws:kinesis:ap-southeast-2:123456789012:stream/{}/shardId-000000000123",
            "s".repeat(128)
        );
        let mut pending = Vec::new();
        let one = format!(
            "event_type=cancellation/dt=2026-12-01/hour=09/b_1a2b3c4d-shardId-000000000123_{SEQUENCE}-4294967295_{SEQUENCE}-4294967295.parquet"
        );
        while flyhigh_core::archive::pending_list_bytes(&pending) + 1 + one.len()
            <= flyhigh_core::archive::MAX_PENDING_BYTES
        {
            pending.push(one.clone());
        }
        let next = ArchiveCheckpoint {
            archived_through: Some(Position::new(SEQUENCE, Some(u32::MAX))),
            version: u64::MAX,
            pending,
        };
        let bytes = checkpoint_item_bytes(&key, &next).unwrap();
        assert!(bytes <= ITEM_LIMIT_BYTES, "{bytes}");
        assert!(
            bytes > ITEM_LIMIT_BYTES - flyhigh_core::archive::checkpoint::CHECKPOINT_RESERVE_BYTES
        );
    }

    #[test]
    fn a_checkpoint_round_trips_through_its_item() {
        let first = committed();
        let put = checkpoint_put("shardId-000000000001", &first, at()).unwrap();
        assert_eq!(put.item[SHARD_ID], s("shardId-000000000001"));
        assert_eq!(put.item[VERSION], n(1));
        assert_eq!(
            put.item[ARCHIVED_THROUGH],
            s(format!("{SEQUENCE:0>64}.0000000003"))
        );
        assert_eq!(put.item[UPDATED_AT], s("2026-12-01T09:30:00.125Z"));
        assert_eq!(parse_checkpoint(&put.item), Ok(first.clone()));

        let promoted = first.promoted();
        let put = checkpoint_put("shardId-000000000001", &promoted, at()).unwrap();
        assert!(!put.item.contains_key(PENDING));
        assert_eq!(parse_checkpoint(&put.item), Ok(promoted));
    }

    #[test]
    fn the_first_save_needs_no_item_and_later_ones_the_version_before() {
        let first = checkpoint_put("s", &committed(), at()).unwrap();
        assert_eq!(first.condition, "attribute_not_exists(#shard_id)");
        assert_eq!(first.names["#shard_id"], SHARD_ID);
        assert_eq!(first.values, None);
        let third = ArchiveCheckpoint {
            version: 3,
            ..committed()
        };
        let put = checkpoint_put("s", &third, at()).unwrap();
        assert_eq!(put.condition, "#version = :previous");
        assert_eq!(put.names["#version"], VERSION);
        assert_eq!(put.values.unwrap()[":previous"], n(2));
        assert_eq!(
            checkpoint_put("s", &ArchiveCheckpoint::default(), at()),
            None
        );
    }

    #[test]
    fn an_empty_pending_list_reads_as_none_pending() {
        let mut item = checkpoint_key("s");
        item.insert(VERSION.into(), n(2));
        item.insert(PENDING.into(), AttributeValue::L(Vec::new()));
        assert_eq!(
            parse_checkpoint(&item),
            Ok(ArchiveCheckpoint {
                archived_through: None,
                version: 2,
                pending: Vec::new(),
            })
        );
    }

    #[test]
    fn broken_items_name_the_attribute() {
        let mut item = checkpoint_key("s");
        assert!(parse_checkpoint(&item).unwrap_err().contains(VERSION));
        item.insert(VERSION.into(), n(1));
        item.insert(ARCHIVED_THROUGH.into(), s("not a key"));
        assert!(
            parse_checkpoint(&item)
                .unwrap_err()
                .contains(ARCHIVED_THROUGH)
        );
        item.remove(ARCHIVED_THROUGH);
        item.insert(PENDING.into(), AttributeValue::L(vec![n(1)]));
        assert!(parse_checkpoint(&item).unwrap_err().contains(PENDING));
    }

    #[test]
    fn a_failed_condition_is_a_refusal_and_throttling_transient() {
        let response =
            |status: u16| HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        let meta = |code: &str| ErrorMetadata::builder().code(code).message("m").build();
        let refused = SdkError::service_error(
            PutItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .meta(meta("ConditionalCheckFailedException"))
                    .build(),
            ),
            response(400),
        );
        assert_eq!(put_refused(&refused), Ok(()));
        let throttled = SdkError::service_error(
            PutItemError::generic(meta("ThrottlingException")),
            response(400),
        );
        assert!(matches!(
            put_refused(&throttled),
            Err(StoreError::Transient(_))
        ));
        let missing = SdkError::service_error(
            PutItemError::generic(meta("ResourceNotFoundException")),
            response(400),
        );
        assert!(matches!(
            put_refused(&missing),
            Err(StoreError::Permanent(_))
        ));
    }
}
