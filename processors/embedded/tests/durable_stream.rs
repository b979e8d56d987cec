//! The durable stream end to end: limits and placement as the in-memory
//! `LocalStream`, group commit under concurrency, event-id dedupe, reopening,
//! reader start positions, retention on an injected clock, a producer and the
//! runner through it, and every acknowledged record surviving a `kill -9`.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::{DateTime, Utc};
use flyhigh_embedded::{DurableStream, StreamConfig, StreamError};
use flyhigh_producer::limits::MAX_RECORD_BYTES;
use flyhigh_producer::{
    Booking, Cabin, Entry, EntryResult, Envelope, LocalStream, MemoryDeadLetters, Money, Payload,
    Producer,
};
use flyhigh_runner::failure::MemoryFailures;
use flyhigh_runner::{
    MappingConfig, ReadOutcome, Runner, ShardReader, SourceRecord, StartPosition, StreamSource,
    handler_fn,
};
use flyhigh_schemas::aggregation::{AggregateBuilder, Deaggregated, deaggregate};
use uuid::Uuid;

fn open(dir: &Path, shards: usize) -> DurableStream {
    DurableStream::open(
        &dir.join("stream.sqlite"),
        StreamConfig::new("test", shards),
    )
    .unwrap()
}

/// A booking event with a fresh `now_v7` id, as an app builds one.
fn booking(i: usize) -> Envelope {
    let mut event = Envelope::new(
        "web-app",
        "2026-11-22T10:15:00.250Z".parse().unwrap(),
        Payload::Booking(Booking {
            booking_id: format!("BK{i:07}"),
            customer_id: format!("cust-{i:05}"),
            flight_id: format!("FH{:04}-20261201", i % 97),
            origin: "LHR".into(),
            destination: "JFK".into(),
            cabin: Cabin::Economy,
            seats: 1,
            fare: Money::new("412.80".parse().unwrap(), "GBP"),
        }),
    );
    event.event_id = Uuid::now_v7();
    event
}

fn json_event(id: Uuid) -> Vec<u8> {
    format!(r#"{{"event_id":"{id}","schema_version":1}}"#).into_bytes()
}

fn sequence_number(result: &EntryResult) -> String {
    match result {
        EntryResult::Ok {
            sequence_number, ..
        } => sequence_number.clone(),
        EntryResult::Failed { code, message } => panic!("failed: {code} {message}"),
    }
}

/// Every record of a shard, read from the trim horizon until nothing new comes.
async fn read_shard(stream: &DurableStream, shard: usize) -> Vec<SourceRecord> {
    read_from(stream, shard, StartPosition::TrimHorizon).await
}

async fn read_from(
    stream: &DurableStream,
    shard: usize,
    start: StartPosition,
) -> Vec<SourceRecord> {
    let id = &stream.shards()[shard].shard_id;
    let mut reader = StreamSource::open(stream, id, start).await.unwrap();
    let mut all = Vec::new();
    loop {
        match reader.read(1_000).await.unwrap() {
            ReadOutcome::Records(records) if records.is_empty() => return all,
            ReadOutcome::Records(records) => all.extend(records),
            ReadOutcome::Ended | ReadOutcome::Stopped => return all,
        }
    }
}

async fn read_all(stream: &DurableStream) -> Vec<SourceRecord> {
    let mut all = Vec::new();
    for shard in 0..stream.shards().len() {
        all.extend(read_shard(stream, shard).await);
    }
    all
}

/// The event ids of the user records a Kinesis record holds.
fn event_ids(data: &[u8]) -> Vec<Uuid> {
    #[derive(serde::Deserialize)]
    struct Id {
        event_id: Uuid,
    }
    let records: Vec<&[u8]> = match deaggregate(data).unwrap() {
        Deaggregated::Single(d) => vec![d],
        Deaggregated::Aggregated(rs) => rs.iter().map(|r| r.data).collect(),
    };
    records
        .iter()
        .map(|d| serde_json::from_slice::<Id>(d).unwrap().event_id)
        .collect()
}

#[tokio::test]
async fn requests_beyond_the_kinesis_limits_are_rejected_as_local_stream_rejects_them() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 1);
    let local = LocalStream::new("local", 1);
    let bad: Vec<Vec<Entry>> = vec![
        vec![],
        (0..501)
            .map(|i| Entry::new(i.to_string(), vec![]))
            .collect(),
        vec![Entry::new("k", vec![0; MAX_RECORD_BYTES])],
        vec![Entry::new("k".repeat(257), vec![])],
        vec![Entry::new("", vec![])],
        (0..6)
            .map(|i| Entry::new(i.to_string(), vec![0; MAX_RECORD_BYTES - 1]))
            .collect(),
    ];
    for request in &bad {
        let ours = stream.put(request).await.unwrap_err();
        assert_eq!(ours, local.put(request).unwrap_err(), "same error");
    }
    let fine = vec![Entry::new("k".repeat(256), vec![0; MAX_RECORD_BYTES - 256])];
    assert!(stream.put(&fine).await.is_ok() && local.put(&fine).is_ok());
    assert_eq!(stream.stats().records_written, 1);
}

