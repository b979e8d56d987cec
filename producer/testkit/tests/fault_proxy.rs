//! `FaultProxy` in front of a tiny in-test upstream that answers PutRecords with
//! canned results (`SequenceNumber: "seq-<partition key>"`, or a failure for keys
//! starting with `upstream-fail`) and records what reached it. Checked with a raw
//! hyper client (status, headers, bodies, dropped connections) and with the real
//! `aws-sdk-kinesis` client (what it sends, how it reads the injected faults, how
//! the shard allowance throttles it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::operation::put_records::PutRecordsError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use bytes::Bytes;
use flyhigh_testkit::{FaultConfig, FaultProxy, ShardAllowance, kinesis_client};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

const PUT_RECORDS: &str = "Kinesis_20131202.PutRecords";
const LIST_SHARDS: &str = "Kinesis_20131202.ListShards";
const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// One request as the upstream received it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    content_type: String,
    body: Bytes,
}

impl Seen {
    fn partition_keys(&self) -> Vec<String> {
        let body: Value = serde_json::from_slice(&self.body).unwrap();
        body["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["PartitionKey"].as_str().unwrap().to_owned())
            .collect()
    }
}

struct Upstream {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Every partition key that reached the upstream, in order.
    fn keys(&self) -> Vec<String> {
        self.seen()
            .iter()
            .filter(|s| s.target == PUT_RECORDS)
            .flat_map(Seen::partition_keys)
            .collect()
    }
}

fn canned_put_records(body: &[u8]) -> Value {
    let body: Value = serde_json::from_slice(body).unwrap();
    let results: Vec<Value> = body["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key = r["PartitionKey"].as_str().unwrap();
            if key.starts_with("upstream-fail") {
                json!({"ErrorCode": "InternalFailure", "ErrorMessage": "upstream says no"})
            } else {
                json!({"SequenceNumber": format!("seq-{key}"), "ShardId": "shardId-000000000000"})
            }
        })
        .collect();
    let failed = results
        .iter()
        .filter(|r| r.get("ErrorCode").is_some())
        .count();
    json!({"FailedRecordCount": failed, "Records": results, "EncryptionType": "NONE"})
}

async fn upstream_answer(
    seen: Arc<Mutex<Vec<Seen>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (target, content_type) = (header("x-amz-target"), header("content-type"));
    let body = req.into_body().collect().await?.to_bytes();
    seen.lock().unwrap().push(Seen {
        target: target.clone(),
        content_type,
        body: body.clone(),
    });
    let answer = if target == PUT_RECORDS {
        Bytes::from(canned_put_records(&body).to_string())
    } else {
        // Anything else: echo the body, so pass-through is visible byte for byte.
        body
    };
    Ok(Response::builder()
        .header("content-type", AMZ_JSON)
        .header("x-upstream", "canned")
        .body(Full::new(answer))
        .unwrap())
}

