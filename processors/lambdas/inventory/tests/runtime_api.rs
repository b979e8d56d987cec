//! The inventory Lambda binary itself, invoked through the Lambda Runtime API served
//! by `cargo lambda watch`, against DynamoDB and SQS in moto.
//!
//! `scripts/test.sh` starts moto and `cargo lambda watch` with `INVENTORY_TABLE` and
//! `DEAD_LETTER_QUEUE_URL` in the function's environment, and exports
//! `FLYHIGH_LAMBDA_URL` and `FLYHIGH_MOTO_URL`; this test creates those resources,
//! invokes the function with the fixture `KinesisEvent`, and reads the effects back.

use flyhigh_core::InventoryStore;
use lambda_testkit::{env, invoke, moto_config};

const FIXTURE: &str = include_str!("../../../handlers/tests/fixtures/kinesis-event.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_handles_a_kinesis_event_through_the_runtime_api() {
    let (table, queue_url) = (env("INVENTORY_TABLE"), env("DEAD_LETTER_QUEUE_URL"));
    let config = moto_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    flyhigh_aws::dynamodb::create_table(&dynamodb, &table)
        .await
        .unwrap();
    let queue_name = queue_url.rsplit('/').next().unwrap();
    let created = flyhigh_aws::sqs::create_queue(&sqs, queue_name)
        .await
        .unwrap();
    assert_eq!(created.rsplit('/').next(), Some(queue_name));

    let (status, body) = invoke("inventory-lambda", FIXTURE).await;
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{body}"
    );

    let store = flyhigh_aws::dynamodb::DynamoInventoryStore::new(dynamodb, &table);
    let inventory = store.inventory().await.unwrap();
    let sold = |cabin: &str| {
        inventory
            .iter()
            .find(|c| c.flight_id == "FH0777-20261201" && c.cabin.as_str() == cabin)
            .map(|c| c.sold)
    };
    assert_eq!((sold("economy"), sold("business")), (Some(3), Some(1)));

    let out = sqs
        .receive_message()
        .queue_url(&created)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let letters: Vec<flyhigh_core::DeadLetter> = out
        .messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason_kind, "not_utf8");
}
