use std::sync::Mutex;

use flyhigh_schemas::{Booking, Cabin, Money, Payload};

use super::*;
use crate::local::{LocalRead, LocalStream};

fn booking(i: usize, seats: u8) -> Envelope {
    Envelope::new(
        "test-app",
        "2026-11-22T10:15:00.250Z".parse().unwrap(),
        Payload::Booking(Booking {
            booking_id: format!("BK{i:06}"),
            customer_id: "c-5f1e0a".into(),
            flight_id: format!("FH{:04}-20261201", i % 7),
            origin: "LHR".into(),
            destination: "JFK".into(),
            cabin: Cabin::Economy,
            seats,
            fare: Money::new("412.80".parse().unwrap(), "GBP"),
        }),
    )
}

/// Fails the first `fail_first` records of every request with the given code, once
/// per distinct record, then accepts them: records that fail are retried alone.
struct Flaky {
    stream: LocalStream,
    code: &'static str,
    every: usize,
    failed_once: Mutex<std::collections::HashSet<Vec<u8>>>,
    requests: Mutex<Vec<usize>>,
}

impl Transport for Flaky {
    async fn put_records(&self, entries: &[Entry]) -> Result<Vec<EntryResult>, TransportError> {
        self.requests.lock().unwrap().push(entries.len());
        let mut out = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let first_time = self.failed_once.lock().unwrap().insert(e.data.clone());
            if self.every != 0 && i % self.every == 0 && first_time {
                out.push(EntryResult::Failed {
                    code: self.code.into(),
                    message: "slow down".into(),
                });
            } else {
                out.extend(self.stream.put(std::slice::from_ref(e))?);
            }
        }
        Ok(out)
    }
}

fn fast_config() -> ProducerConfig {
    ProducerConfig {
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(2),
        ..ProducerConfig::default()
    }
}

#[tokio::test]
async fn invalid_event_names_each_field_and_sends_nothing() {
    let stream = LocalStream::new("s", 2);
    let producer = Producer::new(stream.clone(), fast_config());
    let mut event = booking(1, 12);
    if let Payload::Booking(b) = &mut event.payload {
        b.origin = "lhr".into();
    }
    let Err(SendError::Invalid(errors)) = producer.send(&event).await else {
        panic!("accepted an invalid event")
    };
    assert!(
        errors.has("payload.seats") && errors.has("payload.origin"),
        "{errors}"
    );
    let report = producer.close().await;
    assert_eq!(report.records_sent, 0);
    assert_eq!(stream.total_records(), 0);
}

#[tokio::test]
async fn events_are_batched_into_requests_of_at_most_500() {
    let stream = LocalStream::new("s", 4);
    let flaky = Flaky {
        stream: stream.clone(),
        code: "none",
        every: 0,
        failed_once: Default::default(),
        requests: Default::default(),
    };
    let flaky = Arc::new(flaky);
    let producer = Producer::new(flaky.clone(), fast_config());
    for i in 0..1_234 {
        producer.send(&booking(i, 1)).await.unwrap();
    }
    let report = producer.flush().await.unwrap();
    assert_eq!(report.records_sent, 1_234);
    assert_eq!(*flaky.requests.lock().unwrap(), vec![500, 500, 234]);
    assert_eq!(stream.total_records(), 1_234);
}

#[tokio::test]
async fn throttled_records_are_retried_alone_and_all_arrive_once() {
    let stream = LocalStream::new("s", 4);
    let flaky = Arc::new(Flaky {
        stream: stream.clone(),
        code: "ProvisionedThroughputExceededException",
        every: 3,
        failed_once: Default::default(),
        requests: Default::default(),
    });
    let producer = Producer::new(flaky.clone(), fast_config());
    for i in 0..900 {
        producer.send(&booking(i, 1)).await.unwrap();
    }
    let stats_before_close = producer.stats();
    let report = producer.close().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed.first());
    assert_eq!(report.records_sent, 900);
    assert_eq!(stats_before_close.accepted, 900);
    // Each retry request carries only the records that failed.
    let requests = flaky.requests.lock().unwrap().clone();
    assert_eq!(requests, vec![500, 167, 400, 134]);
    // Every event exactly once.
    let mut ids = std::collections::HashSet::new();
    for shard in 0..4 {
        let LocalRead::Records(records) = stream.read(shard, 0, 10_000) else {
            panic!()
        };
        for r in records {
            assert!(ids.insert(r.data.to_vec()), "duplicate record");
        }
    }
    assert_eq!(ids.len(), 900);
}

#[tokio::test]
async fn permanently_failing_records_are_reported_not_dropped() {
    let stream = LocalStream::new("s", 1);
    let flaky = Arc::new(Flaky {
        stream,
        code: "KMSAccessDeniedException",
        every: 2,
        failed_once: Default::default(),
        requests: Default::default(),
    });
    let producer = Producer::new(flaky, fast_config());
    for i in 0..10 {
        producer.send(&booking(i, 1)).await.unwrap();
    }
    let report = producer.close().await;
    assert_eq!(report.records_sent, 5);
    assert_eq!(report.failed.len(), 5);
    assert!(
        report.failed[0]
            .reason
            .starts_with("KMSAccessDeniedException")
    );
}

#[tokio::test(start_paused = true)]
async fn a_lone_record_is_sent_after_the_linger_time() {
    let stream = LocalStream::new("s", 1);
    let producer = Producer::new(
        stream.clone(),
        ProducerConfig {
            linger: Duration::from_millis(100),
            ..fast_config()
        },
    );
    producer.send(&booking(1, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(stream.total_records(), 0);
    tokio::time::sleep(Duration::from_millis(60)).await;
    tokio::task::yield_now().await;
    assert_eq!(stream.total_records(), 1);
}
