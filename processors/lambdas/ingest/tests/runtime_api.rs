//! The ingest Lambda binary itself, invoked through the Lambda Runtime API that
//! `cargo lambda watch` serves, with API Gateway HTTP API (payload 2.0) events whose
//! JWT claims name the caller; Kinesis is kinesalite behind a [`FaultProxy`],
//! DynamoDB (the ledger) and SQS (dead letters) are moto.
//!
//! `scripts/test.sh` (`scripts/lib/services.sh`) starts ingest-lambda's watch with
//! `AWS_ENDPOINT_URL_KINESIS` on `FLYHIGH_INGEST_PROXY_PORT`, where nothing listens
//! yet: this test binds the proxy there, in front of `FLYHIGH_KINESALITE_URL`, and
//! creates the stream (`FLYHIGH_INGEST_STREAM`), the ledger table
//! (`FLYHIGH_INGEST_LEDGER_TABLE`) and the dead-letter queue before the first
//! invocation starts the function. The function and its producer live for the whole
//! run, so the proxy does too (on a runtime of its own) and the tests take turns
//! (the faults are the proxy's, for every test at once). Each test sends events of
//! its own ids and reads back from kinesalite only those.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::types::ShardIteratorType;
use flyhigh_ingest::DynamoLedger;
use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};
use flyhigh_testkit::{FaultConfig, FaultProxy};
use lambda_testkit::{env, invoke, moto_config};
use serde_json::{Value, json};
use uuid::Uuid;

const FUNCTION: &str = "ingest-lambda";
/// Its shards in kinesalite: enough that a request's events, on many flights, make
/// several Kinesis records (one aggregate per shard), each failed or not by the
/// proxy.
const SHARDS: i32 = 8;

const BOOKING: &str = r#"{"event_id":"0193f3a4-5b6c-7d8e-9f00-112233445566","schema_version":1,"occurred_at":"2026-11-22T10:15:00.250Z","source":"ios-app","event_type":"booking","payload":{"booking_id":"BK7Q2M9X4","customer_id":"c-5f1e0a","flight_id":"FH0123-20261201","origin":"LHR","destination":"JFK","cabin":"economy","seats":2,"fare":{"amount":"412.80","currency":"GBP"}}}"#;

/// The proxy in front of kinesalite, on its own runtime: it outlives every test's.
struct Kit {
    proxy: FaultProxy,
    _runtime: tokio::runtime::Runtime,
}

static KIT: OnceLock<Kit> = OnceLock::new();
/// One test at a time: they share the proxy's faults and the function.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Creates the function's resources (once) and binds the proxy on its port.
fn kit() -> &'static Kit {
    KIT.get_or_init(|| {
        // A thread of its own: block_on cannot run inside the test's runtime.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the proxy");
            let proxy = runtime.block_on(async {
                create_resources().await;
                let port: u16 = env("FLYHIGH_INGEST_PROXY_PORT")
                    .parse()
                    .expect("FLYHIGH_INGEST_PROXY_PORT is a port");
                FaultProxy::start_on(
                    SocketAddr::from(([127, 0, 0, 1], port)),
                    &env("FLYHIGH_KINESALITE_URL"),
                    FaultConfig::default(),
                )
                .expect("the proxy binds the function's Kinesis port")
            });
            Kit {
                proxy,
                _runtime: runtime,
            }
        })
        .join()
        .expect("the proxy starts")
    })
}