#[tokio::test]
async fn records_land_on_the_shards_local_stream_puts_them_on() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 4);
    let local = LocalStream::new("local", 4);
    assert_eq!(stream.shards(), local.shards());
    let mut entries: Vec<Entry> = (0..200)
        .map(|i| Entry::new(format!("FH{i:04}-20261201"), b"{}".to_vec()))
        .collect();
    entries.push(Entry {
        explicit_hash_key: Some(local.shards()[2].starting_hash_key),
        ..Entry::new("any-key", b"{}".to_vec())
    });
    let ours = stream.put(&entries).await.unwrap();
    let theirs = local.put(&entries).unwrap();
    let shard_of = |r: &EntryResult| match r {
        EntryResult::Ok { shard_id, .. } => shard_id.clone(),
        EntryResult::Failed { .. } => panic!("failed"),
    };
    assert_eq!(
        ours.iter().map(shard_of).collect::<Vec<_>>(),
        theirs.iter().map(shard_of).collect::<Vec<_>>()
    );
    // Same format of sequence numbers, increasing within a shard.
    assert_eq!(sequence_number(&ours[0]), sequence_number(&theirs[0]));
    for shard in 0..4 {
        let records = read_shard(&stream, shard).await;
        assert!(!records.is_empty());
        assert!(records.windows(2).all(|w| {
            flyhigh_runner::compare_sequence_numbers(&w[0].sequence_number, &w[1].sequence_number)
                .is_lt()
        }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 4);
    let puts = (0..64).map(|i| {
        let stream = stream.clone();
        tokio::spawn(async move {
            let entries: Vec<Entry> = (0..10)
                .map(|j| Entry::new(format!("k{i}-{j}"), json_event(Uuid::now_v7())))
                .collect();
            stream.put(&entries).await
        })
    });
    let mut seqs = HashSet::new();
    for put in futures::future::join_all(puts).await {
        for result in put.unwrap().unwrap() {
            assert!(seqs.insert(sequence_number(&result)), "unique");
        }
    }
    let stats = stream.stats();
    println!(
        "64 concurrent requests: {} commits, {:.1} requests per commit (max {})",
        stats.commits,
        stats.requests_per_commit(),
        stats.max_requests_per_commit
    );
    assert_eq!((stats.requests, stats.records_written), (64, 640));
    assert!(stats.commits < stats.requests, "{stats:?}");
    assert_eq!(read_all(&stream).await.len(), 640);
}

#[tokio::test]
async fn the_same_event_twice_in_one_request_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 1);
    let id = Uuid::now_v7();
    let results = stream
        .put(&[
            Entry::new("a", json_event(id)),
            Entry::new("a", json_event(id)),
        ])
        .await
        .unwrap();
    // Both answered Ok, with their own (gapped) sequence numbers.
    assert_ne!(sequence_number(&results[0]), sequence_number(&results[1]));
    let records = read_all(&stream).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].sequence_number, sequence_number(&results[0]));
    assert_eq!(stream.stats().duplicates_dropped, 1);
    assert_eq!(
        stream.contains_events(&[id, Uuid::now_v7()]).await.unwrap(),
        HashSet::from([id])
    );
}

