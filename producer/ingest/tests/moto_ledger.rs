//! [`DynamoLedger`] against DynamoDB in moto, through the real SDK: the claims and
//! settlements of the `MemoryLedger` unit tests, a lapsed claim, a released one, and
//! concurrent claims of one id (exactly one is `New`).
//!
//! Needs `FLYHIGH_MOTO_URL` (exported by `scripts/test.sh`; by hand:
//! `scripts/moto.sh start && source target/moto.env`, then
//! `cargo test -p flyhigh-ingest --features dynamodb --test moto_ledger`). Each test
//! has its own table.
#![cfg(feature = "dynamodb")]

use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use flyhigh_ingest::dynamodb::{CLAIMED_AT, EVENT_ID, EXPIRES_AT, STATE, WRITTEN_RETENTION};
use flyhigh_ingest::{CLAIM_LEASE, Claim, DynamoLedger, Ledger};
use uuid::Uuid;

fn moto_url() -> String {
    match std::env::var("FLYHIGH_MOTO_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "FLYHIGH_MOTO_URL is not set; these tests need a moto server. \
             Start moto: scripts/moto.sh start && source target/moto.env"
        ),
    }
}

/// A client for moto, and a new ledger table named after the test.
async fn ledger(test: &str) -> (Client, DynamoLedger) {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await;
    let client = Client::new(&sdk);
    let table = format!("ingest-ledger-{test}-{}", Uuid::now_v7().simple());
    DynamoLedger::create_table(&client, &table).await.unwrap();
    (client.clone(), DynamoLedger::new(client, table))
}

async fn item(
    client: &Client,
    ledger: &DynamoLedger,
    id: Uuid,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(ledger.table())
        .key(EVENT_ID, AttributeValue::S(id.to_string()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item()
        .cloned()
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> u64 {
    item[name].as_n().unwrap().parse().unwrap()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_claim_is_new_then_in_flight_then_written() {
    let (client, ledger) = ledger("states").await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(
        ledger.claim(&[a, b]).await.unwrap(),
        [Claim::New, Claim::New]
    );
    assert_eq!(ledger.claim(&[a]).await.unwrap(), [Claim::InFlight]);

    let claimed = item(&client, &ledger, a).await.unwrap();
    assert_eq!(claimed[STATE].as_s().unwrap(), "claimed");
    let expires = number(&claimed, EXPIRES_AT);
    let lease = CLAIM_LEASE.as_secs();
    assert!((now_secs() + lease - 2..=now_secs() + lease + 2).contains(&expires));
    assert!(number(&claimed, CLAIMED_AT) / 1000 <= now_secs());

    ledger.settle(&[a], &[b]).await.unwrap();
    assert_eq!(
        ledger.claim(&[a, b]).await.unwrap(),
        [Claim::Written, Claim::New]
    );
    let written = item(&client, &ledger, a).await.unwrap();
    assert_eq!(written[STATE].as_s().unwrap(), "written");
    let retention = WRITTEN_RETENTION.as_secs();
    assert!(
        (now_secs() + retention - 2..=now_secs() + retention + 2)
            .contains(&number(&written, EXPIRES_AT))
    );
}

#[tokio::test]
async fn a_lapsed_claim_can_be_taken_again_but_a_write_never_lapses() {
    let (_client, ledger) = ledger("lapse").await;
    let ledger = ledger.with_lease(Duration::from_millis(1));
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(
        ledger.claim(&[a, b]).await.unwrap(),
        [Claim::New, Claim::New]
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(ledger.claim(&[a]).await.unwrap(), [Claim::New]);
    ledger.settle(&[b], &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(ledger.claim(&[b]).await.unwrap(), [Claim::Written]);
}

#[tokio::test]
async fn a_released_claim_is_new_again_and_a_release_never_undoes_a_write() {
    let (client, ledger) = ledger("release").await;
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    ledger.claim(&[a, b]).await.unwrap();
    ledger.settle(&[b], &[a]).await.unwrap();
    assert!(item(&client, &ledger, a).await.is_none());
    // A late release of a written id (and of one never claimed) changes nothing.
    ledger.settle(&[], &[b, Uuid::now_v7()]).await.unwrap();
    assert_eq!(
        ledger.claim(&[a, b]).await.unwrap(),
        [Claim::New, Claim::Written]
    );
}

#[tokio::test]
async fn a_batch_larger_than_the_concurrency_keeps_its_order() {
    let (_client, ledger) = ledger("batch").await;
    let ids: Vec<Uuid> = (0..100).map(|_| Uuid::now_v7()).collect();
    ledger.claim(&ids[..50]).await.unwrap();
    ledger.settle(&ids[..25], &[]).await.unwrap();
    let claims = ledger.claim(&ids).await.unwrap();
    assert_eq!(claims.len(), 100);
    assert!(claims[..25].iter().all(|c| *c == Claim::Written));
    assert!(claims[25..50].iter().all(|c| *c == Claim::InFlight));
    assert!(claims[50..].iter().all(|c| *c == Claim::New));
}

#[tokio::test]
async fn of_concurrent_claims_of_one_id_exactly_one_is_new() {
    let (_client, ledger) = ledger("race").await;
    for _ in 0..5 {
        let id = [Uuid::now_v7()];
        let claims = futures::future::join_all((0..8).map(|_| ledger.claim(&id))).await;
        let claims: Vec<Claim> = claims.into_iter().map(|c| c.unwrap()[0]).collect();
        assert_eq!(
            claims.iter().filter(|c| **c == Claim::New).count(),
            1,
            "{claims:?}"
        );
        assert!(
            claims
                .iter()
                .all(|c| matches!(c, Claim::New | Claim::InFlight))
        );
    }
}

#[tokio::test]
async fn a_missing_table_is_an_error_with_the_service_s_code() {
    let (client, _ledger) = ledger("missing").await;
    let ledger = DynamoLedger::new(client, "no-such-ledger-table");
    let error = ledger.claim(&[Uuid::now_v7()]).await.unwrap_err();
    assert!(
        error
            .0
            .contains("PutItem on no-such-ledger-table: ResourceNotFoundException"),
        "{error}"
    );
}
