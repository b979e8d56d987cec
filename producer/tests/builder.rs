//! `Producer::builder()` through the real AWS SDK against kinesalite, directly and
//! behind the project's fault-injecting proxy: a wrong stream fails `build` at once
//! with one request, an active stream takes events, every bad setting is named, and
//! the SDK's own retries are off under the producer's.
//!
//! Needs `FLYHIGH_KINESALITE_URL` (set by `scripts/test.sh`; by hand:
//! `scripts/kinesalite.sh start && source target/kinesalite.env`).

#![cfg(feature = "kinesis")]

use std::collections::HashSet;
use std::time::Duration;

use flyhigh_producer::aws_config::{self, BehaviorVersion, Region, SdkConfig};
use flyhigh_producer::aws_sdk_kinesis::config::Credentials;
use flyhigh_producer::schemas::aggregation::{Deaggregated, deaggregate};
use flyhigh_producer::{
    BuildError, Entry, EntryResult, Envelope, LocalStream, MemoryDeadLetters, Producer,
    ProducerBuilder, ShardInfo, ShardLimits, Transport, TransportError, aws_sdk_kinesis,
};
use flyhigh_simulator::{SimConfig, Simulator};
use flyhigh_testkit::{
    FaultConfig, FaultProxy, create_stream, kinesalite_url, kinesis_client, read_all, unique_name,
};

/// An `SdkConfig` for the emulator (or a proxy) at `endpoint`, as an app loads one,
/// with the SDK's default (standard, three-attempt) retries.
async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "builder-tests",
        ))
        .load()
        .await
}

fn events(n: usize, seed: u64) -> Vec<Envelope> {
    Simulator::new(SimConfig::new(seed, n))
        .expect("config")
        .collect()
}

