//! Producer behaviour against the in-process stream, with faults injected by a
//! wrapping transport and time paused where waiting matters.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use flyhigh_schemas::aggregation::{Deaggregated, deaggregate};
use flyhigh_schemas::{Booking, Cabin, Money, Payload};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::dead_letter::{DeadLetterReason, MemoryDeadLetters};
use crate::local::{LocalRead, LocalStream};
use crate::transport::{Entry, EntryResult, ShardInfo, TransportError};

fn booking(i: usize, flights: usize) -> Envelope {
    Envelope::new(
        "test-app",
        "2026-11-22T10:15:00.250Z".parse().unwrap(),
        Payload::Booking(Booking {
            booking_id: format!("BK{i:07}"),
            customer_id: "c-5f1e0a".into(),
            flight_id: format!("FH{:04}-20261201", i % flights),
            origin: "LHR".into(),
            destination: "JFK".into(),
            cabin: Cabin::Economy,
            seats: 1,
            fare: Money::new("412.80".parse().unwrap(), "GBP"),
        }),
    )
}

fn config(dead: &MemoryDeadLetters) -> ProducerConfig {
    ProducerConfig {
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(20),
        dead_letters: Arc::new(dead.clone()),
        metrics_interval: None,
        rng_seed: Some(7),
        ..ProducerConfig::default()
    }
}

/// A user record read back from the stream.
#[derive(Debug, Clone)]
struct ReadBack {
    shard_id: String,
    sequence_number: String,
    sub: Option<u32>,
    partition_key: String,
    data: Vec<u8>,
}

fn read_back(stream: &LocalStream) -> Vec<ReadBack> {
    read_back_placed(stream, true)
}

/// `placed`: assert that every user record of an aggregate belongs to its shard.
fn read_back_placed(stream: &LocalStream, placed: bool) -> Vec<ReadBack> {
    let mut out = Vec::new();
    for (i, shard) in stream.shards().iter().enumerate() {
        let LocalRead::Records(records) = stream.read(i, 0, usize::MAX) else {
            panic!("open stream")
        };
        for r in records {
            match deaggregate(&r.data).expect("decodable") {
                Deaggregated::Single(data) => out.push(ReadBack {
                    shard_id: shard.shard_id.clone(),
                    sequence_number: r.sequence_number.clone(),
                    sub: None,
                    partition_key: r.partition_key.clone(),
                    data: data.to_vec(),
                }),
                Deaggregated::Aggregated(users) => {
                    for u in users {
                        // Every user record of an aggregate belongs to the shard it is on.
                        let h = flyhigh_schemas::hash_key(u.partition_key);
                        assert!(
                            !placed || (h >= shard.starting_hash_key && h <= shard.ending_hash_key)
                        );
                        out.push(ReadBack {
                            shard_id: shard.shard_id.clone(),
                            sequence_number: r.sequence_number.clone(),
                            sub: Some(u.sub_sequence_number),
                            partition_key: u.partition_key.to_string(),
                            data: u.data.to_vec(),
                        });
                    }
                }
            }
        }
    }
    // The in-process stream numbers records from one counter across shards, so
    // sequence numbers give the order records were written in.
    out.sort_by(|a, b| (&a.sequence_number, a.sub).cmp(&(&b.sequence_number, b.sub)));
    out
}

fn booking_id(data: &[u8]) -> String {
    let event = flyhigh_schemas::decode(data).expect("an event");
    match event.payload {
        Payload::Booking(b) => b.booking_id,
        other => panic!("not a booking: {other:?}"),
    }
}

/// Asserts that every sent event is in the stream, and that for every partition key
/// the first occurrences come in send order (duplicates, from a write whose answer
/// was lost, may follow).
fn assert_all_once_in_order(sent: &[Envelope], got: &[ReadBack], allow_duplicates: bool) {
    let mut per_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in got {
        per_key
            .entry(r.partition_key.clone())
            .or_default()
            .push(booking_id(&r.data));
    }
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in sent {
        expected
            .entry(e.partition_key())
            .or_default()
            .push(booking_id(&e.to_json()));
    }
    assert_eq!(per_key.len(), expected.len());
    for (key, want) in expected {
        let have = &per_key[&key];
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<String> = have
            .iter()
            .filter(|d| seen.insert(d.as_str()))
            .cloned()
            .collect();
        assert_eq!(firsts, want, "order of key {key}");
        if !allow_duplicates {
            assert_eq!(have.len(), want.len(), "duplicates for key {key}");
        }
    }
}

