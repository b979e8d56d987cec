//! The ingest router through HTTP requests (tower's `oneshot`, no socket): every
//! status, every per-event result, and the promise that no event is answered 2xx
//! unless the stream has it.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use flyhigh_ingest::limits::{MAX_EVENT_BYTES, MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES};
use flyhigh_ingest::{ApiKeys, Auth, Ingest, MemoryLedger};
use flyhigh_producer::local::LocalRead;
use flyhigh_producer::{
    Entry, EntryResult, LocalStream, MemoryDeadLetters, Producer, ShardInfo, Transport,
    TransportError,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const BOOKING: &str = r#"{"event_id":"0193f3a4-5b6c-7d8e-9f00-112233445566","schema_version":1,"occurred_at":"2026-11-22T10:15:00.250Z","source":"web-app","event_type":"booking","payload":{"booking_id":"BK7Q2M9X4","customer_id":"c-5f1e0a","flight_id":"FH0123-20261201","origin":"LHR","destination":"JFK","cabin":"economy","seats":2,"fare":{"amount":"412.80","currency":"GBP"}}}"#;

/// The booking with event id number `n` and source `source`.
fn booking(n: u32, source: &str) -> Value {
    let mut v: Value = serde_json::from_str(BOOKING).unwrap();
    v["event_id"] = format!("0193f3a4-5b6c-7d8e-9f00-{n:012}").into();
    v["source"] = source.into();
    v["payload"]["booking_id"] = format!("BK{n:07}").into();
    v
}

async fn producer_over<T: Transport>(transport: T, budget: usize) -> Producer {
    Producer::builder()
        .linger(Duration::from_millis(2))
        .buffer_budget_bytes(budget)
        .record_ttl(Duration::from_secs(60))
        .dead_letters(MemoryDeadLetters::new())
        .build_with(transport)
        .await
        .unwrap()
}

async fn local() -> (Router, LocalStream, Producer) {
    let stream = LocalStream::new("events", 2);
    let producer = producer_over(stream.clone(), 8 << 20).await;
    let router = Ingest::new(producer.clone(), MemoryLedger::default()).router();
    (router, stream, producer)
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn post(router: &Router, content_type: Option<&str>, body: impl Into<Body>) -> Answer {
    send(router, content_type, None, body).await
}

async fn send(
    router: &Router,
    content_type: Option<&str>,
    key: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut request = Request::post("/v1/events");
    if let Some(ct) = content_type {
        request = request.header(header::CONTENT_TYPE, ct);
    }
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    answer(router, request.body(body.into()).unwrap()).await
}

async fn answer(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

/// The event ids the stream holds, with repeats.
fn stream_ids(stream: &LocalStream) -> Vec<String> {
    let mut ids = Vec::new();
    for shard in 0..stream.shards().len() {
        let LocalRead::Records(records) = stream.read(shard, 0, usize::MAX) else {
            continue;
        };
        for r in records {
            let records = match flyhigh_schemas::aggregation::deaggregate(&r.data).unwrap() {
                flyhigh_schemas::aggregation::Deaggregated::Single(d) => vec![d.to_vec()],
                flyhigh_schemas::aggregation::Deaggregated::Aggregated(rs) => {
                    rs.iter().map(|u| u.data.to_vec()).collect()
                }
            };
            for data in records {
                let v: Value = serde_json::from_slice(&data).unwrap();
                ids.push(v["event_id"].as_str().unwrap().to_string());
            }
        }
    }
    ids.sort();
    ids
}

#[tokio::test]
async fn a_mixed_batch_is_422_with_each_events_result_and_only_valid_events_sent() {
    let (router, stream, _) = local().await;
    let mut invalid = booking(2, "web-app");
    invalid["payload"]["seats"] = 0.into();
    invalid["source"] = "Web App".into();
    let body = json!([
        booking(1, "web-app"),
        invalid,
        "not an event",
        booking(3, "web-app")
    ]);
    let a = post(&router, Some("application/json"), body.to_string()).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.body);
    assert_eq!(
        statuses(&a.body),
        ["accepted", "rejected", "rejected", "accepted"]
    );
    assert_eq!(
        (a.body["accepted"].as_u64(), a.body["rejected"].as_u64()),
        (Some(2), Some(2))
    );
    let errors = &a.body["results"][1]["errors"];
    assert_eq!(errors[0]["field"], "source");
    assert_eq!(errors[1]["field"], "payload.seats");
    assert_eq!(
        a.body["results"][1]["event_id"],
        "0193f3a4-5b6c-7d8e-9f00-000000000002"
    );
    assert_eq!(a.body["results"][2]["event_id"], Value::Null);
    assert_eq!(a.body["results"][3]["index"], 3);
    assert_eq!(
        stream_ids(&stream),
        [
            "0193f3a4-5b6c-7d8e-9f00-000000000001",
            "0193f3a4-5b6c-7d8e-9f00-000000000003"
        ]
    );
}

#[tokio::test]
async fn a_retried_request_is_answered_duplicate_and_writes_nothing_again() {
    let (router, stream, _) = local().await;
    let body = json!([booking(1, "web-app"), booking(2, "ios-app")]).to_string();
    let first = post(&router, Some("application/json"), body.clone()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(statuses(&first.body), ["accepted", "accepted"]);
    let again = post(&router, Some("application/json"), body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(statuses(&again.body), ["duplicate", "duplicate"]);
    assert_eq!(stream_ids(&stream).len(), 2);
}

#[tokio::test]
async fn an_id_repeated_in_one_request_is_sent_once() {
    let (router, stream, _) = local().await;
    let body = json!([booking(1, "web-app"), booking(1, "web-app")]).to_string();
    let a = post(&router, Some("application/json"), body).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(statuses(&a.body), ["accepted", "duplicate"]);
    assert_eq!(stream_ids(&stream).len(), 1);
}

#[tokio::test]
async fn an_event_without_an_id_is_given_one_and_its_retry_is_a_duplicate() {
    let (router, stream, _) = local().await;
    let mut event = booking(1, "web-app");
    event.as_object_mut().unwrap().remove("event_id");
    let a = post(&router, Some("application/json"), event.to_string()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let result = &a.body["results"][0];
    assert_eq!(result["assigned_event_id"], true);
    let id = result["event_id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(stream_ids(&stream), std::slice::from_ref(&id));
    event["event_id"] = id.into();
    let again = post(&router, Some("application/json"), event.to_string()).await;
    assert_eq!(statuses(&again.body), ["duplicate"]);
    assert_eq!(stream_ids(&stream).len(), 1);
}

#[tokio::test]
async fn ndjson_and_a_single_object_are_read_too() {
    let (router, stream, _) = local().await;
    let lines = format!("{}\n\n{}\n", booking(1, "web-app"), booking(2, "web-app"));
    let a = post(&router, Some("application/x-ndjson"), lines).await;
    assert_eq!(statuses(&a.body), ["accepted", "accepted"]);
    let one = post(&router, None, booking(3, "web-app").to_string()).await;
    assert_eq!(statuses(&one.body), ["accepted"]);
    assert_eq!(stream_ids(&stream).len(), 3);
}

#[tokio::test]
async fn an_unreadable_body_is_400_with_a_hint_and_sends_nothing() {
    let (router, stream, _) = local().await;
    for (content_type, body) in [
        (Some("application/json"), "[{\"event_id\": "),
        (Some("application/json"), "hello"),
        (Some("text/csv"), "a,b"),
    ] {
        let a = post(&router, content_type, body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            a.body["error"].is_string() && a.body["hint"].is_string(),
            "{}",
            a.body
        );
        assert!(a.body.get("results").is_none());
    }
    assert_eq!(stream.total_records(), 0);
}

#[tokio::test]
async fn every_limit_is_a_413_naming_it() {
    let (router, stream, _) = local().await;
    let many = Value::Array(vec![booking(1, "web-app"); MAX_EVENTS_PER_REQUEST + 1]);
    let a = post(&router, Some("application/json"), many.to_string()).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.body["limit"], "events_per_request");
    assert_eq!(a.body["max"], MAX_EVENTS_PER_REQUEST);
    let mut big = booking(2, "web-app");
    big["padding"] = "x".repeat(MAX_EVENT_BYTES).into();
    let a = post(
        &router,
        Some("application/json"),
        json!([booking(1, "web-app"), big]).to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        (a.body["limit"].as_str(), a.body["index"].as_u64()),
        (Some("event_bytes"), Some(1))
    );
    let huge = " ".repeat(MAX_REQUEST_BYTES + 1);
    let a = post(&router, Some("application/json"), huge).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.body["limit"], "request_bytes");
    assert_eq!(stream.total_records(), 0);
}

#[tokio::test]
async fn keys_authenticate_and_limit_the_source() {
    let stream = LocalStream::new("events", 1);
    let producer = producer_over(stream.clone(), 8 << 20).await;
    let keys = ApiKeys::parse("web-77c1e2d3f4a5b6c7 web-app\n").unwrap();
    let router = Ingest::new(producer, MemoryLedger::default())
        .with_auth(Auth::ApiKeys(keys))
        .router();
    let body = json!([booking(1, "web-app"), booking(2, "ios-app")]).to_string();
    let none = send(&router, Some("application/json"), None, body.clone()).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers[header::WWW_AUTHENTICATE], "Bearer");
    let wrong = send(
        &router,
        Some("application/json"),
        Some("web-77c1e2d3f4a5b6c8"),
        body.clone(),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stream.total_records(), 0);
    let right = send(
        &router,
        Some("application/json"),
        Some("web-77c1e2d3f4a5b6c7"),
        body,
    )
    .await;
    assert_eq!(right.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(statuses(&right.body), ["accepted", "rejected"]);
    assert_eq!(right.body["results"][1]["errors"][0]["field"], "source");
    assert_eq!(
        stream_ids(&stream),
        ["0193f3a4-5b6c-7d8e-9f00-000000000001"]
    );
}

/// A stream that takes requests and never answers.
struct Hanging;

impl Transport for Hanging {
    async fn put_records(&self, _: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        std::future::pending().await
    }
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        Ok(LocalStream::new("hanging", 1).shards())
    }
}

/// A stream that throttles every record.
struct Throttling;

impl Transport for Throttling {
    async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        Ok(entries
            .iter()
            .map(|_| EntryResult::Failed {
                code: "ProvisionedThroughputExceededException".into(),
                message: "Rate exceeded for shard".into(),
            })
            .collect())
    }
    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        Ok(LocalStream::new("throttling", 1).shards())
    }
}

#[tokio::test]
async fn a_full_budget_is_a_429_and_events_not_written_are_never_a_2xx() {
    // A stream that never answers: the first requests' events wait out the request's
    // budget (retry: timeout) and stay charged to the producer's byte budget (about
    // 1 MiB at least), until the next requests find it full (retry: buffer_full, 429).
    let producer = producer_over(Hanging, 1).await;
    let router = Ingest::new(producer, MemoryLedger::default())
        .with_request_budget(Duration::from_millis(100))
        .router();
    let mut reasons = std::collections::BTreeSet::new();
    let mut saw_429 = false;
    for request in 0..8u32 {
        let events: Vec<Value> = (0..1000)
            .map(|n| booking(request * 1000 + n, "web-app"))
            .collect();
        let a = post(
            &router,
            Some("application/json"),
            Value::Array(events).to_string(),
        )
        .await;
        assert!(!a.status.is_success(), "request {request}: {}", a.status);
        for r in a.body["results"].as_array().unwrap() {
            assert_eq!(r["status"], "retry", "{r}");
            reasons.insert(r["reason"].as_str().unwrap().to_string());
        }
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(a.headers[header::RETRY_AFTER], "1");
            saw_429 = true;
            break;
        }
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.headers[header::RETRY_AFTER], "5");
    }
    assert!(saw_429, "{reasons:?}");
    assert!(
        reasons.contains("timeout") && reasons.contains("buffer_full"),
        "{reasons:?}"
    );
    // The events still held are in flight: a retry now is told so, not sent twice.
    let again = post(
        &router,
        Some("application/json"),
        booking(0, "web-app").to_string(),
    )
    .await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(again.body["results"][0]["reason"], "in_flight");
}