fn one_line(e: &BuildError) -> String {
    let text = e.to_string();
    assert!(!text.contains('\n'), "{text}");
    for debug in [
        "ServiceError {",
        "DispatchFailure(",
        "ErrorMetadata {",
        "Response {",
    ] {
        assert!(!text.contains(debug), "a Debug dump in {text}");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_fails_build_with_stream_not_found_after_one_request() {
    let proxy = FaultProxy::start(&kinesalite_url(), FaultConfig::default()).unwrap();
    let stream = unique_name("builder-missing");
    let result = Producer::builder()
        .stream(&stream)
        .kinesis(&sdk_config(&proxy.url()).await)
        .build()
        .await;
    let e = result.expect_err("no such stream");
    assert_eq!(
        e,
        BuildError::StreamNotFound {
            stream: stream.clone()
        }
    );
    assert!(one_line(&e).contains(&stream));
    // One DescribeStreamSummary, then nothing: no ListShards, no PutRecords.
    assert_eq!(proxy.stats().requests, 1, "{:?}", proxy.stats());
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_stream_builds_and_its_hundred_events_are_read_back() {
    let url = kinesalite_url();
    let stream = unique_name("builder-active");
    let client = kinesis_client(&url);
    create_stream(&client, &stream, 2).await.unwrap();
    let dead = MemoryDeadLetters::new();
    let producer = Producer::builder()
        .stream(&stream)
        .kinesis(&sdk_config(&url).await)
        .dead_letters(dead.clone())
        .build()
        .await
        .expect("an ACTIVE stream");
    let sent = events(100, 7);
    for event in &sent {
        producer.send(event).await.unwrap();
    }
    let report = producer.close().await;
    assert_eq!(report.records_written, 100, "{:?}", report.last_error);
    assert!(dead.letters().is_empty());

    let mut read = Vec::new();
    for (_, record) in read_all(&client, &stream).await.unwrap() {
        match deaggregate(record.data().as_ref()).unwrap() {
            Deaggregated::Single(data) => read.push(flyhigh_producer::schemas::decode(data)),
            Deaggregated::Aggregated(users) => read.extend(
                users
                    .iter()
                    .map(|u| flyhigh_producer::schemas::decode(u.data)),
            ),
        }
    }
    let read: Vec<Envelope> = read.into_iter().map(|r| r.expect("an event")).collect();
    assert_eq!(read.len(), 100);
    let read_ids: HashSet<_> = read.iter().map(|e| e.event_id).collect();
    let sent_ids: HashSet<_> = sent.iter().map(|e| e.event_id).collect();
    assert_eq!(read_ids, sent_ids);
}

/// Each builder with one setting out of range, and the setting's name.
fn invalid_settings() -> Vec<(&'static str, ProducerBuilder)> {
    let b = || Producer::builder().dead_letters(MemoryDeadLetters::new());
    vec![
        ("buffer_budget_bytes", b().buffer_budget_bytes(0)),
        ("aggregate_max_bytes", b().aggregate_max_bytes(0)),
        (
            "aggregate_max_bytes",
            b().aggregate_max_bytes(2 * 1024 * 1024),
        ),
        ("record_ttl", b().record_ttl(Duration::ZERO)),
        ("record_ttl", b().record_ttl(Duration::MAX)),
        ("linger", b().linger(Duration::MAX)),
        ("backoff_base", b().backoff_base(Duration::ZERO)),
        (
            "backoff_max",
            b().backoff_base(Duration::from_secs(2))
                .backoff_max(Duration::from_secs(1)),
        ),
        ("max_requests_in_flight", b().max_requests_in_flight(0)),
        ("request_timeout", b().request_timeout(Duration::ZERO)),
        (
            "shard_limits.records_per_sec",
            b().shard_limits(ShardLimits {
                records_per_sec: 0.0,
                bytes_per_sec: 1e6,
            }),
        ),
        (
            "shard_limits.bytes_per_sec",
            b().shard_limits(ShardLimits {
                records_per_sec: 1e3,
                bytes_per_sec: f64::NAN,
            }),
        ),
        ("shard_map_refresh", b().shard_map_refresh(Duration::ZERO)),
        ("metrics_interval", b().metrics_interval(Duration::ZERO)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_setting_fails_build_naming_it_before_any_request() {
    let proxy = FaultProxy::start(&kinesalite_url(), FaultConfig::default()).unwrap();
    let sdk = sdk_config(&proxy.url()).await;
    for (setting, builder) in invalid_settings() {
        match builder.stream("flyhigh-events").kinesis(&sdk).build().await {
            Err(BuildError::Config(e)) => {
                assert_eq!(e.setting, setting);
                assert!(one_line(&BuildError::Config(e)).contains(setting));
            }
            other => panic!("{setting}: {other:?}"),
        }
    }
    for (setting, builder) in invalid_settings() {
        match builder.build_with(LocalStream::new("events", 1)).await {
            Err(BuildError::Config(e)) => assert_eq!(e.setting, setting),
            other => panic!("{setting} through build_with: {other:?}"),
        }
    }
    for name in ["", "flyhigh events", "arn:aws:kinesis:us-east-1:1:stream/s"] {
        match Producer::builder().stream(name).kinesis(&sdk).build().await {
            Err(BuildError::Config(e)) => assert_eq!(e.setting, "stream", "{name:?}"),
            other => panic!("stream {name:?}: {other:?}"),
        }
    }
    assert_eq!(proxy.stats().requests, 0, "a request before validation");
    proxy.shutdown().await;
}

/// Sends one record to a stream whose every PutRecords is throttled, with a 2 s
/// time-to-live, and checks that the proxy saw exactly the producer's own requests:
/// with SDK retries on, each producer attempt would be three.
async fn assert_only_producer_retries(
    kinesis: impl FnOnce(ProducerBuilder, &SdkConfig) -> ProducerBuilder,
) {
    let url = kinesalite_url();
    let stream = unique_name("builder-throttled");
    create_stream(&kinesis_client(&url), &stream, 1)
        .await
        .unwrap();
    let proxy = FaultProxy::start(&url, FaultConfig::throttle_all()).unwrap();
    let sdk = sdk_config(&proxy.url()).await;
    let dead = MemoryDeadLetters::new();
    let builder = Producer::builder()
        .stream(&stream)
        .record_ttl(Duration::from_secs(2))
        .backoff_base(Duration::from_millis(500))
        .dead_letters(dead.clone());
    let producer = kinesis(builder, &sdk)
        .build()
        .await
        .expect("an ACTIVE stream");
    producer
        .send_record("FH0123-20261201", b"{}".to_vec())
        .await
        .unwrap();
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, 1, "throttled until it expired");
    assert_eq!(dead.letters().len(), 1);
    let producer_requests = producer.metrics().requests;
    let stats = proxy.stats();
    assert!(
        producer_requests >= 2,
        "the producer retried: {producer_requests}"
    );
    assert_eq!(stats.throughput_exceeded, stats.put_records_requests);
    assert_eq!(
        stats.put_records_requests, producer_requests,
        "PutRecords on the wire vs the producer's own requests"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_retries_are_off_on_the_client_made_from_an_sdk_config() {
    assert_only_producer_retries(|builder, sdk| builder.kinesis(sdk)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_retries_are_turned_off_on_a_client_given_with_them_on() {
    assert_only_producer_retries(|builder, sdk| {
        let client = aws_sdk_kinesis::Client::new(sdk);
        let retries = client.config().retry_config().expect("a retry config");
        assert!(retries.max_attempts() > 1, "the given client retries");
        builder.kinesis_client(client)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_fails_build_as_unreachable_after_one_request() {
    let proxy = FaultProxy::start(
        &kinesalite_url(),
        FaultConfig {
            server_error_rate: 1.0,
            fault_all_operations: true,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let stream = unique_name("builder-5xx");
    let e = Producer::builder()
        .stream(&stream)
        .kinesis(&sdk_config(&proxy.url()).await)
        .build()
        .await
        .expect_err("HTTP 500");
    assert!(
        matches!(&e, BuildError::Unreachable { stream: s, .. } if *s == stream),
        "{e:?}"
    );
    assert!(one_line(&e).contains("InternalFailure"), "{e}");
    // The SDK's standard retries would have made three.
    assert_eq!(proxy.stats().requests, 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_check_is_tried_three_times_then_is_unreachable() {
    let proxy = FaultProxy::start(
        &kinesalite_url(),
        FaultConfig {
            throttle_rate: 1.0,
            fault_all_operations: true,
            ..FaultConfig::default()
        },
    )
    .unwrap();
    let e = Producer::builder()
        .stream(unique_name("builder-throttled-check"))
        .kinesis(&sdk_config(&proxy.url()).await)
        .build()
        .await
        .expect_err("throttled");
    assert!(matches!(e, BuildError::Unreachable { .. }), "{e:?}");
    assert!(one_line(&e).contains("3 attempts"), "{e}");
    assert_eq!(proxy.stats().requests, 3);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_unreachable_in_one_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let e = Producer::builder()
        .stream("flyhigh-events")
        .kinesis(&sdk_config(&url).await)
        .build()
        .await
        .expect_err("nothing listens");
    assert!(matches!(e, BuildError::Unreachable { .. }), "{e:?}");
    let text = one_line(&e);
    assert!(text.contains("dispatch failure"), "{text}");
}

/// A transport whose ListShards fails, or never answers.
struct Unlistable {
    answers: bool,
}

impl Transport for Unlistable {
    async fn put_records(&self, _: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        unreachable!("build_with must not start a producer over it")
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        if self.answers {
            Err(TransportError::Permanent("no such stream".into()))
        } else {
            std::future::pending().await
        }
    }
}

#[tokio::test(start_paused = true)]
async fn build_with_fails_when_the_transport_cannot_list_shards() {
    let failing = Producer::builder()
        .build_with(Unlistable { answers: true })
        .await;
    assert_eq!(
        failing.unwrap_err(),
        BuildError::Transport(TransportError::Permanent("no such stream".into()))
    );
    let silent = Producer::builder()
        .request_timeout(Duration::from_secs(3))
        .build_with(Unlistable { answers: false })
        .await;
    let e = silent.unwrap_err();
    assert!(
        matches!(&e, BuildError::Transport(TransportError::Transient(m)) if m.contains("3s")),
        "{e:?}"
    );
}