async fn start_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shared = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let seen = Arc::clone(&shared);
            tokio::spawn(async move {
                let service = service_fn(move |req| upstream_answer(Arc::clone(&seen), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        url: format!("http://{addr}"),
        seen,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One POST on a fresh connection, as a raw hyper client sees it.
async fn post(addr: SocketAddr, target: &str, body: String) -> Result<Answer, hyper::Error> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::post("/")
        .header("x-amz-target", target)
        .header("content-type", AMZ_JSON)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await?;
    let (head, body) = response.into_parts();
    Ok(Answer {
        status: head.status,
        headers: head.headers,
        body: body.collect().await?.to_bytes(),
    })
}

fn put_records_body(keys: &[String]) -> String {
    let records: Vec<Value> = keys
        .iter()
        .map(|k| json!({"Data": "ZGF0YQ==", "PartitionKey": k}))
        .collect();
    json!({"StreamName": "s", "Records": records}).to_string()
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn error_code(result: &Value) -> Option<&str> {
    result.get("ErrorCode").and_then(Value::as_str)
}

#[tokio::test]
async fn other_operations_pass_through_untouched_even_with_every_fault_on() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            request_error_rate: 1.0,
            drop_before_rate: 1.0,
            drop_after_rate: 1.0,
            throttle_all: true,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let body = r#"{"StreamName":"s","MaxResults":7}"#.to_owned();
    let answer = post(proxy.local_addr(), LIST_SHARDS, body.clone())
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, body.as_bytes());
    assert_eq!(answer.headers["x-upstream"], "canned");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, LIST_SHARDS);
    assert_eq!(seen[0].body, body.as_bytes());
    let stats = proxy.stats();
    assert_eq!((stats.requests, stats.forwarded_requests), (1, 1));
    assert_eq!(stats.put_records_requests, 0);
}

#[tokio::test]
async fn failed_records_are_not_forwarded_and_are_merged_back_in_place() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            seed: 3,
            record_failure_rate: 0.3,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let mut sent = keys("k", 200);
    sent[10] = "upstream-fail-10".into();
    let answer = post(proxy.local_addr(), PUT_RECORDS, put_records_body(&sent))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    let answer = answer.json();
    let results = answer["Records"].as_array().unwrap();
    assert_eq!(results.len(), sent.len());
    assert_eq!(answer["EncryptionType"], "NONE", "upstream fields are kept");

    let injected: Vec<&String> = sent
        .iter()
        .zip(results)
        .filter(|(_, r)| error_code(r) == Some("ProvisionedThroughputExceededException"))
        .map(|(k, _)| k)
        .collect();
    assert!(
        (30..=90).contains(&injected.len()),
        "about 30% of 200 should fail, got {}",
        injected.len()
    );
    for (key, result) in sent.iter().zip(results) {
        match error_code(result) {
            Some("ProvisionedThroughputExceededException") => {
                assert!(
                    result["ErrorMessage"]
                        .as_str()
                        .unwrap()
                        .contains("FaultProxy")
                );
            }
            Some("InternalFailure") => assert_eq!(key, "upstream-fail-10"),
            Some(other) => panic!("unexpected error code {other}"),
            None => assert_eq!(result["SequenceNumber"], format!("seq-{key}")),
        }
    }
    let upstream_failed = usize::from(!injected.contains(&&sent[10]));
    assert_eq!(
        answer["FailedRecordCount"],
        injected.len() + upstream_failed,
        "FailedRecordCount counts injected and upstream failures"
    );

    let forwarded: Vec<String> = sent
        .iter()
        .filter(|k| !injected.contains(k))
        .cloned()
        .collect();
    assert_eq!(upstream.keys(), forwarded, "only the survivors, in order");
    let stats = proxy.stats();
    assert_eq!(stats.failed_records, injected.len() as u64);
    assert_eq!(stats.forwarded_records, forwarded.len() as u64);
    assert_eq!(
        stats.written_records,
        (forwarded.len() - upstream_failed) as u64
    );
}

/// The positions of the injected failures in one PutRecords of `n` records.
async fn failure_positions(seed: u64, n: usize) -> Vec<usize> {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            seed,
            record_failure_rate: 0.5,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let answer = post(
        proxy.local_addr(),
        PUT_RECORDS,
        put_records_body(&keys("k", n)),
    )
    .await
    .unwrap()
    .json();
    let results = answer["Records"].as_array().unwrap();
    (0..n)
        .filter(|&i| error_code(&results[i]).is_some())
        .collect()
}

#[tokio::test]
async fn the_same_seed_fails_the_same_records() {
    let first = failure_positions(42, 64).await;
    assert_eq!(first, failure_positions(42, 64).await);
    assert_ne!(first, failure_positions(43, 64).await);
}

