//! `SqsDeadLetters` against moto through the real SDK: a producer whose every put is
//! throttled dead-letters each record to the queue, each arrives once as the record
//! sent, and `replay` puts them all back through a healthy producer, in order per
//! key. A missing queue fails the build, named; a letter too big for SQS fails its
//! write while the others of the call are stored.
//!
//! Needs `FLYHIGH_MOTO_URL` (set by `scripts/test.sh`; by hand: `scripts/moto.sh
//! start && source target/moto.env`). Each test has its own queue.

#![cfg(feature = "sqs")]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use flyhigh_producer::aws_config::{self, BehaviorVersion, Region};
use flyhigh_producer::aws_sdk_sqs::Client;
use flyhigh_producer::aws_sdk_sqs::config::Credentials;
use flyhigh_producer::aws_sdk_sqs::types::MessageSystemAttributeName;
use flyhigh_producer::replay::NotReplayedKind;
use flyhigh_producer::schemas::aggregation::{Deaggregated, deaggregate};
use flyhigh_producer::{
    BuildError, DeadLetter, DeadLetterReason, DeadLetterSink, DeliveryError, Entry, EntryResult,
    LocalStream, MemoryDeadLetters, Producer, ShardInfo, SqsDeadLetters, Transport, TransportError,
    local::LocalRead, replay,
};
use flyhigh_testkit::{moto_url, unique_name};

const EVENTS: usize = 300;
const KEYS: usize = 7;

async fn sqs() -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "moto-sqs-tests",
        ))
        .load()
        .await;
    Client::new(&config)
}

async fn queue(client: &Client, prefix: &str) -> (String, String) {
    let name = unique_name(prefix);
    let out = client
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .expect("create queue");
    (name, out.queue_url().expect("a queue URL").to_owned())
}

/// A received message: its body and String attributes.
struct Received {
    body: String,
    attributes: HashMap<String, String>,
}