#[tokio::test]
async fn an_event_sent_again_in_a_later_request_is_dropped_and_answered_ok() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 2);
    let id = Uuid::now_v7();
    let first = stream
        .put(&[Entry::new("a", json_event(id))])
        .await
        .unwrap();
    let retry = stream
        .put(&[Entry::new("a", json_event(id))])
        .await
        .unwrap();
    assert!(matches!(&retry[0], EntryResult::Ok { .. }));
    assert_ne!(sequence_number(&first[0]), sequence_number(&retry[0]));
    assert_eq!(read_all(&stream).await.len(), 1);
    // Records that are not events with an id are never deduplicated.
    stream
        .put(&[Entry::new("a", b"not json".to_vec())])
        .await
        .unwrap();
    stream
        .put(&[Entry::new("a", b"not json".to_vec())])
        .await
        .unwrap();
    let stats = stream.stats();
    assert_eq!((stats.records_written, stats.duplicates_dropped), (3, 1));
}

#[tokio::test]
async fn an_aggregate_loses_only_its_duplicates_and_still_deaggregates() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 1);
    let old = Uuid::now_v7();
    stream
        .put(&[Entry::new("x", json_event(old))])
        .await
        .unwrap();
    let (new1, new2) = (Uuid::now_v7(), Uuid::now_v7());
    let mut builder = AggregateBuilder::new();
    builder.push("pk-new1", None, &json_event(new1));
    builder.push("pk-old", None, &json_event(old));
    builder.push("pk-new2", Some("12345"), &json_event(new2));
    builder.push("pk-new1-again", None, &json_event(new1));
    builder.push("pk-poison", None, b"not an event");
    stream
        .put(&[Entry::new("agg", builder.finish())])
        .await
        .unwrap();
    let records = read_all(&stream).await;
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1].partition_key, "agg",
        "the aggregate keeps its key"
    );
    let Deaggregated::Aggregated(users) = deaggregate(&records[1].data).unwrap() else {
        panic!("still an aggregate")
    };
    assert_eq!(
        users
            .iter()
            .map(|u| (u.partition_key, u.explicit_hash_key))
            .collect::<Vec<_>>(),
        [
            ("pk-new1", None),
            ("pk-new2", Some("12345")),
            ("pk-poison", None)
        ]
    );
    assert_eq!(users[2].data, b"not an event");
    assert_eq!(stream.stats().duplicates_dropped, 2);
    // An aggregate of nothing but duplicates is not stored, and answered Ok.
    let mut builder = AggregateBuilder::new();
    builder.push("pk", None, &json_event(new1));
    builder.push("pk", None, &json_event(old));
    let results = stream
        .put(&[Entry::new("agg", builder.finish())])
        .await
        .unwrap();
    assert!(matches!(&results[0], EntryResult::Ok { .. }));
    assert_eq!(read_all(&stream).await.len(), 2);
}

#[tokio::test]
async fn dedupe_off_stores_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = StreamConfig::new("s", 1).dedupe_event_ids(false);
    let stream = DurableStream::open(&dir.path().join("s.sqlite"), config).unwrap();
    let id = Uuid::now_v7();
    stream
        .put(&[
            Entry::new("a", json_event(id)),
            Entry::new("a", json_event(id)),
        ])
        .await
        .unwrap();
    assert_eq!(read_all(&stream).await.len(), 2);
    assert!(stream.contains_events(&[id]).await.unwrap().is_empty());
}