/// Faults in front of a [`LocalStream`].
struct Chaos {
    stream: LocalStream,
    rng: Mutex<StdRng>,
    /// Per record: fail it (not written) with this code.
    record_failure: f64,
    record_code: &'static str,
    /// Per request: fail it whole without writing.
    request_failure: f64,
    /// Per request: write it, then answer with an error (a lost answer).
    lost_answer: f64,
    /// Every request is throttled.
    throttle_all: std::sync::atomic::AtomicBool,
    /// What `list_shards` answers (None: the stream's own shards).
    shards: Mutex<Option<Result<Vec<ShardInfo>, TransportError>>>,
    requests: AtomicUsize,
    list_calls: AtomicUsize,
    /// Sizes of the requests made.
    sizes: Mutex<Vec<usize>>,
}

impl Chaos {
    fn new(stream: LocalStream) -> Chaos {
        Chaos {
            stream,
            rng: Mutex::new(StdRng::seed_from_u64(42)),
            record_failure: 0.0,
            record_code: "ProvisionedThroughputExceededException",
            request_failure: 0.0,
            lost_answer: 0.0,
            throttle_all: false.into(),
            shards: Mutex::new(None),
            requests: AtomicUsize::new(0),
            list_calls: AtomicUsize::new(0),
            sizes: Mutex::new(Vec::new()),
        }
    }
}

impl Transport for Chaos {
    async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.sizes.lock().unwrap().push(entries.len());
        tokio::task::yield_now().await;
        if self.throttle_all.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(TransportError::Throttled("Rate exceeded for stream".into()));
        }
        let (whole, lost, fail): (bool, bool, Vec<bool>) = {
            let mut rng = self.rng.lock().unwrap();
            let whole = rng.gen_bool(self.request_failure);
            let lost = rng.gen_bool(self.lost_answer);
            let fail = entries
                .iter()
                .map(|_| rng.gen_bool(self.record_failure))
                .collect();
            (whole, lost, fail)
        };
        if whole {
            return Err(
                if self
                    .requests
                    .load(std::sync::atomic::Ordering::SeqCst)
                    .is_multiple_of(2)
                {
                    TransportError::Throttled("Rate exceeded".into())
                } else {
                    TransportError::Transient("500 InternalFailure".into())
                },
            );
        }
        let mut out = Vec::with_capacity(entries.len());
        for (e, fail) in entries.iter().zip(fail) {
            if fail {
                out.push(EntryResult::Failed {
                    code: self.record_code.into(),
                    message: "injected".into(),
                });
            } else {
                out.extend(self.stream.put(std::slice::from_ref(e))?);
            }
        }
        if lost {
            return Err(TransportError::Transient(
                "connection closed before the answer".into(),
            ));
        }
        Ok(out)
    }

    async fn list_shards(&self) -> Result<Vec<ShardInfo>, TransportError> {
        self.list_calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match &*self.shards.lock().unwrap() {
            Some(answer) => answer.clone(),
            None => Ok(self.stream.shards()),
        }
    }

    fn shard_limits(&self) -> crate::rate::ShardLimits {
        crate::rate::ShardLimits::UNLIMITED
    }
}

#[tokio::test]
async fn invalid_events_name_each_field_and_send_nothing() {
    let dead = MemoryDeadLetters::new();
    let stream = LocalStream::new("s", 2);
    let producer = Producer::new(stream.clone(), config(&dead));
    let mut bad = booking(1, 3);
    if let Payload::Booking(b) = &mut bad.payload {
        b.origin = "london".into();
        b.seats = 0;
    }
    let Err(SendError::Invalid(errors)) = producer.send(&bad).await else {
        panic!("accepted an invalid event")
    };
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert!(
        fields.contains(&"payload.origin") && fields.contains(&"payload.seats"),
        "{fields:?}"
    );
    let Err(SendError::Invalid(errors)) = producer.send_record("", b"{}".to_vec()).await else {
        panic!("accepted an empty partition key")
    };
    assert_eq!(errors.0[0].field, "(partition_key)");
    let report = producer.close().await;
    assert_eq!(report.records_written, 0);
    assert_eq!(stream.total_records(), 0);
    assert_eq!(producer.metrics().user_records_rejected, 2);
}