#[tokio::test]
async fn when_every_record_fails_upstream_is_not_contacted() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            record_failure_rate: 1.0,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let answer = post(
        proxy.local_addr(),
        PUT_RECORDS,
        put_records_body(&keys("k", 5)),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], AMZ_JSON);
    let answer = answer.json();
    assert_eq!(answer["FailedRecordCount"], 5);
    assert!(
        answer["Records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| error_code(r) == Some("ProvisionedThroughputExceededException"))
    );
    assert!(upstream.seen().is_empty());
    let stats = proxy.stats();
    assert_eq!((stats.failed_records, stats.forwarded_requests), (5, 0));
}

#[tokio::test]
async fn request_errors_are_realistic_aws_json_errors_and_never_forwarded() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            seed: 9,
            request_error_rate: 1.0,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let mut seen_codes = Vec::new();
    for _ in 0..30 {
        let answer = post(
            proxy.local_addr(),
            PUT_RECORDS,
            put_records_body(&keys("k", 2)),
        )
        .await
        .unwrap();
        let body = answer.json();
        let code = body["__type"].as_str().unwrap().to_owned();
        let expected_status = match code.as_str() {
            "InternalFailure" => StatusCode::INTERNAL_SERVER_ERROR,
            "ProvisionedThroughputExceededException" | "ThrottlingException" => {
                StatusCode::BAD_REQUEST
            }
            other => panic!("unexpected error type {other}"),
        };
        assert_eq!(answer.status, expected_status, "{code}");
        assert_eq!(answer.headers["content-type"], AMZ_JSON);
        assert_eq!(answer.headers["x-amzn-errortype"], code.as_str());
        assert!(body["message"].is_string());
        seen_codes.push(code);
    }
    for code in [
        "InternalFailure",
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
    ] {
        assert!(seen_codes.iter().any(|c| c == code), "never saw {code}");
    }
    assert!(upstream.seen().is_empty());
    let stats = proxy.stats();
    assert_eq!(
        stats.internal_failures + stats.throughput_exceeded + stats.throttling_errors,
        30
    );
    assert_eq!(
        stats.internal_failures,
        seen_codes
            .iter()
            .filter(|c| *c == "InternalFailure")
            .count() as u64
    );
}

#[tokio::test]
async fn throttle_all_answers_every_put_records_with_throughput_exceeded() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(&upstream.url, FaultConfig::throttle_all()).unwrap();
    for _ in 0..3 {
        let answer = post(
            proxy.local_addr(),
            PUT_RECORDS,
            put_records_body(&keys("k", 3)),
        )
        .await
        .unwrap();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            answer.json()["__type"],
            "ProvisionedThroughputExceededException"
        );
    }
    assert!(upstream.seen().is_empty());
    let stats = proxy.stats();
    assert_eq!(
        (stats.throughput_exceeded, stats.forwarded_requests),
        (3, 0)
    );
}

#[tokio::test]
async fn drop_before_closes_the_connection_without_forwarding() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            drop_before_rate: 1.0,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let error = post(
        proxy.local_addr(),
        PUT_RECORDS,
        put_records_body(&keys("k", 3)),
    )
    .await
    .err()
    .expect("the connection is closed without an answer");
    assert!(error.is_incomplete_message(), "{error:?}");
    assert!(upstream.seen().is_empty());
    assert_eq!(proxy.stats().dropped_before, 1);
}

#[tokio::test]
async fn drop_after_closes_the_connection_once_upstream_wrote() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            drop_after_rate: 1.0,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let sent = keys("k", 3);
    let error = post(proxy.local_addr(), PUT_RECORDS, put_records_body(&sent))
        .await
        .err()
        .expect("the connection is closed without an answer");
    assert!(error.is_incomplete_message(), "{error:?}");
    assert_eq!(upstream.keys(), sent, "the records were written");
    let stats = proxy.stats();
    assert_eq!((stats.dropped_after, stats.written_records), (1, 3));
}

