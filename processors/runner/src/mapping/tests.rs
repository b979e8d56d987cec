use std::sync::Mutex;

use flyhigh_producer::{Entry, LocalStream};

use super::*;
use crate::local::LocalSource;

/// Records every batch it sees; fails according to a script.
#[derive(Default)]
struct Scripted {
    seen: Mutex<Vec<Vec<String>>>,
    /// Per invocation number: which record index of the batch to report as failed,
    /// or an identifier to report.
    script: Mutex<VecDeque<Script>>,
}

#[derive(Clone)]
enum Script {
    Ok,
    FailAt(usize),
    Identifier(&'static str),
    Error,
}

impl Handler for Scripted {
    async fn handle(&self, event: KinesisEvent) -> Result<KinesisEventResponse, HandlerError> {
        let keys: Vec<String> = event
            .records
            .iter()
            .map(|r| String::from_utf8(r.kinesis.data.0.clone()).unwrap())
            .collect();
        self.seen.lock().unwrap().push(keys);
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Script::Ok);
        let mut response = KinesisEventResponse::default();
        match step {
            Script::Ok => {}
            Script::FailAt(i) => {
                response.add_failure(event.records[i].kinesis.sequence_number.clone())
            }
            Script::Identifier(id) => response.add_failure(id),
            Script::Error => return Err(HandlerError("boom".into())),
        }
        Ok(response)
    }
}

use crate::failure::MemoryFailures as Failures;

/// A closed one-shard stream holding records "0".."n-1".
fn stream(n: usize, shards: usize) -> LocalStream {
    let stream = LocalStream::new("test", shards);
    let entries: Vec<Entry> = (0..n)
        .map(|i| Entry::new(format!("k{i}"), i.to_string().into_bytes()))
        .collect();
    for chunk in entries.chunks(500) {
        stream.put(chunk).unwrap();
    }
    stream.close();
    stream
}

fn config(batch_size: usize) -> MappingConfig {
    MappingConfig {
        batch_size,
        retry_backoff: Duration::from_millis(1),
        poll_interval: Duration::from_millis(1),
        ..MappingConfig::default()
    }
}

/// Runs `runner` over `stream` with `handler` and a fresh failure destination;
/// returns the stats and every batch the handler saw.
async fn run(
    runner: &Runner,
    stream: &LocalStream,
    handler: &Scripted,
) -> (MappingStats, Vec<Vec<String>>) {
    let stats = runner
        .run(
            &LocalSource::new(stream.clone()),
            handler,
            &Failures::default(),
        )
        .await
        .unwrap();
    (stats, handler.seen.lock().unwrap().clone())
}

fn flat(seen: &[Vec<String>]) -> Vec<usize> {
    seen.iter().flatten().map(|s| s.parse().unwrap()).collect()
}

#[tokio::test]
async fn every_record_is_delivered_once_in_shard_order_in_batches_of_batch_size() {
    let stream = stream(25, 1);
    let handler = Scripted::default();
    let (stats, seen) = run(&Runner::new(config(10)), &stream, &handler).await;
    assert_eq!(seen.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(flat(&seen), (0..25).collect::<Vec<_>>());
    assert_eq!(
        (stats.records_read, stats.records_done, stats.invocations),
        (25, 25, 3)
    );
}

#[tokio::test]
async fn all_shards_are_read_each_in_order() {
    let stream = stream(1_000, 4);
    let handler = Scripted::default();
    let (_, seen) = run(&Runner::new(config(100)), &stream, &handler).await;
    let mut all = flat(&seen);
    // Within each shard the order is the put order.
    for shard in stream.shards() {
        let in_shard: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| {
                stream.shards()[stream.shard_for(&format!("k{i}"))].shard_id == shard.shard_id
            })
            .collect();
        assert!(
            in_shard.windows(2).all(|w| w[0] < w[1]),
            "{} out of order",
            shard.shard_id
        );
    }
    all.sort_unstable();
    assert_eq!(all, (0..1_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_partial_failure_retries_from_the_reported_record_only() {
    let handler = Scripted::default();
    handler.script.lock().unwrap().extend([Script::FailAt(4)]);
    let (stats, seen) = run(&Runner::new(config(10)), &stream(10, 1), &handler).await;
    assert_eq!(flat(&seen[1..]), (4..10).collect::<Vec<_>>());
    assert_eq!(
        (
            stats.invocations,
            stats.failed_invocations,
            stats.records_done
        ),
        (2, 1, 10)
    );
}

#[tokio::test]
async fn an_unknown_identifier_or_a_function_error_retries_the_whole_batch() {
    let handler = Scripted::default();
    handler
        .script
        .lock()
        .unwrap()
        .extend([Script::Identifier(""), Script::Error]);
    let (_, seen) = run(&Runner::new(config(5)), &stream(5, 1), &handler).await;
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|b| b.len() == 5));
}

#[tokio::test]
async fn a_batch_out_of_retries_goes_to_the_failure_destination_and_the_shard_moves_on() {
    let handler = Scripted::default();
    // Batch 0..5 fails at record 2 on every attempt (1 + 2 retries).
    handler.script.lock().unwrap().extend([
        Script::FailAt(2),
        Script::FailAt(0),
        Script::FailAt(0),
    ]);
    let failures = Failures::default();
    let runner = Runner::new(MappingConfig {
        max_retry_attempts: Some(2),
        ..config(5)
    });
    let stats = runner
        .run(&LocalSource::new(stream(10, 1)), &handler, &failures)
        .await
        .unwrap();
    let sent = failures.sent();
    assert_eq!(sent.len(), 1);
    let info = &sent[0].kinesis_batch_info;
    assert_eq!(info.batch_size, 3);
    assert_eq!(sent[0].records_base64.len(), 3);
    assert_eq!(sent[0].attempts, 3);
    // The next batch (5..10) was still processed.
    let seen = handler.seen.lock().unwrap().clone();
    assert_eq!(flat(&seen[seen.len() - 1..]), (5..10).collect::<Vec<_>>());
    assert_eq!(
        (
            stats.batches_to_failure_destination,
            stats.records_to_failure_destination,
            stats.records_done
        ),
        (1, 3, 10)
    );
}

#[tokio::test]
async fn an_idle_shard_stops_after_the_idle_timeout() {
    let stream = LocalStream::new("open", 1);
    stream.put(&[Entry::new("k", b"0".to_vec())]).unwrap();
    let handler = Scripted::default();
    let runner = Runner::new(MappingConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        ..config(10)
    });
    let (stats, _) = run(&runner, &stream, &handler).await;
    assert_eq!(stats.records_done, 1);
}

