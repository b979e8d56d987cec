//! The alerts Lambda binary itself, invoked through the Lambda Runtime API served by
//! `cargo lambda watch`, against DynamoDB, SNS and SQS in moto.
//!
//! `scripts/test.sh` starts moto and `cargo lambda watch` with `DEMAND_TABLE`,
//! `ALERTS_TABLE` and `ALERTS_TOPIC_ARN` in the function's environment, and exports
//! them with `FLYHIGH_LAMBDA_URL` and `FLYHIGH_MOTO_URL`; this test creates those
//! resources, writes the counters of a surge on a route of its own, invokes the
//! function with a scheduled event, and checks the alert in the report, in the alerts
//! table (published) and in an SQS queue subscribed to the topic.
//!
//! The route and the queue are new on every run: the tables and the topic are shared
//! with the other Lambda tests, and with earlier runs against the same moto.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use flyhigh_aws::demand::{DynamoAlertStore, DynamoDemandStore};
use flyhigh_core::demand::counting::bucket_of;
use flyhigh_core::demand::{CounterKey, CounterUpdate, Counts, Position};
use flyhigh_core::{Added, AlertFilter, AlertStore, DemandStore};
use flyhigh_schemas::{Alert, AlertRule, Severity};
use lambda_testkit::{env, invoke, moto_config};
use serde_json::{Value, json};

/// Buckets of ordinary demand before the surge: more than the rule's warm-up (30).
const ORDINARY_BUCKETS: i64 = 45;
/// Searches per bucket before the surge, and during its three buckets.
const ORDINARY: u64 = 4;
const SURGE: u64 = 200;

/// A route of three-letter codes no other run has used (the letters of the clock).
fn unique_route() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let letter = |i: u32| char::from(b'A' + ((nanos / 26u128.pow(i)) % 26) as u8);
    format!("Q{}{}-Z{}{}", letter(0), letter(1), letter(2), letter(3))
}

/// A counter of one shard holding `searches` searches.
fn counter(route: &str, bucket: i64, searches: u64, sequence: i64) -> CounterUpdate {
    let position = Position::new(&sequence.to_string(), None);
    CounterUpdate {
        key: CounterKey {
            route: route.into(),
            bucket,
            shard_id: "shardId-000000000000".into(),
        },
        counts: Counts {
            searches,
            passengers: searches,
            ..Counts::default()
        },
        first: position.clone(),
        last: position,
        arrived: chrono::DateTime::from_timestamp(bucket + 30, 0).unwrap_or_default(),
    }
}

fn scheduled_event(now: DateTime<Utc>) -> String {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/flyhigh-alerts-every-minute"],
        "detail": {},
    })
    .to_string()
}

/// Receives from `queue_url` until a message arrives or 20 seconds pass.
async fn receive_one(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> aws_sdk_sqs::types::Message {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let page = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if let Some(message) = page.messages().first() {
            assert_eq!(page.messages().len(), 1, "{:?}", page.messages());
            return message.clone();
        }
    }
    panic!("no alert reached {queue_url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_raises_records_and_publishes_a_surge_through_the_runtime_api() {
    let (demand_table, alerts_table) = (env("DEMAND_TABLE"), env("ALERTS_TABLE"));
    let topic_arn = env("ALERTS_TOPIC_ARN");
    let config = moto_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    flyhigh_aws::demand::create_demand_table(&dynamodb, &demand_table)
        .await
        .unwrap();
    flyhigh_aws::demand::create_alerts_table(&dynamodb, &alerts_table)
        .await
        .unwrap();
    let topic_name = topic_arn.rsplit(':').next().unwrap();
    let created = flyhigh_aws::sns::create_topic(&sns, topic_name)
        .await
        .unwrap();
    assert_eq!(created, topic_arn, "the function publishes to this topic");

    let route = unique_route();
    let queue_name = format!("alerts-{}", route.to_ascii_lowercase());
    let queue_url = flyhigh_aws::sqs::create_queue(&sqs, &queue_name)
        .await
        .unwrap();
    let filter = json!({ "route": [route] }).to_string();
    flyhigh_aws::sns::subscribe_queue(&sns, &sqs, &topic_arn, &queue_url, Some(&filter))
        .await
        .unwrap();

    // Ordinary demand, then three surging buckets ending with the last bucket the
    // function judges (it judges up to two minutes before now; a later invocation
    // judges more, empty, buckets).
    let now = Utc::now();
    let last = bucket_of(now - chrono::Duration::seconds(120), 60) - 60;
    let demand = DynamoDemandStore::new(dynamodb.clone(), &demand_table);
    for (i, bucket) in
        (0..ORDINARY_BUCKETS + 3).map(|i| (i, last - (ORDINARY_BUCKETS + 2 - i) * 60))
    {
        let searches = if i < ORDINARY_BUCKETS {
            ORDINARY
        } else {
            SURGE
        };
        let added = demand
            .add(&counter(&route, bucket, searches, i + 1))
            .await
            .unwrap();
        assert_eq!(added, Added::Applied);
    }
    demand
        .note_routes(std::slice::from_ref(&route), chrono::Utc::now())
        .await
        .unwrap();

    let (status, body) = invoke("alerts-lambda", &scheduled_event(now)).await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(report["failed_routes"], json!([]), "{body}");
    let raised: Vec<Alert> = serde_json::from_value(report["raised"].clone()).unwrap();
    let surges: Vec<&Alert> = raised.iter().filter(|a| a.route == route).collect();
    assert_eq!(surges.len(), 1, "one surge, one alert: {body}");
    let alert = surges[0];
    assert_eq!(
        (alert.rule, alert.severity),
        (AlertRule::RouteSurge, Severity::Critical),
        "{body}"
    );
    assert!(
        report["published"]["published"].as_u64() >= Some(1),
        "{body}"
    );

    let stored = DynamoAlertStore::new(dynamodb, &alerts_table)
        .alerts(&AlertFilter {
            rule: Some(AlertRule::RouteSurge),
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    let stored = stored
        .iter()
        .find(|s| s.alert.alert_id == alert.alert_id)
        .unwrap_or_else(|| panic!("{} is not in {alerts_table}", alert.alert_id));
    assert_eq!(&stored.alert, alert);
    assert!(stored.published_at.is_some(), "marked published");

    let message = receive_one(&sqs, &queue_url).await;
    let delivered: Alert = serde_json::from_str(message.body().unwrap_or_default())
        .unwrap_or_else(|e| panic!("raw delivery is the alert's JSON: {e}: {message:?}"));
    assert_eq!(&delivered, alert);
    let attribute = |name: &str| {
        message
            .message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_string)
    };
    assert_eq!(attribute("route"), Some(route.clone()));
    assert_eq!(attribute("severity").as_deref(), Some("critical"));
}