#[tokio::test]
async fn faults_can_change_while_running() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(&upstream.url, FaultConfig::default()).unwrap();
    let send = || {
        post(
            proxy.local_addr(),
            PUT_RECORDS,
            put_records_body(&keys("k", 1)),
        )
    };
    assert_eq!(send().await.unwrap().status, StatusCode::OK);
    proxy.set_faults(FaultConfig::throttle_all()).unwrap();
    assert_eq!(send().await.unwrap().status, StatusCode::BAD_REQUEST);
    let invalid = FaultConfig {
        request_error_rate: -0.1,
        ..FaultConfig::default()
    };
    assert_eq!(
        proxy.set_faults(invalid).unwrap_err().field,
        "request_error_rate"
    );
    assert_eq!(
        send().await.unwrap().status,
        StatusCode::BAD_REQUEST,
        "a rejected config leaves the current one in place"
    );
    proxy.set_faults(FaultConfig::default()).unwrap();
    assert_eq!(send().await.unwrap().status, StatusCode::OK);
    assert_eq!(upstream.keys().len(), 2);
}

#[tokio::test]
async fn fault_all_operations_extends_request_faults_to_every_operation() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            throttle_all: true,
            fault_all_operations: true,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let answer = post(proxy.local_addr(), LIST_SHARDS, "{}".into())
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(upstream.seen().is_empty());
}

const DYNAMODB_TRANSACT: &str = "DynamoDB_20120810.TransactWriteItems";

#[tokio::test]
async fn dynamodb_requests_get_dynamodb_shaped_errors() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            seed: 5,
            throttle_rate: 0.5,
            server_error_rate: 0.5,
            fault_all_operations: true,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let mut codes = std::collections::BTreeSet::new();
    let mut passed = 0;
    for _ in 0..40 {
        let answer = post(proxy.local_addr(), DYNAMODB_TRANSACT, "{}".into())
            .await
            .unwrap();
        if answer.status == StatusCode::OK {
            passed += 1;
            continue;
        }
        assert_eq!(answer.headers["content-type"], "application/x-amz-json-1.0");
        let body = answer.json();
        let kind = body["__type"].as_str().unwrap().to_owned();
        let code = kind
            .strip_prefix("com.amazonaws.dynamodb.v20120810#")
            .unwrap_or_else(|| panic!("no DynamoDB namespace in {kind}"));
        let expected_status = match code {
            "InternalServerError" => StatusCode::INTERNAL_SERVER_ERROR,
            "ProvisionedThroughputExceededException" | "ThrottlingException" => {
                StatusCode::BAD_REQUEST
            }
            other => panic!("unexpected error type {other}"),
        };
        assert_eq!(answer.status, expected_status, "{code}");
        assert_eq!(answer.headers["x-amzn-errortype"], code);
        assert!(body["message"].as_str().unwrap().contains("FaultProxy"));
        codes.insert(code.to_owned());
    }
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        [
            "InternalServerError",
            "ProvisionedThroughputExceededException",
            "ThrottlingException"
        ]
    );
    // Only the requests that passed were forwarded.
    assert_eq!(upstream.seen().len(), passed);
    let stats = proxy.stats();
    assert_eq!(
        stats.internal_failures + stats.throughput_exceeded + stats.throttling_errors,
        40 - passed as u64
    );
    assert_eq!(stats.put_records_requests, 0);
}