#[test]
fn events_look_like_lambdas() {
    let record = SourceRecord {
        sequence_number: "49".into(),
        partition_key: "pk".into(),
        approximate_arrival: Utc::now(),
        data: b"hi".to_vec(),
    };
    let event = kinesis_event(
        "shardId-000000000001",
        "arn:aws:kinesis:us-east-1:1:stream/s",
        "us-east-1",
        &[record],
    );
    let json = serde_json::to_value(&event).unwrap();
    let r = &json["Records"][0];
    assert_eq!(r["eventID"], "shardId-000000000001:49");
    assert_eq!(r["eventSource"], "aws:kinesis");
    assert_eq!(r["kinesis"]["data"], "aGk=");
    assert_eq!(r["kinesis"]["partitionKey"], "pk");
}

#[tokio::test]
async fn with_a_shard_concurrency_of_one_shards_are_read_one_after_another() {
    let stream = stream(400, 4);
    let handler = Scripted::default();
    let runner = Runner::new(MappingConfig {
        shard_concurrency: Some(1),
        ..config(50)
    });
    let (_, seen) = run(&runner, &stream, &handler).await;
    let shard_of = |batch: &Vec<String>| stream.shard_for(&format!("k{}", batch[0]));
    let order: Vec<usize> = seen.iter().map(shard_of).collect();
    // Each shard's batches are contiguous: the shard index changes at most 3 times.
    assert_eq!(
        order.windows(2).filter(|w| w[0] != w[1]).count(),
        3,
        "{order:?}"
    );
    assert_eq!(flat(&seen).len(), 400);
}

#[tokio::test(start_paused = true)]
async fn the_batching_window_gathers_records_that_trickle_in() {
    let stream = LocalStream::new("trickle", 1);
    let writer = {
        let stream = stream.clone();
        tokio::spawn(async move {
            for i in 0..6 {
                stream
                    .put(&[Entry::new("k", i.to_string().into_bytes())])
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            stream.close();
        })
    };
    let handler = Scripted::default();
    let runner = Runner::new(MappingConfig {
        batching_window: Duration::from_millis(350),
        ..config(100)
    });
    let (_, seen) = run(&runner, &stream, &handler).await;
    writer.await.unwrap();
    // Records 0..3 arrive within the first window (t = 0, 100, 200, 300 ms), the rest in
    // the next one.
    assert_eq!(
        seen.iter().map(Vec::len).collect::<Vec<_>>(),
        [4, 2],
        "{seen:?}"
    );
    assert_eq!(flat(&seen), (0..6).collect::<Vec<_>>());
}

#[tokio::test]
async fn every_invocation_is_given_its_deadline_as_lambda_gives_its_context() {
    // The runner used to call `handle(event)` alone: a handler could not know when
    // its invocation would be cut.
    let stream = stream(5, 1);
    let timeout = Duration::from_secs(42);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = handler_fn_by({
        let seen = seen.clone();
        move |event: KinesisEvent, deadline: std::time::Instant| {
            let seen = seen.clone();
            async move {
                let started = std::time::Instant::now();
                seen.lock().unwrap().push((
                    event.records.len(),
                    deadline > started,
                    deadline <= started + timeout,
                ));
                Ok(KinesisEventResponse::default())
            }
        }
    });
    let runner = Runner::new(MappingConfig {
        function_timeout: timeout,
        ..config(2)
    });
    runner
        .run(&LocalSource::new(stream), &handler, &Failures::default())
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [(2, true, true), (2, true, true), (1, true, true)]
    );
}
