//! The inventory Lambda binary itself, invoked through the Lambda Runtime API served
//! by `cargo lambda watch`, against DynamoDB and SQS in moto.
//!
//! `scripts/test.sh` starts moto and `cargo lambda watch` with `INVENTORY_TABLE` and
//! `DEAD_LETTER_QUEUE_URL` in the function's environment, and exports
//! `FLYHIGH_LAMBDA_URL` and `FLYHIGH_MOTO_URL`; this test creates those resources,
//! invokes the function with the fixture `KinesisEvent`, and reads the effects back.

use std::time::Duration;

use aws_config::BehaviorVersion;
use flyhigh_core::InventoryStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIXTURE: &str = include_str!("../../../handlers/tests/fixtures/kinesis-event.json");

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run this test through scripts/test.sh"))
}

/// POSTs `body` to `url` (plain HTTP on loopback) and returns the status and body.
async fn post(url: &str, path: &str, body: &str) -> (u16, String) {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect to cargo lambda watch");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    // The first invocation may compile the function.
    tokio::time::timeout(Duration::from_secs(900), stream.read_to_end(&mut response))
        .await
        .expect("invocation timed out")
        .unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_handles_a_kinesis_event_through_the_runtime_api() {
    let (lambda_url, moto_url) = (env("FLYHIGH_LAMBDA_URL"), env("FLYHIGH_MOTO_URL"));
    let (table, queue_url) = (env("INVENTORY_TABLE"), env("DEAD_LETTER_QUEUE_URL"));
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto_url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
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

    let (status, body) = post(
        &lambda_url,
        "/2015-03-31/functions/inventory-lambda/invocations",
        FIXTURE,
    )
    .await;
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