#[tokio::test]
async fn beyond_the_requests_in_flight_a_request_is_a_429_before_its_body_is_read() {
    // One request at a time, and a stream that never answers: the first request holds
    // the only permit for its budget; a second, meanwhile, is turned away at once.
    let producer = producer_over(Hanging, 8 << 20).await;
    let router = Ingest::new(producer, MemoryLedger::default())
        .with_request_budget(Duration::from_millis(500))
        .with_max_requests_in_flight(1)
        .router();
    let first = tokio::spawn({
        let router = router.clone();
        async move {
            post(
                &router,
                Some("application/json"),
                booking(1, "web-app").to_string(),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let busy = post(
        &router,
        Some("application/json"),
        booking(2, "web-app").to_string(),
    )
    .await;
    assert_eq!(busy.status, StatusCode::TOO_MANY_REQUESTS, "{}", busy.body);
    assert_eq!(busy.headers[header::RETRY_AFTER], "1");
    assert!(
        busy.body.get("results").is_none()
            && busy.body["error"].as_str().unwrap().starts_with("busy")
    );
    let first = first.await.unwrap();
    assert_eq!(
        first.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        first.body
    );
    // The permit is back: the next request is read again.
    let again = post(
        &router,
        Some("application/json"),
        booking(3, "web-app").to_string(),
    )
    .await;
    assert_eq!(again.body["results"][0]["status"], "retry");
}

#[tokio::test]
async fn a_throttled_stream_past_the_budget_is_a_429_throttled() {
    let producer = producer_over(Throttling, 8 << 20).await;
    let router = Ingest::new(producer, MemoryLedger::default())
        .with_request_budget(Duration::from_millis(400))
        .router();
    let a = post(
        &router,
        Some("application/json"),
        booking(1, "web-app").to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
    assert_eq!(a.body["results"][0]["reason"], "throttled");
}

#[tokio::test]
async fn a_closed_producer_is_a_503_and_not_ready() {
    let (router, _, producer) = local().await;
    let ready = answer(
        &router,
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(ready.status, StatusCode::OK);
    producer.close().await;
    let a = post(
        &router,
        Some("application/json"),
        booking(1, "web-app").to_string(),
    )
    .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.headers[header::RETRY_AFTER], "5");
    assert_eq!(a.body["results"][0]["reason"], "unavailable");
    let ready = answer(
        &router,
        Request::get("/readyz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let health = answer(
        &router,
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let (router, _, _) = local().await;
    let doc = answer(
        &router,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    assert!(doc.body["paths"]["/v1/events"]["post"]["responses"]["429"].is_object());
}

#[tokio::test]
async fn cors_answers_an_allowed_origin_and_not_another() {
    let stream = LocalStream::new("events", 1);
    let producer = producer_over(stream, 8 << 20).await;
    let router = Ingest::new(producer, MemoryLedger::default())
        .with_cors_origins(vec!["https://app.flyhigh.example".into()])
        .router();
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/events")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "content-type,authorization",
            )
            .body(Body::empty())
            .unwrap()
    };
    let allowed = answer(&router, preflight("https://app.flyhigh.example")).await;
    assert_eq!(
        allowed.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.flyhigh.example"
    );
    let refused = answer(&router, preflight("https://evil.example")).await;
    assert!(
        refused
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
}

/// The contract's fixtures get the same verdict through HTTP as from the producer and
/// the consumers' decoder: valid ones accepted, invalid ones rejected naming exactly
/// the fields the fixture expects (or, when not JSON at all, a 400).
#[tokio::test]
async fn the_contracts_fixtures_get_the_same_verdicts_through_http() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/fixtures");
    let (router, _, producer) = local().await;
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("valid")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let event: flyhigh_schemas::Envelope = flyhigh_schemas::decode(text.as_bytes()).unwrap();
        assert!(producer.try_send(&event).is_ok(), "{}", path.display());
        let a = post(&router, Some("application/json"), text).await;
        // Accepted, or a duplicate of the producer's copy just sent.
        assert!(a.status == StatusCode::OK, "{}: {}", path.display(), a.body);
        checked += 1;
    }
    for entry in std::fs::read_dir(root.join("invalid")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") || name.ends_with(".expect.json") {
            continue;
        }
        let expect: Value = serde_json::from_str(
            &std::fs::read_to_string(path.with_file_name(name.replace(".json", ".expect.json")))
                .unwrap(),
        )
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let kind = flyhigh_schemas::decode(&bytes).unwrap_err().kind();
        assert_eq!(kind, expect["kind"], "{name}");
        // As one event of a batch: an array fixture is then an event that is an array.
        let mut body = b"[".to_vec();
        body.extend_from_slice(&bytes);
        body.push(b']');
        let a = post(&router, Some("application/json"), body).await;
        match a.status {
            StatusCode::BAD_REQUEST => assert!(
                ["not_json", "not_utf8"].contains(&kind),
                "{name}: a 400 for a readable event"
            ),
            StatusCode::PAYLOAD_TOO_LARGE => assert_eq!(kind, "too_large", "{name}"),
            StatusCode::UNPROCESSABLE_ENTITY => {
                let result = &a.body["results"][0];
                assert_eq!(result["status"], "rejected", "{name}");
                let fields: Vec<&str> = result["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["field"].as_str().unwrap())
                    .collect();
                let expected: Vec<&str> = expect["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect();
                if !expected.is_empty() {
                    assert_eq!(fields, expected, "{name}");
                }
            }
            other => panic!("{name}: {other} {}", a.body),
        }
        checked += 1;
    }
    assert!(checked >= 80, "only {checked} fixtures found");
}
