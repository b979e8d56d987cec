//! What scripts/moto_server.py fixes in moto 5.2's DynamoDB transactions, pinned
//! through the real SDK: a cancelled `TransactWriteItems` must not erase writes
//! that other requests committed while it ran.
//!
//! Plain moto 5.2.5 snapshots the whole table for every item of a transaction and
//! puts the snapshot back when the transaction is cancelled, so an update that
//! another request thread committed while the snapshot was being copied vanishes.
//! Against plain `moto_server` this test loses updates; against the launcher
//! (started by `start_moto`) it must lose none.
//!
//! Needs `FLYHIGH_MOTO_URL` (set by `scripts/test.sh`).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, PutRequest, TransactWriteItem, WriteRequest,
};
use flyhigh_aws::dynamodb::create_table;

/// Items in the table: they make each snapshot of it take a while, which is the
/// window in which other writes are erased.
const ITEMS: usize = 2_000;
const CANCELLED_TRANSACTIONS: usize = 30;
const COMMITTED_UPDATES: usize = 400;
const UPDATE_WRITERS: usize = 4;

async fn client() -> Client {
    let url = flyhigh_testkit::moto_url();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    Client::new(&config)
}

fn item(pk: String) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(pk)),
        ("sk".to_string(), AttributeValue::S("item".into())),
        ("payload".to_string(), AttributeValue::S("x".repeat(64))),
    ])
}

/// A transaction that always fails its condition: a put, plus a check that an
/// item which never exists does.
fn doomed_transaction(table: &str, n: usize) -> Vec<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item(format!("cancelled-{n}"))))
        .build()
        .unwrap();
    let check = ConditionCheck::builder()
        .table_name(table)
        .key("pk", AttributeValue::S("never-written".into()))
        .key("sk", AttributeValue::S("item".into()))
        .condition_expression("attribute_exists(pk)")
        .build()
        .unwrap();
    vec![
        TransactWriteItem::builder().put(put).build(),
        TransactWriteItem::builder().condition_check(check).build(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_transaction_erases_no_write_committed_meanwhile() {
    let client = client().await;
    let suffix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000;
    let table = format!("moto-transactions-{suffix}");
    create_table(&client, &table).await.unwrap();
    for chunk in (0..ITEMS).collect::<Vec<_>>().chunks(25) {
        let writes: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                let put = PutRequest::builder()
                    .set_item(Some(item(format!("item-{i}"))))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let out = client
            .batch_write_item()
            .request_items(&table, writes)
            .send()
            .await
            .unwrap();
        assert!(out.unprocessed_items().is_none_or(|u| u.is_empty()));
    }

    let cancelling = {
        let (client, table) = (client.clone(), table.clone());
        tokio::spawn(async move {
            for n in 0..CANCELLED_TRANSACTIONS {
                let err = client
                    .transact_write_items()
                    .set_transact_items(Some(doomed_transaction(&table, n)))
                    .send()
                    .await
                    .expect_err("the condition never holds");
                assert_eq!(err.code(), Some("TransactionCanceledException"), "{err:?}");
            }
        })
    };
    // Counter increments spread over the table, as the inventory's are over its
    // flight items.
    let writers: Vec<_> = (0..UPDATE_WRITERS)
        .map(|w| {
            let (client, table) = (client.clone(), table.clone());
            tokio::spawn(async move {
                for i in (w..COMMITTED_UPDATES).step_by(UPDATE_WRITERS) {
                    client
                        .update_item()
                        .table_name(&table)
                        .key(
                            "pk",
                            AttributeValue::S(format!("item-{}", i * 7919 % ITEMS)),
                        )
                        .key("sk", AttributeValue::S("item".into()))
                        .update_expression("ADD hits :one")
                        .expression_attribute_values(":one", AttributeValue::N("1".into()))
                        .send()
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    cancelling.await.unwrap();
    for writer in writers {
        writer.await.unwrap();
    }

    let mut hits = 0;
    let mut cancelled = 0;
    let mut pages = client
        .scan()
        .table_name(&table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.unwrap();
        if let Some(AttributeValue::N(n)) = item.get("hits") {
            hits += n.parse::<usize>().unwrap();
        }
        if matches!(item.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("cancelled-")) {
            cancelled += 1;
        }
    }
    assert_eq!(cancelled, 0, "a cancelled transaction left its put behind");
    assert_eq!(
        hits,
        COMMITTED_UPDATES,
        "{} committed updates were erased by cancelled transactions (plain moto 5.2 does this; start moto with scripts/moto_server.py)",
        COMMITTED_UPDATES - hits
    );
}