#[tokio::test]
async fn reopening_keeps_the_records_and_continues_the_sequence_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 2);
    let mut written = Vec::new();
    for i in 0..20 {
        let results = stream
            .put(&[Entry::new(format!("k{i}"), json_event(Uuid::now_v7()))])
            .await
            .unwrap();
        written.push(sequence_number(&results[0]));
    }
    // The last number given out belongs to an entry that was not stored.
    let id = Uuid::now_v7();
    stream
        .put(&[Entry::new("d", json_event(id))])
        .await
        .unwrap();
    let gap = stream
        .put(&[Entry::new("d", json_event(id))])
        .await
        .unwrap();
    drop(stream); // no close: as if the process stopped
    let stream = open(dir.path(), 2);
    let stats = stream.stats();
    assert_eq!(stats.shards.iter().map(|s| s.records).sum::<u64>(), 21);
    let mut read: Vec<String> = read_all(&stream)
        .await
        .into_iter()
        .map(|r| r.sequence_number)
        .collect();
    read.sort();
    assert_eq!(&read[..20], &written[..]);
    let next = stream.put(&[Entry::new("k", b"x".to_vec())]).await.unwrap();
    assert!(sequence_number(&next[0]) > sequence_number(&gap[0]));
    // Dedupe survives the reopen.
    stream
        .put(&[Entry::new("d", json_event(id))])
        .await
        .unwrap();
    assert_eq!(stream.stats().duplicates_dropped, 1);
}

#[tokio::test]
async fn readers_start_at_the_trim_horizon_the_latest_record_or_after_a_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 1);
    let entries: Vec<Entry> = (0..5).map(|i| Entry::new("k", vec![i])).collect();
    let results = stream.put(&entries).await.unwrap();
    let id = stream.shards()[0].shard_id.clone();
    let mut latest = StreamSource::open(&stream, &id, StartPosition::Latest)
        .await
        .unwrap();
    let after_second = read_from(
        &stream,
        0,
        StartPosition::AfterSequenceNumber(sequence_number(&results[1])),
    )
    .await;
    assert_eq!(
        after_second.iter().map(|r| r.data[0]).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    let horizon = read_shard(&stream, 0).await;
    assert_eq!(horizon.len(), 5);
    let before_all = read_from(&stream, 0, StartPosition::AfterSequenceNumber("1".into())).await;
    assert_eq!(before_all.len(), 5);
    assert!(matches!(
        StreamSource::open(
            &stream,
            &id,
            StartPosition::AfterSequenceNumber("9".repeat(60))
        )
        .await,
        Err(flyhigh_runner::SourceError::Permanent(_))
    ));
    // Latest sees only what comes after it opened; a waiting read is woken by the
    // commit.
    assert_eq!(latest.read(10).await.unwrap(), ReadOutcome::Records(vec![]));
    let writer = stream.clone();
    let put = tokio::spawn(async move { writer.put(&[Entry::new("k", vec![9])]).await });
    let mut got = Vec::new();
    while got.is_empty() {
        let ReadOutcome::Records(records) = latest.read(10).await.unwrap() else {
            panic!("open stream")
        };
        got = records;
    }
    put.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, [9]);
    // After close: the rest, then Stopped (the shard has not ended: a restart reads
    // on); puts fail.
    stream.close();
    assert_eq!(latest.read(10).await.unwrap(), ReadOutcome::Stopped);
    assert!(stream.put(&[Entry::new("k", vec![1])]).await.is_err());
}