/// Receives (hidden for 5 minutes, not deleted) until the queue answers empty.
async fn receive_all(client: &Client, url: &str) -> Vec<Received> {
    let mut out = Vec::new();
    loop {
        let page = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        if page.messages().is_empty() {
            return out;
        }
        for m in page.messages() {
            out.push(Received {
                body: m.body().unwrap_or_default().to_owned(),
                attributes: m
                    .message_attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().into()))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
}

/// Throttles every record, as a stream far over its limit does.
struct Throttled;

impl Transport for Throttled {
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
        Ok(LocalStream::new("throttled", 2).shards())
    }
}

/// Record `i`: JSON for most, bytes that are not UTF-8 for every tenth.
fn record(i: usize) -> (String, Vec<u8>) {
    let key = format!("FH{:04}-20261201", i % KEYS);
    let data = if i % 10 == 9 {
        vec![0xff, 0xfe, (i % 256) as u8, (i / 256) as u8]
    } else {
        format!(r#"{{"seq":{i},"flight_id":"{key}"}}"#).into_bytes()
    };
    (key, data)
}

fn letter(key: &str, data: Vec<u8>) -> DeadLetter {
    DeadLetter {
        partition_key: key.into(),
        data,
        reason: DeadLetterReason::Rejected,
        error: "AccessDeniedException: no".into(),
        attempts: 1,
        accepted_at: "2026-11-22T10:15:00.250Z".parse().unwrap(),
        dead_lettered_at: "2026-11-22T10:15:01.250Z".parse().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_records_land_in_sqs_once_each_and_replay_in_order_per_key() {
    let client = sqs().await;
    let (_, url) = queue(&client, "producer-dlq").await;
    let producer = Producer::builder()
        .record_ttl(Duration::from_secs(1))
        .linger(Duration::from_millis(10))
        .backoff_base(Duration::from_millis(20))
        .backoff_max(Duration::from_millis(200))
        .dead_letters(SqsDeadLetters::new(client.clone(), &url))
        .build_with(Throttled)
        .await
        .expect("the queue exists: the check passes");
    let sent: Vec<(String, Vec<u8>)> = (0..EVENTS).map(record).collect();
    let mut receipts = Vec::new();
    for (key, data) in &sent {
        receipts.push(producer.send_record(key, data.clone()).await.unwrap());
    }
    for receipt in receipts {
        match receipt.await {
            Err(DeliveryError::DeadLettered {
                reason: DeadLetterReason::Expired,
                ..
            }) => {}
            other => panic!("expected dead-lettered (expired) and stored, got {other:?}"),
        }
    }
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, EVENTS as u64);
    assert_eq!(producer.metrics().dead_letter_failures, 0);

    // Exactly one message per record, each the record sent, attributes set.
    let received = receive_all(&client, &url).await;
    assert_eq!(received.len(), EVENTS);
    let mut letters = Vec::new();
    for r in &received {
        let letter = DeadLetter::from_json_line(&r.body).expect("a producer letter");
        assert_eq!(letter.reason, DeadLetterReason::Expired);
        assert!(letter.attempts >= 1, "{letter:?}");
        assert!(
            letter.error.contains("ProvisionedThroughputExceeded"),
            "{letter:?}"
        );
        assert_eq!(r.attributes["reason"], "expired");
        assert_eq!(r.attributes["partition_key"], letter.partition_key);
        letters.push(letter);
    }
    let mut got: Vec<(String, Vec<u8>)> = letters
        .iter()
        .map(|l| (l.partition_key.clone(), l.data.clone()))
        .collect();
    let mut want = sent.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "every record once, as sent");

    // SQS keeps no order: acceptance order puts each key's letters back in send
    // order (the position in the data breaks ties within a millisecond).
    let position: HashMap<&[u8], usize> = sent
        .iter()
        .enumerate()
        .map(|(i, (_, d))| (&d[..], i))
        .collect();
    letters.sort_by_key(|l| (l.accepted_at.timestamp_millis(), position[&l.data[..]]));
    let stream = LocalStream::new("replayed", 4);
    let healthy_sink = MemoryDeadLetters::new();
    let healthy = Producer::builder()
        .dead_letters(healthy_sink.clone())
        .build_with(stream.clone())
        .await
        .unwrap();
    let mut ledger = HashSet::new();
    let replayed = replay(&healthy, &letters, &mut ledger).await;
    assert_eq!(replayed.replayed, EVENTS, "{replayed:?}");
    assert!(replayed.is_complete());
    assert_eq!(replayed.count(NotReplayedKind::DeadLetteredAgain), 0);
    healthy.close().await;
    assert!(healthy_sink.letters().is_empty());

    let mut on_stream: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for shard in 0..stream.shards().len() {
        let LocalRead::Records(records) = stream.read(shard, 0, usize::MAX) else {
            continue;
        };
        for r in records {
            match deaggregate(&r.data).unwrap() {
                Deaggregated::Aggregated(users) => {
                    for u in users.iter() {
                        on_stream
                            .entry(u.partition_key.to_string())
                            .or_default()
                            .push(u.data.to_vec());
                    }
                }
                Deaggregated::Single(d) => on_stream
                    .entry(r.partition_key.clone())
                    .or_default()
                    .push(d.to_vec()),
            }
        }
    }
    let mut expected: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (key, data) in &sent {
        expected.entry(key.clone()).or_default().push(data.clone());
    }
    assert_eq!(
        on_stream, expected,
        "every event once, per key in send order"
    );
}

#[tokio::test]
async fn a_missing_queue_fails_the_build_naming_it() {
    let client = sqs().await;
    let (name, url) = queue(&client, "producer-dlq-check").await;
    let missing = format!("{url}-missing");
    let refused = Producer::builder()
        .dead_letters(SqsDeadLetters::new(client.clone(), &missing))
        .build_with(LocalStream::new("s", 1))
        .await;
    let message = match refused {
        Err(BuildError::DeadLetters(message)) => message,
        other => panic!("expected BuildError::DeadLetters, got {other:?}"),
    };
    assert!(!message.contains('\n'), "{message}");
    assert!(
        !message.contains("ServiceError") && !message.contains("Response {"),
        "{message}"
    );
    assert!(
        message.contains(&missing) && message.contains("does not exist"),
        "{message}"
    );

    // Writing there anyway: one request fails, and the write says so for all.
    let letters: Vec<DeadLetter> = (0..12)
        .map(|i| letter(&format!("FH{i:04}-20261201"), b"{}".to_vec()))
        .collect();
    let e = SqsDeadLetters::new(client.clone(), &missing)
        .write(letters)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("12 of 12 dead letters not stored: 12 not sent (SendMessageBatch: ")
            && !e.contains('\n'),
        "{e}"
    );

    // By name: the URL is found, or the missing name is named.
    let found = SqsDeadLetters::from_queue_name(client.clone(), &name)
        .await
        .expect("found");
    assert_eq!(found.queue_url(), url);
    found.check().await.expect("an existing queue passes");
    let e = SqsDeadLetters::from_queue_name(client, &format!("{name}-missing"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("{name}-missing")) && e.contains("does not exist") && !e.contains('\n'),
        "{e}"
    );
}

#[tokio::test]
async fn a_letter_too_big_for_sqs_fails_the_write_and_the_others_are_stored() {
    // moto takes messages over 256 KiB; SQS does not. The limit is the sink's to keep.
    let client = sqs().await;
    let (_, url) = queue(&client, "producer-dlq-big").await;
    let sink = SqsDeadLetters::new(client.clone(), &url);
    let big = letter("FH0002-20261201", vec![0xab; 1024 * 1024]);
    // Over the limit with its text copy, under it without.
    let text = format!(r#"{{"pad":"{}"}}"#, "x".repeat(150 * 1024));
    let mut letters = vec![letter("FH0001-20261201", b"{}".to_vec()), big];
    letters.extend((3..=25).map(|i| letter(&format!("FH{i:04}-20261201"), b"{}".to_vec())));
    letters.push(letter("FH0099-20261201", text.into_bytes()));
    let error = sink.write(letters.clone()).await.unwrap_err().to_string();
    assert!(!error.contains('\n'), "{error}");
    assert!(error.contains("1 of 26 dead letters not stored"), "{error}");
    assert!(error.contains("1 too big for SQS"), "{error}");
    let size: usize = error
        .split("a ")
        .nth(1)
        .and_then(|s| s.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {error}"));
    assert!(size > 1024 * 1024 * 4 / 3, "{error}");

    let received = receive_all(&client, &url).await;
    let mut got: Vec<DeadLetter> = received
        .iter()
        .map(|r| DeadLetter::from_json_line(&r.body).unwrap())
        .collect();
    got.sort_by(|a, b| a.partition_key.cmp(&b.partition_key));
    let mut want: Vec<DeadLetter> = letters
        .into_iter()
        .filter(|l| l.partition_key != "FH0002-20261201")
        .collect();
    want.sort_by(|a, b| a.partition_key.cmp(&b.partition_key));
    assert_eq!(got, want, "every other letter stored, the 150 KiB one too");
}