#[tokio::test]
async fn receipts_name_the_shard_sequence_and_sub_sequence_of_each_record() {
    let dead = MemoryDeadLetters::new();
    let stream = LocalStream::new("s", 4);
    let producer = Producer::new(stream.clone(), config(&dead));
    let sent: Vec<Envelope> = (0..2_000).map(|i| booking(i, 40)).collect();
    let mut receipts = Vec::new();
    for e in &sent {
        receipts.push(producer.send(e).await.unwrap());
    }
    let report = producer.flush().await.unwrap();
    assert_eq!(report.records_written, 2_000);
    assert_eq!(report.dead_lettered, 0);
    let got = read_back(&stream);
    let by_position: HashMap<(String, String, Option<u32>), Vec<u8>> = got
        .iter()
        .map(|r| {
            (
                (r.shard_id.clone(), r.sequence_number.clone(), r.sub),
                r.data.clone(),
            )
        })
        .collect();
    for (event, receipt) in sent.iter().zip(receipts) {
        let d = receipt.await.unwrap();
        assert!(
            d.sub_sequence_number.is_some(),
            "2,000 events over 4 shards aggregate"
        );
        let data = &by_position[&(
            d.shard_id.to_string(),
            d.sequence_number.to_string(),
            d.sub_sequence_number,
        )];
        assert_eq!(data, &event.to_json());
    }
    assert_all_once_in_order(&sent, &got, false);
    let m = producer.metrics();
    assert!(m.user_records_per_kinesis_record() > 50.0, "{m:?}");
    assert_eq!(m.buffered_bytes, 0);
    assert_eq!(m.buffered_records, 0);
    producer.close().await;
    assert!(dead.letters().is_empty());
}