#[tokio::test]
async fn retention_trims_old_records_with_their_event_ids_by_the_streams_clock() {
    let dir = tempfile::tempdir().unwrap();
    let t0: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
    let now = Arc::new(Mutex::new(t0));
    let clock = now.clone();
    let config = StreamConfig::new("s", 1).retention(Duration::from_secs(3600));
    let stream = DurableStream::open(&dir.path().join("s.sqlite"), config)
        .unwrap()
        .with_clock(move || *clock.lock().unwrap());
    let old = Uuid::now_v7();
    stream
        .put(&[Entry::new("a", json_event(old))])
        .await
        .unwrap();
    stream
        .put(&[Entry::new("a", b"old".to_vec())])
        .await
        .unwrap();
    let id = stream.shards()[0].shard_id.clone();
    let mut reader = StreamSource::open(&stream, &id, StartPosition::TrimHorizon)
        .await
        .unwrap();
    let ReadOutcome::Records(first) = reader.read(1).await.unwrap() else {
        panic!("open")
    };
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].approximate_arrival, t0,
        "arrival from the stream's clock"
    );
    *now.lock().unwrap() = t0 + chrono::Duration::minutes(59);
    stream
        .put(&[Entry::new("a", b"new".to_vec())])
        .await
        .unwrap();
    assert_eq!(
        stream.trim().await.unwrap(),
        0,
        "nothing is an hour old yet"
    );
    *now.lock().unwrap() = t0 + chrono::Duration::minutes(61);
    assert_eq!(stream.trim().await.unwrap(), 2);
    let stats = stream.stats();
    assert_eq!(stats.records_trimmed, 2);
    assert_eq!(stats.shards[0].records, 1);
    assert_eq!(
        stats.shards[0].latest_arrival,
        Some(t0 + chrono::Duration::minutes(59))
    );
    // The reader's next record was trimmed: it goes on from the oldest kept.
    let ReadOutcome::Records(next) = reader.read(10).await.unwrap() else {
        panic!("open")
    };
    assert_eq!(
        next.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
        [b"new".to_vec()]
    );
    // The trimmed event's id went with it.
    assert!(stream.contains_events(&[old]).await.unwrap().is_empty());
    stream
        .put(&[Entry::new("a", json_event(old))])
        .await
        .unwrap();
    assert_eq!(stream.stats().duplicates_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_and_the_runner_deliver_every_event_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 4);
    let dead_letters = MemoryDeadLetters::new();
    let producer = Producer::builder()
        .dead_letters(dead_letters.clone())
        .build_with(stream.clone())
        .await
        .unwrap();
    let events: Vec<Envelope> = (0..3_000).map(booking).collect();
    let mut receipts = Vec::new();
    for event in &events {
        receipts.push(producer.send(event).await.unwrap());
    }
    // A client retrying the first 200: harmless, the stream drops them.
    for event in &events[..200] {
        receipts.push(producer.send(event).await.unwrap());
    }
    producer.flush().await.unwrap();
    for receipt in receipts {
        receipt.await.unwrap();
    }
    let report = producer.close().await;
    assert_eq!(report.dead_lettered, 0);
    assert!(dead_letters.letters().is_empty());
    assert_eq!(stream.stats().duplicates_dropped, 200);
    stream.close();

    let seen = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let handler = {
        let seen = seen.clone();
        handler_fn(move |event: KinesisEvent| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().unwrap();
                for record in &event.records {
                    seen.extend(event_ids(&record.kinesis.data.0));
                }
                Ok(KinesisEventResponse::default())
            }
        })
    };
    let runner = Runner::new(MappingConfig {
        poll_interval: Duration::from_millis(1),
        ..MappingConfig::default()
    });
    runner
        .run(&stream, &handler, &MemoryFailures::default())
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    for id in seen.iter() {
        *counts.entry(*id).or_default() += 1;
    }
    assert_eq!(seen.len(), events.len(), "each event once");
    assert!(events.iter().all(|e| counts.get(&e.event_id) == Some(&1)));
}

/// The environment variable that turns [`child_writer`] into a writer that never
/// stops, for [`every_acknowledged_record_survives_a_kill_9`].
const CHILD_DIR: &str = "FLYHIGH_DURABLE_STREAM_CHILD_DIR";

/// Not a test on its own: with [`CHILD_DIR`] set it writes to the stream there from
/// four tasks until killed, printing `ACK <sequence number> <partition key>` for
/// each acknowledged record.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let stream = open(Path::new(&dir), 2);
        let writers = (0..4).map(|t| {
            let stream = stream.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("w{t}-{i}");
                    let results = stream
                        .put(&[Entry::new(key.clone(), json_event(Uuid::now_v7()))])
                        .await
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {} {key}", sequence_number(&results[0])).unwrap();
                    out.flush().unwrap();
                }
            })
        });
        futures::future::join_all(writers).await;
    });
}