async fn kinesis() -> aws_sdk_kinesis::Client {
    let config = aws_sdk_kinesis::config::Builder::from(&moto_config().await)
        .endpoint_url(env("FLYHIGH_KINESALITE_URL"))
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

/// The stream, the ledger table and the dead-letter queue, unless a test already
/// made them.
async fn create_resources() {
    let stream = env("FLYHIGH_INGEST_STREAM");
    if let Err(e) = kinesis()
        .await
        .create_stream()
        .stream_name(&stream)
        .shard_count(SHARDS)
        .send()
        .await
    {
        let e = e.into_service_error();
        assert!(
            e.is_resource_in_use_exception(),
            "CreateStream {stream}: {e}"
        );
    }
    let config = moto_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = env("FLYHIGH_INGEST_LEDGER_TABLE");
    if let Err(e) = DynamoLedger::create_table(&dynamodb, &table).await {
        assert!(e.0.contains("ResourceInUseException"), "{e}");
    }
    let queue_url = env("DEAD_LETTER_QUEUE_URL");
    let queue = queue_url.rsplit('/').next().unwrap_or_default();
    aws_sdk_sqs::Client::new(&config)
        .create_queue()
        .queue_name(queue)
        .send()
        .await
        .expect("the dead-letter queue");
}

/// A booking of `source` with a new id, on a flight of its own (its partition key).
fn booking(source: &str) -> Value {
    static FLIGHT: AtomicU32 = AtomicU32::new(0);
    let n = FLIGHT.fetch_add(1, Ordering::Relaxed) % 10_000;
    let mut v: Value = serde_json::from_str(BOOKING).unwrap();
    v["event_id"] = Uuid::now_v7().to_string().into();
    v["source"] = source.into();
    v["payload"]["flight_id"] = format!("FH{n:04}-20261201").into();
    v
}

/// An API Gateway HTTP API (payload 2.0) request to `POST /v1/events` with `body`,
/// verified by a JWT authorizer with `claims` (none: no authorizer).
fn request(body: &str, claims: Option<Value>) -> String {
    let mut context = json!({
        "routeKey": "$default",
        "accountId": "123456789012",
        "stage": "$default",
        "requestId": Uuid::now_v7().to_string(),
        "apiId": "api-id",
        "domainName": "api-id.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "api-id",
        "time": "22/Nov/2026:10:15:00 +0000",
        "timeEpoch": 1_795_342_500_000_u64,
        "http": {
            "method": "POST",
            "path": "/v1/events",
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.10",
            "userAgent": "flyhigh-ios/3.1",
        },
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({ "jwt": { "claims": claims, "scopes": null } });
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/v1/events",
        "rawQueryString": "",
        "headers": { "content-type": "application/json", "host": "api-id.execute-api.us-east-1.amazonaws.com" },
        "requestContext": context,
        "body": body,
        "isBase64Encoded": false,
    })
    .to_string()
}

fn ios() -> Option<Value> {
    Some(json!({ "client_id": "ios-client", "sub": "ios-client", "scope": "events/write" }))
}

/// The HTTP answer the function gave API Gateway.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    /// The per-event statuses, by event id.
    fn statuses(&self) -> BTreeMap<String, String> {
        self.body["results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .filter_map(|r| {
                        Some((
                            r["event_id"].as_str()?.to_string(),
                            r["status"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ids_with(&self, status: &str) -> HashSet<String> {
        self.statuses()
            .into_iter()
            .filter(|(_, s)| s == status)
            .map(|(id, _)| id)
            .collect()
    }
}

async fn post(events: &[Value], claims: Option<Value>) -> Answer {
    let body = serde_json::to_string(events).unwrap();
    let (status, response) = invoke(FUNCTION, &request(&body, claims)).await;
    assert_eq!(status, 200, "the invocation failed: {response}");
    let response: Value = serde_json::from_str(&response).unwrap();
    let header = |name: &str| {
        response["headers"]
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str().map(str::to_string))
    };
    let body = response["body"].as_str().unwrap_or("null");
    Answer {
        status: response["statusCode"].as_u64().unwrap_or(0) as u16,
        retry_after: header("retry-after"),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

/// How many times each of `wanted` is in the stream (every shard, from the start).
async fn in_stream(wanted: &[String]) -> BTreeMap<String, usize> {
    let kinesis = kinesis().await;
    let stream = env("FLYHIGH_INGEST_STREAM");
    let wanted: HashSet<&String> = wanted.iter().collect();
    let mut counts = BTreeMap::new();
    let shards = kinesis
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .unwrap();
    for shard in shards.shards() {
        let mut iterator = kinesis
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        while let Some(it) = iterator {
            let page = kinesis
                .get_records()
                .shard_iterator(it)
                .limit(10_000)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            for record in page.records() {
                let data = record.data().as_ref();
                let users: Vec<&[u8]> = match deaggregate(data).unwrap() {
                    Deaggregated::Single(data) => vec![data],
                    Deaggregated::Aggregated(records) => records.iter().map(|r| r.data).collect(),
                };
                for user in users {
                    let event = flyhigh_schemas::decode(user).unwrap();
                    let id = event.event_id.to_string();
                    if wanted.contains(&id) {
                        *counts.entry(id).or_insert(0) += 1;
                    }
                }
            }
            iterator = page.next_shard_iterator().map(str::to_string);
        }
    }
    counts
}

/// Takes this test's turn with the proxy clear of faults.
async fn turn() -> tokio::sync::MutexGuard<'static, ()> {
    let guard = TURN.lock().await;
    kit().proxy.set_faults(FaultConfig::default()).unwrap();
    guard
}

#[tokio::test]
async fn valid_events_are_answered_200_and_are_in_the_stream_once() {
    let _turn = turn().await;
    let events: Vec<Value> = (0..5).map(|_| booking("ios-app")).collect();
    let answer = post(&events, ios()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["accepted"], 5, "{answer:?}");
    let counts = in_stream(&ids(&events)).await;
    assert_eq!(counts.len(), 5, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");

    // Warm invocations of 10 and of 100 events, through the runtime API.
    for size in [10, 100] {
        let mut took = Vec::new();
        for _ in 0..10 {
            let events: Vec<Value> = (0..size).map(|_| booking("ios-app")).collect();
            let start = std::time::Instant::now();
            let answer = post(&events, ios()).await;
            took.push(start.elapsed());
            assert_eq!(answer.status, 200, "{answer:?}");
        }
        took.sort();
        println!(
            "{size} events a request, 10 requests: median {:?}, max {:?}",
            took[took.len() / 2],
            took[took.len() - 1]
        );
    }
}

#[tokio::test]
async fn a_mixed_batch_is_422_and_only_its_valid_events_are_written() {
    let _turn = turn().await;
    let good = booking("ios-app");
    let mut bad = booking("ios-app");
    bad["payload"]["seats"] = 0.into();
    let answer = post(&[good.clone(), bad.clone()], ios()).await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.body["results"][0]["status"], "accepted");
    assert_eq!(answer.body["results"][1]["status"], "rejected");
    assert_eq!(
        answer.body["results"][1]["errors"][0]["field"],
        "payload.seats"
    );
    let counts = in_stream(&ids(&[good.clone(), bad])).await;
    assert_eq!(counts, BTreeMap::from([(ids(&[good])[0].clone(), 1)]));
}

#[tokio::test]
async fn a_caller_cannot_send_another_app_s_source() {
    let _turn = turn().await;
    let theirs = booking("web-app");
    let answer = post(std::slice::from_ref(&theirs), ios()).await;
    assert_eq!(answer.status, 422, "{answer:?}");
    let result = &answer.body["results"][0];
    assert_eq!(result["status"], "rejected");
    assert_eq!(result["errors"][0]["field"], "source", "{answer:?}");
    // The web app itself may.
    let web = Some(json!({ "client_id": "web-client" }));
    assert_eq!(post(&[theirs], web).await.status, 200);
}

#[tokio::test]
async fn no_claims_or_an_unknown_client_is_401_and_nothing_is_written() {
    let _turn = turn().await;
    let events = vec![booking("ios-app")];
    let answer = post(&events, None).await;
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(answer.body["error"].is_string(), "{answer:?}");
    let stranger = Some(json!({ "client_id": "someone-else" }));
    assert_eq!(post(&events, stranger).await.status, 401);
    assert!(in_stream(&ids(&events)).await.is_empty());
}

#[tokio::test]
async fn the_same_request_twice_is_answered_duplicate_and_written_once() {
    let _turn = turn().await;
    let events: Vec<Value> = (0..3).map(|_| booking("ios-app")).collect();
    let first = post(&events, ios()).await;
    assert_eq!(first.status, 200, "{first:?}");
    let second = post(&events, ios()).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(second.body["duplicate"], 3, "{second:?}");
    assert_eq!(second.ids_with("duplicate").len(), 3);
    let counts = in_stream(&ids(&events)).await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

/// Sends `events` again until the answer is 200 (at most 30 s), once the faults are
/// gone; every event is then in the stream exactly once. Returns the events answered
/// `accepted` or `duplicate` on the way, by id.
async fn retry_until_200(events: &[Value]) -> BTreeMap<String, String> {
    let wanted = ids(events);
    let mut answered = BTreeMap::new();
    let mut last = None;
    for _ in 0..60 {
        let answer = post(events, ios()).await;
        for (id, status) in answer.statuses() {
            if status == "accepted" || status == "duplicate" {
                answered.entry(id).or_insert(status);
            }
        }
        if answer.status == 200 {
            last = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let last = last.expect("the request is answered 200 once the faults are gone");
    assert_eq!(last.statuses().len(), wanted.len());
    let counts = in_stream(&wanted).await;
    assert_eq!(counts.len(), wanted.len(), "{counts:?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "written twice: {counts:?}"
    );
    answered
}

/// Throttling on every PutRecords, then 95% of the records refused on every one: the
/// answers are 429/503 with Retry-After, every event answered `accepted` is in the
/// stream and an event answered `retry` is there only if its receipt was still
/// pending (it is answered `duplicate` later); once the faults are gone, retrying
/// the same request until it is 200 leaves every event in the stream exactly once,
/// each answered accepted or duplicate.
#[tokio::test]
async fn under_faults_only_written_events_are_accepted_and_retries_complete_them() {
    let _turn = turn().await;
    let proxy = &kit().proxy;

    // Every PutRecords throttled: nothing is written, nothing accepted.
    let events: Vec<Value> = (0..20).map(|_| booking("ios-app")).collect();
    proxy
        .set_faults(FaultConfig {
            throttle_all: true,
            ..FaultConfig::default()
        })
        .unwrap();
    let throttled = post(&events, ios()).await;
    assert_eq!(throttled.status, 429, "{throttled:?}");
    assert!(throttled.retry_after.is_some(), "{throttled:?}");
    assert_eq!(throttled.ids_with("retry").len(), 20, "{throttled:?}");
    assert!(in_stream(&ids(&events)).await.is_empty());
    let throttled_requests = proxy.stats().throughput_exceeded;
    proxy.set_faults(FaultConfig::default()).unwrap();
    let answered = retry_until_200(&events).await;
    assert_eq!(answered.len(), 20, "{answered:?}");

    // 95% of the records of every PutRecords refused (partial failures): the
    // request's budget runs out with events to retry; those accepted are written.
    let events: Vec<Value> = (0..40).map(|_| booking("ios-app")).collect();
    let all = ids(&events);
    proxy
        .set_faults(FaultConfig {
            seed: 7,
            record_failure_rate: 0.95,
            ..FaultConfig::default()
        })
        .unwrap();
    let partial = post(&events, ios()).await;
    let failed_records = proxy.stats().failed_records;
    let accepted = partial.ids_with("accepted");
    let written: HashSet<String> = in_stream(&all).await.into_keys().collect();
    assert!(
        accepted.is_subset(&written),
        "accepted but not in the stream: {:?}",
        accepted.difference(&written).collect::<Vec<_>>()
    );
    assert!(matches!(partial.status, 429 | 503), "{partial:?}");
    assert!(partial.retry_after.is_some(), "{partial:?}");
    assert!(accepted.len() < all.len(), "{partial:?}");
    proxy.set_faults(FaultConfig::default()).unwrap();
    let answered = retry_until_200(&events).await;
    for id in &all {
        assert!(
            accepted.contains(id) || answered.contains_key(id),
            "{id} is in the stream but was never answered accepted or duplicate"
        );
    }
    println!(
        "faults: {throttled_requests} PutRecords throttled whole; then {failed_records} records \
         refused, {} of {} accepted in the first answer ({})",
        accepted.len(),
        all.len(),
        partial.status
    );
}