#[tokio::test]
async fn a_dropped_dynamodb_answer_was_still_written_upstream() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            drop_after_rate: 1.0,
            fault_all_operations: true,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let body = r#"{"TransactItems":[]}"#;
    let error = post(proxy.local_addr(), DYNAMODB_TRANSACT, body.into())
        .await
        .err()
        .expect("the connection is closed without an answer");
    assert!(error.is_incomplete_message(), "{error:?}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, DYNAMODB_TRANSACT);
    assert_eq!(seen[0].body, body.as_bytes());
    let stats = proxy.stats();
    assert_eq!((stats.dropped_after, stats.forwarded_requests), (1, 1));
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_bad_gateway() {
    // Bind and drop a listener: its port is then (almost surely) closed.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = FaultProxy::start(&format!("http://{closed}"), FaultConfig::default()).unwrap();
    let answer = post(proxy.local_addr(), LIST_SHARDS, "{}".into())
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(proxy.stats().upstream_errors, 1);
}

#[tokio::test]
async fn start_rejects_bad_urls_and_rates() {
    for url in ["https://127.0.0.1:1", "127.0.0.1:1", "not a url"] {
        let error = FaultProxy::start(url, FaultConfig::default()).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput, "{url}");
    }
    let error = FaultProxy::start(
        "http://127.0.0.1:1",
        FaultConfig {
            drop_before_rate: 2.0,
            ..FaultConfig::default()
        },
    )
    .unwrap_err();
    assert!(error.to_string().contains("drop_before_rate"), "{error}");
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    let error = FaultProxy::start("http://127.0.0.1:1", FaultConfig::default()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn after_shutdown_the_port_refuses_connections() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(&upstream.url, FaultConfig::default()).unwrap();
    let addr = proxy.local_addr();
    TcpStream::connect(addr).await.unwrap();
    proxy.shutdown().await;
    let error = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
}

fn entries(keys: &[String]) -> Vec<PutRecordsRequestEntry> {
    keys.iter()
        .map(|k| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(k.as_bytes()))
                .partition_key(k)
                .build()
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn the_sdk_speaks_aws_json_and_reads_injected_record_failures() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            seed: 5,
            record_failure_rate: 0.5,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let client = kinesis_client(&proxy.url());
    let sent = keys("sdk", 40);
    let out = client
        .put_records()
        .stream_name("s")
        .set_records(Some(entries(&sent)))
        .send()
        .await
        .unwrap();

    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, PUT_RECORDS);
    assert_eq!(seen[0].content_type, AMZ_JSON, "awsJson1.1, not CBOR");

    let failed: Vec<bool> = out
        .records()
        .iter()
        .map(|r| r.error_code().is_some())
        .collect();
    assert_eq!(failed.len(), sent.len());
    assert_eq!(
        out.failed_record_count(),
        Some(failed.iter().filter(|&&f| f).count() as i32)
    );
    assert_eq!(
        out.failed_record_count(),
        Some(proxy.stats().failed_records as i32)
    );
    for (key, result) in sent.iter().zip(out.records()) {
        match result.error_code() {
            Some(code) => assert_eq!(code, "ProvisionedThroughputExceededException"),
            None => assert_eq!(
                result.sequence_number(),
                Some(format!("seq-{key}").as_str())
            ),
        }
    }
}

#[tokio::test]
async fn the_sdk_classifies_injected_request_errors() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(&upstream.url, FaultConfig::throttle_all()).unwrap();
    let client = kinesis_client(&proxy.url());
    let send = || {
        client
            .put_records()
            .stream_name("s")
            .set_records(Some(entries(&keys("k", 2))))
            .send()
    };
    let error = send().await.unwrap_err();
    assert!(
        matches!(
            error.as_service_error(),
            Some(PutRecordsError::ProvisionedThroughputExceededException(_))
        ),
        "{error:?}"
    );

    proxy
        .set_faults(FaultConfig {
            seed: 1,
            request_error_rate: 1.0,
            ..FaultConfig::default()
        })
        .unwrap();
    let mut codes = Vec::new();
    for _ in 0..20 {
        match send().await.unwrap_err() {
            SdkError::ServiceError(e) => {
                let status = e.raw().status().as_u16();
                codes.push((e.err().code().unwrap().to_owned(), status));
            }
            other => panic!("expected a service error, got {other:?}"),
        }
    }
    assert!(
        codes.contains(&("InternalFailure".into(), 500)),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("ThrottlingException".into(), 400)),
        "{codes:?}"
    );

    proxy
        .set_faults(FaultConfig {
            drop_after_rate: 1.0,
            ..FaultConfig::default()
        })
        .unwrap();
    let error = send().await.unwrap_err();
    assert!(
        matches!(
            error,
            SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        ),
        "a dropped connection is a transport error, not a service error: {error:?}"
    );
    assert_eq!(upstream.keys().len(), 2, "yet the records were written");
}