#[tokio::test]
async fn aggregates_respect_the_size_limit_and_the_linger_time() {
    let dead = MemoryDeadLetters::new();
    let stream = LocalStream::new("s", 1);
    let producer = Producer::new(
        stream.clone(),
        ProducerConfig {
            linger: Duration::from_millis(20),
            ..config(&dead)
        },
    );
    for i in 0..1_000 {
        producer.send(&booking(i, 5)).await.unwrap();
    }
    producer.flush().await.unwrap();
    let LocalRead::Records(records) = stream.read(0, 0, usize::MAX) else {
        panic!()
    };
    for r in &records {
        assert!(r.data.len() + r.partition_key.len() <= 51_200);
    }
    // Full aggregates: at most one short one per flush.
    let total: usize = records.iter().map(|r| r.data.len()).sum();
    assert!(
        records.len() <= total / 45_000 + 1,
        "{} records for {total} bytes",
        records.len()
    );

    // A lone record waits for the linger time, then goes plain.
    tokio::time::pause();
    let before = stream.total_records();
    let receipt = producer.send(&booking(5_000, 5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(stream.total_records(), before);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let delivery = receipt.await.unwrap();
    assert_eq!(delivery.sub_sequence_number, None);
    assert_eq!(stream.total_records(), before + 1);
    producer.close().await;
}

#[tokio::test]
async fn thirty_percent_faults_lose_nothing_and_keep_per_key_order() {
    for aggregation in [true, false] {
        let dead = MemoryDeadLetters::new();
        let stream = LocalStream::new("s", 3);
        let chaos = Arc::new(Chaos {
            record_failure: 0.3,
            request_failure: 0.15,
            lost_answer: 0.1,
            ..Chaos::new(stream.clone())
        });
        let producer = Producer::new(
            chaos.clone(),
            ProducerConfig {
                aggregation,
                aggregate_max_bytes: 8 * 1024,
                linger: Duration::from_millis(2),
                ..config(&dead)
            },
        );
        let sent: Vec<Envelope> = (0..3_000).map(|i| booking(i, 17)).collect();
        let mut receipts = Vec::new();
        for e in &sent {
            receipts.push(producer.send(e).await.unwrap());
        }
        let report = producer.close().await;
        assert_eq!(report.dead_lettered, 0, "{:?}", report.last_error);
        for r in receipts {
            r.await.unwrap();
        }
        assert_all_once_in_order(&sent, &read_back(&stream), true);
        let m = producer.metrics();
        assert!(
            m.retries > 0 && m.throttles > 0 && m.request_errors > 0,
            "{m:?}"
        );
        assert_eq!(m.user_records_written, 3_000);
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_budget_makes_send_wait_and_try_send_fail_then_ttl_dead_letters() {
    let dead = MemoryDeadLetters::new();
    let stream = LocalStream::new("s", 2);
    let chaos = Arc::new(Chaos::new(stream.clone()));
    chaos
        .throttle_all
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let budget = 2 * 1024 * 1024;
    let producer = Producer::new(
        chaos.clone(),
        ProducerConfig {
            buffer_budget_bytes: budget,
            record_ttl: Duration::from_secs(10),
            ..config(&dead)
        },
    );
    // Fill the budget.
    let mut accepted = Vec::new();
    let full = loop {
        match producer.try_send(&booking(accepted.len(), 9)) {
            Ok(r) => accepted.push(r),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(full, SendError::BufferFull { budget_bytes, .. } if budget_bytes == budget),
        "{full}"
    );
    assert!(producer.buffered_bytes() <= budget);
    assert!(producer.buffered_bytes() > budget - 2_000);
    // `send` waits while Kinesis throttles.
    let waiting = tokio::time::timeout(Duration::from_secs(5), producer.send(&booking(1, 9))).await;
    assert!(waiting.is_err(), "send returned while the budget was spent");
    assert!(producer.buffered_bytes() <= budget);
    // At the time-to-live every record is dead-lettered with its bytes, and the budget
    // frees up.
    let mut expired = 0;
    for r in accepted {
        match r.await {
            Err(DeliveryError::DeadLettered {
                reason: DeadLetterReason::Expired,
                attempts,
                error,
            }) => {
                // Aggregates sharing a flight wait behind the one being retried (per-key
                // order), so some are never attempted.
                if attempts == 0 {
                    assert!(error.contains("before the first attempt"), "{error}");
                } else {
                    assert!(error.contains("throttled"), "{error}");
                }
                expired += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    let letters = dead.letters();
    assert_eq!(letters.len(), expired);
    let mut ids: Vec<String> = letters.iter().map(|l| booking_id(&l.data)).collect();
    ids.sort();
    let want: Vec<String> = (0..expired).map(|i| format!("BK{i:07}")).collect();
    assert_eq!(
        ids, want,
        "every accepted record is in the dead-letter sink once"
    );
    for l in &letters {
        let event = flyhigh_schemas::decode(&l.data).unwrap();
        assert_eq!(l.partition_key, event.partition_key());
    }
    assert!(producer.send(&booking(1, 9)).await.is_ok());
    let m = producer.metrics();
    assert!(m.throttles > 10, "{m:?}");
    // Backoff: far fewer attempts than a retry storm would make in 10 s.
    assert!(m.requests < 2_000, "{m:?}");
    let report = producer.close_within(Duration::from_secs(1)).await;
    assert_eq!(report.dead_lettered, expired as u64 + 1);
    assert_eq!(
        dead.letters().last().unwrap().reason,
        DeadLetterReason::Closed
    );
}

#[tokio::test]
async fn permanently_rejected_records_are_dead_lettered_at_once() {
    let dead = MemoryDeadLetters::new();
    let stream = LocalStream::new("s", 1);
    let chaos = Arc::new(Chaos {
        record_failure: 1.0,
        record_code: "KMSDisabledException",
        ..Chaos::new(stream.clone())
    });
    let producer = Producer::new(chaos.clone(), config(&dead));
    let receipt = producer.send(&booking(0, 1)).await.unwrap();
    let err = receipt.await.unwrap_err();
    assert!(
        matches!(
            err,
            DeliveryError::DeadLettered {
                reason: DeadLetterReason::Rejected,
                attempts: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("KMSDisabledException"));
    assert_eq!(dead.letters().len(), 1);
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, 1);
}

#[tokio::test]
async fn without_a_shard_map_records_go_plain_and_still_arrive_in_order() {
    let dead = MemoryDeadLetters::new();
    let stream = LocalStream::new("s", 2);
    let chaos = Arc::new(Chaos {
        record_failure: 0.2,
        ..Chaos::new(stream.clone())
    });
    *chaos.shards.lock().unwrap() = Some(Err(TransportError::Permanent(
        "AccessDeniedException".into(),
    )));
    let producer = Producer::new(chaos.clone(), config(&dead));
    let sent: Vec<Envelope> = (0..600).map(|i| booking(i, 5)).collect();
    for e in &sent {
        producer.send(e).await.unwrap();
    }
    producer.close().await;
    let got = read_back(&stream);
    assert!(
        got.iter().all(|r| r.sub.is_none()),
        "aggregated without a map"
    );
    assert_all_once_in_order(&sent, &got, false);
    // Plain records share requests when their keys differ.
    assert!(chaos.sizes.lock().unwrap().iter().any(|&n| n > 1));
}

#[tokio::test]
async fn a_record_on_an_unexpected_shard_reloads_the_map() {
    let dead = MemoryDeadLetters::new();
    // The stream really has 4 shards; the producer is first told of 2 (as if it
    // learnt the map before a split).
    let stream = LocalStream::new("s", 4);
    let real = stream.shards();
    let stale = vec![
        ShardInfo {
            shard_id: "shardId-000000000100".into(),
            starting_hash_key: 0,
            ending_hash_key: real[1].ending_hash_key,
        },
        ShardInfo {
            shard_id: "shardId-000000000101".into(),
            starting_hash_key: real[2].starting_hash_key,
            ending_hash_key: u128::MAX,
        },
    ];
    let chaos = Arc::new(Chaos::new(stream.clone()));
    *chaos.shards.lock().unwrap() = Some(Ok(stale));
    let producer = Producer::new(chaos.clone(), config(&dead));
    let first: Vec<Envelope> = (0..500).map(|i| booking(i, 30)).collect();
    for e in &first {
        producer.send(e).await.unwrap();
    }
    *chaos.shards.lock().unwrap() = None;
    producer.flush().await.unwrap();
    let second: Vec<Envelope> = (500..1_000).map(|i| booking(i, 30)).collect();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for e in &second {
        producer.send(e).await.unwrap();
    }
    producer.close().await;
    let m = producer.metrics();
    assert!(m.shard_map_refreshes >= 2, "{m:?}");
    assert!(chaos.list_calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    // Aggregates built from the stale map may hold records whose keys belong to the
    // other half of the split (written all the same); after the reload none do.
    let got = read_back_placed(&stream, false);
    let shards = stream.shards();
    let second_ids: std::collections::HashSet<String> =
        second.iter().map(|e| booking_id(&e.to_json())).collect();
    for r in got
        .iter()
        .filter(|r| second_ids.contains(&booking_id(&r.data)))
    {
        let s = shards.iter().find(|s| s.shard_id == r.shard_id).unwrap();
        let h = flyhigh_schemas::hash_key(&r.partition_key);
        assert!(
            h >= s.starting_hash_key && h <= s.ending_hash_key,
            "misplaced after reload"
        );
    }
    let all: Vec<Envelope> = first.into_iter().chain(second).collect();
    assert_all_once_in_order(&all, &got, false);
}

#[tokio::test]
async fn flush_waits_for_everything_sent_before_it() {
    let dead = MemoryDeadLetters::new();
    let stream = LocalStream::new("s", 2);
    let chaos = Arc::new(Chaos {
        record_failure: 0.5,
        ..Chaos::new(stream.clone())
    });
    let producer = Producer::new(chaos, config(&dead));
    for i in 0..300 {
        producer.send(&booking(i, 50)).await.unwrap();
    }
    let report = producer.flush().await.unwrap();
    assert_eq!(report.records_written, 300);
    assert_eq!(producer.metrics().buffered_records, 0);
    assert_eq!(read_back(&stream).len(), 300);
    let again = producer.flush().await.unwrap();
    assert_eq!(again, FlushReport::default());
    producer.close().await;
    assert!(matches!(
        producer.send(&booking(1, 1)).await,
        Err(SendError::Closed)
    ));
}

/// A dead-letter sink that cannot store anything.
#[derive(Debug)]
struct BrokenSink;

impl crate::dead_letter::DeadLetterSink for BrokenSink {
    fn write(&self, _: Vec<crate::dead_letter::DeadLetter>) -> crate::dead_letter::SinkFuture<'_> {
        Box::pin(async { Err(crate::dead_letter::DeadLetterError("disk full".into())) })
    }
}

#[tokio::test]
async fn when_the_dead_letter_sink_fails_the_receipt_carries_the_record_fate() {
    let stream = LocalStream::new("s", 1);
    let chaos = Arc::new(Chaos {
        record_failure: 1.0,
        record_code: "AccessDeniedException",
        ..Chaos::new(stream.clone())
    });
    let producer = Producer::new(
        chaos,
        ProducerConfig {
            dead_letters: Arc::new(BrokenSink),
            ..config(&MemoryDeadLetters::new())
        },
    );
    let receipt = producer.send(&booking(0, 1)).await.unwrap();
    match receipt.await {
        Err(DeliveryError::DeadLetterFailed {
            reason,
            error,
            sink_error,
        }) => {
            assert_eq!(reason, DeadLetterReason::Rejected);
            assert!(error.contains("AccessDeniedException"), "{error}");
            assert!(sink_error.contains("disk full"), "{sink_error}");
        }
        other => panic!("{other:?}"),
    }
    producer.close().await;
    let m = producer.metrics();
    assert_eq!(
        (m.dead_letter_failures, m.user_records_dead_lettered),
        (1, 1)
    );
}

use crate::test_support::Captured;

#[tokio::test(start_paused = true)]
async fn metrics_are_emitted_as_tracing_events_periodically_and_at_close() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test's runtime is single-threaded, so the worker logs through this too.
    let _guard = tracing::subscriber::set_default(subscriber);
    let stream = LocalStream::new("s", 2);
    let producer = Producer::new(
        stream,
        ProducerConfig {
            metrics_interval: Some(Duration::from_secs(10)),
            ..config(&MemoryDeadLetters::new())
        },
    );
    for i in 0..50 {
        producer.send(&booking(i, 5)).await.unwrap();
    }
    producer.flush().await.unwrap();
    tokio::time::sleep(Duration::from_secs(11)).await;
    let periodic = captured.text();
    assert_eq!(
        periodic.matches("producer metrics").count(),
        1,
        "{periodic}"
    );
    assert!(
        periodic.contains(crate::metrics::METRICS_TARGET),
        "{periodic}"
    );
    assert!(periodic.contains("user_records_written=50"), "{periodic}");
    assert!(
        periodic.contains("user_records_per_kinesis_record="),
        "{periodic}"
    );
    producer.close().await;
    let all = captured.text();
    assert_eq!(all.matches("producer metrics").count(), 2, "{all}");
}

#[tokio::test]
async fn closing_from_two_clones_reports_to_both() {
    let stream = LocalStream::new("s", 1);
    let producer = Producer::new(stream, config(&MemoryDeadLetters::new()));
    let other = producer.clone();
    for i in 0..10 {
        producer.send(&booking(i, 2)).await.unwrap();
    }
    let (a, b) = tokio::join!(producer.close(), other.close());
    assert_eq!((a.records_written, b.records_written), (10, 10));
    assert!(matches!(
        other.send(&booking(11, 2)).await,
        Err(SendError::Closed)
    ));
}

#[tokio::test(start_paused = true)]
async fn without_list_shards_permission_the_map_is_retried_ever_more_slowly() {
    let stream = LocalStream::new("s", 2);
    let chaos = Arc::new(Chaos::new(stream.clone()));
    *chaos.shards.lock().unwrap() = Some(Err(TransportError::Permanent(
        "AccessDeniedException: not authorized to perform kinesis:ListShards".into(),
    )));
    let producer = Producer::new(
        chaos.clone(),
        ProducerConfig {
            backoff_max: Duration::from_secs(5),
            ..config(&MemoryDeadLetters::new())
        },
    );
    let receipt = producer.send(&booking(0, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(receipt.await.is_ok(), "records still go, plain");
    // 5, 10, 20, 40 s, then every 60 s: about 14 attempts in 10 minutes, not 120.
    let calls = chaos.list_calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!((10..=16).contains(&calls), "{calls} ListShards calls");
    producer.close().await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_without_close_logs_how_many_records_were_abandoned() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let dead = MemoryDeadLetters::new();
    let chaos = Chaos::new(LocalStream::new("s", 2));
    chaos
        .throttle_all
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let producer = Producer::new(chaos, config(&dead));
    let clone = producer.clone();
    for i in 0..7 {
        producer.send(&booking(i, 3)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(producer);
    let text = captured.text();
    assert!(
        !text.contains("dropped without close"),
        "a clone still holds it: {text}"
    );
    drop(clone);
    let text = captured.text();
    assert!(
        text.contains("WARN") && text.contains("dropped without close(): 7 accepted records"),
        "{text}"
    );
}