/// Kills the child writer however the test ends, so that a failed assertion never
/// leaves it running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn every_acknowledged_record_survives_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_writer",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    while acked.len() < 300 {
        let line = lines.next().expect("the child writes").unwrap();
        if let Some(ack) = line.strip_prefix("ACK ") {
            acked.push(ack.to_string());
        }
    }
    child.0.kill().unwrap(); // SIGKILL, mid-transaction most likely
    child.0.wait().unwrap();
    // What was printed before the kill was acknowledged too.
    acked.extend(
        lines
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ACK ").map(str::to_string)),
    );
    let stream = open(dir.path(), 2);
    let stored: HashMap<String, String> = read_all(&stream)
        .await
        .into_iter()
        .map(|r| (r.sequence_number, r.partition_key))
        .collect();
    for ack in &acked {
        let (seq, key) = ack.split_once(' ').unwrap();
        assert_eq!(stored.get(seq).map(String::as_str), Some(key), "{ack}");
    }
    println!(
        "{} acknowledged, {} stored after kill -9",
        acked.len(),
        stored.len()
    );
    // The stream goes on after the largest number the child gave out.
    let max = stored.keys().max().unwrap().clone();
    let next = stream.put(&[Entry::new("k", b"x".to_vec())]).await.unwrap();
    assert!(sequence_number(&next[0]) > max);
}

#[test]
fn a_shard_count_mismatch_is_an_error_that_names_both() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), 4));
    let error = DurableStream::open(
        &dir.path().join("stream.sqlite"),
        StreamConfig::new("test", 2),
    )
    .unwrap_err();
    assert!(matches!(
        error,
        StreamError::ShardCountMismatch {
            stored: 4,
            configured: 2,
            ..
        }
    ));
}

#[tokio::test]
async fn the_writer_applies_retention_on_its_own_every_thousand_commits() {
    let dir = tempfile::tempdir().unwrap();
    let t0: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
    let now = Arc::new(Mutex::new(t0));
    let clock = now.clone();
    let config = StreamConfig::new("s", 1).retention(Duration::from_secs(60));
    let stream = DurableStream::open(&dir.path().join("s.sqlite"), config)
        .unwrap()
        .with_clock(move || *clock.lock().unwrap());
    stream
        .put(&[Entry::new("a", b"old".to_vec())])
        .await
        .unwrap();
    *now.lock().unwrap() = t0 + chrono::Duration::hours(1);
    for i in 0..1_000u32 {
        stream
            .put(&[Entry::new("a", i.to_be_bytes().to_vec())])
            .await
            .unwrap();
    }
    let stats = stream.stats();
    assert_eq!(stats.records_trimmed, 1, "{stats:?}");
    assert_eq!(stats.shards[0].records, 1_000);
    assert_eq!(read_all(&stream).await.len(), 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_beyond_the_pending_bound_wait_and_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let stream = open(dir.path(), 2);
    // 16 requests of 5 x 900 KiB: 70 MiB, more than MAX_PENDING_BYTES at once.
    let puts = (0..16).map(|i| {
        let stream = stream.clone();
        tokio::spawn(async move {
            let entries: Vec<Entry> = (0..5)
                .map(|j| Entry::new(format!("k{i}-{j}"), vec![i as u8; 900 * 1024]))
                .collect();
            stream.put(&entries).await
        })
    });
    for put in futures::future::join_all(puts).await {
        assert_eq!(put.unwrap().unwrap().len(), 5);
    }
    const { assert!(16 * 5 * 900 * 1024 > flyhigh_embedded::stream::MAX_PENDING_BYTES) };
    assert_eq!(stream.stats().records_written, 80);
}