/// The proxy's answer to one PutRecords of `sent` through the real SDK: the keys
/// written, in order, and how many were throttled per record.
async fn put_through_sdk(
    client: &aws_sdk_kinesis::Client,
    sent: Vec<PutRecordsRequestEntry>,
) -> (Vec<String>, usize) {
    let out = client
        .put_records()
        .stream_name("s")
        .set_records(Some(sent.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.records().len(), sent.len());
    let mut written = Vec::new();
    let mut throttled = 0;
    for (entry, result) in sent.iter().zip(out.records()) {
        match result.error_code() {
            Some("ProvisionedThroughputExceededException") => throttled += 1,
            Some(other) => panic!("unexpected error code {other}"),
            None => written.push(entry.partition_key().unwrap_or_default().to_owned()),
        }
    }
    assert_eq!(out.failed_record_count(), Some(throttled as i32));
    (written, throttled)
}

#[tokio::test]
async fn a_shard_allowance_throttles_what_exceeds_it_and_refills_in_a_second() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            shard_allowance: Some(ShardAllowance {
                records_per_sec: 100.0,
                ..ShardAllowance::kinesis(1)
            }),
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let client = kinesis_client(&proxy.url());
    let sent = keys("k", 300);

    // The bucket starts full at 100 records: exactly the first 100 pass.
    let first_sent = std::time::Instant::now();
    let (written, throttled) = put_through_sdk(&client, entries(&sent)).await;
    assert_eq!(written, sent[..100]);
    assert_eq!(throttled, 200);
    assert_eq!(
        upstream.keys(),
        sent[..100],
        "throttled records are not forwarded"
    );

    // Right after, the bucket holds only what refilled since the first request
    // emptied it: 100/s of the time between the two, well under one second here.
    let (written, throttled) = put_through_sdk(&client, entries(&sent)).await;
    let refilled = (first_sent.elapsed().as_secs_f64() * 100.0).floor() as usize;
    assert!(
        written.len() <= refilled && refilled < 100,
        "{} written, at most {refilled} refilled",
        written.len()
    );
    assert_eq!(written, sent[..written.len()], "in request order");
    assert_eq!(written.len() + throttled, 300);
    let second_written = written.len();

    // A second later the bucket is full again (and no fuller).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let (written, throttled) = put_through_sdk(&client, entries(&sent)).await;
    assert_eq!((written.len(), throttled), (100, 200));

    let stats = proxy.stats();
    assert_eq!(
        stats.allowance_throttled_records,
        (900 - 200 - second_written) as u64
    );
    assert_eq!(
        stats.failed_records, 0,
        "counted apart from random failures"
    );
    assert_eq!(stats.written_records, (200 + second_written) as u64);
    assert_eq!(stats.forwarded_records, stats.written_records);
}

#[tokio::test]
async fn the_allowance_is_per_shard_by_explicit_hash_key_or_partition_key_md5() {
    let upstream = start_upstream().await;
    let two_shards = FaultConfig {
        shard_allowance: Some(ShardAllowance {
            records_per_sec: 5.0,
            ..ShardAllowance::kinesis(2)
        }),
        ..FaultConfig::default()
    };
    let proxy = FaultProxy::start(&upstream.url, two_shards.clone()).unwrap();
    let client = kinesis_client(&proxy.url());

    // The shard of "pk-0".."pk-19" on 2 shards is the top bit of their MD5 (from
    // Python's hashlib): 5 on shard 0, 15 on shard 1.
    let shard_of_key = b"11100100111111110111";
    let sent = keys("pk-", 20);
    let (written, throttled) = put_through_sdk(&client, entries(&sent)).await;
    let mut expected = Vec::new();
    let mut taken = [0, 0];
    for (key, shard) in sent.iter().zip(shard_of_key) {
        let shard = usize::from(*shard == b'1');
        if taken[shard] < 5 {
            taken[shard] += 1;
            expected.push(key.clone());
        }
    }
    assert_eq!(written, expected, "the first 5 of each shard");
    assert_eq!(throttled, 10);

    // An explicit hash key wins over the partition key: the 15 keys of shard 1,
    // sent alternately to shard 0 and shard 1 by their explicit hash keys.
    proxy.set_faults(two_shards).unwrap();
    let shard_1_keys: Vec<String> = sent
        .iter()
        .zip(shard_of_key)
        .filter(|&(_, &shard)| shard == b'1')
        .map(|(key, _)| key.clone())
        .collect();
    assert_eq!(shard_1_keys.len(), 15);
    let entries: Vec<PutRecordsRequestEntry> = shard_1_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let hash_key = if i % 2 == 0 { 0u128 } else { 1 << 127 };
            PutRecordsRequestEntry::builder()
                .data(Blob::new("x"))
                .partition_key(key.as_str())
                .explicit_hash_key(hash_key.to_string())
                .build()
                .unwrap()
        })
        .collect();
    let (written, throttled) = put_through_sdk(&client, entries).await;
    assert_eq!(written, shard_1_keys[..10], "the first 5 of each shard");
    assert_eq!(throttled, 5);
}

#[tokio::test]
async fn the_bytes_allowance_counts_decoded_data_and_partition_key() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            shard_allowance: Some(ShardAllowance {
                bytes_per_sec: 100.0,
                ..ShardAllowance::kinesis(1)
            }),
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let client = kinesis_client(&proxy.url());
    // 20 bytes of data (28 in base64) and a 2-byte key: 22 each, 4 fit in 100.
    let sent: Vec<PutRecordsRequestEntry> = (0..8)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(vec![b'd'; 20]))
                .partition_key(format!("k{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let (written, throttled) = put_through_sdk(&client, sent).await;
    assert_eq!(written, ["k0", "k1", "k2", "k3"]);
    assert_eq!(throttled, 4);
    assert_eq!(proxy.stats().allowance_throttled_records, 4);
}

#[tokio::test]
async fn random_failures_are_drawn_first_and_cost_no_allowance() {
    let upstream = start_upstream().await;
    let proxy = FaultProxy::start(
        &upstream.url,
        FaultConfig {
            seed: 4,
            record_failure_rate: 0.5,
            shard_allowance: Some(ShardAllowance {
                records_per_sec: 10.0,
                ..ShardAllowance::kinesis(1)
            }),
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let client = kinesis_client(&proxy.url());
    let (written, throttled) = put_through_sdk(&client, entries(&keys("k", 60))).await;
    assert_eq!(written.len(), 10, "the survivors fill the bucket");
    let stats = proxy.stats();
    assert_eq!(
        stats.failed_records + stats.allowance_throttled_records,
        throttled as u64
    );
    assert_eq!(
        stats.allowance_throttled_records,
        60 - 10 - stats.failed_records
    );
}

#[tokio::test]
async fn start_rejects_an_allowance_without_shards_or_rate() {
    for (allowance, field) in [
        (
            ShardAllowance {
                shards: 0,
                ..ShardAllowance::kinesis(1)
            },
            "shard_allowance.shards",
        ),
        (
            ShardAllowance {
                bytes_per_sec: f64::NAN,
                ..ShardAllowance::kinesis(1)
            },
            "shard_allowance.bytes_per_sec",
        ),
    ] {
        let error = FaultProxy::start(
            "http://127.0.0.1:1",
            FaultConfig {
                shard_allowance: Some(allowance),
                ..FaultConfig::default()
            },
        )
        .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert!(error.to_string().contains(field), "{error}");
    }
}
